#include "app/gui/views/underflow_view.hpp"

#include <QHBoxLayout>
#include <QLabel>

#include "app/gui/models/blocks.hpp"

namespace mpscope::gui {

UnderflowView::UnderflowView(QWidget* parent) : RunView(parent) {
  lane_ = new QComboBox;
  lane_->setObjectName("lane");
  block_ = new QComboBox;
  block_->setObjectName("block");
  kind_ = new QComboBox;
  kind_->setObjectName("kind");
  tensor_ = new QComboBox;
  tensor_->setObjectName("tensor");
  tensor_->setMinimumContentsLength(22);
  unscaled_ = new QCheckBox("Before loss scaling (unscaled)");
  unscaled_->setToolTip("Gradients are recorded as the backward pass made them, multiplied by the loss scale. "
                        "Checked: divided by the scale, where they would lie without loss scaling.");
  heatmap_ = new HeatmapWidget;
  bars_ = new BarsWidget;
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel("Lane"));
  top->addWidget(lane_);
  top->addWidget(new QLabel("Tensor"));
  top->addWidget(block_);
  top->addWidget(kind_);
  top->addWidget(tensor_);
  top->addWidget(unscaled_);
  top->addStretch();
  arrange(top, Qt::Horizontal, heatmap_, bars_);
  connect(lane_, &QComboBox::currentIndexChanged, this, [this] {
    fillFilters();
    fillTensors();
    redraw();
  });
  for (QComboBox* filter : {block_, kind_})
    connect(filter, &QComboBox::currentIndexChanged, this, [this] {
      fillTensors();
      redraw();
    });
  connect(tensor_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(unscaled_, &QCheckBox::toggled, this, [this] { redraw(); });
  connect(heatmap_, &HeatmapWidget::stepClicked, this, &RunView::stepClicked);
}

void UnderflowView::refresh(const RunData& run) {
  const bool first = lane_->count() == 0;
  run_ = &run;
  fill_lanes(lane_, run, false);
  if (first && lane_->count() > 0) choose_first_lane(lane_, run, preferred_);
  fillFilters();
  fillTensors();
  redraw();
}

void UnderflowView::prefer(const QString& lane, bool unscaled) {
  preferred_ = lane;
  unscaled_->setChecked(unscaled);
  if (lane_->findText(lane) >= 0) lane_->setCurrentText(lane);
}

// A filter's items: "" (any) first, then the given names; the choice is kept by text.
static void fill_filter(QComboBox* box, const QString& any, const std::vector<std::string>& names) {
  QStringList items{any};
  for (const auto& n : names) items << QString::fromStdString(n);
  QStringList have;
  for (int i = 0; i < box->count(); ++i) have << box->itemText(i);
  if (have == items) return;
  const QString current = box->currentText();
  const QSignalBlocker block(box);
  box->clear();
  box->addItem(any, QString());
  for (const auto& n : names) box->addItem(QString::fromStdString(n), QString::fromStdString(n));
  if (const int i = box->findText(current); i >= 0) box->setCurrentIndex(i);
}

void UnderflowView::fillFilters() {
  const LaneData* lane = find_lane(run_, lane_->currentText());
  fill_filter(block_, "all blocks", lane ? tensor_blocks(*lane) : std::vector<std::string>{});
  fill_filter(kind_, "all kinds", lane ? tensor_kinds(*lane) : std::vector<std::string>{});
}

void UnderflowView::fillTensors() {
  const LaneData* lane = find_lane(run_, lane_->currentText());
  // Items are the lane's tensors by id: another lane has the same names but other ids, so both are compared.
  QStringList names{"all gradients"}, have;
  QVariantList ids{QVariant()}, have_ids;
  if (lane)
    for (const auto* t : filter_tensors(*lane, block_->currentData().toString().toStdString(), kind_->currentData().toString().toStdString())) {
      names << QString::fromStdString(t->name);
      ids << QVariant::fromValue<qint64>(t->id);
    }
  for (int i = 0; i < tensor_->count(); ++i) {
    have << tensor_->itemText(i);
    have_ids << tensor_->itemData(i);
  }
  if (have == names && have_ids == ids) return;
  const QString current = tensor_->currentText();
  const QSignalBlocker block(tensor_);
  tensor_->clear();
  for (qsizetype i = 0; i < names.size(); ++i) tensor_->addItem(names[i], ids[i]);
  if (const int i = tensor_->findText(current); i >= 0) tensor_->setCurrentIndex(i);
}

void UnderflowView::redraw() {
  const LaneData* lane = find_lane(run_, lane_->currentText());
  if (lane == nullptr) {
    heatmap_->setHeatmap({});
    bars_->setBars({}, "");
    return;
  }
  const QVariant id = tensor_->currentData();
  const std::optional<std::int64_t> tensor = id.isValid() ? std::optional<std::int64_t>(id.toLongLong()) : std::nullopt;
  heatmap_->setHeatmap(make_heatmap(*lane, tensor, unscaled_->isChecked() ? GradientScale::unscaled : GradientScale::scaled));
  heatmap_->setSelectedStep(selected_);
  updateBars();
}

void UnderflowView::setSelectedStep(qint64 step) {
  selected_ = step;
  heatmap_->setSelectedStep(step);
  updateBars();
}

void UnderflowView::updateBars() {
  const Heatmap& h = heatmap_->heatmap();
  const auto column = h.column_at(selected_);
  if (!column) {
    bars_->setBars({}, "no recorded step selected");
    return;
  }
  bars_->setBars(step_bars(h.columns[*column], h.limits),
                 QString("step %1%2").arg(h.steps[*column]).arg(unscaled_->isChecked() ? " (unscaled)" : ""));
}

int UnderflowView::pointCount() const {
  int n = 0;
  for (const auto& c : heatmap_->heatmap().columns) n += c.total() > 0 ? 1 : 0;
  for (const auto& b : bars_->bars()) n += b.count > 0 ? 1 : 0;
  return n;
}

}  // namespace mpscope::gui
