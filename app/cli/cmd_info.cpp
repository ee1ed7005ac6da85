// `mpscope info RUN.mpscope`: what a run file holds: the experiment, its lanes and verdicts, the events.
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "analysis/run_store.hpp"
#include "app/cli/commands.hpp"
#include "app/cli/table.hpp"

namespace mpscope::cli {

namespace {

std::string opt(const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : "-"; }

void info(const std::string& path, bool all_events) {
  const analysis::RunReader run(path);
  const analysis::RunSummary s = run.summary();
  std::string name = "?", loss = "?";
  try {
    const nlohmann::json resolved = nlohmann::json::parse(s.resolved_json);
    name = resolved.value("name", "?");
    const nlohmann::json l = resolved.value("loss", nlohmann::json());
    if (l.is_string()) loss = l.get<std::string>();  // (runs written before the loss's logits option)
    if (l.is_object()) {
      loss = l.value("type", "?");
      if (l.contains("logits"))
        loss += l["logits"] == "fp32" ? " (log-probabilities in fp32: the logits cast first)"
                                      : " (log-probabilities rounded to the logits' format, as autocast does)";
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::cout << "run          " << path << "\n"
            << "experiment   " << name << " (" << s.experiment_path << ")\n"
            << "loss         " << loss << "\n"
            << "status       " << s.status << (s.status == "running" ? " (still being written, or the writer was killed)" : "")
            << "\n"
            << "steps        " << s.steps_done << " of " << s.steps_planned << " recorded\n"
            << "created      " << s.created << (s.finished.empty() ? "" : ", finished " + s.finished) << "\n"
            << "written by   mpscope " << s.mpscope_version << ", run schema " << s.schema_version << "\n";
  if (!s.error.empty()) std::cout << "error        " << s.error << "\n";

  std::cout << "\n";
  const auto lanes = run.lanes();
  const auto events = run.events();
  std::map<std::int64_t, std::map<std::string, int>> counts;
  for (const auto& ev : events) ++counts[ev.lane_id][ev.kind];
  TextTable t({"lane", "recipe", "backend", "mma", "steps", "verdict", "diverged at", "diverging from", "first inf/NaN",
               "events"});
  for (const auto& l : lanes) {
    std::string ev;
    for (const auto& [kind, n] : counts[l.id]) ev += (ev.empty() ? "" : ", ") + std::to_string(n) + " " + kind;
    const std::int64_t last = run.last_step(l.id);
    t.add({l.name + (l.is_reference ? " (reference)" : ""), l.recipe, l.backend, l.mma, std::to_string(last + 1),
           l.verdict.empty() ? "-" : l.verdict, opt(l.diverged_step), opt(l.first_divergence_step),
           l.first_nonfinite.empty() ? "-" : l.first_nonfinite + " (step " + opt(l.first_nonfinite_step) + ")",
           ev.empty() ? "-" : ev});
  }
  t.print(std::cout);

  std::map<std::int64_t, std::string> lane_name;
  for (const auto& l : lanes) lane_name[l.id] = l.name;
  if (!events.empty()) {
    std::cout << "\nevents" << (all_events ? "" : " (the first 20; --events for all)") << ":\n";
    int shown = 0;
    for (const auto& ev : events) {
      if (!all_events && shown++ >= 20) break;
      std::cout << "  step " << ev.step << "  " << lane_name[ev.lane_id] << "  " << ev.kind
                << (ev.tensor.empty() ? "" : "  " + ev.tensor) << "  " << ev.message << "\n";
    }
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("info", "Summarize a run file: experiment, lanes, verdicts, events");
  cmd->add_option("run", *path, "Run file (.mpscope)")->required();
  cmd->add_flag("--events", *all, "List every event");
  cmd->callback([path, all] { info(*path, *all); });
}

}  // namespace mpscope::cli
