// The experiment panel: pick a shipped scenario (its explanation shown beside it) or edit the open experiment —
// name, steps, batch size, layer widths, activation, optimizer, learning rate, and the lane list (recipe presets,
// backend, GEMM model, loss scaling, reference). Keys the form does not show are kept as the file has them.
#pragma once

#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>
#include <QTableView>
#include <QWidget>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/gui/models/lane_list_model.hpp"
#include "app/gui/models/scenarios.hpp"

namespace mpscope::gui {

class ExperimentPanel : public QWidget {
  Q_OBJECT
 public:
  ExperimentPanel(std::vector<Scenario> scenarios, bool gpu_available, QWidget* parent = nullptr);

  void setExperiment(const nlohmann::json& experiment, const std::filesystem::path& file);
  // The experiment as edited. Throws std::invalid_argument naming the field when a field cannot be read.
  nlohmann::json experiment() const;
  const std::filesystem::path& file() const { return file_; }
  void setFile(const std::filesystem::path& file);
  void setEditable(bool on);  // off while a run is in progress
  LaneListModel& lanes() { return *lanes_; }

 signals:
  void scenarioChosen(const QString& path);
  void edited();

 private:
  std::vector<Scenario> scenarios_;
  nlohmann::json base_ = nlohmann::json::object();
  std::filesystem::path file_;
  QComboBox* scenario_;
  QLabel* explanation_;
  QLabel* file_label_;
  QLineEdit* name_;
  QSpinBox* steps_;
  QSpinBox* batch_;
  QLineEdit* layers_;
  QComboBox* activation_;
  QComboBox* loss_;
  QComboBox* optimizer_;
  QLineEdit* lr_;
  QComboBox* data_;  // the data source: the file's own data, or a synthetic set with its defaults
  LaneListModel* lanes_;
  QTableView* lane_table_;
  QComboBox* add_recipe_;
  QList<QWidget*> editors_;
};

}  // namespace mpscope::gui
