// Properties of the model that must hold exactly (up to fp32 summation order): gradient accumulation over
// micro-batches equals the whole batch, a packed batch equals its sequences run one by one, and activation
// recompute changes nothing.
#include <cstring>
#include <random>

#include "engine/train/plan.h"
#include "fixture.h"

namespace qsft::test {
namespace {

// Sequences of random lengths and ids, each with a random "prompt" prefix that is not trained.
PackedBatch random_batch(int num_seqs, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  PackedBatch b;
  for (int s = 0; s < num_seqs; ++s) {
    const int len = 3 + int(rng() % 17);
    std::vector<int32_t> ids(static_cast<size_t>(len));
    std::vector<uint8_t> mask(static_cast<size_t>(len));
    const int prompt = int(rng() % uint32_t(len));
    for (int t = 0; t < len; ++t) {
      ids[size_t(t)] = int32_t(rng() % uint32_t(vocab));
      mask[size_t(t)] = t >= prompt;
    }
    b.append(ids, mask);
  }
  return b;
}

// On the untied Qwen2 fixture and the Qwen3 one (q/k head norms, no bias).
class ModelInvariants : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(repo_testdata() / "fixtures" / GetParam() / "golden.json"))
      GTEST_SKIP() << "skipped: tests/data/fixtures/" << GetParam() << " is absent";
    f_ = load_fixture(GetParam());
    batch_ = random_batch(8, f_.config.vocab_size, 7);
  }
  Fixture f_;
  PackedBatch batch_;
  std::unique_ptr<Ops> ops_ = make_cpu_ops();
};

TEST_P(ModelInvariants, GradientAccumulationEqualsWholeBatch) {
  const float scale = 1.0f / float(batch_.num_targets());
  auto whole = make_model(*ops_, f_, batch_.num_tokens(), false);
  whole->zero_grads();
  const double loss_whole = whole->forward_backward(batch_, scale, 1).loss_sum;
  std::vector<float> g_whole = whole->lora_grads();

  auto accum = make_model(*ops_, f_, batch_.num_tokens(), false);
  accum->zero_grads();
  double loss_accum = 0;
  for (int k = 0; k < 4; ++k) loss_accum += accum->forward_backward(batch_.slice(2 * k, 2 * k + 2), scale, 1).loss_sum;
  std::vector<float> g_accum = accum->lora_grads();
  const double loss_err = std::fabs(loss_accum - loss_whole) / loss_whole;
  const double grad_err = rel_l2(g_accum.data(), g_whole.data(), g_whole.size());
  std::printf("4 micro-batches vs the whole batch: loss rel. %.2g, gradients rel. %.2g\n", loss_err, grad_err);
  EXPECT_LE(loss_err, 1e-6);
  EXPECT_LE(grad_err, 1e-6);
}

TEST_P(ModelInvariants, PackedBatchEqualsSequencesOneByOne) {
  auto model = make_model(*ops_, f_, batch_.num_tokens(), false);
  std::vector<float> packed = model->logits(batch_);
  std::vector<float> single;
  for (int s = 0; s < batch_.num_seqs(); ++s) {
    std::vector<float> l = model->logits(batch_.slice(s, s + 1));
    single.insert(single.end(), l.begin(), l.end());
  }
  ASSERT_EQ(packed.size(), single.size());
  const double err = rel_max(packed.data(), single.data(), packed.size());
  std::printf("packed vs one by one: logits max rel. %.2g\n", err);
  EXPECT_LE(err, 1e-6);
}

// Loss and LoRA gradients of one forward/backward of the batch with `opts` (LoRA dropout and NEFTune on, so that
// a recomputed layer must also redraw the same random masks).
std::pair<double, std::vector<float>> loss_and_grads(Ops& ops, Fixture f, const PackedBatch& batch, ModelOptions opts) {
  f.lora.dropout = 0.1f;
  opts.max_tokens = batch.num_tokens();
  opts.neftune_alpha = 5.0f;
  Qwen2Model m(ops, f.config, f.lora, opts);
  m.load_weights((f.dir / "model").string());
  m.set_lora_params(f.lora_init);
  m.zero_grads();
  const double loss = m.forward_backward(batch, 1.0f / float(batch.num_targets()), 42).loss_sum;
  return {loss, m.lora_grads()};
}

void expect_same_bits(const std::pair<double, std::vector<float>>& a, const std::pair<double, std::vector<float>>& b,
                      const std::string& what) {
  EXPECT_EQ(a.first, b.first) << what;
  ASSERT_EQ(a.second.size(), b.second.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.second.data(), b.second.data(), a.second.size() * 4)) << "gradients differ: " << what;
}

// Recomputing every layer, or only the first two, gives the same bits as keeping every layer's activations.
TEST_P(ModelInvariants, RecomputeChangesNothing) {
  const auto keep = loss_and_grads(*ops_, f_, batch_, ModelOptions{});
  ModelOptions all, first_two;
  all.recompute = first_two.recompute = true;
  first_two.recompute_layers = 2;
  expect_same_bits(loss_and_grads(*ops_, f_, batch_, all), keep, "every layer recomputed");
  expect_same_bits(loss_and_grads(*ops_, f_, batch_, first_two), keep, "layers 0-1 recomputed");
}

// The embedding in host-mapped memory (the default for an untied model with LoRA) or on the device: on the cpu the
// same memory, only accounted apart, so the same bits; the tied model (qwen3) keeps it on the device either way.
TEST_P(ModelInvariants, EmbeddingOnHostChangesNothing) {
  ModelOptions on_host, on_device;
  on_host.embedding_on_host = true;
  on_device.embedding_on_host = false;
  expect_same_bits(loss_and_grads(*ops_, f_, batch_, on_host), loss_and_grads(*ops_, f_, batch_, on_device),
                   "embedding in host-mapped memory");
  const size_t table = (size_t(f_.config.vocab_size * f_.config.hidden_size) * 4 + Arena::kAlign - 1) /
                       Arena::kAlign * Arena::kAlign;  // F32 [V, H] on the cpu, in whole arena alignments
  const ModelMemory h = Qwen2Model(*ops_, f_.config, f_.lora, on_host).allocated();
  const ModelMemory d = Qwen2Model(*ops_, f_.config, f_.lora, on_device).allocated();
  EXPECT_EQ(h.host_weights, f_.config.tie_word_embeddings ? 0 : table);
  EXPECT_EQ(h.weights + h.host_weights, d.weights);
  EXPECT_EQ(d.host_weights, 0u);
}

// gradient_checkpointing "auto" planned for one byte less than keeping every layer needs: it recomputes the fewest
// layers that fit (2: recomputing one saves nothing, its activations need the shared buffer), and training gives
// the same bits as without checkpointing.
TEST_P(ModelInvariants, AutoCheckpointingWithLessMemoryChangesNothing) {
  TrainConfig cfg = parse_train_config(R"({"model": "model", "data": {"train_files": ["x.jsonl"], "max_length": 64},
                                           "output_dir": "o", "training": {"gradient_checkpointing": false},
                                           "finetuning_type": "lora"})",
                                       f_.dir / "cfg.json");
  const size_t keep_all = plan_training(cfg, Device::CPU, size_t(1) << 50).host_total();
  cfg.training.gradient_checkpointing_auto = true;
  EXPECT_EQ(model_options(cfg, Device::CPU, keep_all).recomputed_layers(f_.config.num_hidden_layers), 0);
  const ModelOptions opts = model_options(cfg, Device::CPU, keep_all - 1);
  EXPECT_EQ(opts.recomputed_layers(f_.config.num_hidden_layers), 2);
  expect_same_bits(loss_and_grads(*ops_, f_, batch_, opts), loss_and_grads(*ops_, f_, batch_, ModelOptions{}),
                   "auto with less memory");
}

// The whole backward (LoRA dropout and NEFTune on) against a central difference of the loss along the gradient's
// own direction: (L(p + e v) - L(p - e v)) / 2e == <g, v> with v = g / |g|.
TEST_P(ModelInvariants, GradientMatchesFiniteDifferenceWithDropout) {
  f_.lora.dropout = 0.5f;  // large, so that a wrong mask in the backward shows
  ModelOptions opts;
  opts.max_tokens = batch_.num_tokens();
  opts.neftune_alpha = 5.0f;
  Qwen2Model m(*ops_, f_.config, f_.lora, opts);
  m.load_weights((f_.dir / "model").string());
  const float scale = 1.0f / float(batch_.num_targets());
  auto loss_at = [&](const std::vector<float>& p) {
    m.set_lora_params(p);
    m.zero_grads();
    return m.forward_backward(batch_, scale, 42).loss_sum * scale;
  };
  loss_at(f_.lora_init);
  const std::vector<float> g = m.lora_grads();
  double norm = 0;
  for (float x : g) norm += double(x) * x;
  norm = std::sqrt(norm);
  const double eps = 3e-3;
  std::vector<float> plus = f_.lora_init, minus = f_.lora_init;
  for (size_t i = 0; i < g.size(); ++i) {
    plus[i] += float(eps * g[i] / norm);
    minus[i] -= float(eps * g[i] / norm);
  }
  const double fd = (loss_at(plus) - loss_at(minus)) / (2 * eps);
  EXPECT_NEAR(fd, norm, 2e-3 * norm) << "directional derivative " << fd << " vs |g| " << norm;
  std::printf("directional derivative %.6g vs |g| %.6g (rel. %.2g)\n", fd, norm, std::fabs(fd - norm) / norm);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelInvariants, ::testing::Values("untied", "qwen3"));

}  // namespace
}  // namespace qsft::test
