// Encode throughput of the native tokenizer (MB/s of UTF-8 input, tokens/s), single-threaded and on all cores,
// on the corpus bench/tokenizer_baseline.py writes (NUL-separated documents) — the baseline runs the Hugging Face
// tokenizers package on the same documents. Not a test; results go to bench/RESULTS.md.
//   build/tokenizer_bench CORPUS MODEL_DIR [threads]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::string> read_documents(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  std::vector<std::string> docs;
  for (size_t pos = 0; pos <= data.size();) {
    size_t end = std::min(data.find('\0', pos), data.size());
    docs.push_back(data.substr(pos, end - pos));
    pos = end + 1;
  }
  return docs;
}

// Encodes every document with `threads` workers pulling documents from a shared counter; returns tokens.
size_t encode_all(const qsft::Tokenizer& tok, const std::vector<std::string>& docs, unsigned threads) {
  std::atomic<size_t> next{0}, tokens{0};
  auto worker = [&] {
    size_t mine = 0;
    for (size_t i; (i = next.fetch_add(1)) < docs.size();) mine += tok.encode(docs[i]).size();
    tokens += mine;
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return tokens;
}

// Prints the first pass (cold BPE cache) and the best of the repeats (warm cache).
void measure(const std::string& label, const qsft::Tokenizer& tok, const std::vector<std::string>& docs, size_t bytes,
             unsigned threads, int repeats = 5) {
  std::vector<double> times;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    tokens = encode_all(tok, docs, threads);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (auto [name, t] : {std::pair{"cold", times[0]}, std::pair{"warm", *std::min_element(times.begin(), times.end())}})
    std::printf("%-44s %8.2f MB/s %12.0f tokens/s  (%zu tokens, %.3f s)\n", (label + ", " + name).c_str(),
                bytes / t / 1e6, tokens / t, tokens, t);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS MODEL_DIR [threads]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> docs = read_documents(argv[1]);
  size_t bytes = docs.size() - 1;  // the separators
  for (auto& d : docs) bytes += d.size();
  unsigned cores =
      argc > 3 ? static_cast<unsigned>(std::stoul(argv[3])) : std::max(1u, std::thread::hardware_concurrency());
  std::printf("corpus: %zu documents, %.1f MB; %u cores\n", docs.size(), bytes / 1e6, cores);
  measure("qwen-sft, 1 thread", qsft::Tokenizer::load(argv[2]), docs, bytes, 1);
  measure("qwen-sft, " + std::to_string(cores) + " threads", qsft::Tokenizer::load(argv[2]), docs, bytes, cores);
  return 0;
}
