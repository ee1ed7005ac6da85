// Terminal helpers: colour only when writing to a terminal and NO_COLOR is unset.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace mpscope::cli {

inline bool use_colour(std::FILE* stream) {
  return isatty(fileno(stream)) != 0 && std::getenv("NO_COLOR") == nullptr;
}

// ANSI SGR codes for the three parts of a floating-point bit pattern (as Float Toy colours them).
struct Palette {
  bool on = false;
  std::string sign() const { return on ? "\033[1;31m" : ""; }
  std::string exponent() const { return on ? "\033[1;32m" : ""; }
  std::string mantissa() const { return on ? "\033[1;34m" : ""; }
  std::string dim() const { return on ? "\033[2m" : ""; }
  std::string reset() const { return on ? "\033[0m" : ""; }
};

}  // namespace mpscope::cli
