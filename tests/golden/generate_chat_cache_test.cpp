// qwen-sft chat's KV cache kept across turns (Generator::converse) on the CPU fp32 reference, greedy, on the
// fixture models: every turn of a transcript gives exactly the tokens of a full re-prefill of that turn's
// conversation (generate), with the conversation so far taken from the cache (Completion::reused: all of it but
// the previous answer's last token); a rewritten earlier turn reuses the positions before the change only;
// forget() and generate() leave nothing to reuse.
#include <simdjson.h>

#include "engine/generate/generation_model.h"
#include "fixture.h"

namespace qsft::test {
namespace {

std::vector<std::vector<int32_t>> golden_prompts(const Fixture& f) {
  simdjson::dom::parser parser;
  std::vector<std::vector<int32_t>> out;
  for (simdjson::dom::element p : parser.load((f.dir / "generate.json").string())["prompts"].get_array())
    out.push_back(json_ints(p));
  return out;
}

using Tokens = std::vector<int32_t>;

Tokens operator+(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct ChatCase {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  GeneratorOptions o{.slots = 2, .capacity = 160, .prefill_tokens = 0};
  std::unique_ptr<Qwen2Model> model;
  std::unique_ptr<Generator> chat, reference;
  SamplingConfig c;  // greedy, no eos (the fixture models have none)

  ChatCase(const Fixture& f, const std::string& adapter) {
    model = load_generation_model(*ops, {(f.dir / "model").string(), adapter, false}, o);
    chat = std::make_unique<Generator>(*ops, *model, o);
    reference = std::make_unique<Generator>(*ops, *model, o);
    c.max_new_tokens = 12;
  }
  // A turn through the chat generator, checked against a full prefill of the same conversation.
  Completion turn(const Tokens& conversation, int64_t want_reused, const std::string& what) {
    const Completion got = chat->converse(conversation, c);
    EXPECT_EQ(got.tokens, reference->generate({conversation}, c)[0].tokens) << what;
    EXPECT_EQ(got.reused, want_reused) << what;
    return got;
  }
};

class ChatCache : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatCache, TurnsEqualAFullPrefill) {
  QSFT_REQUIRE_FIXTURE(GetParam());
  const Fixture f = load_fixture(GetParam());
  const std::vector<Tokens> prompts = golden_prompts(f);
  for (const std::string& adapter : {std::string(), (f.dir / "adapter").string()}) {
    SCOPED_TRACE(adapter.empty() ? "base" : "adapter");
    ChatCase k(f, adapter);
    // The "template": the turns one after the other, each user turn followed by the model's answer.
    Tokens conv;
    int64_t held = 0;
    for (size_t t = 0; t < prompts.size(); ++t) {
      conv = conv + prompts[t];
      const Completion a = k.turn(conv, held, "turn " + std::to_string(t + 1));
      conv = conv + a.tokens;
      held = int64_t(conv.size()) - 1;  // the answer's last token was never an input
    }
    // An earlier answer rendered differently: positions up to the change are kept.
    Tokens rewritten = conv;
    const size_t change = prompts[0].size() + 1;
    rewritten[change] = rewritten[change] == 1 ? 2 : 1;
    k.turn(rewritten + prompts[1], int64_t(change), "rewritten first answer");
    k.chat->forget();
    k.turn(conv + prompts[2], 0, "after forget()");
    k.chat->generate({prompts[0]}, k.c);
    k.turn(conv + prompts[2], 0, "after generate()");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ChatCache, ::testing::Values("tied", "untied", "qwen3"));

}  // namespace
}  // namespace qsft::test
