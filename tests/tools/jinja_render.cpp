// Test helper for tests/interop/jinja_parity_test.py: renders chat templates with qwen-sft's Jinja engine.
// Usage: jinja_render TEMPLATE_FILE... < requests.jsonl > renders.jsonl
// Each request line is {"t": index of the template file, "ctx": {the template's variables}}; each output line is
// {"text": render, "gen": [[begin, end], ...]} ({% generation %} byte ranges) or {"error": message}.
// The seconds spent rendering (not reading or writing JSON) go to stderr as "render_seconds N".
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/base/json_text.h"
#include "tokenizer/jinja_template.h"

int main(int argc, char** argv) {
  using namespace qsft;
  std::vector<jinja::Template> templates;
  for (int k = 1; k < argc; ++k) {
    std::ifstream in(argv[k], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      templates.emplace_back(ss.str());
    } catch (const std::exception& e) {
      std::cerr << argv[k] << ": " << e.what() << "\n";
      return 2;
    }
  }
  double seconds = 0;
  std::string line, out;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    jinja::Value req = jinja::Value::from_json(line, "stdin line " + std::to_string(n));
    const jinja::Value* t = req.find("t");
    const jinja::Value* ctx = req.find("ctx");
    out.clear();
    try {
      std::vector<std::pair<size_t, size_t>> gen;
      auto start = std::chrono::steady_clock::now();
      std::string text = templates.at(static_cast<size_t>(t->i)).render(*ctx, &gen);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      out += "{\"text\": ";
      append_json_string(out, text);
      out += ", \"gen\": [";
      for (size_t k = 0; k < gen.size(); ++k)
        out += (k ? ", [" : "[") + std::to_string(gen[k].first) + ", " + std::to_string(gen[k].second) + "]";
      out += "]}\n";
    } catch (const InputError& e) {
      out = "{\"error\": ";
      append_json_string(out, e.what());
      out += "}\n";
    }
    std::cout << out;
  }
  std::cerr << "render_seconds " << seconds << "\n";
  return 0;
}
