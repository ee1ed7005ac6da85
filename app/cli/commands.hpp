// The subcommands of `mpscope`. Each adds itself to the CLI11 app; its callback throws InputError (exit 2) for
// bad arguments or input files and anything else (exit 3) for failures while running.
#pragma once

#include <CLI/CLI.hpp>
#include <stdexcept>

namespace mpscope::cli {

// Bad user input: arguments, files, values. The message names what is wrong; the exit status is 2.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A command that finished with a non-zero status it has already explained.
struct ExitStatus {
  int code;
};

inline constexpr int exit_ok = 0;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_runtime_failure = 3;

void add_formats_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_gemm_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_doctor_command(CLI::App& app);

}  // namespace mpscope::cli
