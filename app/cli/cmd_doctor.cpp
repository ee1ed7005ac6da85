// `mpscope doctor`: what this mpscope and this machine can do: the build, the CPU kernels, the CUDA driver and
// devices. Always exit 0 when it could look (no GPU is a finding, not a failure).
#include <iostream>

#include "app/cli/commands.hpp"
#include "sim/round_array.hpp"

#if defined(MPSCOPE_WITH_CUDA)
#include "gpu/device.hpp"
#endif

namespace mpscope::cli {

namespace {

void doctor() {
  std::cout << "mpscope      " << MPSCOPE_VERSION << "\n"
            << "CPU kernels  " << sim::to_string(sim::best_isa())
            << " (MPSCOPE_ISA=portable|avx2|avx512 lowers it)\n";
#if defined(MPSCOPE_WITH_CUDA)
  const auto mib = [](std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; };
  const gpu::CudaInfo info = gpu::query_cuda();
  const std::string archs = MPSCOPE_CUDA_ARCHITECTURES;
  std::cout << "CUDA build   yes (runtime " << gpu::version_string(info.runtime_version) << ", kernels for compute capability "
            << archs << ")\n"
            << "CUDA driver  " << (info.driver_version ? gpu::version_string(info.driver_version) : "none") << "\n";
  if (info.devices.empty()) {
    std::cout << "GPU          none: " << info.problem << "\n"
              << "             lanes with \"backend\": \"gpu\" stop before training (exit 3); "
                 "`mpscope run --fallback cpu` runs them emulated\n";
    return;
  }
  for (const gpu::DeviceInfo& d : info.devices) {
    std::cout << "GPU " << d.index << "        " << d.name << ", compute capability " << d.compute_major << "."
              << d.compute_minor << ", " << d.multiprocessors << " SMs, " << mib(d.total_memory) << " ("
              << mib(d.free_memory) << " free)\n";
    if (archs.find(std::to_string(d.compute_major * 10 + d.compute_minor)) == std::string::npos)
      std::cout << "             mpscope's kernels were not built for this device: rebuild with "
                   "-DCMAKE_CUDA_ARCHITECTURES="
                << d.compute_major * 10 + d.compute_minor << "\n";
  }
#else
  std::cout << "CUDA build   no (MPSCOPE_CUDA=OFF): GPU lanes are unavailable; `mpscope run --fallback cpu` runs them "
               "emulated\n";
#endif
}

}  // namespace

void add_doctor_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("doctor", "Show what this mpscope and machine can do: build, CPU kernels, CUDA devices");
  cmd->callback([] { doctor(); });
  cmd->footer("Exit status: 0 (also without a GPU).");
}

}  // namespace mpscope::cli
