#include "app/gui/views/heatmap_widget.hpp"

#include <QMouseEvent>
#include <QPainter>
#include <algorithm>
#include <cmath>

#include "app/gui/views/palette.hpp"

namespace mpscope::gui {

namespace {
constexpr int line_reach = 6;  // a format line this many bins from the data widens the rows to show it
}

HeatmapWidget::HeatmapWidget(QWidget* parent) : QWidget(parent) {
  setMinimumSize(360, 240);
  setAttribute(Qt::WA_OpaquePaintEvent);
}

void HeatmapWidget::setHeatmap(Heatmap heatmap) {
  heatmap_ = std::move(heatmap);
  bottom_ = heatmap_.lo;
  top_ = heatmap_.hi;
  if (top_ >= bottom_ && heatmap_.limits) {
    for (int line : {heatmap_.limits->min_subnormal, heatmap_.limits->min_normal, heatmap_.limits->max_finite + 1})
      if (line >= bottom_ - line_reach && line <= top_ + line_reach) {
        bottom_ = std::min(bottom_, line - 1);
        top_ = std::max(top_, line);
      }
  }
  const int columns = static_cast<int>(heatmap_.columns.size()), rows = top_ - bottom_ + 1;
  image_ = QImage();
  if (columns > 0 && rows > 0) {
    image_ = QImage(columns, rows, QImage::Format_RGB32);
    const QColor empty(250, 250, 250);
    const double scale = std::log1p(static_cast<double>(std::max<std::int64_t>(1, heatmap_.max_count)));
    for (int c = 0; c < columns; ++c)
      for (int r = 0; r < rows; ++r) {
        const std::int64_t n = heatmap_.count(static_cast<std::size_t>(c), top_ - r);
        image_.setPixelColor(c, r, n == 0 ? empty : heat_color(std::log1p(static_cast<double>(n)) / scale));
      }
  }
  update();
}

void HeatmapWidget::setSelectedStep(qint64 step) {
  if (step == selected_) return;
  selected_ = step;
  update();
}

QRect HeatmapWidget::plotRect() const { return rect().adjusted(48, 24, -96, -34); }

void HeatmapWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().window());
  p.setPen(palette().windowText().color());
  p.drawText(QRect(0, 2, width(), 20), Qt::AlignCenter, QString::fromStdString(heatmap_.title));
  const QRect plot = plotRect();
  p.drawRect(plot.adjusted(-1, -1, 0, 0));
  if (image_.isNull()) {
    p.drawText(plot, Qt::AlignCenter, "no statistics recorded yet");
    return;
  }
  p.drawImage(plot, image_);
  const int rows = top_ - bottom_ + 1;
  const auto y_of = [&](double exponent) {  // the lower edge of bin `exponent`
    return plot.bottom() - (exponent - bottom_) * plot.height() / static_cast<double>(rows);
  };
  // y labels: every few bins
  const int every = std::max(1, rows / 12);
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.85);
  p.setFont(small);
  for (int e = bottom_; e <= top_; ++e)
    if ((e % every) == 0)
      p.drawText(QRect(0, static_cast<int>(y_of(e + 0.5)) - 8, 44, 16), Qt::AlignRight | Qt::AlignVCenter,
                 QString("2^%1").arg(e));
  // x labels: first, middle and last recorded step
  const auto& steps = heatmap_.steps;
  const auto x_of = [&](std::size_t column) {
    return plot.left() + (static_cast<double>(column) + 0.5) * plot.width() / static_cast<double>(steps.size());
  };
  for (std::size_t c : {std::size_t{0}, steps.size() / 2, steps.size() - 1})
    p.drawText(QRect(static_cast<int>(x_of(c)) - 40, plot.bottom() + 2, 80, 16), Qt::AlignCenter, QString::number(steps[c]));
  p.drawText(QRect(plot.left(), plot.bottom() + 16, plot.width(), 16), Qt::AlignCenter, "step");
  // format lines
  if (heatmap_.limits) {
    const FormatLimits& l = *heatmap_.limits;
    const struct {
      int exponent;
      QString text;
      QColor color;
    } lines[] = {{l.min_subnormal, QString("%1 smallest subnormal 2^%2").arg(QString::fromStdString(l.format)).arg(l.min_subnormal), zone_color(Zone::underflow)},
                 {l.min_normal, QString("smallest normal 2^%1").arg(l.min_normal), zone_color(Zone::subnormal)},
                 {l.max_finite + 1, QString("largest finite < 2^%1").arg(l.max_finite + 1), zone_color(Zone::overflow)}};
    for (const auto& line : lines) {
      if (line.exponent < bottom_ || line.exponent > top_ + 1) continue;
      const int y = static_cast<int>(std::lround(y_of(line.exponent)));
      p.setPen(QPen(line.color, 2, Qt::DashLine));
      p.drawLine(plot.left(), y, plot.right(), y);
      // the label on the line, at the plot's left end, on a light box so that it reads over the cells
      const QRect box = p.fontMetrics().boundingRect(line.text).adjusted(-3, -1, 3, 1);
      const int top = y - box.height() - 1 < plot.top() ? y + 1 : y - box.height() - 1;
      const QRect where(plot.left() + 2, top, box.width(), box.height());
      p.fillRect(where, QColor(255, 255, 255, 210));
      p.setPen(line.color.darker(130));
      p.drawText(where, Qt::AlignCenter, line.text);
    }
  }
  // colour scale
  const QRect bar(plot.right() + 8, plot.top(), 12, std::min(120, plot.height() / 2));
  for (int i = 0; i < bar.height(); ++i)
    p.fillRect(bar.left(), bar.bottom() - i, bar.width(), 1, heat_color(static_cast<double>(i) / bar.height()));
  p.setPen(palette().windowText().color());
  p.drawText(bar.right() + 4, bar.top() + 10, QString::number(heatmap_.max_count));
  p.drawText(bar.right() + 4, bar.bottom(), "1");
  p.drawText(QRect(bar.left() - 4, bar.bottom() + 4, 90, 32), Qt::AlignLeft | Qt::TextWordWrap, "values per bin (log colour)");
  // selected step
  if (const auto column = heatmap_.column_at(selected_); column && selected_ >= 0) {
    const int x = static_cast<int>(std::lround(x_of(*column)));
    p.setPen(QPen(QColor(255, 255, 255, 220), 2));
    p.drawLine(x, plot.top(), x, plot.bottom());
    p.setPen(QPen(QColor(0, 0, 0, 200), 1, Qt::DashLine));
    p.drawLine(x, plot.top(), x, plot.bottom());
  }
}

void HeatmapWidget::mousePressEvent(QMouseEvent* event) {
  const QRect plot = plotRect();
  if (event->button() != Qt::LeftButton || heatmap_.steps.empty() || !plot.contains(event->position().toPoint())) return;
  const double f = (event->position().x() - plot.left()) / plot.width();
  const auto column = std::min(heatmap_.steps.size() - 1, static_cast<std::size_t>(std::max(0.0, f * static_cast<double>(heatmap_.steps.size()))));
  emit stepClicked(heatmap_.steps[column]);
}

}  // namespace mpscope::gui
