// 4-bit quantization (kernels/nf4.h) against bitsandbytes: tests/data/nf4_golden.safetensors (made by
// tools/make_nf4_golden.py with bitsandbytes' quantize_4bit / dequantize_4bit) holds, for two inputs and NF4 and
// FP4, the codes, absmax, the double-quantized absmax (codes, absmax2, offset) and the dequantized weights. We
// require the same bits everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/base/half.h"
#include "engine/io/safetensors.h"
#include "kernels/nf4.h"
#include "test_util.h"

namespace qsft::test {
namespace {

using cpu::Quant4Type;

const SafetensorsFile& golden() {
  static const SafetensorsFile f = SafetensorsFile::open(repo_testdata() / "nf4_golden.safetensors");
  return f;
}

template <class T>
std::vector<T> get(const std::string& name) {
  const TensorInfo* t = golden().find(name);
  if (!t) throw std::runtime_error("golden has no " + name);
  std::vector<T> v(t->nbytes / sizeof(T));
  std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

// Index of the first element whose bits differ (the size when only the sizes differ), or -1.
template <class T>
int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return int64_t(i);
  return a.size() == b.size() ? -1 : int64_t(std::min(a.size(), b.size()));
}

#define EXPECT_SAME_BITS(ours, theirs) EXPECT_EQ(first_difference(ours, theirs), -1) << #ours

// The 8-bit absmax codes: ours are the nearest code of (absmax - offset) / absmax2 (bitsandbytes' CUDA kernel);
// its CPU kernel rounds through a 65536-entry table, which now and then picks the neighbour of the nearest. So where
// the codes differ, theirs must be the neighbour and ours strictly nearer; that happens for under 1% of them.
void expect_nearest_codes(const std::vector<float>& absmax, float offset, const std::vector<float>& absmax2,
                          const std::vector<uint8_t>& ours, const std::vector<uint8_t>& theirs) {
  ASSERT_EQ(ours.size(), theirs.size());
  const float* code = cpu::dynamic_code();
  size_t differ = 0;
  for (size_t b = 0; b < ours.size(); ++b) {
    if (ours[b] == theirs[b]) continue;
    ++differ;
    const double x = double((absmax[b] - offset) * (1.0f / absmax2[b / 256]));
    EXPECT_EQ(std::abs(int(ours[b]) - int(theirs[b])), 1) << b;
    EXPECT_LT(std::fabs(x - double(code[ours[b]])), std::fabs(x - double(code[theirs[b]]))) << b;
  }
  EXPECT_LE(differ * 100, ours.size()) << differ << " of " << ours.size() << " absmax codes differ";
}

void check_case(const std::string& input, Quant4Type type) {
  const std::string c = input + (type == Quant4Type::nf4 ? ".nf4" : ".fp4");
  SCOPED_TRACE(c);
  const std::vector<float> w = get<float>(input + ".w");
  const int64_t n = int64_t(w.size()), nb = (n + 63) / 64, n2 = (nb + 255) / 256;

  std::vector<uint8_t> codes(size_t(n + 1) / 2);
  std::vector<float> absmax(static_cast<size_t>(nb));
  cpu::quantize_4bit(w.data(), n, type, codes.data(), absmax.data());
  EXPECT_SAME_BITS(codes, get<uint8_t>(c + ".codes"));
  EXPECT_SAME_BITS(absmax, get<float>(c + ".absmax"));

  std::vector<float> out(static_cast<size_t>(n));
  cpu::dequantize_4bit(codes.data(), absmax.data(), n, type, out.data());
  EXPECT_SAME_BITS(out, get<float>(c + ".dequant"));
  std::vector<uint16_t> out_bf16(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out_bf16[size_t(i)] = f32_to_bf16(out[size_t(i)]);
  EXPECT_SAME_BITS(out_bf16, get<uint16_t>(c + ".dequant_bf16"));

  // Double quantization of the absmax.
  const float offset = cpu::absmax_offset(absmax.data(), nb);
  EXPECT_SAME_BITS(std::vector<float>{offset}, get<float>(c + ".dq.offset"));
  std::vector<uint8_t> qabsmax(static_cast<size_t>(nb));
  std::vector<float> absmax2(static_cast<size_t>(n2)), absmax_dq(static_cast<size_t>(nb));
  cpu::quantize_absmax(absmax.data(), nb, offset, qabsmax.data(), absmax2.data());
  expect_nearest_codes(absmax, offset, absmax2, qabsmax, get<uint8_t>(c + ".dq.qabsmax"));
  EXPECT_SAME_BITS(absmax2, get<float>(c + ".dq.absmax2"));
  // bitsandbytes' stored state dequantized by us: its dequantize_4bit's bits.
  const std::vector<uint8_t> their_q = get<uint8_t>(c + ".dq.qabsmax");
  cpu::dequantize_absmax(their_q.data(), absmax2.data(), nb, offset, absmax_dq.data());
  cpu::dequantize_4bit(codes.data(), absmax_dq.data(), n, type, out.data());
  EXPECT_SAME_BITS(out, get<float>(c + ".dq.dequant"));
}

TEST(Nf4, QuantizeAndDequantizeAsBitsandbytes) {
  QSFT_REQUIRE_PATH(repo_testdata() / "nf4_golden.safetensors");
  for (const char* input : {"a", "b"})
    for (Quant4Type t : {Quant4Type::nf4, Quant4Type::fp4}) check_case(input, t);
}

// Round trip on N(0, 1) data: every value comes back within half the widest gap of the code times its block's
// absmax, and a value equal to the block's absmax comes back exactly.
TEST(Nf4, RoundTripErrorIsBoundedByTheCodeGaps) {
  const int64_t n = 64 * 50;
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) w[size_t(i)] = std::sin(0.37f * float(i)) * (1.0f + float(i % 7));
  for (Quant4Type t : {Quant4Type::nf4, Quant4Type::fp4}) {
    std::vector<uint8_t> codes(static_cast<size_t>(n / 2));
    std::vector<float> absmax(static_cast<size_t>(n / 64)), out(static_cast<size_t>(n));
    cpu::quantize_4bit(w.data(), n, t, codes.data(), absmax.data());
    cpu::dequantize_4bit(codes.data(), absmax.data(), n, t, out.data());
    const float half_gap = t == Quant4Type::nf4 ? 0.1520f : 0.1667f;  // (1 - 0.6962) / 2 and (1 - 0.6667) / 2
    for (int64_t i = 0; i < n; ++i) {
      const float a = absmax[size_t(i / 64)];
      ASSERT_LE(std::fabs(out[size_t(i)] - w[size_t(i)]), half_gap * a * 1.0001f) << i;
      if (std::fabs(w[size_t(i)]) == a) {
        EXPECT_EQ(std::fabs(out[size_t(i)]), a) << i;
      }
    }
  }
}

}  // namespace
}  // namespace qsft::test
