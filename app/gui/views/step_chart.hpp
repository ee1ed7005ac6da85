// A Qt Charts line chart over steps: one line per lane (lane colours), optional marker series (events, skipped
// steps), a vertical line at the selected step; a click selects the step under the cursor.
#pragma once

#include <QChartView>
#include <QColor>
#include <QScatterSeries>
#include <QString>
#include <vector>

#include "app/gui/models/series.hpp"

namespace mpscope::gui {

class StepChart : public QChartView {
  Q_OBJECT
 public:
  struct Line {
    QString name;
    QColor color;
    std::vector<Point> points;
  };
  struct Marks {
    QString name;
    QColor color;
    std::vector<Point> points;
    QScatterSeries::MarkerShape shape = QScatterSeries::MarkerShapeCircle;
    qreal size = 8;
  };

  StepChart(const QString& title, const QString& y_title, QWidget* parent = nullptr);
  void setLogY(bool on);  // values <= 0 are left out on a log axis
  void setYTitle(const QString& title);
  void setData(const std::vector<Line>& lines, const std::vector<Marks>& marks = {});
  void setSelectedStep(qint64 step);
  int pointCount() const { return points_; }  // points drawn (lines and marks)

 signals:
  void stepClicked(qint64 step);

 protected:
  void mousePressEvent(QMouseEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;  // the decade labels' spacing depends on the height

 private:
  void rebuild();
  QString y_title_;
  bool log_y_ = false;
  std::vector<Line> lines_;
  std::vector<Marks> marks_;
  qint64 selected_ = -1;
  int points_ = 0;
};

}  // namespace mpscope::gui
