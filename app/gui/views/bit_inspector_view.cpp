#include "app/gui/views/bit_inspector_view.hpp"

#include <QGridLayout>
#include <QHBoxLayout>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollArea>
#include <QVBoxLayout>

#include "sim/rounding.hpp"

namespace mpscope::gui {

namespace {
constexpr int cell = 11;  // px per bit; fp64 is 64 bits wide

QColor field_color(BitField f) {
  switch (f) {
    case BitField::sign: return QColor(230, 110, 110);
    case BitField::exponent: return QColor(110, 170, 230);
    case BitField::mantissa: return QColor(130, 200, 120);
  }
  return Qt::gray;
}

QString describe(const sim::FormatReading& r) {
  const auto num = [](std::optional<double> v) { return v ? QString::fromStdString(sim::shortest(*v)) : QString("none"); };
  QString s = QString("<b>%1</b> &nbsp; <i>%2</i>").arg(num(r.value), QString::fromStdString(std::string(sim::to_string(r.category))));
  if (!r.error.empty())
    s += QString("<br>error %1 (relative %2, %3)").arg(QString::fromStdString(r.error), QString::fromStdString(r.relative_error),
                                                        QString::fromStdString(r.direction));
  else if (!r.direction.empty())
    s += "<br><span style='color:#b00'>" + QString::fromStdString(r.direction) + "</span>";
  if (r.ulp) s += QString("<br>%1 &lt; x &lt; %2 &nbsp; ulp %3").arg(num(r.next_down), num(r.next_up), num(r.ulp));
  return s;
}
}  // namespace

BitStrip::BitStrip(QWidget* parent) : QWidget(parent) { setCursor(Qt::PointingHandCursor); }

void BitStrip::setReading(const sim::FormatReading& reading) {
  format_ = reading.format;
  bits_ = reading.bits;
  updateGeometry();
  update();
}

QSize BitStrip::sizeHint() const { return {format_.total_bits() * cell + 4, cell + 8}; }

void BitStrip::paintEvent(QPaintEvent*) {
  QPainter p(this);
  QFont f = font();
  f.setPointSizeF(f.pointSizeF() * 0.8);
  p.setFont(f);
  const int n = format_.total_bits();
  for (int i = 0; i < n; ++i) {
    const int bit = n - 1 - i;
    const QRect r(i * cell, 2, cell - 1, cell + 2);
    p.fillRect(r, field_color(field_of(format_, bit)));
    p.setPen(Qt::black);
    p.drawText(r, Qt::AlignCenter, ((bits_ >> bit) & 1) != 0 ? "1" : "0");
  }
}

void BitStrip::mousePressEvent(QMouseEvent* event) {
  const int i = static_cast<int>(event->position().x()) / cell;
  if (i >= 0 && i < format_.total_bits()) emit bitClicked(format_.total_bits() - 1 - i);
}

BitInspectorView::BitInspectorView(QWidget* parent) : QWidget(parent) {
  input_ = new QLineEdit(QString::fromStdString(inspector_.input()));
  input_->setPlaceholderText("a number: 0.1, 65504, 1e-8, 0x1p-24, inf, nan");
  error_ = new QLabel;
  error_->setStyleSheet("color: #b00");
  auto* grid = new QGridLayout;
  grid->setHorizontalSpacing(10);
  int row = 0;
  for (const auto& r : inspector_.readings()) {
    auto* name = new QLabel(QString("<b>%1</b><br><small>e%2m%3</small>").arg(QString::fromStdString(r.format.name))
                                .arg(r.format.exponent_bits).arg(r.format.mantissa_bits));
    auto* strip = new BitStrip;
    auto* detail = new QLabel;
    detail->setTextInteractionFlags(Qt::TextSelectableByMouse);
    grid->addWidget(name, row, 0, 2, 1, Qt::AlignTop);
    grid->addWidget(strip, row, 1, Qt::AlignLeft);
    grid->addWidget(detail, row + 1, 1);
    const std::size_t index = strips_.size();
    connect(strip, &BitStrip::bitClicked, this, [this, index](int bit) {
      inspector_.flip(index, bit);
      input_->setText(QString::fromStdString(inspector_.input()));
      error_->clear();
      showReadings();
    });
    strips_.push_back(strip);
    details_.push_back(detail);
    row += 2;
  }
  auto* legend = new QLabel("<span style='background:#e66e6e'>&nbsp;sign&nbsp;</span> "
                            "<span style='background:#6eaae6'>&nbsp;exponent&nbsp;</span> "
                            "<span style='background:#82c878'>&nbsp;mantissa&nbsp;</span> &nbsp; click a bit to flip it");
  grid->setRowStretch(row, 1);  // spare height below the formats, not between them
  auto* inner = new QWidget;
  inner->setLayout(grid);
  auto* scroll = new QScrollArea;
  scroll->setWidget(inner);
  scroll->setWidgetResizable(true);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel("Value"));
  top->addWidget(input_, 1);
  layout->addLayout(top);
  layout->addWidget(error_);
  layout->addWidget(legend);
  layout->addWidget(scroll, 1);
  connect(input_, &QLineEdit::editingFinished, this, [this] { setInput(input_->text()); });
  showReadings();
}

void BitInspectorView::setInput(const QString& text) {
  const std::string problem = inspector_.set_input(text.trimmed().toStdString());
  error_->setText(QString::fromStdString(problem));
  if (!problem.empty()) return;
  if (input_->text() != text) input_->setText(text);
  showReadings();
}

void BitInspectorView::showReadings() {
  const auto& readings = inspector_.readings();
  for (std::size_t i = 0; i < readings.size(); ++i) {
    strips_[i]->setReading(readings[i]);
    details_[i]->setText(describe(readings[i]));
    details_[i]->setToolTip("exact value: " + QString::fromStdString(readings[i].exact));
  }
}

}  // namespace mpscope::gui
