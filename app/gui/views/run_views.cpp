#include "app/gui/views/run_views.hpp"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>

#include "app/gui/models/series.hpp"
#include "app/gui/views/palette.hpp"

namespace mpscope::gui {

namespace {
QLabel* note(const QString& text) {  // wraps, so that a long note does not set the dock's minimum width
  auto* label = new QLabel(text);
  label->setWordWrap(true);
  return label;
}

QString lane_name(const LaneData& l) {
  return QString::fromStdString(l.info.name) + (l.info.is_reference ? " (ref)" : "");
}

}  // namespace

void choose_first_lane(QComboBox* box, const RunData& run, const QString& preferred) {
  const QSignalBlocker block(box);
  if (!preferred.isEmpty() && box->findText(preferred) >= 0) {
    box->setCurrentText(preferred);
    return;
  }
  for (const auto& l : run.lanes)
    if (!l.info.is_reference) {
      box->setCurrentText(QString::fromStdString(l.info.name));
      return;
    }
}

void fill_lanes(QComboBox* box, const RunData& run, bool skip_reference) {
  const QString current = box->currentText();
  QStringList names;
  for (const auto& l : run.lanes)
    if (!(skip_reference && l.info.is_reference)) names << QString::fromStdString(l.info.name);
  QStringList have;
  for (int i = 0; i < box->count(); ++i) have << box->itemText(i);
  if (have == names) return;
  const QSignalBlocker block(box);
  box->clear();
  box->addItems(names);
  if (const int i = box->findText(current); i >= 0) box->setCurrentIndex(i);
}

const LaneData* find_lane(const RunData* run, const QString& name) {
  if (run == nullptr) return nullptr;
  for (const auto& l : run->lanes)
    if (QString::fromStdString(l.info.name) == name) return &l;
  return nullptr;
}

void RunView::arrange(QLayout* controls, Qt::Orientation orientation, QWidget* first, QWidget* second) {
  auto* split = new QSplitter(orientation);
  split->addWidget(first);
  split->addWidget(second);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->addLayout(controls);
  layout->addWidget(split);
}

LossView::LossView(QWidget* parent) : RunView(parent) {
  loss_ = new StepChart("Loss per lane", "loss");
  accuracy_ = new StepChart("Accuracy (whole dataset)", "accuracy");
  log_ = new QCheckBox("Log scale");
  auto* top = new QHBoxLayout;
  top->addWidget(note("Stars: skipped steps (their gradients overflowed)"), 1);
  top->addStretch();
  top->addWidget(log_);
  arrange(top, Qt::Vertical, loss_, accuracy_);
  connect(log_, &QCheckBox::toggled, loss_, &StepChart::setLogY);
  for (StepChart* c : {loss_, accuracy_}) connect(c, &StepChart::stepClicked, this, &RunView::stepClicked);
}

void LossView::refresh(const RunData& run) {
  run_ = &run;
  std::vector<StepChart::Line> losses, accuracies;
  std::vector<StepChart::Marks> skipped;
  for (std::size_t i = 0; i < run.lanes.size(); ++i) {
    const LaneData& l = run.lanes[i];
    const QColor c = lane_color(static_cast<int>(i));
    losses.push_back({lane_name(l), c, loss_points(l)});
    accuracies.push_back({lane_name(l), c, accuracy_points(l)});
    if (auto s = skipped_points(l); !s.empty())
      skipped.push_back({lane_name(l) + " skipped", c, std::move(s), QScatterSeries::MarkerShapeStar, 10});
  }
  loss_->setData(losses, skipped);
  accuracy_->setData(accuracies);
  csv_ = loss_csv(run);
}

void LossView::setSelectedStep(qint64 step) {
  loss_->setSelectedStep(step);
  accuracy_->setSelectedStep(step);
}

ScaleView::ScaleView(QWidget* parent) : RunView(parent) {
  chart_ = new StepChart("Loss scale", "log2(loss scale)");
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->addWidget(note("Steps up: growth after a run of clean steps; down: back-off after an overflow "
                         "(red: gradients held inf/NaN, the step was skipped)"));
  layout->addWidget(chart_);
  connect(chart_, &StepChart::stepClicked, this, &RunView::stepClicked);
}

void ScaleView::refresh(const RunData& run) {
  run_ = &run;
  std::vector<StepChart::Line> lines;
  // One marker series per kind of event, over all lanes (the marker sits on its lane's line): a short legend.
  std::vector<StepChart::Marks> marks = {
      {"overflow (skipped)", QColor(214, 39, 40), {}, QScatterSeries::MarkerShapeCircle, 9},
      {"back-off", QColor(255, 127, 14), {}, QScatterSeries::MarkerShapeTriangle, 9},
      {"growth", QColor(44, 160, 44), {}, QScatterSeries::MarkerShapeRectangle, 8}};
  const char* kinds[] = {"overflow", "scale_backoff", "scale_growth"};
  for (std::size_t i = 0; i < run.lanes.size(); ++i) {
    const LaneData& l = run.lanes[i];
    lines.push_back({lane_name(l), lane_color(static_cast<int>(i)), log2_scale_points(l)});
    for (std::size_t k = 0; k < marks.size(); ++k) {
      auto p = scale_event_points(l, kinds[k]);
      marks[k].points.insert(marks[k].points.end(), p.begin(), p.end());
    }
  }
  std::erase_if(marks, [](const StepChart::Marks& m) { return m.points.empty(); });
  chart_->setData(lines, marks);
  csv_ = scale_csv(run);
}

DivergenceView::DivergenceView(QWidget* parent) : RunView(parent) {
  metric_ = new QComboBox;
  for (auto m : {DivergenceMetric::loss_delta, DivergenceMetric::weight_distance, DivergenceMetric::grad_cosine})
    metric_->addItem(QString::fromStdString(to_string(m)), static_cast<int>(m));
  lane_ = new QComboBox;
  chart_ = new StepChart("Distance from the reference lane", "");
  layers_ = new LayerTableModel(this);
  table_ = new QTableView;
  table_->setModel(layers_);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->horizontalHeader()->setStretchLastSection(true);
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel("Metric"));
  top->addWidget(metric_);
  top->addStretch();
  auto* bottom = new QHBoxLayout;
  bottom->addWidget(new QLabel("Layers of lane"));
  bottom->addWidget(lane_);
  bottom->addWidget(note("at the selected step (red: the first tensor holding inf/NaN)"), 1);
  auto* lower = new QWidget;
  auto* lower_layout = new QVBoxLayout(lower);
  lower_layout->setContentsMargins(0, 0, 0, 0);
  verdict_ = new QLabel;
  lower_layout->addLayout(bottom);
  lower_layout->addWidget(verdict_);
  lower_layout->addWidget(table_);
  arrange(top, Qt::Vertical, chart_, lower);
  connect(metric_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(lane_, &QComboBox::currentIndexChanged, this, [this] { updateTable(); });
  connect(chart_, &StepChart::stepClicked, this, &RunView::stepClicked);
}

void DivergenceView::refresh(const RunData& run) {
  const bool first = lane_->count() == 0;
  run_ = &run;
  fill_lanes(lane_, run, true);
  if (first && lane_->count() > 0) lane_->setCurrentIndex(0);
  redraw();
  updateTable();
}

void DivergenceView::redraw() {
  if (run_ == nullptr) return;
  const auto metric = static_cast<DivergenceMetric>(metric_->currentData().toInt());
  std::vector<StepChart::Line> lines;
  for (std::size_t i = 0; i < run_->lanes.size(); ++i) {
    const LaneData& l = run_->lanes[i];
    if (l.info.is_reference) continue;
    lines.push_back({lane_name(l), lane_color(static_cast<int>(i)), divergence_points(l, metric)});
  }
  chart_->setLogY(metric != DivergenceMetric::grad_cosine);
  chart_->setYTitle(metric == DivergenceMetric::loss_delta ? "|Δloss|" : metric == DivergenceMetric::weight_distance ? "rel. weight distance" : "cosine");
  chart_->setData(lines);
}

void DivergenceView::setSelectedStep(qint64 step) {
  selected_ = step;
  chart_->setSelectedStep(step);
  updateTable();
}

void DivergenceView::updateTable() {
  const LaneData* lane = find_lane(run_, lane_->currentText());
  layers_->setRows(lane ? layer_figures(*lane, selected_) : std::vector<LayerFigures>{});
  QString verdict;
  if (lane) {
    const auto& i = lane->info;
    verdict = "verdict: " + (i.verdict.empty() ? QString("running") : QString::fromStdString(i.verdict));
    if (i.diverged_step) verdict += QString(" (NaN/inf reached the weights at step %1)").arg(*i.diverged_step);
    if (!i.first_nonfinite.empty())
      verdict += QString("; first inf/NaN: <b>%1</b> at step %2").arg(QString::fromStdString(i.first_nonfinite))
                     .arg(i.first_nonfinite_step.value_or(-1));
  }
  verdict_->setText(verdict);
}

std::string DivergenceView::csv() const { return run_ ? divergence_csv(*run_) : std::string(); }

}  // namespace mpscope::gui
