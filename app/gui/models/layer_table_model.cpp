#include "app/gui/models/layer_table_model.hpp"

#include <QBrush>
#include <QColor>

namespace mpscope::gui {

namespace {
QString share(const std::optional<double>& v) {
  if (!v) return QStringLiteral("–");
  if (*v == 0) return QStringLiteral("0%");
  if (*v < 1e-4) return QStringLiteral("<0.01%");
  return QString::number(100 * *v, 'f', 2) + "%";
}
QString general(const std::optional<double>& v) { return v ? QString::number(*v, 'g', 4) : QStringLiteral("–"); }
}  // namespace

LayerTableModel::LayerTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void LayerTableModel::setRows(std::vector<LayerFigures> rows) {
  if (rows.size() == rows_.size()) {  // same layers: values change, the shape does not
    rows_ = std::move(rows);
    if (!rows_.empty()) emit dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
    return;
  }
  beginResetModel();
  rows_ = std::move(rows);
  endResetModel();
}

int LayerTableModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }
int LayerTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant LayerTableModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return {};
  const LayerFigures& r = rows_[static_cast<std::size_t>(index.row())];
  if (role == Qt::BackgroundRole && !r.first_nonfinite.empty()) return QBrush(QColor(255, 200, 200));
  if (role == Qt::TextAlignmentRole && index.column() != FirstNonfinite && index.column() != Layer)
    return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case Layer: return QString::fromStdString(r.name);
    case GradientUnderflow: return share(r.gradient_underflow);
    case Overflow: return QString::number(r.overflow);
    case LostUpdates: return share(r.lost_updates);
    case WeightDistance: return general(r.weight_distance);
    case GradCosine: return general(r.grad_cosine);
    case FirstNonfinite: return QString::fromStdString(r.first_nonfinite);
    default: return {};
  }
}

QVariant LayerTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case Layer: return "Layer";
    case GradientUnderflow: return "Grad underflow";
    case Overflow: return "Overflow";
    case LostUpdates: return "Lost updates";
    case WeightDistance: return "Weight dist";
    case GradCosine: return "Grad cosine";
    case FirstNonfinite: return "First inf/NaN";
    default: return {};
  }
}

}  // namespace mpscope::gui
