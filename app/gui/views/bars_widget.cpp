#include "app/gui/views/bars_widget.hpp"

#include <QPainter>
#include <algorithm>
#include <cmath>

#include "app/gui/views/palette.hpp"

namespace mpscope::gui {

BarsWidget::BarsWidget(QWidget* parent) : QWidget(parent) { setMinimumSize(300, 240); }

void BarsWidget::setBars(std::vector<Bar> bars, const QString& title) {
  bars_ = std::move(bars);
  title_ = title;
  update();
}

void BarsWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().window());
  p.setPen(palette().windowText().color());
  p.drawText(QRect(0, 2, width(), 20), Qt::AlignCenter, title_);
  const QRect plot = rect().adjusted(44, 24, -8, -52);
  p.drawRect(plot.adjusted(-1, -1, 0, 0));
  std::int64_t most = 0;
  for (const Bar& b : bars_) most = std::max(most, b.count);
  if (bars_.empty() || most == 0) {
    p.drawText(plot, Qt::AlignCenter, "no values at this step");
    return;
  }
  const double top = std::log10(static_cast<double>(most)) + 0.3;
  const auto height_of = [&](std::int64_t n) {  // log scale: 1 value is a sliver, not nothing
    return n <= 0 ? 0.0 : (std::log10(static_cast<double>(n)) + 0.3) / top * plot.height();
  };
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.8);
  p.setFont(small);
  for (int decade = 0; std::pow(10.0, decade) <= static_cast<double>(most); ++decade) {
    const int y = plot.bottom() - static_cast<int>(height_of(static_cast<std::int64_t>(std::pow(10.0, decade))));
    p.setPen(QColor(0, 0, 0, 40));
    p.drawLine(plot.left(), y, plot.right(), y);
    p.setPen(palette().windowText().color());
    p.drawText(QRect(0, y - 8, 40, 16), Qt::AlignRight | Qt::AlignVCenter, decade < 4 ? QString::number(std::pow(10.0, decade)) : QString("1e%1").arg(decade));
  }
  const double width = static_cast<double>(plot.width()) / static_cast<double>(bars_.size());
  const int label_every = std::max(1, static_cast<int>(std::ceil(28.0 / width)));
  for (std::size_t i = 0; i < bars_.size(); ++i) {
    const Bar& b = bars_[i];
    const double x = plot.left() + static_cast<double>(i) * width;
    const double h = height_of(b.count);
    p.fillRect(QRectF(x + 0.5, plot.bottom() - h, std::max(1.0, width - 1), h), zone_color(b.zone));
    const bool special = b.zone == Zone::zero || b.zone == Zone::infinite || b.zone == Zone::nan;
    if (special || static_cast<int>(i) % label_every == 0) {
      p.setPen(palette().windowText().color());
      p.drawText(QRectF(x - 14, plot.bottom() + 2, width + 28, 14), Qt::AlignHCenter | Qt::AlignTop, QString::fromStdString(b.label));
    }
  }
  // legend of the zones
  int x = plot.left();
  for (Zone z : {Zone::underflow, Zone::subnormal, Zone::normal, Zone::overflow, Zone::zero}) {
    p.fillRect(x, plot.bottom() + 24, 10, 10, zone_color(z));
    const QString text = QString::fromStdString(to_string(z));
    p.drawText(x + 13, plot.bottom() + 33, text);
    x += 20 + p.fontMetrics().horizontalAdvance(text);
  }
  p.drawText(QRect(plot.left(), plot.bottom() + 36, plot.width(), 14), Qt::AlignCenter, "log2 |value| bin (count, log scale)");
}

}  // namespace mpscope::gui
