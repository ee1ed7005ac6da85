// The views' data source: follows one run file (finished, being trained here, or written by `mpscope run` in
// another process), polling it a few times a second until the run ends, and holds the step selected in any view.
#pragma once

#include <QObject>
#include <QString>
#include <QTimer>
#include <memory>

#include "app/gui/models/run_data.hpp"

namespace mpscope::gui {

class RunFeed : public QObject {
  Q_OBJECT
 public:
  explicit RunFeed(QObject* parent = nullptr);
  ~RunFeed() override;

  // Reads what the file has and follows it while its status is "running". Returns "" or why it cannot be read
  // (no such file, not a run file, a newer schema).
  QString open(const QString& path);
  void close();
  bool isOpen() const { return follower_ != nullptr; }
  const RunData* data() const;  // null when closed
  bool following() const { return timer_.isActive(); }
  void setPollInterval(int milliseconds) { timer_.setInterval(milliseconds); }
  bool pollNow();  // reads what is new now; true when anything changed

  // The step every view marks. Until a step is chosen it follows the latest step.
  qint64 selectedStep() const;
  void selectStep(qint64 step);  // -1: follow the latest step again

 signals:
  void opened();
  void updated();  // new rows (or a new status)
  void selectedStepChanged(qint64 step);
  void ended();  // the run is no longer being written (finished, failed, interrupted)
  void readFailed(const QString& message);

 private:
  std::unique_ptr<RunFollower> follower_;
  QTimer timer_;
  qint64 latestStep() const;  // -1 before any step
  qint64 chosen_ = -1;
};

}  // namespace mpscope::gui
