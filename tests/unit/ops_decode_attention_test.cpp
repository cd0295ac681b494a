// Decode attention (new tokens of sequences over their KV cache) against the packed causal attention_fwd:
// feeding 3 sequences through cache slots in a shuffled order, token by token or several rows of a slot per call,
// gives attention_fwd's rows exactly (the same double arithmetic, key by key), and the keys/values land in their
// slots. Bad slots/lengths are refused.
#include <gtest/gtest.h>

#include "tests/unit/ops_test_util.h"

namespace qsft::test {
namespace {

constexpr int64_t n = 6, nkv = 2, D = 8, kSlots = 4, S = 16;

// Three packed sequences, their attention_fwd output, and caches the rows of decode attention fill.
struct Packed {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  PackedLayout layout{{5, 12, 1}};
  int64_t T = layout.total;
  F32 q{{T, n, D}}, k{{T, nkv, D}}, v{{T, nkv, D}}, want{{T, n, D}}, lse{{n, T}};
  F32 k_cache{{kSlots, S, nkv, D}}, v_cache{{kSlots, S, nkv, D}};  // NaN: only written positions may be read
  const int32_t slot_of[3] = {2, 0, 3};

  Packed() {
    std::mt19937 rng{5};
    q.set(random_uniform(size_t(T * n * D), rng, -2.0f, 2.0f));
    k.set(random_uniform(size_t(T * nkv * D), rng, -2.0f, 2.0f));
    v.set(random_uniform(size_t(T * nkv * D), rng));
    ops->attention_fwd(q.t, k.t, v.t, layout.seq, want.t, lse.t);
  }
  int32_t length(int s) const {
    const std::vector<int32_t>& cu = layout.packing.cu_seqlens;
    return cu[size_t(s) + 1] - cu[size_t(s)];
  }
  // Positions [from, to) of every sequence (as far as it is long) as the rows of one decode_attention call: the
  // output equals attention_fwd's rows exactly (the same double arithmetic, key by key), the keys/values land.
  void feed(int32_t from, int32_t to) {
    std::vector<int64_t> tokens;
    std::vector<int32_t> slots, lens;
    for (int s = 0; s < 3; ++s)
      for (int32_t pos = from; pos < std::min(to, length(s)); ++pos) {
        tokens.push_back(layout.packing.cu_seqlens[size_t(s)] + pos);
        slots.push_back(slot_of[s]);
        lens.push_back(pos + 1);
      }
    const int64_t B = int64_t(tokens.size()), qrow = n * D, kvrow = nkv * D;
    F32 qs({B, n, D}), ks({B, nkv, D}), vs({B, nkv, D}), out({B, n, D});
    I32 slot({B}), len({B});
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(q.data() + tokens[b] * qrow, qrow, qs.data() + b * qrow);
      std::copy_n(k.data() + tokens[b] * kvrow, kvrow, ks.data() + b * kvrow);
      std::copy_n(v.data() + tokens[b] * kvrow, kvrow, vs.data() + b * kvrow);
    }
    slot.set(slots);
    len.set(lens);
    ops->decode_attention(qs.t, ks.t, vs.t, k_cache.t, v_cache.t, slot.t, len.t, out.t);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t e = 0; e < qrow; ++e)
        ASSERT_EQ(out[size_t(b * qrow + e)], want[size_t(tokens[b] * qrow + e)]) << "token " << tokens[b];
      const size_t at = size_t((slots[b] * S + lens[b] - 1) * kvrow);
      for (int64_t e = 0; e < kvrow; ++e) {
        ASSERT_EQ(k_cache[at + size_t(e)], k[size_t(tokens[b] * kvrow + e)]);
        ASSERT_EQ(v_cache[at + size_t(e)], v[size_t(tokens[b] * kvrow + e)]);
      }
    }
  }
};

TEST(OpsDecodeAttention, StepByStepEqualsPackedAttention) {
  Packed p;
  for (int32_t pos = 0; pos < p.layout.packing.max_len; ++pos) p.feed(pos, pos + 1);
}

// Several rows of one slot in a call (a chat turn's new tokens after the cached conversation): each row sees the
// keys of the rows before it in the same call.
TEST(OpsDecodeAttention, RowsSharingASlotEqualPackedAttention) {
  Packed p;
  p.feed(0, 4);
  p.feed(4, 5);
  p.feed(5, p.layout.packing.max_len);
}

TEST(OpsDecodeAttention, RefusesRowsOutsideTheCache) {
  auto ops = make_cpu_ops();
  F32 q({1, n, D}), kn({1, nkv, D}), vn({1, nkv, D}), out({1, n, D});
  F32 k_cache({kSlots, S, nkv, D}), v_cache({kSlots, S, nkv, D});
  I32 slot({1}), len({1});
  for (auto [s, l] : {std::pair{int32_t(kSlots), 1}, std::pair{0, 0}, std::pair{0, int32_t(S) + 1}}) {
    slot.set({s});
    len.set({l});
    EXPECT_THROW(ops->decode_attention(q.t, kn.t, vn.t, k_cache.t, v_cache.t, slot.t, len.t, out.t), std::logic_error)
        << "slot " << s << " len " << l;
  }
  F32 narrow_cache({kSlots, S, nkv, D / 2});
  slot.set({0});
  len.set({1});
  EXPECT_THROW(ops->decode_attention(q.t, kn.t, vn.t, narrow_cache.t, narrow_cache.t, slot.t, len.t, out.t),
               std::logic_error);
}

}  // namespace
}  // namespace qsft::test
