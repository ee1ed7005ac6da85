// Tables of values written as CSV (a header line; strings quoted where needed; numbers with 17 significant digits;
// missing values empty) or JSON (an array of objects): `mpscope export` and the GUI's CSV export write the same way.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace mpscope::app {

using json = nlohmann::json;

json cell(const std::optional<double>& v);        // null when missing
json cell(const std::optional<std::int64_t>& v);  // null when missing
json number(double v);                            // non-finite values as "nan", "inf", "-inf"

// rows: JSON arrays, one value per column. format: "csv" or "json".
void write_table(std::ostream& out, const std::vector<std::string>& columns, const std::vector<json>& rows,
                 const std::string& format);

}  // namespace mpscope::app
