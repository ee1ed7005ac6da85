#include "app/gui/views/palette.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace mpscope::gui {

QColor lane_color(int lane_index) {
  static const std::array<QColor, 8> colors = {QColor(31, 119, 180), QColor(214, 39, 40),  QColor(44, 160, 44),
                                               QColor(255, 127, 14), QColor(148, 103, 189), QColor(140, 86, 75),
                                               QColor(227, 119, 194), QColor(23, 190, 207)};
  return colors[static_cast<std::size_t>(lane_index) % colors.size()];
}

QColor zone_color(Zone zone) {
  switch (zone) {
    case Zone::underflow: return QColor(214, 39, 40);
    case Zone::subnormal: return QColor(255, 160, 40);
    case Zone::normal: return QColor(60, 140, 200);
    case Zone::overflow: return QColor(150, 30, 150);
    case Zone::zero: return QColor(120, 120, 120);
    case Zone::infinite: return QColor(90, 0, 90);
    case Zone::nan: return QColor(0, 0, 0);
  }
  return Qt::gray;
}

QColor heat_color(double t) {
  static const std::array<std::array<double, 3>, 5> stops = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  t = std::clamp(t, 0.0, 1.0) * (stops.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), stops.size() - 2);
  const double f = t - static_cast<double>(i);
  const auto mix = [&](int c) { return static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))); };
  return QColor(mix(0), mix(1), mix(2));
}

}  // namespace mpscope::gui
