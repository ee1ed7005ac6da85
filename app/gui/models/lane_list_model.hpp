// The experiment panel's lane list: the `lanes` array of an experiment as an editable table (name, recipe,
// backend, GEMM accumulation model, loss scaling, reference). Keys the table does not show (formats, rounding,
// fp8, ...) are kept as they are.
#pragma once

#include <QAbstractTableModel>
#include <QStringList>
#include <nlohmann/json.hpp>

namespace mpscope::gui {

class LaneListModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Name, Recipe, Backend, Mma, LossScale, Reference, ColumnCount };
  explicit LaneListModel(QObject* parent = nullptr);

  void setLanes(const nlohmann::json& lanes);  // a JSON array of lane objects
  nlohmann::json lanes() const { return lanes_; }

  // Appends a lane of the recipe with the defaults a user would pick (fp16 recipes: dynamic loss scaling),
  // named after the recipe (made unique). Returns its row.
  int addLane(const QString& recipe);
  bool removeRows(int row, int count, const QModelIndex& parent = {}) override;

  // The values each editable column accepts (the view offers them in a combo box).
  static QStringList choices(int column, bool gpu_available);
  static QStringList recipes();

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;

 private:
  QString text(int row, int column) const;
  nlohmann::json lanes_ = nlohmann::json::array();
};

}  // namespace mpscope::gui
