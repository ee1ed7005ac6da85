// Reading a JSON configuration with errors that name the key path ("lanes[1].loss_scale.type") and what was
// expected, and unknown keys refused with a "did you mean" suggestion.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mpscope::sim {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The closest of `candidates` to `word` (edit distance at most 3), or "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

class JsonObject {
 public:
  JsonObject(const nlohmann::json& j, std::string path);  // throws ConfigError unless j is an object

  const std::string& path() const { return path_; }
  std::string path_of(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  bool has(const std::string& key) const { return j_.contains(key); }

  std::string text(const std::string& key, std::optional<std::string> fallback = {});
  double number(const std::string& key, std::optional<double> fallback = {});
  std::int64_t integer(const std::string& key, std::optional<std::int64_t> fallback = {});
  bool boolean(const std::string& key, std::optional<bool> fallback = {});
  // One of `allowed` (a string).
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     std::optional<std::string> fallback = {});
  JsonObject object(const std::string& key);  // must be present
  const nlohmann::json& array(const std::string& key);  // must be present and an array
  const nlohmann::json& value(const std::string& key);  // any type, must be present
  // Declares the keys it knows without reading them (handled elsewhere).
  void allow(const std::vector<std::string>& keys);

  // Refuses keys nobody asked for.
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json& get(const std::string& key);
  const nlohmann::json& j_;
  std::string path_;
  std::set<std::string> known_;
};

}  // namespace mpscope::sim
