#include "app/common/table_writer.hpp"

#include <cmath>
#include <sstream>

namespace mpscope::app {

json cell(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
json cell(const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); }
json number(double v) { return std::isfinite(v) ? json(v) : json(std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")); }

namespace {
std::string csv_cell(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string quoted = "\"";
    for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    return quoted + "\"";
  }
  if (v.is_number_float()) {
    std::ostringstream o;
    o.precision(17);
    o << v.get<double>();
    return o.str();
  }
  return v.dump();
}
}  // namespace

void write_table(std::ostream& out, const std::vector<std::string>& columns, const std::vector<json>& rows,
                 const std::string& format) {
  if (format == "json") {
    json all = json::array();
    for (const auto& r : rows) {
      json o = json::object();
      for (std::size_t c = 0; c < columns.size(); ++c) o[columns[c]] = r[c];
      all.push_back(o);
    }
    out << all.dump(1) << "\n";
    return;
  }
  for (std::size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << columns[c];
  out << "\n";
  for (const auto& r : rows) {
    for (std::size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << csv_cell(r[c]);
    out << "\n";
  }
}

}  // namespace mpscope::app
