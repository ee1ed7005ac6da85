#include "app/gui/views/step_chart.hpp"

#include <QLegendMarker>
#include <QLineSeries>
#include <QMouseEvent>
#include <QValueAxis>
#include <algorithm>
#include <cmath>

namespace mpscope::gui {

namespace {
// Long runs: at most this many points per line (every k-th, the last always), so that redraws stay quick.
constexpr std::size_t max_points = 3000;

// On a log axis the points are drawn as log10(y) on a linear axis labelled in powers of ten (Qt Charts' own log
// axis elides its labels in small charts).
QList<QPointF> to_points(const std::vector<Point>& in, bool log_y) {
  QList<QPointF> out;
  const std::size_t stride = std::max<std::size_t>(1, (in.size() + max_points - 1) / max_points);
  for (std::size_t i = 0; i < in.size(); ++i)
    if ((i % stride == 0 || i + 1 == in.size()) && std::isfinite(in[i].y) && (!log_y || in[i].y > 0))
      out.append(QPointF(in[i].x, log_y ? std::log10(in[i].y) : in[i].y));
  return out;
}
}  // namespace

StepChart::StepChart(const QString& title, const QString& y_title, QWidget* parent)
    : QChartView(new QChart, parent), y_title_(y_title) {
  chart()->setTitle(title);
  chart()->legend()->setAlignment(Qt::AlignBottom);
  chart()->setMargins(QMargins(4, 4, 4, 4));
  setRenderHint(QPainter::Antialiasing);
  setMinimumSize(320, 200);
  rebuild();
}

void StepChart::setLogY(bool on) {
  if (on == log_y_) return;
  log_y_ = on;
  rebuild();
}

void StepChart::setYTitle(const QString& title) {
  if (title == y_title_) return;
  y_title_ = title;
  rebuild();
}

void StepChart::setData(const std::vector<Line>& lines, const std::vector<Marks>& marks) {
  lines_ = lines;
  marks_ = marks;
  rebuild();
}

void StepChart::setSelectedStep(qint64 step) {
  if (step == selected_) return;
  selected_ = step;
  rebuild();
}

void StepChart::rebuild() {
  QChart* c = chart();
  c->removeAllSeries();
  for (QAbstractAxis* a : c->axes()) {
    c->removeAxis(a);
    delete a;
  }
  // The points first: the axes are complete (range, decade labels) before the chart lays them out.
  std::vector<QList<QPointF>> line_points, mark_points;
  points_ = 0;
  double x_max = 1, y_min = INFINITY, y_max = -INFINITY;
  const auto extend = [&](QList<QPointF> pts, std::vector<QList<QPointF>>& into) {
    for (const QPointF& p : pts) {
      x_max = std::max(x_max, p.x());
      y_min = std::min(y_min, p.y());
      y_max = std::max(y_max, p.y());
    }
    points_ += static_cast<int>(pts.size());
    into.push_back(std::move(pts));
  };
  for (const Line& l : lines_) extend(to_points(l.points, log_y_), line_points);
  for (const Marks& m : marks_) extend(to_points(m.points, log_y_), mark_points);
  if (!std::isfinite(y_min)) {
    y_min = 0;
    y_max = 1;
  }
  double lo = y_min, hi = y_max;
  auto* x = new QValueAxis;
  x->setTitleText("step");
  x->setLabelFormat("%d");
  x->setRange(0, x_max);
  x->applyNiceNumbers();
  auto* y = new QValueAxis;
  if (log_y_) {  // whole decades, labelled 1e-3, 1e-2, ...
    lo = std::floor(lo);
    hi = std::max(std::ceil(hi), lo + 1);
    y->setTickType(QValueAxis::TicksDynamic);
    y->setTickAnchor(0);
    // labels at least ~30 px apart: Qt Charts elides labels that do not fit between their ticks
    const double labels = std::max(2, (height() - 120) / 30);
    y->setTickInterval(std::max(1.0, std::ceil((hi - lo) / labels)));
    y->setLabelFormat("1e%.0f");
  } else {
    if (hi <= lo) hi = lo + 1;
    const double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
    y->setLabelFormat("%.3g");
  }
  y->setRange(lo, hi);
  y->setTitleText(y_title_);
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  const auto attach = [&](QXYSeries* s) {
    c->addSeries(s);
    s->attachAxis(x);
    s->attachAxis(y);
  };
  for (std::size_t i = 0; i < lines_.size(); ++i) {
    auto* s = new QLineSeries;
    s->setName(lines_[i].name);
    s->setPen(QPen(lines_[i].color, 1.6));
    s->replace(line_points[i]);
    attach(s);
  }
  for (std::size_t i = 0; i < marks_.size(); ++i) {
    const Marks& m = marks_[i];
    auto* s = new QScatterSeries;
    s->setName(m.name);
    s->setColor(m.color);
    s->setBorderColor(m.color.darker());
    s->setMarkerShape(m.shape);
    s->setMarkerSize(m.size);
    s->replace(mark_points[i]);
    attach(s);
  }
  if (selected_ >= 0) {
    auto* marker = new QLineSeries;
    marker->setName("selected step");
    marker->setPen(QPen(QColor(0, 0, 0, 140), 1, Qt::DashLine));
    marker->append(static_cast<double>(selected_), lo);
    marker->append(static_cast<double>(selected_), hi);
    attach(marker);
    c->legend()->markers(marker).front()->setVisible(false);
  }
}

void StepChart::resizeEvent(QResizeEvent* event) {
  QChartView::resizeEvent(event);
  if (log_y_) rebuild();
}

void StepChart::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton && chart()->plotArea().contains(event->position())) {
    const QPointF value = chart()->mapToValue(event->position());
    emit stepClicked(std::max<qint64>(0, std::llround(value.x())));
  }
  QChartView::mousePressEvent(event);
}

}  // namespace mpscope::gui
