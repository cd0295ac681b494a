// Generation's decode steps as replayed CUDA graphs (engine/generate/decode_graphs.h) against the same steps run
// eagerly (GeneratorOptions::decode_graphs false), on the GPU: the tokens are identical (the graph launches the same
// kernels on the same buffers), greedy and seeded sampling, on a random "tiny" model (4 layers, H 128) and on a
// fixture model with its LoRA adapter unmerged. Six prompts of 3 to 25 tokens share 4 slots of 48 positions, so
// sequences end at different steps (the slot's capacity) and new ones take their slots: the batch shrinks and
// grows, and each row count's graph is replayed over caches that have grown since it was recorded. A chat turn
// after the first (an extend step, eager) is followed by replayed decode steps. QSFT_DECODE_GRAPHS=0 and the cpu
// backend run no graph. DecodeGraphs alone: warm-up, recording, replay, a stale graph, a recording that fails.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "engine/generate/generation_model.h"
#include "engine/io/random_model.h"
#include "tests/fixture.h"
#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

namespace fs = std::filesystem;

struct Generated {
  std::vector<std::vector<int32_t>> tokens;
  int64_t replays = 0;
};

// The slots' capacity and the prompts' lengths: the default (48 positions) runs decode attention in one split; the
// long one (640 positions, a 250-token prompt decoding past 256 and 512) runs its split-K path (256-key chunks, the
// combine kernel) with the cache length crossing chunk boundaries between replays.
struct Setup {
  int64_t capacity = 48;
  std::vector<int> lengths = {3, 25, 9, 17, 6, 12};
  int new_tokens = 40;  // more than the slots hold after the longer prompts: they end at the capacity
};
const Setup kLong{640, {250, 3, 40}, 330};

GeneratorOptions options(bool graphs, const Setup& s) {
  GeneratorOptions o;
  o.slots = 4;
  o.capacity = s.capacity;
  o.decode_graphs = graphs;
  return o;
}

std::vector<std::vector<int32_t>> prompts(int64_t vocab, const Setup& s) {
  std::vector<std::vector<int32_t>> p;
  int32_t next = 11;
  for (int len : s.lengths) {
    std::vector<int32_t> q;
    for (int i = 0; i < len; ++i) q.push_back(next = int32_t((next * 37 + 5) % vocab));
    p.push_back(q);
  }
  return p;
}

Generated generate(Ops& ops, const GenerationModelSpec& spec, bool graphs, SamplingConfig c, const Setup& s = {}) {
  c.max_new_tokens = s.new_tokens;
  const GeneratorOptions o = options(graphs, s);
  auto model = load_generation_model(ops, spec, o);
  Generator gen(ops, *model, o);
  Generated r;
  for (Completion& done : gen.generate(prompts(model->config().vocab_size, s), c)) r.tokens.push_back(done.tokens);
  r.replays = gen.graph_replays();
  return r;
}

// Two chat turns in slot 0: the second conversation extends the first one's, answer included.
Generated chat(Ops& ops, const GenerationModelSpec& spec, bool graphs, SamplingConfig c) {
  c.max_new_tokens = 12;  // both turns fit in the slot
  const GeneratorOptions o = options(graphs, Setup{});
  auto model = load_generation_model(ops, spec, o);
  Generator gen(ops, *model, o);
  std::vector<int32_t> conversation = prompts(model->config().vocab_size, Setup{})[2];
  Generated r;
  for (int turn = 0; turn < 2; ++turn) {
    const Completion done = gen.converse(conversation, c);
    r.tokens.push_back(done.tokens);
    conversation.insert(conversation.end(), done.tokens.begin(), done.tokens.end());
    for (int32_t t : {7, 8, 9}) conversation.push_back(t);  // the next user message
  }
  r.replays = gen.graph_replays();
  return r;
}

SamplingConfig greedy() {
  SamplingConfig c;
  c.max_new_tokens = 40;
  return c;
}
SamplingConfig seeded() {
  return {.do_sample = true,
          .temperature = 1.5f,
          .top_k = 40,
          .top_p = 0.95f,
          .min_p = 0.01f,
          .repetition_penalty = 1.1f,
          .seed = 7,
          .max_new_tokens = 40,
          .eos_ids = {}};
}

// Graphs on and off give the same tokens, and the run with graphs replayed some decode steps.
void expect_same_tokens(Ops& gpu, const GenerationModelSpec& spec, const char* what, const Setup& s = {}) {
  for (const auto& [name, c] : {std::pair{"greedy", greedy()}, std::pair{"seeded sampling", seeded()}}) {
    const Generated eager = generate(gpu, spec, false, c, s), graphs = generate(gpu, spec, true, c, s);
    EXPECT_EQ(graphs.tokens, eager.tokens) << what << ", " << name;
    EXPECT_EQ(eager.replays, 0) << kHostCheck << what << ", " << name;
    EXPECT_GT(graphs.replays, 20) << kHostCheck << what << ", " << name;
    const Generated eager_chat = chat(gpu, spec, false, c), graphs_chat = chat(gpu, spec, true, c);
    EXPECT_EQ(graphs_chat.tokens, eager_chat.tokens) << what << ", " << name << ", chat";
    EXPECT_GT(graphs_chat.replays, 0) << kHostCheck << what << ", " << name << ", chat";
    std::printf("%s %s, %s: %lld of the decode steps replayed (chat: %lld)\n", measured_tag(), what, name,
                (long long)graphs.replays, (long long)graphs_chat.replays);
  }
}

class RandomModelDir {
 public:
  explicit RandomModelDir(const std::string& preset = "tiny")
      : dir_(fs::temp_directory_path() / ("qsft_decode_graphs_" + preset + "_" + std::to_string(getpid()))) {
    Qwen2Config cfg = find_preset(preset).config;
    cfg.vocab_size = 512;
    write_random_model(dir_, cfg, DType::F32, 3);
  }
  ~RandomModelDir() { fs::remove_all(dir_); }
  std::string path() const { return dir_.string(); }

 private:
  fs::path dir_;
};

TEST(GpuGenerateGraphs, RandomModelSameTokensAsEager) {
  QSFT_REQUIRE_GPU();
  const RandomModelDir model;
  expect_same_tokens(*gpu, {model.path(), "", false}, "random tiny model");
}

TEST(GpuGenerateGraphs, LongCachesSplitKDecodeSameTokensAsEager) {
  QSFT_REQUIRE_GPU();
  const RandomModelDir model;
  expect_same_tokens(*gpu, {model.path(), "", false}, "random tiny model, 640-position caches", kLong);
}

// Qwen3: the q/k head norms write a scratch laid out like qkv (strided views) inside the captured step.
TEST(GpuGenerateGraphs, Qwen3SameTokensAsEager) {
  QSFT_REQUIRE_GPU();
  const RandomModelDir model("tiny-qwen3");
  expect_same_tokens(*gpu, {model.path(), "", false}, "random tiny-qwen3 model");
}

TEST(GpuGenerateGraphs, UnmergedAdapterSameTokensAsEager) {
  QSFT_REQUIRE_GPU();
  QSFT_REQUIRE_FIXTURE("untied");
  const Fixture f = load_fixture("untied");
  expect_same_tokens(*gpu, {(f.dir / "model").string(), (f.dir / "adapter").string(), false},
                     "untied fixture, adapter unmerged");
}

TEST(GpuGenerateGraphs, EnvSwitchAndCpuRunNoGraph) {
  QSFT_REQUIRE_GPU();
  const RandomModelDir model;
  EXPECT_EQ(generate(*cpu, {model.path(), "", false}, true, greedy()).replays, 0) << kHostCheck << "cpu";
  ::setenv("QSFT_DECODE_GRAPHS", "0", 1);
  const Generated off = generate(*gpu, {model.path(), "", false}, true, greedy());
  ::unsetenv("QSFT_DECODE_GRAPHS");
  EXPECT_EQ(off.replays, 0) << kHostCheck << "QSFT_DECODE_GRAPHS=0";
  EXPECT_EQ(off.tokens, generate(*gpu, {model.path(), "", false}, true, greedy()).tokens);
}

// DecodeGraphs itself on a one-op step (counter += 1): the warm-up runs eagerly, the second call records and
// replays, later calls replay; a scratch buffer that grows makes the next call eager and the one after it record
// again; a step that cannot be recorded (it synchronises) turns graphs off and still runs, eagerly.
TEST(GpuGenerateGraphs, DecodeGraphsWarmUpReplayStaleAndFallback) {
  QSFT_REQUIRE_GPU();
  Arena arena(*gpu, 3 * Arena::kAlign);
  Tensor counter = arena.take(DType::F32, {1}), one = arena.take(DType::F32, {1});
  const float host_one = 1.0f;
  gpu->copy_to_device(one.data, &host_one, 4);
  const auto value = [&] {
    float v = 0;
    gpu->copy_to_host(&v, counter.data, 4);
    return v;
  };
  const auto add_one = [&] { gpu->add_inplace(counter, one); };
  DecodeGraphs graphs(*gpu, true);
  ASSERT_TRUE(graphs.enabled()) << kHostCheck;
  for (int i = 0; i < 4; ++i) graphs.run(2, add_one);
  EXPECT_EQ(value(), 4.0f);
  EXPECT_EQ(graphs.replays(), 3) << kHostCheck;

  Arena big(*gpu, (size_t(1) << 22) + Arena::kAlign);
  gpu->sum_squares(big.take(DType::F32, {int64_t(1) << 20}));  // the reduction's scratch grows: graphs are stale
  graphs.run(2, add_one);
  EXPECT_EQ(graphs.replays(), 3) << "a stale graph is not replayed";
  graphs.run(2, add_one);
  EXPECT_EQ(graphs.replays(), 4) << "recorded again";
  EXPECT_EQ(value(), 6.0f);

  const auto add_one_and_wait = [&] {
    add_one();
    gpu->synchronize();
  };
  DecodeGraphs failing(*gpu, true);
  failing.run(1, add_one_and_wait);  // warm-up
  failing.run(1, add_one_and_wait);  // the recording fails: eager
  EXPECT_FALSE(failing.enabled()) << kHostCheck;
  failing.run(1, add_one_and_wait);
  EXPECT_EQ(failing.replays(), 0) << kHostCheck;
  EXPECT_EQ(value(), 9.0f);
  graphs.run(2, add_one);  // the stream is usable after the failed recording
  EXPECT_EQ(value(), 10.0f);
}

}  // namespace
}  // namespace qsft::test
