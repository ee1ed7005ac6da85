// The divergence view's per-layer table at the selected step: underflow share, overflow count, lost-update share,
// distance from the reference; the row of the first inf/NaN tensor highlighted.
#pragma once

#include <QAbstractTableModel>
#include <vector>

#include "app/gui/models/series.hpp"

namespace mpscope::gui {

class LayerTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Layer, GradientUnderflow, Overflow, LostUpdates, WeightDistance, GradCosine, FirstNonfinite, ColumnCount };
  explicit LayerTableModel(QObject* parent = nullptr);

  void setRows(std::vector<LayerFigures> rows);
  const std::vector<LayerFigures>& rows() const { return rows_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::vector<LayerFigures> rows_;
};

}  // namespace mpscope::gui
