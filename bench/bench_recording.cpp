// What recording costs: the 4-lane spiral run (fp32 reference, fp16-amp with the h100 model and dynamic loss
// scaling, bf16-amp, fp16-pure) for 2000 steps, with per-tensor statistics every step written to a run file,
// against the same run with statistics computed but not written, and with nothing recorded. Reports the run
// file's size. The aim (issue "Lockstep ..."): under 50 MB, and recording at most 10% of the run's time.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "analysis/run_store.hpp"
#include "sim/trainer.hpp"

using namespace mpscope;

namespace {

sim::Experiment budget_experiment(std::int64_t every) {
  nlohmann::json j = {
      {"name", "budget"}, {"seed", 1}, {"steps", 2000}, {"batch_size", 64},
      {"data", {{"source", "spiral"}, {"classes", 3}, {"points_per_class", 300}, {"noise", 0.2}}},
      {"model", {{"type", "mlp"}, {"layers", {2, 64, 64, 3}}, {"activation", "relu"}}},
      {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}},
      {"lanes", {{{"name", "fp32"}, {"recipe", "fp32"}, {"reference", true}},
                 {{"name", "fp16"}, {"recipe", "fp16-amp"}, {"mma", "h100"}, {"loss_scale", {{"type", "dynamic"}}}},
                 {{"name", "bf16"}, {"recipe", "bf16-amp"}},
                 {{"name", "pure"}, {"recipe", "fp16-pure"}}}},
      // accuracy on the whole set is a forward pass over 900 rows per lane: measured apart (accuracy_every)
      {"record", {{"every", every}, {"accuracy_every", 1000000}}}};
  return sim::parse_experiment(j, ".");
}

// threads: 1 trains the lanes on one thread (the ratio then does not depend on how the second core is shared);
// 0 is what `mpscope run` does: one thread per lane, at most one per core.
void run(benchmark::State& state, bool statistics, bool write, int threads) {
  const sim::Experiment e = budget_experiment(statistics ? 1 : 1000000);
  const sim::Prepared p = sim::prepare(e);
  const std::filesystem::path file = std::filesystem::temp_directory_path() / ("mpscope_bench_" + std::to_string(getpid()) + ".mpscope");
  double size = 0;
  for (auto _ : state) {
    std::filesystem::remove(file);
    std::unique_ptr<analysis::RunWriter> writer;
    if (write) writer = std::make_unique<analysis::RunWriter>(file, analysis::RunHeader{"{}", "{}", "", "bench", e.steps});
    sim::TrainOptions options;
    options.threads = threads;
    sim::train(e, p, writer.get(), options);
    writer.reset();
    if (write) size = static_cast<double>(std::filesystem::file_size(file));
  }
  std::filesystem::remove(file);
  state.counters["run_file_MB"] = size / 1e6;
}

BENCHMARK_CAPTURE(run, nothing_recorded, false, false, 1)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(run, statistics_not_written, true, false, 1)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(run, statistics_written, true, true, 1)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(run, nothing_recorded_default_threads, false, false, 0)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(run, statistics_not_written_default_threads, true, false, 0)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(run, statistics_written_default_threads, true, true, 0)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
