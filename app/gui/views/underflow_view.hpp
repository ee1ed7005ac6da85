// The gradient underflow view: a heatmap of log2|g| over the recorded steps for one lane and tensor (or all of a
// lane's gradients), with the lane format's limits; beside it the selected step's bins coloured by zone. A switch
// shows the gradients before loss scaling (unscaled), i.e. where they would lie without the scaler. The tensor
// list is filtered by block and kind (a transformer has a dozen tensors per block).
#pragma once

#include <QCheckBox>
#include <QComboBox>

#include "app/gui/views/bars_widget.hpp"
#include "app/gui/views/heatmap_widget.hpp"
#include "app/gui/views/run_views.hpp"

namespace mpscope::gui {

class UnderflowView : public RunView {
  Q_OBJECT
 public:
  explicit UnderflowView(QWidget* parent = nullptr);
  void refresh(const RunData& run) override;
  void setSelectedStep(qint64 step) override;
  std::string csv() const override { return heatmap_csv(heatmap_->heatmap()); }
  int pointCount() const override;
  // The lane shown once it exists (default: the first lane that is not the reference), and the scaling switch.
  void prefer(const QString& lane, bool unscaled);
  const Heatmap& heatmap() const { return heatmap_->heatmap(); }

 private:
  void fillFilters();
  void fillTensors();
  void redraw();
  void updateBars();
  QComboBox* lane_;
  QComboBox* block_;  // filters of the tensor list: a model's block and a tensor kind
  QComboBox* kind_;
  QComboBox* tensor_;
  QCheckBox* unscaled_;
  HeatmapWidget* heatmap_;
  BarsWidget* bars_;
  qint64 selected_ = -1;
  QString preferred_;
};

}  // namespace mpscope::gui
