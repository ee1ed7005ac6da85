// The bit inspector: type a value, see its bits in every format (sign, exponent and mantissa in their own colours),
// click a bit to flip it; beside each: the stored value, the rounding error, the category, neighbours and ulp.
#pragma once

#include <QLabel>
#include <QLineEdit>
#include <QWidget>
#include <vector>

#include "app/gui/models/bit_inspector.hpp"

namespace mpscope::gui {

// One format's bit pattern as a row of clickable cells (most significant bit on the left).
class BitStrip : public QWidget {
  Q_OBJECT
 public:
  explicit BitStrip(QWidget* parent = nullptr);
  void setReading(const sim::FormatReading& reading);
  QSize sizeHint() const override;
 signals:
  void bitClicked(int bit);  // 0: the least significant
 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
 private:
  sim::Format format_;
  std::uint64_t bits_ = 0;
};

class BitInspectorView : public QWidget {
  Q_OBJECT
 public:
  explicit BitInspectorView(QWidget* parent = nullptr);
  void setInput(const QString& text);
  const BitInspector& inspector() const { return inspector_; }

 private:
  void showReadings();
  BitInspector inspector_;
  QLineEdit* input_;
  QLabel* error_;
  std::vector<BitStrip*> strips_;
  std::vector<QLabel*> details_;
};

}  // namespace mpscope::gui
