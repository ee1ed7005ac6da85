// The blocks view, for transformers: per block, the largest values of the residual stream or of the attention
// scores over the steps (one line per block, log2 of the bound, with the lane format's largest finite value), and
// beside it each head's scores at the selected step: their range, infs, overflows then and so far.
#pragma once

#include <QComboBox>
#include <QStandardItemModel>
#include <QTableView>

#include "app/gui/models/blocks.hpp"
#include "app/gui/views/run_views.hpp"

namespace mpscope::gui {

class BlocksView : public RunView {
  Q_OBJECT
 public:
  explicit BlocksView(QWidget* parent = nullptr);
  void refresh(const RunData& run) override;
  void setSelectedStep(qint64 step) override;
  std::string csv() const override { return csv_; }
  int pointCount() const override { return chart_->pointCount() + heads_->rowCount(); }
  const QStandardItemModel& headTable() const { return *heads_; }
  void showLane(const QString& lane);  // now, or once the run has it (default: the first non-reference lane)

 private:
  void redraw();
  void updateTable();
  QComboBox* lane_;
  QComboBox* quantity_;
  StepChart* chart_;
  QTableView* table_;
  QStandardItemModel* heads_;
  qint64 selected_ = -1;
  std::string csv_;
  QString preferred_;
};

}  // namespace mpscope::gui
