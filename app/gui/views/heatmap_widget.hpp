// The underflow heatmap, custom-painted (Qt Charts has none): x = recorded step, y = log2|value| bin, colour =
// count on a log colour scale; horizontal lines at the format's smallest subnormal, smallest normal and largest
// finite value; a vertical line at the selected step. A click selects the step under the cursor.
#pragma once

#include <QImage>
#include <QWidget>

#include "app/gui/models/series.hpp"

namespace mpscope::gui {

class HeatmapWidget : public QWidget {
  Q_OBJECT
 public:
  explicit HeatmapWidget(QWidget* parent = nullptr);
  void setHeatmap(Heatmap heatmap);
  void setSelectedStep(qint64 step);
  const Heatmap& heatmap() const { return heatmap_; }
  // The bin rows drawn: the data's, widened to show a format line lying near it.
  int bottomBin() const { return bottom_; }
  int topBin() const { return top_; }

 signals:
  void stepClicked(qint64 step);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;

 private:
  QRect plotRect() const;
  Heatmap heatmap_;
  QImage image_;  // one pixel per (column, bin)
  int bottom_ = 0, top_ = -1;
  qint64 selected_ = -1;
};

}  // namespace mpscope::gui
