#include "app/gui/views/blocks_view.hpp"

#include <QHBoxLayout>
#include <algorithm>
#include <QHeaderView>
#include <cmath>
#include <sstream>

#include "app/gui/views/palette.hpp"

namespace mpscope::gui {

BlocksView::BlocksView(QWidget* parent) : RunView(parent) {
  lane_ = new QComboBox;
  lane_->setObjectName("lane");
  quantity_ = new QComboBox;
  quantity_->setObjectName("quantity");
  for (auto q : {BlockQuantity::attention_scores, BlockQuantity::residual_stream})
    quantity_->addItem(QString::fromStdString(to_string(q)), static_cast<int>(q));
  chart_ = new StepChart("Largest |value| per block", "log2 max |x| (bound)");
  heads_ = new QStandardItemModel(this);
  table_ = new QTableView;
  table_->setModel(heads_);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel("Lane"));
  top->addWidget(lane_);
  top->addWidget(quantity_);
  top->addStretch();
  arrange(top, Qt::Horizontal, chart_, table_);
  connect(lane_, &QComboBox::currentIndexChanged, this, [this] {
    redraw();
    updateTable();
  });
  connect(quantity_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(chart_, &StepChart::stepClicked, this, &RunView::stepClicked);
}

void BlocksView::showLane(const QString& lane) {
  preferred_ = lane;
  if (lane_->findText(lane) >= 0) lane_->setCurrentText(lane);
}

void BlocksView::refresh(const RunData& run) {
  const bool first = lane_->count() == 0;
  run_ = &run;
  fill_lanes(lane_, run, false);
  if (first && lane_->count() > 0) choose_first_lane(lane_, run, preferred_);
  redraw();
  updateTable();
}

void BlocksView::redraw() {
  const LaneData* lane = find_lane(run_, lane_->currentText());
  const auto q = static_cast<BlockQuantity>(quantity_->currentData().toInt());
  std::vector<StepChart::Line> lines;
  StepChart::Marks overflows{"overflowed", QColor(214, 39, 40), {}, QScatterSeries::MarkerShapeCircle, 7};
  std::ostringstream csv;
  csv << "block,step,log2_max_abs_bound,overflowed\n";
  if (lane) {
    const std::vector<BlockRange> ranges = block_ranges(*lane, q);
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const BlockRange& r = ranges[i];
      lines.push_back({QString::fromStdString(r.block).remove("transformer."), lane_color(static_cast<int>(i)), r.points});
      overflows.points.insert(overflows.points.end(), r.overflows.begin(), r.overflows.end());
      for (const Point& p : r.points)
        csv << r.block << ',' << p.x << ',' << p.y << ','
            << (std::find_if(r.overflows.begin(), r.overflows.end(), [&](const Point& o) { return o.x == p.x; }) != r.overflows.end()) << '\n';
    }
    // The residual stream's format limit as a flat line. (Not for the scores: they are recorded after the 1/√d
    // scaling, and autocast's product overflows before it, below this line; the red marks show where.)
    std::string format;
    for (const auto& t : lane->tensors)
      if (t.name.ends_with("c_proj.activation")) format = t.format;
    if (const auto limits = format_limits(format); q == BlockQuantity::residual_stream && limits && !lines.empty() && !lines.front().points.empty()) {
      const double first = lines.front().points.front().x, last = lines.front().points.back().x;
      lines.push_back({QString::fromStdString(format + " max"), QColor(120, 120, 120),
                       {{first, static_cast<double>(limits->max_finite + 1)}, {last, static_cast<double>(limits->max_finite + 1)}}});
    }
  }
  chart_->setYTitle(lines.empty() && lane ? "no transformer blocks in this run" : "log2 max |x| (bound)");
  std::vector<StepChart::Marks> marks;
  if (!overflows.points.empty()) marks.push_back(overflows);
  chart_->setData(lines, marks);
  chart_->setSelectedStep(selected_);
  csv_ = csv.str();
}

void BlocksView::setSelectedStep(qint64 step) {
  selected_ = step;
  chart_->setSelectedStep(step);
  updateTable();
}

void BlocksView::updateTable() {
  heads_->clear();
  heads_->setHorizontalHeaderLabels({"head", "format", "max |score| <", "inf", "overflow", "overflow so far", "underflow"});
  const LaneData* lane = find_lane(run_, lane_->currentText());
  if (!lane) return;
  for (const HeadFigures& h : head_figures(*lane, selected_ < 0 ? lane->last_step() : selected_)) {
    QString name = QString::fromStdString(h.tensor);  // "transformer.h.0.attn.head2.scores" -> "h.0.head2"
    name.remove("transformer.").remove(".attn").remove(".scores");
    QList<QStandardItem*> row{new QStandardItem(name), new QStandardItem(QString::fromStdString(h.format)),
                              new QStandardItem(h.top_exponent ? QString("2^%1").arg(*h.top_exponent) : "-"),
                              new QStandardItem(QString::number(h.infs)), new QStandardItem(QString::number(h.overflow)),
                              new QStandardItem(QString::number(h.overflow_so_far)), new QStandardItem(QString::number(h.underflow))};
    if (h.overflow_so_far > 0)
      for (QStandardItem* item : row) item->setBackground(QColor(255, 220, 220));
    for (QStandardItem* item : row) item->setEditable(false);
    heads_->appendRow(row);
  }
}

}  // namespace mpscope::gui
