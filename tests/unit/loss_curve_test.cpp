// The loss curve SVG (engine/train/loss_curve_svg.cpp): axis labels "step" and "loss", a grid line per tick, tick
// values that are round (1, 2 or 5 times a power of ten apart) and span the data, every point inside the plot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/train/metrics.h"

namespace qsft {
namespace {

namespace fs = std::filesystem;

std::string render(const std::vector<CurvePoint>& train, const std::vector<CurvePoint>& eval) {
  const fs::path path = fs::temp_directory_path() / ("qsft_loss_curve_" + std::to_string(::getpid()) + ".svg");
  write_loss_curve_svg(path, train, eval);
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  fs::remove(path);
  return s.str();
}

std::vector<std::string> texts_of_class(const std::string& svg, const std::string& cls) {
  std::vector<std::string> out;
  const std::regex re("<text class=\"" + cls + "\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

std::vector<double> numbers(const std::vector<std::string>& labels) {
  std::vector<double> v;
  for (const std::string& l : labels) {
    size_t used = 0;
    v.push_back(std::stod(l, &used));
    EXPECT_EQ(used, l.size()) << "tick label \"" << l << "\" is not a plain number";
  }
  return v;
}

// Equally spaced by 1, 2 or 5 times a power of ten, from at most lo to at least hi.
void expect_round_ticks(const std::vector<double>& t, double lo, double hi, const char* axis) {
  ASSERT_GE(t.size(), 3u) << axis;
  EXPECT_LE(t.size(), 12u) << axis;
  const double step = t[1] - t[0];
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-6) << axis << " tick " << i;
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6)
      << axis << " step " << step;
  EXPECT_NEAR(std::remainder(t[0], step), 0, step * 1e-6) << axis << " ticks are multiples of the step";
  EXPECT_LE(t.front(), lo) << axis;
  EXPECT_GE(t.back(), hi) << axis;
}

TEST(LossCurveSvg, AxisLabelsGridAndRoundTicksSpanningTheData) {
  std::vector<CurvePoint> train, eval;
  for (int64_t s = 1; s <= 37; ++s) train.push_back({s, 2.83 - 1.63 * std::sqrt((s - 1) / 36.0)});
  for (int64_t s : {10, 20, 30}) eval.push_back({s, 1.9 - 0.01 * double(s)});
  const std::string svg = render(train, eval);

  EXPECT_EQ(texts_of_class(svg, "axis-label"), (std::vector<std::string>{"step", "loss"}));
  const std::vector<double> xt = numbers(texts_of_class(svg, "tick-x")), yt = numbers(texts_of_class(svg, "tick-y"));
  expect_round_ticks(xt, 0, 37, "step");
  expect_round_ticks(yt, 1.2, 2.83, "loss");
  for (double x : xt) EXPECT_EQ(x, std::round(x)) << "steps are whole numbers";
  const std::regex grid_line("class=\"grid\"");
  const auto grid = std::distance(std::sregex_iterator(svg.begin(), svg.end(), grid_line), std::sregex_iterator());
  EXPECT_EQ(size_t(grid), xt.size() + yt.size()) << "a grid line per tick";
  EXPECT_EQ(texts_of_class(svg, "legend"), (std::vector<std::string>{"train loss", "eval loss"}));

  // Every point inside the plot: between the axis lines (the x axis' y and the y axis' x).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m,
                                std::regex("<line class=\"axis\" x1=\"([-0-9.e]+)\" y1=\"([-0-9.e]+)\" "
                                           "x2=\"([-0-9.e]+)\"")));
  const double left = std::stod(m[1]), bottom = std::stod(m[2]), right = std::stod(m[3]);
  const std::regex circle("<circle cx=\"([-0-9.e]+)\" cy=\"([-0-9.e]+)\"");
  size_t circles = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator(); ++it, ++circles) {
    const double cx = std::stod((*it)[1]), cy = std::stod((*it)[2]);
    EXPECT_GE(cx, left);
    EXPECT_LE(cx, right);
    EXPECT_GE(cy, 0);
    EXPECT_LE(cy, bottom);
  }
  EXPECT_EQ(circles, train.size() + eval.size());
}

TEST(LossCurveSvg, OnePointAFlatCurveAndANanLossStillDraw) {
  const std::string one = render({}, {{5, 1.5}});
  EXPECT_NE(one.find("<circle"), std::string::npos) << "a single eval is visible";
  expect_round_ticks(numbers(texts_of_class(one, "tick-y")), 1.5, 1.5, "loss");

  const std::string flat = render({{1, 2.0}, {2, 2.0}, {3, std::nan("")}}, {});
  EXPECT_EQ(flat.find("nan"), std::string::npos) << "a NaN loss leaves no NaN coordinate";
  EXPECT_EQ(texts_of_class(flat, "axis-label"), (std::vector<std::string>{"step", "loss"}));
  expect_round_ticks(numbers(texts_of_class(flat, "tick-x")), 0, 3, "step");
}

}  // namespace
}  // namespace qsft
