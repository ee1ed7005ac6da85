// Colours shared by the views: one per lane (the same lane has the same colour in every view), one per zone of a
// format (underflow, subnormal, normal, overflow, zero, inf, NaN), and the heatmap's colour scale.
#pragma once

#include <QColor>

#include "app/gui/models/series.hpp"

namespace mpscope::gui {

QColor lane_color(int lane_index);
QColor zone_color(Zone zone);
QColor heat_color(double t);  // t in [0, 1]: dark blue .. yellow (viridis-like)

}  // namespace mpscope::gui
