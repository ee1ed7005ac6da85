#include "app/gui/views/experiment_panel.hpp"

#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QPushButton>
#include <QStyledItemDelegate>
#include <QVBoxLayout>
#include <stdexcept>

#include "sim/decimal.hpp"
#include "sim/model.hpp"

namespace mpscope::gui {

namespace {
// Lane table cells with a fixed set of values edit through a combo box.
class ChoiceDelegate : public QStyledItemDelegate {
 public:
  ChoiceDelegate(bool gpu, QObject* parent) : QStyledItemDelegate(parent), gpu_(gpu) {}
  QWidget* createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const override {
    const QStringList choices = LaneListModel::choices(index.column(), gpu_);
    if (choices.isEmpty()) return QStyledItemDelegate::createEditor(parent, option, index);
    auto* box = new QComboBox(parent);
    box->addItems(choices);
    return box;
  }
  void setEditorData(QWidget* editor, const QModelIndex& index) const override {
    if (auto* box = qobject_cast<QComboBox*>(editor)) box->setCurrentText(index.data(Qt::EditRole).toString());
    else QStyledItemDelegate::setEditorData(editor, index);
  }
  void setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const override {
    if (auto* box = qobject_cast<QComboBox*>(editor)) model->setData(index, box->currentText());
    else QStyledItemDelegate::setModelData(editor, model, index);
  }

 private:
  bool gpu_;
};

std::string data_summary(const nlohmann::json& data) {
  if (!data.is_object()) return "-";
  std::string s = data.value("source", "?");
  if (data.contains("path")) s += ": " + data["path"].get<std::string>();
  return s;
}

// A sequential model's layers in one line: "conv2d 8 k3 p1, relu, maxpool2d k2, flatten, linear 10".
QString sequence_summary(const nlohmann::json& layers) {
  QStringList parts;
  for (const auto& l : layers) {
    if (!l.is_object()) continue;
    QString part = QString::fromStdString(l.value("type", "?"));
    if (l.contains("out_channels")) part += " " + QString::number(l["out_channels"].get<long long>());
    if (l.contains("out_features")) part += " " + QString::number(l["out_features"].get<long long>());
    if (l.contains("kernel_size")) part += " k" + QString::number(l["kernel_size"].get<long long>());
    const bool pool = l.value("type", "").ends_with("pool2d");  // a pool's stride defaults to its kernel size
    const long long stride = l.value("stride", pool ? l.value("kernel_size", 1LL) : 1LL);
    if (stride != (pool ? l.value("kernel_size", 1LL) : 1LL)) part += " s" + QString::number(stride);
    if (l.value("padding", 0LL) != 0) part += " p" + QString::number(l["padding"].get<long long>());
    parts << part;
  }
  return parts.join(", ");
}

// Models whose structure the file gives (sequential layers, a gpt's keys): shown in one line, not edited here.
bool is_given_model(const nlohmann::json& model) { return model.is_object() && model.value("type", "mlp") != "mlp"; }
bool takes_tokens(const nlohmann::json& model) { return model.is_object() && model.value("type", "mlp") == "gpt"; }

// A gpt model in one line: "gpt: vocab 16, block 32, n_embd 64, 4 heads, 2 layers".
QString gpt_summary(const nlohmann::json& m) {
  const auto n = [&](const char* key) { return QString::number(m.value(key, 0LL)); };
  return "gpt: vocab " + n("vocab_size") + ", block " + n("block_size") + ", n_embd " + n("n_embd") + ", " + n("n_head") +
         " heads, " + n("n_layer") + " layers" + (m.value("bias", true) ? "" : ", no bias");
}
}  // namespace

ExperimentPanel::ExperimentPanel(std::vector<Scenario> scenarios, bool gpu_available, QWidget* parent)
    : QWidget(parent), scenarios_(std::move(scenarios)) {
  scenario_ = new QComboBox;
  scenario_->addItem("Choose a shipped scenario…");
  for (const auto& s : scenarios_) scenario_->addItem(QString::fromStdString(s.title), QString::fromStdString(s.path.string()));
  scenario_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  scenario_->setMinimumContentsLength(20);
  explanation_ = new QLabel;
  explanation_->setWordWrap(true);
  explanation_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  explanation_->setStyleSheet("QLabel { background: palette(base); padding: 4px; }");
  file_label_ = new QLabel("(no experiment open)");
  file_label_->setWordWrap(true);

  name_ = new QLineEdit;
  steps_ = new QSpinBox;
  steps_->setRange(1, 100'000'000);
  batch_ = new QSpinBox;
  batch_->setRange(1, 1'000'000);
  layers_ = new QLineEdit;
  layers_->setObjectName("layers");
  layers_->setToolTip("Widths from the input to the output, e.g. 2, 64, 64, 3");
  activation_ = new QComboBox;
  activation_->setObjectName("activation");
  for (const std::string& a : sim::activation_names()) activation_->addItem(QString::fromStdString(a));
  loss_ = new QComboBox;  // (docs/recipes.md: where cross-entropy rounds)
  loss_->addItem("cross-entropy (as autocast: log-probs in the logits' format)", "autocast");
  loss_->addItem("cross-entropy of the logits cast to fp32", "fp32");
  loss_->addItem("mse", "mse");
  loss_->setToolTip("F.cross_entropy(logits, y) under autocast rounds the log-probabilities to fp16/bf16;\n"
                    "F.cross_entropy(logits.float(), y) keeps them in fp32");
  optimizer_ = new QComboBox;
  optimizer_->addItems({"sgd", "adam", "adamw"});
  lr_ = new QLineEdit;
  data_ = new QComboBox;
  data_->setObjectName("data");
  data_->setToolTip("The file's own data, or a synthetic set with its default settings (docs/experiments.md)");
  auto* form = new QFormLayout;
  form->addRow("Name", name_);
  form->addRow("Data", data_);
  form->addRow("Steps", steps_);
  form->addRow("Batch size", batch_);
  form->addRow("Layers", layers_);
  form->addRow("Activation", activation_);
  form->addRow("Loss", loss_);
  form->addRow("Optimizer", optimizer_);
  form->addRow("Learning rate", lr_);

  lanes_ = new LaneListModel(this);
  lane_table_ = new QTableView;
  lane_table_->setModel(lanes_);
  lane_table_->setItemDelegate(new ChoiceDelegate(gpu_available, lane_table_));
  lane_table_->verticalHeader()->hide();
  lane_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  lane_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  add_recipe_ = new QComboBox;
  add_recipe_->addItems(LaneListModel::recipes());
  auto* add = new QPushButton("Add lane");
  auto* remove = new QPushButton("Remove lane");
  auto* lane_buttons = new QHBoxLayout;
  lane_buttons->addWidget(add_recipe_);
  lane_buttons->addWidget(add);
  lane_buttons->addWidget(remove);
  lane_buttons->addStretch();

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(scenario_);
  layout->addWidget(explanation_);
  layout->addWidget(file_label_);
  layout->addLayout(form);
  layout->addWidget(new QLabel("Lanes (double-click a cell to change it)"));
  layout->addWidget(lane_table_, 1);
  layout->addLayout(lane_buttons);
  editors_ = {name_, data_, steps_, batch_, layers_, activation_, loss_, optimizer_, lr_, lane_table_, add_recipe_, add, remove, scenario_};

  connect(scenario_, &QComboBox::activated, this, [this](int index) {
    if (index > 0) emit scenarioChosen(scenario_->itemData(index).toString());
  });
  connect(add, &QPushButton::clicked, this, [this] {
    lanes_->addLane(add_recipe_->currentText());
    emit edited();
  });
  connect(remove, &QPushButton::clicked, this, [this] {
    const auto rows = lane_table_->selectionModel()->selectedRows();
    if (!rows.isEmpty()) lanes_->removeRows(rows.front().row(), 1);
    emit edited();
  });
  connect(lanes_, &QAbstractItemModel::dataChanged, this, &ExperimentPanel::edited);
  for (auto* e : {name_, layers_, lr_}) connect(e, &QLineEdit::textEdited, this, &ExperimentPanel::edited);
  for (auto* s : {steps_, batch_}) connect(s, &QSpinBox::valueChanged, this, &ExperimentPanel::edited);
  for (auto* c : {activation_, loss_, optimizer_, data_}) connect(c, &QComboBox::activated, this, &ExperimentPanel::edited);
}

void ExperimentPanel::setFile(const std::filesystem::path& file) {
  file_ = file;
  file_label_->setText(file.empty() ? "(not saved)" : QString::fromStdString(file.string()));
  QString explanation;
  for (std::size_t i = 0; i < scenarios_.size(); ++i)
    if (std::filesystem::exists(file) && std::filesystem::exists(scenarios_[i].path) &&
        std::filesystem::equivalent(scenarios_[i].path, file)) {
      explanation = QString::fromStdString(scenarios_[i].explanation);
      const QSignalBlocker block(scenario_);
      scenario_->setCurrentIndex(static_cast<int>(i) + 1);
    }
  explanation_->setText(explanation);
  explanation_->setVisible(!explanation.isEmpty());
}

void ExperimentPanel::setExperiment(const nlohmann::json& e, const std::filesystem::path& file) {
  base_ = e;
  const QSignalBlocker b1(steps_), b2(batch_);
  name_->setText(QString::fromStdString(e.value("name", "")));
  steps_->setValue(e.value("steps", 100));
  batch_->setValue(e.value("batch_size", 64));
  const nlohmann::json model = e.value("model", nlohmann::json::object());
  // A sequential model's layers and a gpt's shape are shown, not edited here (its file says them); an mlp's
  // widths are edited.
  const bool given = is_given_model(model);
  if (takes_tokens(model)) {
    layers_->setText(gpt_summary(model));
  } else if (given) {
    layers_->setText(sequence_summary(model.value("layers", nlohmann::json::array())));
  } else {
    QStringList widths;
    for (const auto& w : model.value("layers", nlohmann::json::array()))
      if (w.is_number_integer()) widths << QString::number(w.get<long long>());
    layers_->setText(widths.join(", "));
  }
  layers_->setReadOnly(given);
  layers_->setToolTip(given ? "The model as the experiment file gives it" : "Widths from the input to the output, e.g. 2, 64, 64, 3");
  activation_->setEnabled(!given);
  // (a gpt's MLP uses tanh-GELU; a sequential model names its activations among its layers: none shown here)
  if (takes_tokens(model)) {
    activation_->setCurrentText("gelu_tanh");
  } else if (given) {
    activation_->setCurrentIndex(-1);
  } else {
    activation_->setCurrentText(QString::fromStdString(model.value("activation", "relu")));
  }
  const nlohmann::json loss = e.value("loss", nlohmann::json("cross_entropy"));
  const std::string type = loss.is_object() ? loss.value("type", "cross_entropy") : loss.is_string() ? loss.get<std::string>() : "";
  const std::string logits = loss.is_object() ? loss.value("logits", "autocast") : "autocast";
  loss_->setCurrentIndex(std::max(0, loss_->findData(QString::fromStdString(type == "mse" ? "mse" : logits))));
  const nlohmann::json opt = e.value("optimizer", nlohmann::json::object());
  optimizer_->setCurrentText(QString::fromStdString(opt.value("type", "sgd")));
  lr_->setText(QString::fromStdString(sim::shortest(opt.value("lr", 0.01))));
  data_->clear();
  const nlohmann::json data = e.value("data", nlohmann::json());
  data_->addItem(QString::fromStdString(data_summary(data)) + " (as in the file)", QString());
  // The sources this model can read: token sequences for a gpt, real-valued samples otherwise (a text file needs
  // its path: only from the file).
  const auto sources = takes_tokens(model) ? std::vector<const char*>{"tokens"}
                                           : std::vector<const char*>{"spiral", "circles", "xor", "blobs", "sine", "images"};
  for (const char* source : sources)
    if (!(data.is_object() && data.value("source", "") == source && data.size() == 1))
      data_->addItem(QString(source) + " (defaults)", QString(source));
  lanes_->setLanes(e.value("lanes", nlohmann::json::array()));
  setFile(file);
}

nlohmann::json ExperimentPanel::experiment() const {
  nlohmann::json e = base_;
  e["name"] = name_->text().trimmed().toStdString();
  e["steps"] = steps_->value();
  e["batch_size"] = batch_->value();
  if (!e.contains("model") || !e["model"].is_object()) e["model"] = nlohmann::json::object();
  if (const QString source = data_->currentData().toString(); !source.isEmpty()) {
    e["data"] = {{"source", source.toStdString()}};
    if (source == "tokens")  // sequences that fit the model: its vocabulary and block size
      e["data"].update({{"vocab_size", e["model"].value("vocab_size", 16LL)}, {"length", e["model"].value("block_size", 32LL)}});
  }
  if (!is_given_model(e["model"])) {
    nlohmann::json widths = nlohmann::json::array();
    for (const QString& part : layers_->text().split(',', Qt::SkipEmptyParts)) {
      bool ok = false;
      const long long w = part.trimmed().toLongLong(&ok);
      if (!ok || w <= 0)
        throw std::invalid_argument("Layers: '" + part.trimmed().toStdString() + "' is not a positive width (write e.g. 2, 64, 64, 3)");
      widths.push_back(w);
    }
    e["model"]["layers"] = widths;
    e["model"]["activation"] = activation_->currentText().toStdString();
  }
  const std::string loss = loss_->currentData().toString().toStdString();
  e["loss"] = loss == "mse" ? nlohmann::json("mse") : nlohmann::json{{"type", "cross_entropy"}, {"logits", loss}};
  if (!e.contains("optimizer") || !e["optimizer"].is_object()) e["optimizer"] = nlohmann::json::object();
  e["optimizer"]["type"] = optimizer_->currentText().toStdString();
  bool lr_ok = false;
  const double lr = lr_->text().trimmed().toDouble(&lr_ok);
  if (!lr_ok || !(lr >= 0)) throw std::invalid_argument("Learning rate: '" + lr_->text().toStdString() + "' is not a number >= 0");
  e["optimizer"]["lr"] = lr;
  e["lanes"] = lanes_->lanes();
  return e;
}

void ExperimentPanel::setEditable(bool on) {
  for (QWidget* w : editors_) w->setEnabled(on);
}

}  // namespace mpscope::gui
