// Input and output files of the CLI commands: existence checks before any work, no silent overwrites.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "app/cli/commands.hpp"

namespace mpscope::cli {

// Refuses (InputError) an output that exists without --force, that is one of the inputs, that is not a regular
// file (a directory, a device, a FIFO: --force replaces files only), or whose directory does not exist. Call before
// reading the inputs, so that no work is wasted. `hint`: what the already-exists error suggests.
inline void check_output(const std::filesystem::path& out, bool force, const std::vector<std::filesystem::path>& inputs,
                         const std::string& hint = "use --force to replace it") {
  namespace fs = std::filesystem;
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(dir)) throw InputError(out.string() + ": directory " + dir.string() + " does not exist");
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(out, ec);
  if (!fs::exists(status)) return;
  for (const auto& in : inputs)
    if (fs::equivalent(in, out, ec)) throw InputError(out.string() + ": the output would overwrite the input " + in.string());
  if (!fs::is_regular_file(fs::status(out, ec)))
    throw InputError(out.string() + " exists and is not a regular file: mpscope replaces files only");
  if (!force) throw InputError(out.string() + " already exists (" + hint + ")");
}

inline void check_input(const std::filesystem::path& in) {
  if (!std::filesystem::exists(in)) throw InputError(in.string() + ": no such file");
  if (std::filesystem::is_directory(in)) throw InputError(in.string() + ": is a directory, expected an .npy file");
}

}  // namespace mpscope::cli
