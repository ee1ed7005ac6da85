// The bar chart beside the heatmap: the selected step's log2 bins, each coloured by the zone of the format it
// falls in (lost to underflow, subnormal, normal, overflow), with zero, inf and NaN as their own bars. Bar heights
// on a log scale (counts span many orders of magnitude).
#pragma once

#include <QWidget>
#include <vector>

#include "app/gui/models/series.hpp"

namespace mpscope::gui {

class BarsWidget : public QWidget {
  Q_OBJECT
 public:
  explicit BarsWidget(QWidget* parent = nullptr);
  void setBars(std::vector<Bar> bars, const QString& title);
  const std::vector<Bar>& bars() const { return bars_; }

 protected:
  void paintEvent(QPaintEvent* event) override;

 private:
  std::vector<Bar> bars_;
  QString title_;
};

}  // namespace mpscope::gui
