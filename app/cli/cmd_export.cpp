// `mpscope export RUN --table steps|tensors|layers|events [--format csv|json] [--lane L] [--out FILE]`.
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "analysis/run_store.hpp"
#include "app/cli/commands.hpp"
#include "app/cli/files.hpp"
#include "app/common/table_writer.hpp"

namespace mpscope::cli {

namespace {

struct ExportOptions {
  std::string run, table = "steps", format = "csv", lane, out;
  bool force = false;
};

using app::cell;
using app::json;
using app::number;
using app::write_table;

void run_export(const ExportOptions& o) {
  const analysis::RunReader run(o.run);
  std::map<std::int64_t, std::string> lane_name;
  std::optional<std::int64_t> only;
  std::string names;
  for (const auto& l : run.lanes()) {
    lane_name[l.id] = l.name;
    names += (names.empty() ? "" : ", ") + l.name;
    if (l.name == o.lane) only = l.id;
  }
  if (!o.lane.empty() && !only) throw InputError("--lane: no lane '" + o.lane + "' in " + o.run + " (it has: " + names + ")");

  std::vector<std::string> columns;
  std::vector<json> rows;
  if (o.table == "steps") {
    columns = {"lane", "step", "loss", "loss_scale", "skipped", "found_inf", "lr", "grad_norm", "accuracy", "loss_delta",
               "weight_distance"};
    for (const auto& s : run.steps(only))
      rows.push_back(json::array({lane_name[s.lane_id], s.step, number(s.loss), s.loss_scale, s.skipped ? 1 : 0,
                                  s.found_inf ? 1 : 0, s.lr, number(s.grad_norm), cell(s.accuracy),
                                  cell(s.loss_delta), cell(s.weight_distance)}));
  } else if (o.table == "tensors") {
    columns = {"lane", "step", "tensor", "kind", "layer", "format", "zeros", "infs", "nans", "rounded", "underflow",
               "subnormal", "overflow", "hist_lo", "hist_counts"};
    std::map<std::int64_t, analysis::TensorRow> tensors;
    for (const auto& t : run.tensors(only)) tensors[t.id] = t;
    for (const auto& [lane_id, name] : lane_name) {
      if (only && lane_id != *only) continue;
      for (const auto& st : run.lane_tensor_stats(lane_id)) {
        const analysis::TensorRow& t = tensors[st.tensor_id];
        std::string counts;
        for (auto c : st.histogram.counts) counts += (counts.empty() ? "" : " ") + std::to_string(c);
        rows.push_back(json::array({lane_name[t.lane_id], st.step, t.name, t.kind, t.layer, t.format,
                                    st.histogram.zeros, st.histogram.infs, st.histogram.nans, cell(st.rounded),
                                    cell(st.underflow), cell(st.subnormal), cell(st.overflow),
                                    st.histogram.counts.empty() ? json(nullptr) : json(st.histogram.lo), counts}));
      }
    }
  } else if (o.table == "layers") {
    columns = {"lane", "step", "layer", "name", "weight_distance", "grad_cosine", "lost_updates"};
    for (const auto& l : run.lanes()) {
      if (only && l.id != *only) continue;
      // a layer's name: its tensors' prefix ("layer2" of an mlp, "3" of a sequential model's layers[3])
      std::map<std::int64_t, std::string> layer_name;
      for (const auto& t : run.tensors(l.id))
        if (t.kind == "weight") layer_name[t.layer] = t.name.substr(0, t.name.size() - std::string(".weight").size());
      for (const auto& s : run.layer_stats(l.id))
        rows.push_back(json::array({l.name, s.step, s.layer, layer_name[s.layer], cell(s.weight_distance),
                                    cell(s.grad_cosine), cell(s.lost_updates)}));
    }
  } else {
    columns = {"lane", "step", "kind", "tensor", "value", "message"};
    for (const auto& e : run.events(only))
      rows.push_back(json::array({lane_name[e.lane_id], e.step, e.kind, e.tensor, cell(e.value), e.message}));
  }

  if (o.out.empty()) {
    write_table(std::cout, columns, rows, o.format);
    return;
  }
  check_output(o.out, o.force, {o.run});
  // a fresh temporary name beside OUT (never a file that exists: "OUT.tmp" was overwritten before), renamed into
  // place only when every byte is written; removed on any failure
  std::random_device random;
  std::filesystem::path tmp;
  do tmp = o.out + ".tmp-" + std::to_string(random()); while (std::filesystem::exists(tmp));
  try {
    std::ofstream f(tmp);
    if (!f) throw InputError(o.out + ": cannot write");
    write_table(f, columns, rows, o.format);
    f.close();
    if (!f) throw std::runtime_error(o.out + ": write failed (disk full?)");
    std::filesystem::rename(tmp, o.out);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  std::cerr << rows.size() << " rows -> " << o.out << "\n";
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand("export", "Export a table of a run file as CSV or JSON");
  cmd->add_option("run", o->run, "Run file (.mpscope)")->required();
  cmd->add_option("--table", o->table, "steps, tensors, layers or events")
      ->check(CLI::IsMember({"steps", "tensors", "layers", "events"}))
      ->capture_default_str();
  cmd->add_option("--format", o->format, "csv or json")->check(CLI::IsMember({"csv", "json"}))->capture_default_str();
  cmd->add_option("--lane", o->lane, "Only this lane");
  cmd->add_option("-o,--out", o->out, "Write to this file instead of standard output");
  cmd->add_flag("--force", o->force, "Replace --out if it exists");
  cmd->callback([o] { run_export(*o); });
}

}  // namespace mpscope::cli
