// `mpscope run EXPERIMENT.json`: trains every lane in lockstep, records into a run file, prints a table per lane.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "app/common/backends.hpp"
#include "app/cli/commands.hpp"
#include "app/cli/files.hpp"
#include "app/cli/table.hpp"
#include "app/cli/terminal.hpp"
#include "sim/decimal.hpp"
#include "sim/trainer.hpp"

namespace mpscope::cli {

namespace {

struct RunOptions {
  std::string experiment, out, lanes, fallback;
  std::int64_t steps = 0;
  int threads = 0;
  bool force = false, quiet = false;
};

std::atomic<bool> stop_requested{false};
extern "C" void on_interrupt(int) { stop_requested.store(true); }

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string general(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
std::string percent(double v) {
  if (!std::isfinite(v)) return general(v);
  return v == 0 ? "0%" : (v < 0.0001 ? "<0.01%" : fixed(100 * v, 2) + "%");
}

// "[=====>     ]  250/500  812 steps/s  ETA 0.3 s" on a terminal (redrawn in place, at most 10 times a second);
// a plain line every 10% or 5 seconds otherwise.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(use_colour(stderr) || isatty(fileno(stderr))) {}
  void operator()(std::int64_t done, std::int64_t total) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const bool last = done == total;
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (tty_ ? (since < 0.1 && !last) : (!last && done * 10 / total == last_decile_ && since < 5)) return;
    last_draw_ = now;
    last_decile_ = done * 10 / total;
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    std::ostringstream line;
    if (tty_) {
      const int width = 30, filled = static_cast<int>(width * done / total);
      line << "\r[" << std::string(static_cast<std::size_t>(filled), '=') << (filled < width ? ">" : "")
           << std::string(static_cast<std::size_t>(std::max(0, width - filled - 1)), ' ') << "] ";
    } else {
      line << "step ";
    }
    line << done << "/" << total << "  " << general(rate) << " steps/s  ETA " << fixed(eta, 1) << " s";
    std::cerr << line.str() << (tty_ ? (last ? "\n" : "") : "\n") << std::flush;
  }

 private:
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_draw_{};
  std::int64_t last_decile_ = -1;
};

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void print_summary(const sim::TrainResult& r, const std::filesystem::path& out) {
  TextTable t({"lane", "recipe", "backend", "final loss", "accuracy", "skipped", "grad underflow", "max |dloss|",
               "weight dist", "off reference from", "verdict"});
  for (const auto& l : r.lanes) {
    std::string verdict = l.verdict;
    if (l.reference) verdict += " (reference)";
    if (l.diverged_step) verdict += " at step " + std::to_string(*l.diverged_step);
    t.add({l.name, l.recipe, l.backend, general(l.final_loss), l.accuracy ? percent(*l.accuracy) : "-",
           std::to_string(l.skipped_steps), l.gradient_underflow_share ? percent(*l.gradient_underflow_share) : "-",
           l.max_loss_delta ? general(*l.max_loss_delta) : "-",
           l.final_weight_distance ? general(*l.final_weight_distance) : "-",
           l.first_divergence_step ? "step " + std::to_string(*l.first_divergence_step) : "-", verdict});
  }
  t.print(std::cout);
  std::cout << "\n" << r.steps_done << " steps" << (r.interrupted ? " (interrupted)" : "") << "; run file: " << out.string()
            << "\n(max |dloss|: largest loss difference from the reference; weight dist: ||W - W_ref|| / "
               "||W_ref|| at the end; grad underflow: share of gradient values flushed to zero where rounded; off "
               "reference from: first step whose smoothed loss differs from the reference's by more than "
               "record.divergence_threshold; degraded: ends that much worse)\n";
}

int run(const RunOptions& o) {
  if (!std::filesystem::exists(o.experiment)) throw InputError(o.experiment + ": no such file");
  sim::Experiment e;
  try {
    e = sim::load_experiment(o.experiment);
    if (o.steps > 0) e.steps = o.steps;
    if (!o.lanes.empty()) e = sim::select_lanes(e, split_names(o.lanes));
  } catch (const sim::ConfigError& err) {
    throw InputError(err.what());
  }
  std::string fallback_warning;
  const std::string gpu_problem = app::resolve_backends(e, o.fallback, &fallback_warning);  // may switch lanes to the CPU
  if (!fallback_warning.empty()) std::cerr << "mpscope: warning: " << fallback_warning << "\n";
  if (!gpu_problem.empty()) {
    std::cerr << "mpscope: cannot run: " << gpu_problem << "\n";
    return exit_runtime_failure;
  }
  sim::Prepared prepared;
  try {
    prepared = sim::prepare(e);
  } catch (const sim::ConfigError& err) {
    throw InputError(o.experiment + ": " + err.what());
  }

  std::filesystem::path out = o.out;
  if (out.empty()) {
    out = std::filesystem::path(o.experiment);
    out.replace_extension(".mpscope");
  }
  check_output(out, o.force, {o.experiment}, "use --force to replace it, or --out");

  analysis::RunHeader header;
  header.experiment_json = e.given.dump(2);
  header.resolved_json = sim::resolved_json(e).dump(2);
  header.experiment_path = std::filesystem::absolute(o.experiment).string();
  header.mpscope_version = MPSCOPE_VERSION;
  header.steps_planned = e.steps;
  // The run file is made once every lane is built: a lane that cannot start (a GPU out of memory) leaves the old
  // file, if any, untouched and no new one.
  std::unique_ptr<analysis::RunWriter> writer;
  const auto open_writer = [&]() -> analysis::RunWriter* {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(out.string() + suffix);
    writer = std::make_unique<analysis::RunWriter>(out, header);
    return writer.get();
  };

  stop_requested.store(false);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  Progress progress(o.quiet);
  sim::TrainOptions options;
  options.threads = o.threads;
  options.stop = &stop_requested;
  options.progress = [&](std::int64_t done, std::int64_t total) { progress(done, total); };
  options.make_lane = app::lane_factory(&prepared.data);
  options.open_writer = open_writer;
  if (!o.quiet)
    std::cerr << "training " << e.name << ": " << e.lanes.size() << " lanes, " << e.steps << " steps of " << e.batch_size
              << " -> " << out.string() << "\n";
  sim::TrainResult result;
  try {
    result = sim::train(e, prepared, nullptr, options);
  } catch (const std::exception& err) {
    if (writer) writer->finish("failed", err.what());
    throw;
  }
  writer.reset();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  print_summary(result, out);
  return result.interrupted ? 130 : exit_ok;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Train an experiment's lanes in lockstep and record them into a run file");
  cmd->add_option("experiment", o->experiment, "Experiment file (JSON; see docs/experiments.md)")->required();
  cmd->add_option("-o,--out", o->out, "Run file (default: beside the experiment, named after it, .mpscope)");
  cmd->add_option("--steps", o->steps, "Train this many steps instead of the experiment's")
      ->check(CLI::Range(std::int64_t{1}, sim::max_steps));
  cmd->add_option("--lanes", o->lanes, "Only these lanes (comma-separated names)");
  cmd->add_option("--threads", o->threads, "Worker threads (default: one per lane, at most the cores; never more than "
                                           "one per lane)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--fallback", o->fallback, "cpu: run GPU lanes emulated when no CUDA device is usable")
      ->check(CLI::IsMember({"cpu"}));
  cmd->add_flag("--force", o->force, "Replace the run file if it exists");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->callback([o] {
    const int code = run(*o);
    if (code != exit_ok) throw ExitStatus{code};
  });
  cmd->footer("Exit status: 0 done (a diverged lane is a finding, not a failure), 2 bad input, 3 failure while "
              "running, 130 interrupted (the run file keeps every recorded step).");
}

}  // namespace mpscope::cli
