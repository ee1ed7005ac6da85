// The shipped scenarios: the experiment files in samples/ with the paragraph samples/README.md gives each
// ("## name.json — title" and the text under it), for the experiment panel's picker.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace mpscope::gui {

struct Scenario {
  std::filesystem::path path;  // the experiment file
  std::string title;           // "underflow.json — gradients below 2^-24 vanish in fp16 without loss scaling"
  std::string explanation;     // the paragraph, "" when the README has none
};

// In README order, then any other .json files of the folder by name. Empty when the folder does not exist.
std::vector<Scenario> load_scenarios(const std::filesystem::path& samples_dir);

// Where samples/ is: $MPSCOPE_SAMPLES, else the checkout the program's build tree is in, else the source tree the
// program was built from. Empty when none exists.
std::filesystem::path find_samples_dir(const std::filesystem::path& program_dir);

}  // namespace mpscope::gui
