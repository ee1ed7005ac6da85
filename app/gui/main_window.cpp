#include "app/gui/main_window.hpp"

#include <QApplication>
#include <QBuffer>
#include <QCloseEvent>
#include <QDateTime>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QSaveFile>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QToolBar>
#include <fstream>

#include "app/common/backends.hpp"
#include "sim/experiment.hpp"

namespace mpscope::gui {

namespace {
constexpr int max_recent = 8;

bool write_file(const QString& path, const QByteArray& bytes, QString* error) {
  QSaveFile f(path);  // written beside and renamed at commit: an error leaves any old file as it was
  if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size() || !f.commit()) {
    if (error) *error = path + ": " + f.errorString();
    return false;
  }
  return true;
}
}  // namespace

MainWindow::MainWindow(MainWindowOptions options, QWidget* parent) : QMainWindow(parent), options_(std::move(options)) {
  setWindowTitle("mpscope");
  setAcceptDrops(true);
  setDockNestingEnabled(true);
  buildDocks();
  buildActions();
  redraw_timer_.setSingleShot(true);
  redraw_timer_.setInterval(150);
  connect(&redraw_timer_, &QTimer::timeout, this, &MainWindow::redraw);

  connect(&feed_, &RunFeed::updated, this, &MainWindow::redrawSoon);
  connect(&feed_, &RunFeed::updated, this, &MainWindow::showFileProgress);
  connect(&feed_, &RunFeed::selectedStepChanged, this, [this](qint64 step) {
    for (RunView* v : views_) v->setSelectedStep(step);
  });
  connect(&feed_, &RunFeed::readFailed, this, [this](const QString& m) { showError("Reading the run file failed", m); });
  connect(&feed_, &RunFeed::ended, this, [this] {
    if (!trainingActive() && settle_pending_) {
      settle_pending_ = false;
      redraw();
      emit runSettled(true, {});
    }
  });
  for (RunView* v : views_) connect(v, &RunView::stepClicked, &feed_, &RunFeed::selectStep);

  connect(&session_, &TrainingSession::runFileReady, this, [this](const QString& path) {
    if (const QString e = feed_.open(path); !e.isEmpty()) showError("Cannot follow the run", e);
    statusBar()->showMessage("Training into " + path);
  });
  connect(&session_, &TrainingSession::progress, this, [this](qint64 done, qint64 total) {
    progress_->setMaximum(static_cast<int>(std::min<qint64>(total, INT32_MAX)));
    progress_->setValue(static_cast<int>(std::min<qint64>(done, INT32_MAX)));
    progress_->setFormat(QString("step %1 / %2").arg(done).arg(total));
  });
  connect(&session_, &TrainingSession::stateChanged, this, &MainWindow::updateActions);
  const auto ended = [this](bool ok, const QString& message) {
    feed_.pollNow();  // the final commit
    redraw();
    if (!ok) showError("Training failed", message);
    else statusBar()->showMessage("Run finished: " + QString::fromStdString(session_.runFile().string()));
    emit runSettled(ok, message);
  };
  connect(&session_, &TrainingSession::finished, this, [ended](const QString& m) { ended(true, m); });
  connect(&session_, &TrainingSession::failed, this, [ended](const QString& m) { ended(false, m); });

  device_ = new QLabel(QString::fromStdString(app::compute_device_description()));
  device_->setToolTip("What computes the lanes: CPU lanes are emulated bit for bit; GPU lanes run on the device named");
  statusBar()->addPermanentWidget(device_);
  statusBar()->showMessage("Open an experiment or a run (File menu, or drop a file here), or pick a scenario");

  resize(1600, 1000);
  default_state_ = saveState();
  QSettings settings;
  if (options_.restore_layout) {
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());
  }
  updateActions();
}

MainWindow::~MainWindow() {
  session_.stop();
  session_.wait();
}

void MainWindow::buildDocks() {
  std::vector<Scenario> scenarios = options_.samples_dir.empty() ? std::vector<Scenario>{} : load_scenarios(options_.samples_dir);
  panel_ = new ExperimentPanel(std::move(scenarios), app::compute_device_description() != "CPU emulation");
  loss_ = new LossView;
  scale_ = new ScaleView;
  underflow_ = new UnderflowView;
  divergence_ = new DivergenceView;
  blocks_ = new BlocksView;
  bits_ = new BitInspectorView;
  views_ = {loss_, scale_, underflow_, divergence_, blocks_};
  connect(panel_, &ExperimentPanel::scenarioChosen, this, [this](const QString& path) {
    if (const QString e = openFile(path); !e.isEmpty()) showError("Cannot open the scenario", e);
  });

  const auto dock = [this](QWidget* w, const QString& title, const QString& name) {
    auto* d = new QDockWidget(title, this);
    d->setObjectName(name);  // saveState() / restoreState() find docks by name
    d->setWidget(w);
    return d;
  };
  QDockWidget* experiment = dock(panel_, "Experiment", "experiment");
  QDockWidget* bits = dock(bits_, "Bit inspector", "bits");
  QDockWidget* loss = dock(loss_, "Loss and accuracy", "loss");
  QDockWidget* scale = dock(scale_, "Loss scale", "scale");
  QDockWidget* underflow = dock(underflow_, "Gradient underflow", "underflow");
  QDockWidget* divergence = dock(divergence_, "Divergence", "divergence");
  QDockWidget* blocks = dock(blocks_, "Blocks", "blocks");
  addDockWidget(Qt::LeftDockWidgetArea, experiment);
  tabifyDockWidget(experiment, bits);
  experiment->raise();
  addDockWidget(Qt::RightDockWidgetArea, loss);
  splitDockWidget(loss, underflow, Qt::Vertical);
  splitDockWidget(loss, scale, Qt::Horizontal);
  splitDockWidget(underflow, divergence, Qt::Horizontal);
  tabifyDockWidget(divergence, blocks);
  divergence->raise();
  resizeDocks({experiment, loss}, {380, 1200}, Qt::Horizontal);
  for (QDockWidget* d : {experiment, bits, loss, scale, underflow, divergence, blocks}) d->setMinimumWidth(200);
}

void MainWindow::buildActions() {
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open = file->addAction("&Open…", this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, "Open an experiment or a run", {},
                                                      "Experiments and runs (*.json *.mpscope);;All files (*)");
    if (path.isEmpty()) return;
    if (const QString e = openFile(path); !e.isEmpty()) showError("Cannot open " + QFileInfo(path).fileName(), e);
  });
  open->setShortcut(QKeySequence::Open);
  recent_menu_ = file->addMenu("Open &recent");
  fillRecentMenu();
  file->addSeparator();
  file->addAction("&Save experiment", QKeySequence::Save, this, [this] {
    const auto& f = panel_->file();
    if (f.empty() || f.extension() != ".json") {
      const QString path = QFileDialog::getSaveFileName(this, "Save the experiment", {}, "Experiments (*.json)");
      if (!path.isEmpty()) saveExperiment(path);
    } else {
      saveExperiment(QString::fromStdString(f.string()));
    }
  });
  file->addAction("Save experiment &as…", QKeySequence::SaveAs, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Save the experiment", {}, "Experiments (*.json)");
    if (!path.isEmpty()) saveExperiment(path);
  });
  file->addSeparator();
  file->addAction("&Export dashboard as PNG…", QKeySequence(Qt::CTRL | Qt::Key_E), this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Export the dashboard", "mpscope.png", "PNG images (*.png)");
    QString error;
    if (!path.isEmpty() && !exportDashboard(path, &error)) showError("Export failed", error);
  });
  export_png_menu_ = file->addMenu("Export &view as PNG");
  export_csv_menu_ = file->addMenu("Export view data as &CSV");
  const std::vector<std::pair<RunView*, QString>> named = {
      {loss_, "loss"}, {scale_, "loss-scale"}, {underflow_, "underflow"}, {divergence_, "divergence"}, {blocks_, "blocks"}};
  for (const auto& [view, name] : named) {
    export_png_menu_->addAction(name, this, [this, v = view, n = name] { exportViewPng(v, n); });
    export_csv_menu_->addAction(name, this, [this, v = view, n = name] { exportViewCsv(v, n); });
  }
  export_png_menu_->addAction("bit inspector", this, [this] { exportViewPng(bits_, "bit-inspector"); });
  export_csv_menu_->addAction("divergence layer table", this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Export the layer table", "layers.csv", "CSV (*.csv)");
    QString error;
    if (!path.isEmpty() && !write_file(path, QByteArray::fromStdString(layer_csv(divergence_->layerTable().rows())), &error))
      showError("Export failed", error);
  });
  file->addSeparator();
  file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);

  QMenu* run = menuBar()->addMenu("&Run");
  run_ = run->addAction("&Run", QKeySequence(Qt::Key_F5), this, [this] {
    if (const QString e = startRun(); !e.isEmpty()) showError("Cannot start the run", e);
  });
  pause_ = run->addAction("&Pause", QKeySequence(Qt::Key_F6), this, [this] { session_.pause(); });
  step_ = run->addAction("&Step", QKeySequence(Qt::Key_F10), this, [this] {
    if (session_.state() == TrainingSession::State::paused) {
      session_.stepOnce();
    } else if (const QString e = startRun(true); !e.isEmpty()) {
      showError("Cannot start the run", e);
    } else {
      session_.stepOnce();
    }
  });
  stop_ = run->addAction("S&top", QKeySequence(Qt::SHIFT | Qt::Key_F5), this, [this] { session_.stop(); });
  reset_ = run->addAction("R&eset", QKeySequence(Qt::CTRL | Qt::Key_R), this, &MainWindow::reset);
  run_->setToolTip("Train the experiment's lanes in lockstep (F5); resumes when paused");
  step_->setToolTip("One training step at a time (F10)");
  stop_->setToolTip("Stop after the current step; the run file keeps every step (Shift+F5)");
  reset_->setToolTip("Stop and clear the views (Ctrl+R)");

  view_menu_ = menuBar()->addMenu("&View");
  for (QDockWidget* d : findChildren<QDockWidget*>()) view_menu_->addAction(d->toggleViewAction());
  view_menu_->addSeparator();
  view_menu_->addAction("Reset &layout", this, [this] { restoreState(default_state_); });

  QMenu* help = menuBar()->addMenu("&Help");
  help->addAction("&About mpscope", this, [this] {
    QMessageBox::about(this, "About mpscope",
                       "<b>mpscope " MPSCOPE_VERSION "</b><br>Trains one model in several precisions in lockstep and "
                       "shows what each precision did: underflow, overflow, loss scaling, divergence.<br>Compute: " +
                           device_->text());
  });

  QToolBar* bar = addToolBar("Training");
  bar->setObjectName("training");
  for (QAction* a : {run_, pause_, step_, stop_, reset_}) bar->addAction(a);
  progress_ = new QProgressBar;
  progress_->setMinimumWidth(260);
  progress_->setTextVisible(true);
  progress_->setFormat("idle");
  progress_->setValue(0);
  bar->addSeparator();
  bar->addWidget(progress_);
}

void MainWindow::updateActions() {
  using S = TrainingSession::State;
  const S s = session_.state();
  const bool active = s == S::running || s == S::paused;
  run_->setEnabled(s != S::running);
  run_->setText(s == S::paused ? "Resume" : "Run");
  pause_->setEnabled(s == S::running);
  step_->setEnabled(s != S::running);
  stop_->setEnabled(active);
  reset_->setEnabled(true);
  panel_->setEditable(!active);
  if (s == S::paused) progress_->setFormat(progress_->format().section(" (", 0, 0) + " (paused)");
}

QString MainWindow::openFile(const QString& path) {
  const std::filesystem::path p = path.toStdString();
  if (!std::filesystem::exists(p)) return path + ": no such file";
  if (trainingActive()) return "a run is in progress: stop it first";
  if (p.extension() == ".mpscope") {
    reset();
    settle_pending_ = true;
    if (const QString e = feed_.open(path); !e.isEmpty()) {
      settle_pending_ = false;
      return e;
    }
    const RunData* run = feed_.data();
    try {
      panel_->setExperiment(nlohmann::json::parse(run->summary.experiment_json),
                            run->summary.experiment_path.empty() ? std::filesystem::path() : std::filesystem::path(run->summary.experiment_path));
    } catch (const nlohmann::json::exception&) {
    }
    addRecent(path);
    setWindowTitle("mpscope — " + QFileInfo(path).fileName());
    statusBar()->showMessage(path + ": " + QString::fromStdString(run->summary.status) +
                             (run->running() ? " (following it as it is written)" : ""));
    showFileProgress();
    redraw();
    return {};
  }
  nlohmann::json j;
  try {
    std::ifstream in(p);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    return path + ": not valid JSON: " + e.what();
  }
  if (!j.is_object()) return path + ": an experiment file holds a JSON object";
  try {  // the same checks `mpscope run` makes, before the file is shown as runnable
    sim::parse_experiment(j, p.parent_path());
  } catch (const std::exception& e) {
    return path + ": " + e.what();
  }
  reset();
  panel_->setExperiment(j, std::filesystem::absolute(p));
  addRecent(path);
  setWindowTitle("mpscope — " + QFileInfo(path).fileName());
  statusBar()->showMessage("Experiment " + path + " loaded: Run (F5) trains it");
  return {};
}

std::filesystem::path MainWindow::nextRunFile(const std::string& name) const {
  if (!options_.run_file.empty()) return options_.run_file;
  const std::filesystem::path dir = QStandardPaths::writableLocation(QStandardPaths::CacheLocation).toStdString() + "/runs";
  std::filesystem::create_directories(dir);
  const std::string stamp = QDateTime::currentDateTime().toString("yyyyMMdd-hhmmss").toStdString();
  std::filesystem::path file = dir / ((name.empty() ? "run" : name) + "-" + stamp + ".mpscope");
  for (int i = 2; std::filesystem::exists(file); ++i) file = dir / ((name.empty() ? "run" : name) + "-" + stamp + "-" + std::to_string(i) + ".mpscope");
  return file;
}

QString MainWindow::startRun(bool paused) {
  using S = TrainingSession::State;
  if (session_.state() == S::paused && !paused) {
    session_.resume();
    return {};
  }
  if (session_.state() == S::running || session_.state() == S::paused) return "a run is in progress";
  nlohmann::json e;
  try {
    e = panel_->experiment();
  } catch (const std::invalid_argument& err) {
    return err.what();
  }
  std::filesystem::path out;
  try {
    out = nextRunFile(e.value("name", "run"));
  } catch (const std::filesystem::filesystem_error& err) {
    return err.what();
  }
  if (!options_.run_file.empty() && std::filesystem::exists(out))
    return QString::fromStdString(out.string()) + " already exists (choose another --out)";
  feed_.close();
  for (RunView* v : views_) v->clear();
  progress_->setValue(0);
  progress_->setFormat("starting");
  const std::filesystem::path from = panel_->file().extension() == ".json" ? panel_->file() : std::filesystem::path();
  const QString error = session_.start(e, from, out, paused);
  if (!error.isEmpty()) return error;
  if (!session_.warning().isEmpty()) statusBar()->showMessage(session_.warning());
  options_.run_file.clear();  // --out names the first run only; later runs get new files
  return {};
}

void MainWindow::reset() {
  session_.stop();
  session_.wait();
  QCoreApplication::sendPostedEvents(&session_);  // deliver the session's last signals now, not into the next run
  feed_.close();
  settle_pending_ = false;
  for (RunView* v : views_) v->clear();
  progress_->setValue(0);
  progress_->setFormat("idle");
  updateActions();
}

bool MainWindow::trainingActive() const {
  return session_.state() == TrainingSession::State::running || session_.state() == TrainingSession::State::paused;
}

bool MainWindow::raiseView(const QString& name) {
  auto* dock = findChild<QDockWidget*>(name);
  if (dock == nullptr) return false;
  dock->show();
  dock->raise();
  return true;
}

void MainWindow::showFileProgress() {
  const RunData* run = feed_.data();
  if (run == nullptr || trainingActive()) return;  // training reports its own
  const std::int64_t planned = std::max<std::int64_t>(1, run->summary.steps_planned), done = run->last_step() + 1;
  progress_->setMaximum(static_cast<int>(std::min<std::int64_t>(planned, INT32_MAX)));
  progress_->setValue(static_cast<int>(std::min(done, planned)));
  progress_->setFormat(QString("run file: step %1 / %2 (%3)").arg(done).arg(run->summary.steps_planned)
                           .arg(QString::fromStdString(run->summary.status)));
}

void MainWindow::redrawSoon() {
  if (!redraw_timer_.isActive()) redraw_timer_.start();
}

void MainWindow::redraw() {
  redraw_timer_.stop();
  const RunData* run = feed_.data();
  if (run == nullptr) return;
  for (RunView* v : views_) {
    v->refresh(*run);
    v->setSelectedStep(feed_.selectedStep());
  }
}

void MainWindow::showError(const QString& title, const QString& message) {
  statusBar()->showMessage(title + ": " + message);
  if (QGuiApplication::platformName() == "offscreen") {  // headless: no one to click a dialog away
    qWarning("%s: %s", qPrintable(title), qPrintable(message));
    return;
  }
  QMessageBox::warning(this, title, message);
}

bool MainWindow::saveExperiment(const QString& path) {
  QString error;
  try {
    const nlohmann::json e = panel_->experiment();
    if (!write_file(path, QByteArray::fromStdString(e.dump(2) + "\n"), &error)) throw std::runtime_error(error.toStdString());
  } catch (const std::exception& err) {
    showError("Cannot save the experiment", err.what());
    return false;
  }
  panel_->setFile(std::filesystem::absolute(path.toStdString()));
  addRecent(path);
  statusBar()->showMessage("Saved " + path);
  return true;
}

bool MainWindow::exportPng(QWidget* what, const QString& path, QString* error) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  if (!what->grab().toImage().save(&buffer, "PNG")) {
    if (error) *error = "could not encode the PNG";
    return false;
  }
  return write_file(path, bytes, error);
}

bool MainWindow::exportDashboard(const QString& path, QString* error) { return exportPng(this, path, error); }

void MainWindow::inspectValue(const QString& value) {
  bits_->setInput(value);
  if (auto* dock = findChild<QDockWidget*>("bits")) {
    dock->raise();
    // wide enough for fp64's 64 bits in one row, once the window has its layout
    QTimer::singleShot(0, this, [this, dock] {
      auto* panel = findChild<QDockWidget*>("experiment");  // its tab sibling: the two share one width
      resizeDocks({dock, panel}, {780, 780}, Qt::Horizontal);
    });
  }
}

void MainWindow::exportViewPng(QWidget* view, const QString& name) {
  const QString path = QFileDialog::getSaveFileName(this, "Export " + name, name + ".png", "PNG images (*.png)");
  QString error;
  if (!path.isEmpty() && !exportPng(view, path, &error)) showError("Export failed", error);
}

void MainWindow::exportViewCsv(RunView* view, const QString& name) {
  const QString path = QFileDialog::getSaveFileName(this, "Export " + name + " data", name + ".csv", "CSV (*.csv)");
  QString error;
  if (!path.isEmpty() && !write_file(path, QByteArray::fromStdString(view->csv()), &error)) showError("Export failed", error);
}

void MainWindow::addRecent(const QString& path) {
  QSettings settings;
  QStringList recent = settings.value("recent").toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  recent.removeAll(absolute);
  recent.prepend(absolute);
  while (recent.size() > max_recent) recent.removeLast();
  settings.setValue("recent", recent);
  fillRecentMenu();
}

void MainWindow::fillRecentMenu() {
  recent_menu_->clear();
  const QStringList recent = QSettings().value("recent").toStringList();
  for (const QString& path : recent)
    recent_menu_->addAction(path, this, [this, path] {
      if (const QString e = openFile(path); !e.isEmpty()) showError("Cannot open " + QFileInfo(path).fileName(), e);
    });
  recent_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (options_.restore_layout) {
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
  }
  session_.stop();
  session_.wait();
  event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  for (const QUrl& url : event->mimeData()->urls()) {
    const QString f = url.toLocalFile();
    if (f.endsWith(".json") || f.endsWith(".mpscope")) {
      event->acceptProposedAction();
      return;
    }
  }
}

void MainWindow::dropEvent(QDropEvent* event) {
  for (const QUrl& url : event->mimeData()->urls()) {
    const QString f = url.toLocalFile();
    if (f.endsWith(".json") || f.endsWith(".mpscope")) {
      if (const QString e = openFile(f); !e.isEmpty()) showError("Cannot open " + QFileInfo(f).fileName(), e);
      return;
    }
  }
}

}  // namespace mpscope::gui
