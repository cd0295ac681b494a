// loss_curve.svg: the train and eval losses against the optimizer step, as a line chart with a grid, round tick
// values (1, 2 or 5 times a power of ten) on both axes, the axis labels "step" and "loss", and a legend.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "engine/base/json_writer.h"
#include "engine/train/metrics.h"

namespace qsft {

namespace {

// An axis from lo to hi with a tick every `step`: lo and hi are multiples of step, so the ends carry ticks too.
struct Axis {
  double lo, hi, step;
  int ticks() const { return int(std::lround((hi - lo) / step)) + 1; }
  double tick(int i) const { return lo + step * i; }
};

// About `count` intervals over [lo, hi] (lo < hi), each 1, 2 or 5 times a power of ten and at least `min_step`.
Axis round_axis(double lo, double hi, int count, double min_step) {
  const double raw = (hi - lo) / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  const double step = std::max(min_step, (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude);
  return {std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step, step};
}

// A tick value with as many decimals as the step needs (0.05 -> 2, 20 -> 0); "-0" printed as "0".
std::string tick_label(double v, double step) {
  const int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  char s[32];
  std::snprintf(s, sizeof s, "%.*f", decimals, std::abs(v) < step * 1e-6 ? 0.0 : v);
  return s;
}

bool drawable(const CurvePoint& p) { return std::isfinite(p.value); }  // a NaN/inf loss has no place on the chart

}  // namespace

void write_loss_curve_svg(const std::filesystem::path& path, const std::vector<CurvePoint>& train,
                          const std::vector<CurvePoint>& eval) {
  const double W = 720, H = 440, L = 72, R = 24, T = 20, B = 56;  // canvas and margins (px)
  double max_step = 1, y0 = 1e300, y1 = -1e300;
  for (const auto* c : {&train, &eval})
    for (const CurvePoint& p : *c) {
      max_step = std::max(max_step, double(p.step));
      if (!drawable(p)) continue;
      y0 = std::min(y0, p.value);
      y1 = std::max(y1, p.value);
    }
  if (y0 > y1) y0 = 0, y1 = 1;               // nothing logged yet
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;  // a flat curve (or one point) gets a unit band
  const Axis xa = round_axis(0, max_step, 8, 1), ya = round_axis(y0, y1, 6, 0);
  auto px = [&](double x) { return L + (x - xa.lo) / (xa.hi - xa.lo) * (W - L - R); };
  auto py = [&](double y) { return T + (ya.hi - y) / (ya.hi - ya.lo) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  auto line = [&](double ax, double ay, double bx, double by, const char* cls, const char* stroke) {
    s << "<line class=\"" << cls << "\" x1=\"" << ax << "\" y1=\"" << ay << "\" x2=\"" << bx << "\" y2=\"" << by
      << "\" stroke=\"" << stroke << "\"/>\n";
  };
  auto text = [&](double x, double y, const char* cls, const char* anchor, const std::string& t, const char* extra) {
    s << "<text class=\"" << cls << "\" x=\"" << x << "\" y=\"" << y << "\" text-anchor=\"" << anchor << "\"" << extra
      << ">" << t << "</text>\n";
  };
  for (int i = 0; i < xa.ticks(); ++i) {  // vertical grid lines, tick values below the plot
    const double x = px(xa.tick(i));
    line(x, T, x, H - B, "grid", "#e0e0e0");
    text(x, H - B + 18, "tick-x", "middle", tick_label(xa.tick(i), xa.step), "");
  }
  for (int i = 0; i < ya.ticks(); ++i) {  // horizontal grid lines, tick values left of the plot
    const double y = py(ya.tick(i));
    line(L, y, W - R, y, "grid", "#e0e0e0");
    text(L - 8, y + 4, "tick-y", "end", tick_label(ya.tick(i), ya.step), "");
  }
  line(L, H - B, W - R, H - B, "axis", "black");
  line(L, T, L, H - B, "axis", "black");
  text((L + W - R) / 2, H - 14, "axis-label", "middle", "step", "");
  std::ostringstream rotate;
  rotate << " transform=\"rotate(-90 " << 18 << " " << (T + H - B) / 2 << ")\"";
  text(18, (T + H - B) / 2, "axis-label", "middle", "loss", rotate.str().c_str());
  auto curve = [&](const std::vector<CurvePoint>& c, const char* color, const char* label, double ly) {
    if (std::none_of(c.begin(), c.end(), drawable)) return;
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const CurvePoint& p : c)
      if (drawable(p)) s << px(double(p.step)) << "," << py(p.value) << " ";
    s << "\"/>\n";
    for (const CurvePoint& p : c)  // a mark per point, so that a single eval is visible too
      if (drawable(p))
        s << "<circle cx=\"" << px(double(p.step)) << "\" cy=\"" << py(p.value) << "\" r=\"2.5\" fill=\"" << color
          << "\"/>\n";
    line(W - R - 110, ly - 4, W - R - 90, ly - 4, "legend", color);
    text(W - R - 84, ly, "legend", "start", label, (std::string(" fill=\"") + color + "\"").c_str());
  };
  curve(train, "#1f77b4", "train loss", T + 18);
  curve(eval, "#d62728", "eval loss", T + 36);
  s << "</svg>\n";
  write_file_atomic(path, s.str());
}

}  // namespace qsft
