// The main window on Qt's offscreen platform: a 50-step scenario trained live reaches every view; a run file
// opens; bad files are refused with a message; the dashboard PNG has the size asked for and is not blank; and
// the mpscope-gui program's command line (--export-png, --quit, exit codes).
#include <gtest/gtest.h>

#include <QApplication>
#include <QDockWidget>
#include <QDropEvent>
#include <QImage>
#include <QLineEdit>
#include <QMimeData>
#include <QSettings>
#include <QUrl>
#include <QProcess>
#include <QSignalSpy>
#include <cstdio>
#include <fstream>
#include <set>

#include "app/gui/main_window.hpp"
#include "app/gui/views/blocks_view.hpp"
#include "app/gui/views/underflow_view.hpp"
#include "gui_test_support.hpp"

using namespace mpscope;
using namespace mpscope::gui;
using namespace mpscope::gui::testing;
using json = nlohmann::json;

namespace {

// The underflow scenario, shortened to 50 steps, written beside a scratch run file.
std::filesystem::path short_scenario(const std::string& name) {
  std::ifstream in(std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples" / "underflow.json");
  json e = json::parse(in);
  e["steps"] = 50;
  const auto file = scratch(name);
  std::ofstream(file) << e.dump(2);
  return file;
}

// Share of pixels that differ from the most common colour, and how many colours there are.
std::pair<double, std::size_t> image_variety(const QImage& image) {
  std::map<QRgb, std::size_t> counts;
  for (int y = 0; y < image.height(); y += 2)
    for (int x = 0; x < image.width(); x += 2) ++counts[image.pixel(x, y)];
  std::size_t most = 0, total = 0;
  for (const auto& [c, n] : counts) {
    most = std::max(most, n);
    total += n;
  }
  return {1.0 - static_cast<double>(most) / static_cast<double>(total), counts.size()};
}

int run_program(const std::string& args) {
  const std::string command = "QT_QPA_PLATFORM=offscreen " + std::string(MPSCOPE_GUI_PROGRAM) + " " + args + " 2>/dev/null";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

MainWindowOptions options(const std::filesystem::path& run_file = {}) {
  MainWindowOptions o;
  o.samples_dir = std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples";
  o.run_file = run_file;
  o.restore_layout = false;
  return o;
}

}  // namespace

TEST(GuiSmoke, TrainsAScenarioLiveAndEveryViewReceivesData) {
  const auto experiment = short_scenario("smoke.json");
  const auto run_file = scratch("smoke.mpscope");
  MainWindow w(options(run_file));
  w.show();
  QSignalSpy settled(&w, &MainWindow::runSettled);
  ASSERT_EQ(w.openFile(QString::fromStdString(experiment.string())), "");
  EXPECT_EQ(w.experimentPanel().lanes().rowCount(), 4);
  ASSERT_EQ(w.startRun(), "");
  // While training runs the UI keeps answering: the event loop turns, and views fill as steps are committed.
  ASSERT_TRUE(spin_until([&] { return settled.count() == 1; }, 120000));
  EXPECT_TRUE(settled.front().at(0).toBool()) << settled.front().at(1).toString().toStdString();
  ASSERT_NE(w.feed().data(), nullptr);
  EXPECT_EQ(w.feed().data()->last_step(), 49);
  for (RunView* v : w.views()) {
    if (qobject_cast<BlocksView*>(v)) continue;  // transformers only (an mlp has no blocks): BlocksViewAndTensorFilters
    EXPECT_GT(v->pointCount(), 0) << v->metaObject()->className();
    EXPECT_GT(v->csv().size(), 40u) << v->metaObject()->className();
  }
  EXPECT_EQ(w.bitInspector().inspector().readings().size(), 7u);
  EXPECT_EQ(analysis::RunReader(run_file).summary().status, "finished");

  // A step chosen anywhere is the step everywhere.
  QSignalSpy selected(&w.feed(), &RunFeed::selectedStepChanged);
  emit w.views()[0]->stepClicked(20);
  EXPECT_EQ(w.feed().selectedStep(), 20);
  EXPECT_EQ(selected.count(), 1);

  const auto png = scratch("smoke.png");
  QString error;
  ASSERT_TRUE(w.exportDashboard(QString::fromStdString(png.string()), &error)) << error.toStdString();
  const QImage image(QString::fromStdString(png.string()));
  ASSERT_FALSE(image.isNull());
  EXPECT_GE(image.width(), 1280);
  EXPECT_GE(image.height(), 800);
  const auto [non_background, colours] = image_variety(image);
  EXPECT_GT(non_background, 0.2);  // charts, heatmap, bars, text: far from a blank window
  EXPECT_GT(colours, 100u);

  // Each view on its own (File > Export view as PNG), and a path that cannot be written leaves nothing.
  for (RunView* v : w.views()) {
    const auto view_png = scratch(std::string(v->metaObject()->className()).substr(14) + ".png");
    ASSERT_TRUE(MainWindow::exportPng(v, QString::fromStdString(view_png.string()), &error)) << error.toStdString();
    const QImage view_image(QString::fromStdString(view_png.string()));
    EXPECT_EQ(view_image.size(), v->size());
    EXPECT_GT(image_variety(view_image).first, 0.05) << v->metaObject()->className();
  }
  EXPECT_FALSE(MainWindow::exportPng(&w, "/nonexistent/dir/x.png", &error));
  EXPECT_NE(error.indexOf("/nonexistent/dir/x.png"), -1);

  // After training, the same window opens the run file it wrote (and says so, for --export-png).
  QSignalSpy again(&w, &MainWindow::runSettled);
  ASSERT_EQ(w.openFile(QString::fromStdString(run_file.string())), "");
  EXPECT_EQ(again.count(), 1);
  EXPECT_EQ(w.feed().data()->last_step(), 49);
}

TEST(GuiSmoke, OpensARunFileAndRefusesBadFiles) {
  const auto run = make_run(small_experiment(), "opened.mpscope");
  MainWindow w(options());
  w.show();
  QSignalSpy settled(&w, &MainWindow::runSettled);
  ASSERT_EQ(w.openFile(QString::fromStdString(run.string())), "");
  EXPECT_EQ(settled.count(), 1);
  for (RunView* v : w.views()) {
    if (!qobject_cast<BlocksView*>(v)) {
      EXPECT_GT(v->pointCount(), 0) << v->metaObject()->className();
    }
  }
  EXPECT_EQ(w.experimentPanel().lanes().rowCount(), 3);  // the run's experiment is shown

  EXPECT_NE(w.openFile("/nonexistent/x.json").indexOf("no such file"), -1);
  const auto broken = scratch("broken.json");
  std::ofstream(broken) << "{\"name\": ";
  EXPECT_NE(w.openFile(QString::fromStdString(broken.string())).indexOf("not valid JSON"), -1);
  const auto wrong = scratch("wrong.json");
  json e = small_experiment();
  e["optimizer"]["typo"] = 1;
  std::ofstream(wrong) << e.dump();
  EXPECT_NE(w.openFile(QString::fromStdString(wrong.string())).indexOf("optimizer.typo"), -1);
  // The run that was open stays open after a refused file.
  ASSERT_NE(w.feed().data(), nullptr);
  EXPECT_EQ(w.feed().data()->lanes.size(), 3u);
}

// The underflow view's tensor choice holds after the lane changes (every lane has the same tensor names, under
// other ids): the heatmap is the chosen tensor's of the new lane, not all of its gradients.
TEST(GuiSmoke, UnderflowViewKeepsTheTensorAcrossLanes) {
  const auto run = make_run(small_experiment(), "lanes.mpscope");
  MainWindow w(options());
  ASSERT_EQ(w.openFile(QString::fromStdString(run.string())), "");
  UnderflowView* view = nullptr;
  for (RunView* v : w.views())
    if (auto* u = qobject_cast<UnderflowView*>(v)) view = u;
  ASSERT_NE(view, nullptr);
  auto* lane = view->findChild<QComboBox*>("lane");
  auto* tensor = view->findChild<QComboBox*>("tensor");
  ASSERT_TRUE(lane && tensor);
  ASSERT_GE(lane->count(), 2);
  const int chosen = tensor->findText("layer1.weight_grad");
  ASSERT_GE(chosen, 1);
  tensor->setCurrentIndex(chosen);
  for (int l = 0; l < lane->count(); ++l) {
    lane->setCurrentIndex(l);
    EXPECT_EQ(tensor->currentText(), "layer1.weight_grad");
    EXPECT_EQ(view->heatmap().title.rfind(lane->itemText(l).toStdString() + ": layer1.weight_grad", 0), 0u)
        << view->heatmap().title;
  }
}

// A GPT's run: the blocks view draws every block and lists every head; the underflow view's filters narrow its
// tensor list to one block's attention scores.
TEST(GuiSmoke, BlocksViewAndTensorFiltersOnAGpt) {
  const json e = small_gpt_experiment(6);
  const auto run = make_run(e, "gpt-views.mpscope");
  MainWindow w(options());
  ASSERT_EQ(w.openFile(QString::fromStdString(run.string())), "");
  ASSERT_TRUE(w.raiseView("blocks"));
  EXPECT_FALSE(w.raiseView("nosuchview"));
  BlocksView& blocks = w.blocksView();
  EXPECT_EQ(blocks.findChild<QComboBox*>("lane")->currentText(), "fp16-amp");  // the first non-reference lane
  EXPECT_EQ(blocks.headTable().rowCount(), 4);                                   // 2 blocks x 2 heads
  EXPECT_EQ(blocks.headTable().item(3, 0)->text(), "h.1.head1");
  EXPECT_GE(blocks.pointCount(), 2 * 6 + 4);  // a line per block over the 6 steps, and the rows
  auto* quantity = blocks.findChild<QComboBox*>("quantity");
  quantity->setCurrentIndex(1);  // the residual stream
  EXPECT_GE(blocks.pointCount(), 2 * 6 + 4);
  EXPECT_NE(blocks.csv().find("transformer.h.1,5,"), std::string::npos) << blocks.csv();

  UnderflowView& underflow = w.underflowView();
  auto* block = underflow.findChild<QComboBox*>("block");
  auto* kind = underflow.findChild<QComboBox*>("kind");
  auto* tensor = underflow.findChild<QComboBox*>("tensor");
  ASSERT_TRUE(block && kind && tensor);
  block->setCurrentIndex(block->findText("transformer.h.1"));
  kind->setCurrentIndex(kind->findText("attention_scores"));
  ASSERT_EQ(tensor->count(), 3);  // "all gradients", then the block's two heads
  EXPECT_EQ(tensor->itemText(1), "transformer.h.1.attn.head0.scores");
  tensor->setCurrentIndex(2);
  EXPECT_EQ(underflow.heatmap().title.rfind("fp16-amp: transformer.h.1.attn.head1.scores", 0), 0u) << underflow.heatmap().title;
  kind->setCurrentIndex(0);  // all kinds again: the choice stays
  EXPECT_EQ(tensor->currentText(), "transformer.h.1.attn.head1.scores");
}

TEST(GuiSmoke, FollowsARunThatAnotherProcessIsWriting) {
  json e = small_experiment(6000);  // a few seconds of `mpscope run`
  const auto experiment = scratch("tail.json"), file = scratch("tail.mpscope");
  std::ofstream(experiment) << e.dump();
  QProcess cli;
  cli.start(MPSCOPE_CLI, {"run", QString::fromStdString(experiment.string()), "--out", QString::fromStdString(file.string()), "-q"});
  ASSERT_TRUE(cli.waitForStarted());
  RunFeed feed;
  feed.setPollInterval(100);
  // The file appears once the lanes are built; until its schema is written it is not yet a run file.
  QString why;
  ASSERT_TRUE(spin_until([&] {
    if (!std::filesystem::exists(file)) return false;
    why = feed.open(QString::fromStdString(file.string()));
    return why.isEmpty();
  }, 60000)) << why.toStdString() << " / mpscope: " << cli.readAllStandardError().toStdString();
  std::set<std::int64_t> seen;  // the latest step at each update: several while the run is written
  QObject::connect(&feed, &RunFeed::updated, [&] { seen.insert(feed.data()->last_step()); });
  QSignalSpy ended(&feed, &RunFeed::ended);
  ASSERT_TRUE(spin_until([&] { return ended.count() == 1; }, 300000));
  ASSERT_TRUE(cli.state() == QProcess::NotRunning || cli.waitForFinished(60000));
  EXPECT_EQ(cli.exitStatus(), QProcess::NormalExit);
  EXPECT_EQ(cli.exitCode(), 0);
  EXPECT_GE(seen.size(), 2u) << "the feed should have seen the run grow";
  const analysis::RunReader reader(file);
  ASSERT_EQ(feed.data()->lanes.size(), 3u);
  for (const LaneData& l : feed.data()->lanes) {
    EXPECT_EQ(l.steps.size(), reader.steps(l.info.id).size());
    EXPECT_EQ(l.last_step(), 5999);
    EXPECT_EQ(l.tensor_stats.size(), reader.lane_tensor_stats(l.info.id).size() / l.tensors.size());
  }
  EXPECT_EQ(feed.data()->summary.status, "finished");
}

TEST(GuiSmoke, TheExperimentPanelGivesBackWhatItWasGiven) {
  std::ifstream in(std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples" / "underflow.json");
  const json given = json::parse(in);
  MainWindow w(options());
  ExperimentPanel& panel = w.experimentPanel();
  panel.setExperiment(given, {});
  const json back = panel.experiment();
  // The form makes some defaults explicit; what it shows is what it gives back.
  EXPECT_EQ(back["steps"], given["steps"]);
  EXPECT_EQ(back["batch_size"], given["batch_size"]);
  EXPECT_EQ(back["model"]["layers"], given["model"]["layers"]);
  EXPECT_EQ(back["model"]["activation"], given["model"]["activation"]);
  EXPECT_EQ(back["optimizer"], given["optimizer"]);
  EXPECT_EQ(back["data"], given["data"]);
  EXPECT_EQ(back["lanes"], given["lanes"]);
  EXPECT_EQ(back["record"], given["record"]);
  EXPECT_NO_THROW(sim::parse_experiment(back, "."));
  panel.lanes().addLane("fp8");
  EXPECT_EQ(panel.experiment()["lanes"].size(), given["lanes"].size() + 1);
}

// A gpt (and a sequential model) is shown in one line and given back unchanged; its data choices are token sources
// that fit it.
TEST(GuiSmoke, TheExperimentPanelGivesBackAGptUnchanged) {
  for (const char* sample : {"attention-overflow.json", "torch_cnn.json"}) {
    std::ifstream in(std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples" / sample);
    const json given = json::parse(in);
    MainWindow w(options());
    ExperimentPanel& panel = w.experimentPanel();
    panel.setExperiment(given, std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples" / sample);
    const json back = panel.experiment();
    EXPECT_EQ(back["model"], given["model"]) << sample;
    EXPECT_EQ(back["data"], given["data"]) << sample;
    EXPECT_NO_THROW(sim::parse_experiment(back, std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples")) << sample;
  }
  std::ifstream in(std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples" / "torch_gpt.json");
  const json gpt = json::parse(in);
  MainWindow w(options());
  ExperimentPanel& panel = w.experimentPanel();
  panel.setExperiment(gpt, {});
  auto* layers = panel.findChild<QLineEdit*>("layers");
  ASSERT_NE(layers, nullptr);
  EXPECT_EQ(layers->text(), "gpt: vocab 16, block 32, n_embd 64, 4 heads, 2 layers");
  EXPECT_TRUE(layers->isReadOnly());
  auto* activation = panel.findChild<QComboBox*>("activation");
  ASSERT_NE(activation, nullptr);
  EXPECT_EQ(activation->currentText(), "gelu_tanh");  // nanoGPT's, not the mlp default
  EXPECT_FALSE(activation->isEnabled());
  auto* data = panel.findChild<QComboBox*>("data");
  ASSERT_NE(data, nullptr);
  ASSERT_EQ(data->count(), 2);  // the file's npz, then the built-in token tasks
  EXPECT_EQ(data->itemData(1).toString(), "tokens");
  data->setCurrentIndex(1);
  const json back = panel.experiment();
  EXPECT_EQ(back["data"], (json{{"source", "tokens"}, {"vocab_size", 16}, {"length", 32}}));
  EXPECT_NO_THROW(sim::parse_experiment(back, std::filesystem::path(MPSCOPE_SOURCE_DIR) / "samples"));
}

TEST(GuiSmoke, DroppedFilesOpenAndRecentFilesAndLayoutAreRemembered) {
  const auto run = make_run(small_experiment(), "dropped.mpscope");
  QSettings().remove("recent");
  {
    MainWindowOptions o = options();
    o.restore_layout = true;
    MainWindow w(o);
    w.show();
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(QString::fromStdString(run.string()))});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &enter);
    EXPECT_TRUE(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &drop);
    ASSERT_NE(w.feed().data(), nullptr);  // the dropped run is open
    EXPECT_EQ(w.feed().data()->lanes.size(), 3u);
    EXPECT_EQ(QSettings().value("recent").toStringList().value(0), QString::fromStdString(run.string()));
    w.findChild<QDockWidget*>("scale")->hide();  // a layout change...
    w.close();
  }
  {
    MainWindowOptions o = options();
    o.restore_layout = true;
    MainWindow w(o);
    w.show();
    EXPECT_FALSE(w.findChild<QDockWidget*>("scale")->isVisible());  // ...comes back with the next window
    EXPECT_TRUE(w.findChild<QDockWidget*>("loss")->isVisible());
  }
  MainWindow fixed(options());  // exports use the default layout whatever was saved
  fixed.show();
  EXPECT_TRUE(fixed.findChild<QDockWidget*>("scale")->isVisible());
}

TEST(GuiSmoke, StepRunsOneStepAtATime) {
  const auto experiment = short_scenario("step.json");
  const auto run_file = scratch("step.mpscope");
  MainWindow w(options(run_file));
  w.show();
  ASSERT_EQ(w.openFile(QString::fromStdString(experiment.string())), "");
  ASSERT_EQ(w.startRun(/*paused=*/true), "");
  w.session().stepOnce();
  w.session().stepOnce();
  ASSERT_TRUE(spin_until([&] { return w.feed().data() && w.feed().data()->last_step() == 1; }, 60000));
  EXPECT_EQ(w.session().state(), TrainingSession::State::paused);
  for (RunView* v : w.views()) w.feed().pollNow(), (void)v;
  ASSERT_TRUE(spin_until([&] { return w.views()[0]->pointCount() > 0; }, 10000));
  w.session().stop();
  ASSERT_TRUE(spin_until([&] { return w.session().state() == TrainingSession::State::finished; }));
  EXPECT_EQ(analysis::RunReader(run_file).summary().status, "interrupted");
}

TEST(GuiProgram, ExportsThePngAndExitsWithTheRightStatus) {
  const auto run = make_run(small_experiment(), "program.mpscope");
  const auto png = scratch("program.png");
  EXPECT_EQ(run_program(run.string() + " --export-png " + png.string() + " --quit"), 0);
  const QImage image(QString::fromStdString(png.string()));
  ASSERT_FALSE(image.isNull());
  EXPECT_GE(image.width(), 1280);
  EXPECT_GE(image.height(), 800);
  EXPECT_GT(image_variety(image).first, 0.2);

  EXPECT_EQ(run_program(run.string() + " --quit"), 0);  // loads, quits (without hanging: ctest's timeout would say)

  // Trains an experiment, writes the run where --out says, then the PNG.
  const auto experiment = short_scenario("program.json");
  const auto out = scratch("program-trained.mpscope"), png2 = scratch("program-trained.png");
  EXPECT_EQ(run_program(experiment.string() + " --out " + out.string() + " --export-png " + png2.string() + " --quit"), 0);
  EXPECT_EQ(analysis::RunReader(out).summary().status, "finished");
  EXPECT_TRUE(std::filesystem::exists(png2));

  // Bad input: exit status 2, nothing written.
  const auto none = scratch("none.png");
  EXPECT_EQ(run_program("/nonexistent/run.mpscope --export-png " + none.string() + " --quit"), 2);
  EXPECT_EQ(run_program(run.string() + " --export-png /nonexistent/dir/x.png --quit"), 2);
  EXPECT_EQ(run_program(experiment.string() + " --out " + out.string() + " --quit"), 2);  // exists already
  EXPECT_EQ(run_program("notes.txt --quit"), 2);
  EXPECT_EQ(run_program(run.string() + " --show nosuchview --export-png " + none.string() + " --quit"), 2);
  const auto wrong = scratch("program-wrong.json");
  json e = small_experiment();
  e["lanes"][0]["recipe"] = "fp17";
  std::ofstream(wrong) << e.dump();
  const auto wrong_out = scratch("program-wrong.mpscope");
  EXPECT_EQ(run_program(wrong.string() + " --out " + wrong_out.string() + " --export-png " + none.string() + " --quit"), 2);
  EXPECT_FALSE(std::filesystem::exists(none));
  EXPECT_FALSE(std::filesystem::exists(wrong_out));
}
