#include "app/gui/models/training_session.hpp"

#include <QMetaObject>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "app/common/backends.hpp"
#include "sim/trainer.hpp"

namespace mpscope::gui {

// The worker thread and the gate the trainer asks before each step.
struct TrainingSession::Worker : sim::StepGate {
  std::mutex mutex;
  std::condition_variable changed;
  bool paused = false;
  std::int64_t allowance = 0;  // single steps granted while paused
  std::atomic<bool> stop{false};
  std::thread thread;

  bool hold(std::int64_t) override {
    std::lock_guard lock(mutex);
    if (!paused || stop) return false;
    if (allowance > 0) {
      --allowance;
      return false;
    }
    return true;
  }
  void wait(std::int64_t) override {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return !paused || allowance > 0 || stop; });
    if (paused && allowance > 0) --allowance;
  }
  void set(bool pause, std::int64_t grant) {
    {
      std::lock_guard lock(mutex);
      paused = pause;
      allowance += grant;
    }
    changed.notify_all();
  }
  void request_stop() {
    stop = true;
    changed.notify_all();
  }
};

TrainingSession::TrainingSession(QObject* parent) : QObject(parent) {}

TrainingSession::~TrainingSession() {
  stop();
  wait();
}

void TrainingSession::setState(State s) {
  if (s == state_) return;
  state_ = s;
  emit stateChanged(s);
}

QString TrainingSession::start(const nlohmann::json& experiment, const std::filesystem::path& experiment_file,
                               const std::filesystem::path& run_file, bool start_paused) {
  if (worker_) {
    if (state_ == State::running || state_ == State::paused) return "a run is in progress: stop it first";
    wait();
  }
  auto e = std::make_shared<sim::Experiment>();
  auto prepared = std::make_shared<sim::Prepared>();
  try {
    *e = sim::parse_experiment(experiment, experiment_file.empty() ? std::filesystem::current_path()
                                                                   : experiment_file.parent_path());
    e->file = experiment_file;
    std::string warning;
    const std::string problem = app::resolve_backends(*e, "cpu", &warning);
    if (!problem.empty()) return QString::fromStdString(problem);
    warning_ = QString::fromStdString(warning);
    *prepared = sim::prepare(*e);
  } catch (const std::exception& err) {  // sim::ConfigError names the key; data files say what is wrong
    return QString::fromStdString(err.what());
  }
  if (std::filesystem::exists(run_file)) return QString::fromStdString(run_file.string() + " already exists");
  run_file_ = run_file;

  worker_ = std::make_unique<Worker>();
  worker_->paused = start_paused;
  setState(start_paused ? State::paused : State::running);
  Worker* w = worker_.get();
  w->thread = std::thread([this, w, e, prepared, run_file] {
    analysis::RunHeader header;
    header.experiment_json = e->given.dump(2);
    header.resolved_json = sim::resolved_json(*e).dump(2);
    header.experiment_path = e->file.empty() ? "" : std::filesystem::absolute(e->file).string();
    header.mpscope_version = MPSCOPE_VERSION;
    header.steps_planned = e->steps;
    std::unique_ptr<analysis::RunWriter> writer;
    sim::TrainOptions options;
    options.stop = &w->stop;
    options.gate = w;
    options.commit_every_seconds = 0.25;  // the views see new steps within a quarter of a second
    options.make_lane = app::lane_factory(&prepared->data);
    options.open_writer = [&]() -> analysis::RunWriter* {
      writer = std::make_unique<analysis::RunWriter>(run_file, header);
      QMetaObject::invokeMethod(this, [this, path = QString::fromStdString(run_file.string())] { emit runFileReady(path); },
                                Qt::QueuedConnection);
      return writer.get();
    };
    auto last_report = std::chrono::steady_clock::time_point{};
    options.progress = [&](std::int64_t done, std::int64_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (done != total && now - last_report < std::chrono::milliseconds(50)) return;
      last_report = now;
      QMetaObject::invokeMethod(this, [this, done, total] { emit progress(done, total); }, Qt::QueuedConnection);
    };
    QString error;
    try {
      sim::train(*e, *prepared, nullptr, options);
    } catch (const std::exception& err) {
      error = QString::fromStdString(err.what());
      if (writer) {
        try {
          writer->finish("failed", err.what());
        } catch (const std::exception&) {
        }
      }
    }
    writer.reset();
    QMetaObject::invokeMethod(this, [this, error] {
      setState(error.isEmpty() ? State::finished : State::failed);
      if (error.isEmpty()) emit finished({});
      else emit failed(error);
    }, Qt::QueuedConnection);
  });
  return {};
}

void TrainingSession::pause() {
  if (!worker_ || state_ != State::running) return;
  worker_->set(true, 0);
  setState(State::paused);
}

void TrainingSession::resume() {
  if (!worker_ || state_ != State::paused) return;
  worker_->set(false, 0);
  setState(State::running);
}

void TrainingSession::stepOnce() {
  if (!worker_ || state_ != State::paused) return;
  worker_->set(true, 1);
}

void TrainingSession::stop() {
  if (worker_) worker_->request_stop();
}

void TrainingSession::wait() {
  if (worker_ && worker_->thread.joinable()) worker_->thread.join();
}

}  // namespace mpscope::gui
