// The views over a run, each a dock of the main window: loss and accuracy, loss scale, divergence (with the
// per-layer table) and, in underflow_view.hpp, the underflow heatmap. Every view redraws from RunData, marks the
// selected step, selects a step on click, and exports the series it shows as CSV.
#pragma once

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QTableView>
#include <QWidget>
#include <string>

#include "app/gui/models/layer_table_model.hpp"
#include "app/gui/models/run_data.hpp"
#include "app/gui/views/step_chart.hpp"

namespace mpscope::gui {

// Keeps a lane chooser in step with the run's lanes, keeping the choice by name.
void fill_lanes(QComboBox* box, const RunData& run, bool skip_reference);
const LaneData* find_lane(const RunData* run, const QString& name);  // null when there is no such lane
// Once a run first fills `box`: `preferred` if the run has it, else the first lane that is not the reference (the
// reference rarely shows the trouble a view is about).
void choose_first_lane(QComboBox* box, const RunData& run, const QString& preferred);

class RunView : public QWidget {
  Q_OBJECT
 public:
  using QWidget::QWidget;
  virtual void refresh(const RunData& run) = 0;
  virtual void setSelectedStep(qint64 step) = 0;
  virtual std::string csv() const = 0;
  virtual int pointCount() const = 0;  // what it drew, for tests: 0 means no data reached it
  void clear() {
    static const RunData empty;
    refresh(empty);
  }

 signals:
  void stepClicked(qint64 step);

 protected:
  // The common shape of a view: a row of controls above two parts in a splitter (3 : 2).
  void arrange(QLayout* controls, Qt::Orientation orientation, QWidget* first, QWidget* second);
  const RunData* run_ = nullptr;  // the data last shown (owned by the RunFeed)
};

class LossView : public RunView {
  Q_OBJECT
 public:
  explicit LossView(QWidget* parent = nullptr);
  void refresh(const RunData& run) override;
  void setSelectedStep(qint64 step) override;
  std::string csv() const override { return csv_; }
  int pointCount() const override { return loss_->pointCount() + accuracy_->pointCount(); }

 private:
  StepChart* loss_;
  StepChart* accuracy_;
  QCheckBox* log_;
  std::string csv_;
};

class ScaleView : public RunView {
  Q_OBJECT
 public:
  explicit ScaleView(QWidget* parent = nullptr);
  void refresh(const RunData& run) override;
  void setSelectedStep(qint64 step) override { chart_->setSelectedStep(step); }
  std::string csv() const override { return csv_; }
  int pointCount() const override { return chart_->pointCount(); }

 private:
  StepChart* chart_;
  std::string csv_;
};

class DivergenceView : public RunView {
  Q_OBJECT
 public:
  explicit DivergenceView(QWidget* parent = nullptr);
  void refresh(const RunData& run) override;
  void setSelectedStep(qint64 step) override;
  std::string csv() const override;
  int pointCount() const override { return chart_->pointCount() + layers_->rowCount(); }
  const LayerTableModel& layerTable() const { return *layers_; }

 private:
  void redraw();
  void updateTable();
  QComboBox* metric_;
  QComboBox* lane_;
  StepChart* chart_;
  QTableView* table_;
  QLabel* verdict_;  // the lane's verdict and first inf/NaN tensor (which may be the input, no layer row)
  LayerTableModel* layers_;
  qint64 selected_ = -1;
};

}  // namespace mpscope::gui
