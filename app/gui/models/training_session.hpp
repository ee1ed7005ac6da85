// Trains an experiment on a worker thread, into a run file the views follow (RunFeed), with Pause, Step and Stop.
// The experiment is checked and its data loaded before anything is written: a bad one leaves no file.
#pragma once

#include <QObject>
#include <QString>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

namespace mpscope::gui {

class TrainingSession : public QObject {
  Q_OBJECT
 public:
  enum class State { idle, running, paused, finished, failed };
  Q_ENUM(State)

  explicit TrainingSession(QObject* parent = nullptr);
  ~TrainingSession() override;  // stops a run in progress and waits for it

  // Trains `experiment` into run_file, which must not exist. experiment_file: where the experiment came from (its
  // folder resolves relative paths; "" : the current folder). Returns "" when the run
  // started, else what is wrong with the experiment (naming the key) and nothing was written. start_paused: hold
  // before the first step (Step then runs one step at a time). GPU lanes without a usable GPU run emulated on the
  // CPU; warning() says so.
  QString start(const nlohmann::json& experiment, const std::filesystem::path& experiment_file,
                const std::filesystem::path& run_file, bool start_paused = false);
  void pause();
  void resume();
  void stepOnce();  // one more step, then hold
  void stop();      // the current step finishes and is recorded; the run file is marked interrupted
  void wait();      // until the worker thread has ended

  State state() const { return state_; }
  QString warning() const { return warning_; }
  std::filesystem::path runFile() const { return run_file_; }

 signals:
  void runFileReady(const QString& path);  // the lanes are built and the file exists
  void progress(qint64 done, qint64 total);
  void stateChanged(mpscope::gui::TrainingSession::State state);
  void finished(const QString& message);   // "" when the run ended normally (stopped included)
  void failed(const QString& message);

 private:
  void setState(State s);
  struct Worker;
  std::unique_ptr<Worker> worker_;
  State state_ = State::idle;
  QString warning_;
  std::filesystem::path run_file_;
};

}  // namespace mpscope::gui
