// The main window: the experiment panel and the views as docks around nothing (every view can be moved, stacked
// or floated), a toolbar with Run, Pause, Step, Stop and Reset and the progress, menus, recent files, drag and
// drop of .json and .mpscope files, PNG and CSV export. Training runs on the session's worker thread; the views
// follow its run file through a RunFeed, redrawn at most a few times a second.
#pragma once

#include <QAction>
#include <QLabel>
#include <QMainWindow>
#include <QProgressBar>
#include <QTimer>
#include <filesystem>
#include <vector>

#include "app/gui/models/run_feed.hpp"
#include "app/gui/models/training_session.hpp"
#include "app/gui/views/bit_inspector_view.hpp"
#include "app/gui/views/experiment_panel.hpp"
#include "app/gui/views/run_views.hpp"
#include "app/gui/views/blocks_view.hpp"
#include "app/gui/views/underflow_view.hpp"

namespace mpscope::gui {

struct MainWindowOptions {
  std::filesystem::path samples_dir;  // the shipped scenarios ("" : none)
  std::filesystem::path run_file;     // where the next training run writes ("" : a new file in the cache folder)
  bool restore_layout = true;         // the window layout of the last session (off for exports: a fixed layout)
};

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(MainWindowOptions options, QWidget* parent = nullptr);
  ~MainWindow() override;

  // An experiment (.json) or a run (.mpscope). Returns "" or what is wrong with it.
  QString openFile(const QString& path);
  // Trains the experiment in the panel (resuming when paused). Returns "" or why it cannot start.
  QString startRun(bool paused = false);
  bool exportDashboard(const QString& path, QString* error = nullptr);  // the whole window as PNG
  // One view (or any widget) as PNG; the file is written whole or not at all.
  static bool exportPng(QWidget* what, const QString& path, QString* error = nullptr);
  void inspectValue(const QString& value);  // shows the bit inspector (in front of the experiment panel) on value

  RunFeed& feed() { return feed_; }
  TrainingSession& session() { return session_; }
  const std::vector<RunView*>& views() const { return views_; }
  BitInspectorView& bitInspector() { return *bits_; }
  ExperimentPanel& experimentPanel() { return *panel_; }
  UnderflowView& underflowView() { return *underflow_; }
  BlocksView& blocksView() { return *blocks_; }
  // Brings a view's dock to the front by its name (experiment, bits, loss, scale, underflow, divergence, blocks).
  bool raiseView(const QString& name);

 signals:
  // Training has ended or a run file was loaded, and the views show everything in the file.
  void runSettled(bool ok, const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void buildActions();
  void buildDocks();
  void updateActions();
  void redrawSoon();
  void showFileProgress();
  bool trainingActive() const;  // running or paused  // a run file opened (not trained here): its steps as the progress
  void redraw();
  void reset();
  void showError(const QString& title, const QString& message);
  void addRecent(const QString& path);
  void fillRecentMenu();
  bool saveExperiment(const QString& path);
  void exportViewPng(QWidget* view, const QString& name);
  void exportViewCsv(RunView* view, const QString& name);
  std::filesystem::path nextRunFile(const std::string& name) const;

  MainWindowOptions options_;
  RunFeed feed_;
  TrainingSession session_;
  QTimer redraw_timer_;
  ExperimentPanel* panel_ = nullptr;
  LossView* loss_ = nullptr;
  ScaleView* scale_ = nullptr;
  UnderflowView* underflow_ = nullptr;
  DivergenceView* divergence_ = nullptr;
  BlocksView* blocks_ = nullptr;
  BitInspectorView* bits_ = nullptr;
  std::vector<RunView*> views_;
  QAction *run_ = nullptr, *pause_ = nullptr, *step_ = nullptr, *stop_ = nullptr, *reset_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QMenu* view_menu_ = nullptr;
  QMenu* export_png_menu_ = nullptr;
  QMenu* export_csv_menu_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* device_ = nullptr;
  QByteArray default_state_;
  bool settle_pending_ = false;
};

}  // namespace mpscope::gui
