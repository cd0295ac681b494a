// Generation on the CPU reference engine against transformers' generate(do_sample=False) (tests/data/fixtures/
// <case>/generate.json, made by tools/make_fixtures.py): greedy tokens equal token for token, for the base model,
// the adapter unmerged and merged, whatever the number of cache slots (1: one prompt at a time; 2: the third
// prompt takes a freed slot; 3: all at once). Sampling with a fixed seed repeats itself and does not depend on the
// batch.
#include <simdjson.h>

#include "engine/generate/generation_model.h"
#include "fixture.h"

namespace qsft::test {
namespace {

struct GenerateGolden {
  std::vector<std::vector<int32_t>> prompts, base, adapter;
  int64_t max_new_tokens = 0;
};

std::vector<std::vector<int32_t>> json_lists(simdjson::dom::element e) {
  std::vector<std::vector<int32_t>> out;
  for (simdjson::dom::element x : e.get_array()) out.push_back(json_ints(x));
  return out;
}

GenerateGolden load_golden(const std::filesystem::path& dir) {
  simdjson::dom::parser parser;
  simdjson::dom::element g = parser.load((dir / "generate.json").string());
  return {json_lists(g["prompts"]), json_lists(g["greedy_base"]), json_lists(g["greedy_adapter"]),
          int64_t(g["max_new_tokens"])};
}

std::vector<std::vector<int32_t>> run(Ops& ops, const Fixture& f, const std::string& adapter, bool merge,
                                      int64_t slots, const SamplingConfig& c) {
  GeneratorOptions o;
  o.slots = slots;
  o.capacity = 64;
  auto model = load_generation_model(ops, {(f.dir / "model").string(), adapter, merge}, o);
  Generator gen(ops, *model, o);
  std::vector<std::vector<int32_t>> tokens;
  for (Completion& done : gen.generate(load_golden(f.dir).prompts, c)) tokens.push_back(done.tokens);
  return tokens;
}

class GenerateFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateFixture, GreedyEqualsTransformers) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  const Fixture f = load_fixture(GetParam());
  const GenerateGolden g = load_golden(f.dir);
  auto ops = make_cpu_ops();
  SamplingConfig c;  // greedy, no eos (the fixture models have none)
  c.max_new_tokens = g.max_new_tokens;
  const std::string adapter = (f.dir / "adapter").string();
  for (int64_t slots : {1, 2, 3}) {
    EXPECT_EQ(run(*ops, f, "", false, slots, c), g.base) << "base, slots " << slots;
    EXPECT_EQ(run(*ops, f, adapter, false, slots, c), g.adapter) << "adapter unmerged, slots " << slots;
  }
  EXPECT_EQ(run(*ops, f, adapter, true, 2, c), g.adapter) << "adapter merged";
}

TEST_P(GenerateFixture, SeededSamplingRepeatsAndIgnoresTheBatch) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  const Fixture f = load_fixture(GetParam());
  auto ops = make_cpu_ops();
  SamplingConfig c{.do_sample = true, .temperature = 1.5f, .top_k = 40, .top_p = 0.95f, .min_p = 0.01f,
                   .repetition_penalty = 1.1f, .seed = 7, .max_new_tokens = 16, .eos_ids = {}};
  const std::string adapter = (f.dir / "adapter").string();
  const auto first = run(*ops, f, adapter, false, 3, c);
  EXPECT_EQ(run(*ops, f, adapter, false, 3, c), first);
  EXPECT_EQ(run(*ops, f, adapter, false, 1, c), first) << "one prompt at a time";
  c.seed = 8;
  EXPECT_NE(run(*ops, f, adapter, false, 3, c), first) << "another seed";
}

INSTANTIATE_TEST_SUITE_P(Cases, GenerateFixture, ::testing::Values("tied", "untied", "qwen3"));

}  // namespace
}  // namespace qsft::test
