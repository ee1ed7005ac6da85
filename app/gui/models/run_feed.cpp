#include "app/gui/models/run_feed.hpp"

#include <filesystem>

namespace mpscope::gui {

RunFeed::RunFeed(QObject* parent) : QObject(parent) {
  timer_.setInterval(250);
  connect(&timer_, &QTimer::timeout, this, [this] { pollNow(); });
}

RunFeed::~RunFeed() = default;

QString RunFeed::open(const QString& path) {
  close();
  const std::filesystem::path p = path.toStdString();
  if (!std::filesystem::exists(p)) return path + ": no such file";
  try {
    follower_ = std::make_unique<RunFollower>(p);
    follower_->poll();
  } catch (const std::exception& e) {
    follower_.reset();
    return QString::fromStdString(e.what());
  }
  chosen_ = -1;
  emit opened();
  emit updated();
  emit selectedStepChanged(selectedStep());
  if (follower_->data().running()) timer_.start();
  else emit ended();
  return {};
}

void RunFeed::close() {
  timer_.stop();
  follower_.reset();
  chosen_ = -1;
}

const RunData* RunFeed::data() const { return follower_ ? &follower_->data() : nullptr; }

bool RunFeed::pollNow() {
  if (!follower_) return false;
  bool changed = false;
  const qint64 before = selectedStep();
  try {
    changed = follower_->poll();
  } catch (const std::exception& e) {
    timer_.stop();
    emit readFailed(QString::fromStdString(e.what()));
    return false;
  }
  if (changed) {
    emit updated();
    if (selectedStep() != before) emit selectedStepChanged(selectedStep());
  }
  if (!follower_->data().running() && timer_.isActive()) {
    timer_.stop();
    emit ended();
  }
  return changed;
}

qint64 RunFeed::latestStep() const { return follower_ ? follower_->data().last_step() : -1; }

qint64 RunFeed::selectedStep() const { return chosen_ >= 0 ? chosen_ : latestStep(); }

void RunFeed::selectStep(qint64 step) {
  const qint64 before = selectedStep();
  chosen_ = step < 0 ? -1 : std::min(step, std::max<qint64>(latestStep(), 0));
  if (selectedStep() != before) emit selectedStepChanged(selectedStep());
}

}  // namespace mpscope::gui
