#include "app/gui/models/lane_list_model.hpp"

#include <set>

namespace mpscope::gui {

LaneListModel::LaneListModel(QObject* parent) : QAbstractTableModel(parent) {}

void LaneListModel::setLanes(const nlohmann::json& lanes) {
  beginResetModel();
  lanes_ = lanes.is_array() ? lanes : nlohmann::json::array();
  endResetModel();
}

QStringList LaneListModel::recipes() {
  return {"fp32", "fp64", "exact", "fp16-amp", "bf16-amp", "fp16-pure", "fp8", "custom"};
}

QStringList LaneListModel::choices(int column, bool gpu_available) {
  switch (column) {
    case Recipe: return recipes();
    case Backend: return gpu_available ? QStringList{"cpu", "gpu"} : QStringList{"cpu"};
    case Mma: return {"fp32", "h100"};
    case LossScale: return {"none", "static", "dynamic"};
    default: return {};
  }
}

int LaneListModel::addLane(const QString& recipe) {
  std::set<std::string> names;
  for (const auto& l : lanes_) names.insert(l.value("name", ""));
  std::string name = recipe.toStdString();
  for (int i = 2; names.contains(name); ++i) name = recipe.toStdString() + "-" + std::to_string(i);
  nlohmann::json lane = {{"name", name}, {"recipe", recipe.toStdString()}};
  if (recipe.startsWith("fp16")) lane["loss_scale"] = {{"type", "dynamic"}};
  if (lanes_.empty()) lane["reference"] = true;
  const int row = static_cast<int>(lanes_.size());
  beginInsertRows({}, row, row);
  lanes_.push_back(std::move(lane));
  endInsertRows();
  return row;
}

bool LaneListModel::removeRows(int row, int count, const QModelIndex& parent) {
  if (parent.isValid() || row < 0 || count <= 0 || row + count > rowCount()) return false;
  beginRemoveRows({}, row, row + count - 1);
  lanes_.erase(lanes_.begin() + row, lanes_.begin() + row + count);
  endRemoveRows();
  return true;
}

int LaneListModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(lanes_.size());
}

int LaneListModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QString LaneListModel::text(int row, int column) const {
  const auto& l = lanes_[static_cast<std::size_t>(row)];
  const auto str = [&](const char* key, const char* fallback) {
    return QString::fromStdString(l.contains(key) && l[key].is_string() ? l[key].get<std::string>() : fallback);
  };
  switch (column) {
    case Name: return str("name", "");
    case Recipe: return str("recipe", "");
    case Backend: return str("backend", "cpu");
    case Mma: return str("mma", "fp32");
    case LossScale:
      if (l.contains("loss_scale") && l["loss_scale"].is_object() && l["loss_scale"].contains("type"))
        return QString::fromStdString(l["loss_scale"]["type"].get<std::string>());
      return "none";
    default: return {};
  }
}

QVariant LaneListModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return {};
  const auto& l = lanes_[static_cast<std::size_t>(index.row())];
  if (index.column() == Reference) {
    if (role == Qt::CheckStateRole) return l.value("reference", false) ? Qt::Checked : Qt::Unchecked;
    return {};
  }
  if (role == Qt::DisplayRole || role == Qt::EditRole) return text(index.row(), index.column());
  if (role == Qt::ToolTipRole && index.column() == LossScale)
    return "none: no scaler; static: a fixed scale (value); dynamic: PyTorch GradScaler's algorithm and defaults";
  return {};
}

QVariant LaneListModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case Name: return "Lane";
    case Recipe: return "Recipe";
    case Backend: return "Backend";
    case Mma: return "GEMM model";
    case LossScale: return "Loss scaling";
    case Reference: return "Reference";
    default: return {};
  }
}

Qt::ItemFlags LaneListModel::flags(const QModelIndex& index) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return Qt::NoItemFlags;
  if (index.column() == Reference) return Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsUserCheckable;
  return Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsEditable;
}

bool LaneListModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return false;
  auto& l = lanes_[static_cast<std::size_t>(index.row())];
  if (index.column() == Reference) {
    if (role != Qt::CheckStateRole) return false;
    const bool on = value.toInt() == Qt::Checked;
    // One reference at most: checking one unchecks the others.
    for (auto& other : lanes_) other.erase("reference");
    if (on) l["reference"] = true;
    emit dataChanged(this->index(0, Reference), this->index(rowCount() - 1, Reference), {Qt::CheckStateRole});
    return true;
  }
  if (role != Qt::EditRole) return false;
  const std::string v = value.toString().trimmed().toStdString();
  const QStringList allowed = choices(index.column(), true);
  if (v.empty() || (!allowed.isEmpty() && !allowed.contains(QString::fromStdString(v)))) return false;
  switch (index.column()) {
    case Name: l["name"] = v; break;
    case Recipe: l["recipe"] = v; break;
    case Backend: l["backend"] = v; break;
    case Mma: l["mma"] = v; break;
    case LossScale:
      if (v == "none") {
        l.erase("loss_scale");
      } else {
        l["loss_scale"] = {{"type", v}};
        if (v == "static") l["loss_scale"]["value"] = 1024;
      }
      break;
    default: return false;
  }
  emit dataChanged(index, index, {Qt::DisplayRole, Qt::EditRole});
  return true;
}

}  // namespace mpscope::gui
