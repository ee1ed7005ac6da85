#include "app/gui/models/scenarios.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

namespace mpscope::gui {

std::vector<Scenario> load_scenarios(const std::filesystem::path& samples_dir) {
  std::vector<Scenario> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(samples_dir, ec)) return out;
  std::set<std::string> seen;
  std::ifstream readme(samples_dir / "README.md");
  std::string line;
  Scenario* current = nullptr;
  while (std::getline(readme, line)) {
    if (line.starts_with("## ")) {
      current = nullptr;
      const std::string heading = line.substr(3);
      const std::string file = heading.substr(0, heading.find(' '));
      if (file.ends_with(".json") && std::filesystem::exists(samples_dir / file) && !seen.contains(file)) {
        seen.insert(file);
        out.push_back({samples_dir / file, heading, ""});
        current = &out.back();
      }
    } else if (current != nullptr && !line.empty()) {
      current->explanation += (current->explanation.empty() ? "" : " ") + line;
    }
  }
  std::vector<std::filesystem::path> rest;
  for (const auto& entry : std::filesystem::directory_iterator(samples_dir, ec))
    if (entry.path().extension() == ".json" && !seen.contains(entry.path().filename().string())) rest.push_back(entry.path());
  std::sort(rest.begin(), rest.end());
  for (const auto& p : rest) out.push_back({p, p.filename().string(), ""});
  return out;
}

std::filesystem::path find_samples_dir(const std::filesystem::path& program_dir) {
  if (const char* env = std::getenv("MPSCOPE_SAMPLES"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  // build/app/gui/mpscope-gui -> samples/ of the checkout
  for (const auto& candidate : {program_dir / "../../../samples", std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples"})
    if (std::filesystem::is_directory(candidate, ec)) return std::filesystem::weakly_canonical(candidate, ec);
  return {};
}

}  // namespace mpscope::gui
