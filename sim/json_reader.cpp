#include "sim/json_reader.hpp"

#include <algorithm>
#include <cmath>

namespace mpscope::sim {

namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string type_name(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 4;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

JsonObject::JsonObject(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {
  if (!j.is_object())
    throw ConfigError((path_.empty() ? std::string("the experiment") : path_) + ": expected an object, found " + type_name(j));
}

void JsonObject::fail(const std::string& key, const std::string& what) const {
  throw ConfigError(path_of(key) + ": " + what);
}

const nlohmann::json& JsonObject::get(const std::string& key) {
  known_.insert(key);
  return j_.at(key);
}

void JsonObject::allow(const std::vector<std::string>& keys) { known_.insert(keys.begin(), keys.end()); }

std::string JsonObject::text(const std::string& key, std::optional<std::string> fallback) {
  known_.insert(key);
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is required (a string)");
  }
  const auto& v = get(key);
  if (!v.is_string()) fail(key, "expected a string, found " + type_name(v));
  return v.get<std::string>();
}

double JsonObject::number(const std::string& key, std::optional<double> fallback) {
  known_.insert(key);
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is required (a number)");
  }
  const auto& v = get(key);
  if (!v.is_number()) fail(key, "expected a number, found " + type_name(v));
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite");
  return d;
}

std::int64_t JsonObject::integer(const std::string& key, std::optional<std::int64_t> fallback) {
  known_.insert(key);
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is required (an integer)");
  }
  const auto& v = get(key);
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()) && std::fabs(v.get<double>()) < 9e15)
    return static_cast<std::int64_t>(v.get<double>());
  fail(key, "expected an integer, found " + (v.is_number() ? std::string("the number ") + v.dump() : type_name(v)));
}

bool JsonObject::boolean(const std::string& key, std::optional<bool> fallback) {
  known_.insert(key);
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is required (true or false)");
  }
  const auto& v = get(key);
  if (!v.is_boolean()) fail(key, "expected true or false, found " + type_name(v));
  return v.get<bool>();
}

std::string JsonObject::choice(const std::string& key, const std::vector<std::string>& allowed,
                               std::optional<std::string> fallback) {
  const std::string s = text(key, std::move(fallback));
  if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return s;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  const std::string guess = closest_match(s, allowed);
  fail(key, "'" + s + "' is not one of " + list + (guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
}

JsonObject JsonObject::object(const std::string& key) {
  known_.insert(key);
  if (!has(key)) fail(key, "is required (an object)");
  return JsonObject(get(key), path_of(key));
}

const nlohmann::json& JsonObject::array(const std::string& key) {
  known_.insert(key);
  if (!has(key)) fail(key, "is required (an array)");
  const auto& v = get(key);
  if (!v.is_array()) fail(key, "expected an array, found " + type_name(v));
  return v;
}

const nlohmann::json& JsonObject::value(const std::string& key) {
  known_.insert(key);
  if (!has(key)) fail(key, "is required");
  return get(key);
}

void JsonObject::finish() const {
  for (const auto& [key, v] : j_.items()) {
    if (known_.count(key) != 0) continue;
    const std::string guess = closest_match(key, std::vector<std::string>(known_.begin(), known_.end()));
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(path_of(key) + ": unknown key" + (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                      "; known here: " + list);
  }
}

}  // namespace mpscope::sim
