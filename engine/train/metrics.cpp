#include "engine/train/metrics.h"

#include <simdjson.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/base/error.h"
#include "engine/io/json_writer.h"

namespace qsft {

namespace fs = std::filesystem;

MetricsLog::MetricsLog(const fs::path& output_dir, int64_t keep_until_step)
    : path_(output_dir / "metrics.jsonl"), svg_path_(output_dir / "loss_curve.svg"), tensorboard_(output_dir) {
  std::string kept;
  if (keep_until_step >= 0 && fs::exists(path_)) {
    std::ifstream in(path_);
    simdjson::dom::parser parser;
    for (std::string line; std::getline(in, line);) {
      simdjson::dom::element e;
      int64_t step;
      if (parser.parse(line).get(e) || e["step"].get(step)) break;  // a torn last line from a kill: dropped
      if (step > keep_until_step) break;
      double v;
      if (!e["loss"].get(v)) train_.push_back({step, v});
      if (!e["eval_loss"].get(v)) eval_.push_back({step, v});
      kept += line + "\n";
    }
  }
  write_file_atomic(path_, kept);
  redraw();
}

void MetricsLog::log(int64_t step, const std::vector<std::pair<std::string, double>>& fields) {
  Json line = Json::object();
  line.set("step", step);
  for (const auto& [name, value] : fields) {
    const bool integral = name == "num_tokens";
    line.set(name, integral ? Json(int64_t(value)) : Json(value));
    const bool eval = name.rfind("eval_", 0) == 0;
    tensorboard_.scalar(eval ? "eval/" + name.substr(5) : "train/" + name, float(value), step);
    if (name == "loss") train_.push_back({step, value});
    if (name == "eval_loss") eval_.push_back({step, value});
  }
  std::ofstream out(path_, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) throw input_error(path_.string(), "cannot append (disk full?)");
  redraw();
}

void MetricsLog::redraw() const { write_loss_curve_svg(svg_path_, train_, eval_); }

void write_loss_curve_svg(const fs::path& path, const std::vector<CurvePoint>& train,
                          const std::vector<CurvePoint>& eval) {
  const double W = 640, H = 400, L = 60, R = 20, T = 30, B = 50;  // canvas and margins
  double x0 = 0, x1 = 1, y0 = 1e300, y1 = -1e300;
  for (const auto* c : {&train, &eval})
    for (const CurvePoint& p : *c) {
      x1 = std::max(x1, double(p.step));
      y0 = std::min(y0, p.value);
      y1 = std::max(y1, p.value);
    }
  if (y0 > y1) y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {  // y ticks
    const double y = y0 + (y1 - y0) * i / 4;
    char label[32];
    std::snprintf(label, sizeof label, "%.3g", y);
    s << "<text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << label << "</text>\n";
  }
  s << "<text x=\"" << L << "\" y=\"" << H - B + 18 << "\">0</text><text x=\"" << W - R << "\" y=\"" << H - B + 18
    << "\" text-anchor=\"end\">" << int64_t(x1) << "</text>\n";
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">optimizer step</text>\n";
  auto polyline = [&](const std::vector<CurvePoint>& c, const char* color, const char* label, double ly) {
    if (c.empty()) return;
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const CurvePoint& p : c) s << px(double(p.step)) << "," << py(p.value) << " ";
    s << "\"/>\n";
    for (const CurvePoint& p : c)  // a mark per point, so that a single eval is visible too
      s << "<circle cx=\"" << px(double(p.step)) << "\" cy=\"" << py(p.value) << "\" r=\"2.5\" fill=\"" << color
        << "\"/>\n";
    s << "<text x=\"" << W - R - 80 << "\" y=\"" << ly << "\" fill=\"" << color << "\">" << label << "</text>\n";
  };
  polyline(train, "#1f77b4", "train loss", T + 4);
  polyline(eval, "#d62728", "eval loss", T + 20);
  s << "</svg>\n";
  write_file_atomic(path, s.str());
}

}  // namespace qsft
