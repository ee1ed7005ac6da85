// GoogleTest main for the GUI tests: a QApplication on the offscreen platform (no display needed), so that
// queued signals, timers and widgets work; settings go to a scratch folder, not the user's.
#include <gtest/gtest.h>

#include <QApplication>
#include <QStandardPaths>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
  setenv("QT_QPA_PLATFORM", "offscreen", 1);
  const std::string home = (std::filesystem::temp_directory_path() / ("mpscope_gui_home_" + std::to_string(getpid()))).string();
  setenv("XDG_CONFIG_HOME", (home + "/config").c_str(), 1);
  setenv("XDG_CACHE_HOME", (home + "/cache").c_str(), 1);
  QApplication app(argc, argv);
  QApplication::setOrganizationName("mpscope-tests");
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  std::error_code ec;
  std::filesystem::remove_all(home, ec);
  // the tests' scratch files (gui_test_support.hpp)
  std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("mpscope_gui_tests_" + std::to_string(getpid())), ec);
  return status;
}
