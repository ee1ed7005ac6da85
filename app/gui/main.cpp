// mpscope-gui [EXPERIMENT.json | RUN.mpscope] [--out RUN.mpscope] [--export-png FILE] [--quit]
//             [--inspect VALUE] [--underflow-lane LANE] [--unscaled]
// With an experiment it trains it; with a run file it shows it (following it while another process writes it).
// --export-png renders the whole dashboard once training or loading is done; --quit exits after that (and, as no
// one watches the window then, prints training progress on stderr). Works under QT_QPA_PLATFORM=offscreen.
// Exit status: 0 done, 2 bad input, 3 training or export failed.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QTimer>
#include <cstdio>
#include <filesystem>

#include "app/gui/main_window.hpp"
#include "app/gui/models/scenarios.hpp"
#include "sim/decimal.hpp"

namespace {
constexpr int exit_bad_input = 2, exit_failure = 3;

int fail(int code, const QString& message) {
  std::fprintf(stderr, "mpscope-gui: %s\n", qPrintable(message));
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName("mpscope");
  QApplication::setApplicationName("mpscope-gui");
  QApplication::setApplicationVersion(MPSCOPE_VERSION);

  QCommandLineParser parser;
  parser.setApplicationDescription("mpscope: watch what reduced precision does to training, lane by lane.");
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addPositionalArgument("file", "An experiment (.json) to train, or a run (.mpscope) to show.", "[FILE]");
  const QCommandLineOption out({"o", "out"}, "Where training writes its run file (must not exist; default: a new "
                                             "file in the cache folder).", "RUN.mpscope");
  const QCommandLineOption export_png("export-png", "Render the dashboard to FILE (PNG) once training or loading "
                                                    "is done.", "FILE");
  const QCommandLineOption quit("quit", "Exit after that (or at once without --export-png).");
  const QCommandLineOption inspect("inspect", "Show VALUE in the bit inspector (in front of the experiment panel).",
                                   "VALUE");
  const QCommandLineOption lane("underflow-lane", "The lane the underflow and blocks views show (default: the first "
                                                  "lane that is not the reference).", "LANE");
  const QCommandLineOption show("show", "Bring a view to the front: experiment, bits, loss, scale, underflow, "
                                        "divergence or blocks.", "VIEW");
  const QCommandLineOption unscaled("unscaled", "The underflow view shows the gradients before loss scaling.");
  parser.addOptions({out, export_png, quit, inspect, lane, show, unscaled});
  parser.process(app);

  const QStringList files = parser.positionalArguments();
  if (files.size() > 1) return fail(exit_bad_input, "one file at most (got " + QString::number(files.size()) + ")");
  const QString file = files.value(0);
  if (!file.isEmpty() && !file.endsWith(".json") && !file.endsWith(".mpscope"))
    return fail(exit_bad_input, file + ": expected an experiment (.json) or a run (.mpscope)");
  const QString png = parser.value(export_png);
  if (!png.isEmpty() && !QFileInfo(png).absoluteDir().exists())
    return fail(exit_bad_input, "--export-png " + png + ": directory " + QFileInfo(png).absolutePath() + " does not exist");
  const QString run_file = parser.value(out);
  if (!run_file.isEmpty()) {
    if (QFileInfo::exists(run_file)) return fail(exit_bad_input, "--out " + run_file + " already exists");
    if (!QFileInfo(run_file).absoluteDir().exists())
      return fail(exit_bad_input, "--out " + run_file + ": directory " + QFileInfo(run_file).absolutePath() + " does not exist");
  }
  const bool quit_after = parser.isSet(quit);
  if (parser.isSet(inspect)) {
    try {
      mpscope::sim::parse_real(parser.value(inspect).toStdString());
    } catch (const std::invalid_argument& e) {
      return fail(exit_bad_input, "--inspect: " + QString::fromStdString(e.what()));
    }
  }

  mpscope::gui::MainWindowOptions options;
  options.samples_dir = mpscope::gui::find_samples_dir(QCoreApplication::applicationDirPath().toStdString());
  options.run_file = run_file.toStdString();
  options.restore_layout = png.isEmpty();  // exports use the default layout, the same every time
  mpscope::gui::MainWindow window(options);
  window.show();
  if (parser.isSet(inspect)) window.inspectValue(parser.value(inspect));
  if (parser.isSet(lane) || parser.isSet(unscaled)) window.underflowView().prefer(parser.value(lane), parser.isSet(unscaled));
  if (parser.isSet(lane)) window.blocksView().showLane(parser.value(lane));
  if (parser.isSet(show) && !window.raiseView(parser.value(show)))
    return fail(exit_bad_input, "--show " + parser.value(show) +
                                    ": not a view (experiment, bits, loss, scale, underflow, divergence, blocks)");

  int status = 0;
  // Through the event loop: a run file that is loaded at once settles before exec() has started, when an
  // immediate exit() would be lost.
  const auto quit_soon = [&] { QTimer::singleShot(0, &window, [&] { QApplication::exit(status); }); };
  const auto finish = [&](bool ok, const QString& message) {
    if (!ok) {
      status = fail(exit_failure, message);
      if (quit_after) quit_soon();
      return;
    }
    if (!png.isEmpty()) {
      // Let the views lay themselves out and paint once before the window is rendered.
      QTimer::singleShot(400, &window, [&] {
        QString error;
        if (!window.exportDashboard(png, &error)) status = fail(exit_failure, error);
        else std::fprintf(stderr, "mpscope-gui: wrote %s (%dx%d)\n", qPrintable(png), window.width(), window.height());
        if (quit_after) quit_soon();
      });
    } else if (quit_after) {
      quit_soon();
    }
  };
  QObject::connect(&window, &mpscope::gui::MainWindow::runSettled, &window, finish);
  if (quit_after) {
    // Headless (nobody sees the window's progress bar): a line on stderr at every tenth of the run.
    QObject::connect(&window.session(), &mpscope::gui::TrainingSession::progress, &window,
                     [last_tenth = -1](qint64 done, qint64 total) mutable {
                       const int tenth = total > 0 ? static_cast<int>(done * 10 / total) : 10;
                       if (tenth == last_tenth) return;
                       last_tenth = tenth;
                       std::fprintf(stderr, "mpscope-gui: step %lld / %lld (%d%%)\n", static_cast<long long>(done),
                                    static_cast<long long>(total), tenth * 10);
                     });
  }

  if (!file.isEmpty()) {
    QString error = window.openFile(file);
    if (error.isEmpty() && file.endsWith(".json")) {
      error = window.startRun();
      if (!window.session().warning().isEmpty())  // GPU lanes without a GPU run emulated: say so here too
        std::fprintf(stderr, "mpscope-gui: warning: %s\n", qPrintable(window.session().warning()));
    }
    if (!error.isEmpty()) {
      if (quit_after || !png.isEmpty()) return fail(exit_bad_input, error);
      std::fprintf(stderr, "mpscope-gui: %s\n", qPrintable(error));
    }
  } else if (!png.isEmpty() || quit_after) {
    QTimer::singleShot(0, &window, [&] { finish(true, {}); });
  }
  const int code = QApplication::exec();
  return status != 0 ? status : code;
}
