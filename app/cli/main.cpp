// mpscope: the command-line face of mpscope (formats, the Float Toy, quantization, GEMM accumulation models).
#include <cstdio>
#include <iostream>

#include "app/cli/commands.hpp"
#include "analysis/run_store.hpp"
#include "sim/npy.hpp"

int main(int argc, char** argv) {
  using namespace mpscope::cli;
  CLI::App app{"mpscope: what reduced precision does to numbers and to neural-network training"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mpscope ") + MPSCOPE_VERSION);
  add_formats_command(app);
  add_inspect_command(app);
  add_quantize_command(app);
  add_gemm_command(app);
  add_run_command(app);
  add_info_command(app);
  add_export_command(app);
  add_doctor_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the usage error
    return code == 0 ? exit_ok : exit_bad_input;
  } catch (const ExitStatus& e) {
    return e.code;
  } catch (const InputError& e) {
    std::cerr << "mpscope: error: " << e.what() << "\n";
    return exit_bad_input;
  } catch (const mpscope::sim::NpyError& e) {
    std::cerr << "mpscope: error: " << e.what() << "\n";
    return exit_bad_input;
  } catch (const mpscope::analysis::RunStoreError& e) {
    std::cerr << "mpscope: error: " << e.what() << "\n";
    return exit_bad_input;
  } catch (const std::invalid_argument& e) {
    std::cerr << "mpscope: error: " << e.what() << "\n";
    return exit_bad_input;
  } catch (const std::exception& e) {
    std::cerr << "mpscope: failed: " << e.what() << "\n";
    return exit_runtime_failure;
  }
  return exit_ok;
}
