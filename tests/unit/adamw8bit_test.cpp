// 8-bit AdamW (optim "adamw_8bit") against bitsandbytes: tests/data/adamw8bit_golden.json
// (tools/make_adamw8bit_golden.py). bitsandbytes runs this optimizer on CUDA only as its kernel; the file holds a
// numpy transcription of that kernel (with bitsandbytes' own dynamic maps), which our CPU op must equal bit for
// bit, and the result of bitsandbytes' CPU backend, which is another implementation (weight decay before the
// update, eps outside the bias correction, requantization through a 65536-entry table that approximates the
// nearest code): there our parameters must agree within 1% of the largest update, and our dynamic maps within
// 2 ulps of create_dynamic_map's (fp32 torch arithmetic there, double rounded once here).
#include <simdjson.h>

#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/adamw8bit.h"
#include "test_util.h"

namespace qsft::test {
namespace {

using simdjson::dom::element;

std::vector<float> floats(element bits) {
  std::vector<float> out;
  for (element b : bits.get_array())
    out.push_back(std::bit_cast<float>(uint32_t(std::stoul(std::string(std::string_view(b)), nullptr, 16))));
  return out;
}

std::vector<uint8_t> bytes(element hex) {
  const std::string_view h = hex;
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(uint8_t(std::stoul(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

// The generator's inputs: u(i, k) = float((i * 2654435761 + k * 40503) % 4001 - 2000) / 2000.
std::vector<float> hashed(int64_t n, int64_t k) {
  std::vector<float> u(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) u[size_t(i)] = float((i * 2654435761LL + k * 40503) % 4001 - 2000) / 2000.0f;
  return u;
}
std::vector<float> grad(int64_t n, int64_t k) {
  std::vector<float> g = hashed(n, k);
  for (int64_t i = 0; i < n; ++i) g[size_t(i)] = (i >= 256 && i < 512) ? 0.0f : g[size_t(i)] * float(1e-3 * double(k));
  return g;
}

struct Golden {
  std::string text = read_file(repo_testdata() / "adamw8bit_golden.json");
  simdjson::dom::parser parser;
  element root = parser.parse(text);
};

TEST(AdamW8bit, DynamicMapsAsBitsandbytes) {
  Golden g;
  for (bool is_signed : {true, false}) {
    const std::vector<float> want = floats(g.root[is_signed ? "map_m_bits" : "map_v_bits"]);
    const std::array<float, 256> ours = cpu::dynamic_map(is_signed);
    ASSERT_EQ(want.size(), 256u);
    int differ = 0;
    for (size_t i = 0; i < 256; ++i) {
      const int64_t ulps = std::llabs(int64_t(std::bit_cast<int32_t>(ours[i])) - std::bit_cast<int32_t>(want[i]));
      EXPECT_LE(ulps, 2) << (is_signed ? "signed" : "unsigned") << " code " << i;
      differ += ulps != 0;
    }
    EXPECT_EQ(ours[is_signed ? 127 : 0], 0.0f);
    EXPECT_EQ(ours[255], 1.0f);
    std::printf("%s map: %d of 256 codes differ from bitsandbytes' (by <= 2 ulps)\n", is_signed ? "signed" : "unsigned",
                differ);
  }
}

TEST(AdamW8bit, QuantizeIsTheKernelsSearch) {
  const std::array<float, 256> m = cpu::dynamic_map(true), v = cpu::dynamic_map(false);
  for (size_t i = 0; i < 256; ++i) {  // every code maps to itself
    EXPECT_EQ(cpu::quantize_code(m.data(), m[i], true), i);
    EXPECT_EQ(cpu::quantize_code(v.data(), v[i], false), i);
  }
  EXPECT_EQ(cpu::quantize_code(m.data(), std::nanf(""), true), 0);  // 0/0 of an all-zero block
  // Between two codes: the nearer one.
  EXPECT_EQ(cpu::quantize_code(v.data(), 0.75f * v[200] + 0.25f * v[201], false), 200);
  EXPECT_EQ(cpu::quantize_code(v.data(), 0.25f * v[200] + 0.75f * v[201], false), 201);
}

TEST(AdamW8bit, EqualsTheBitsandbytesKernelBitForBit) {
  Golden g;
  const int64_t n = int64_t(g.root["n"]), steps = int64_t(g.root["steps"]);
  const std::vector<float> map_m = floats(g.root["map_m_bits"]), map_v = floats(g.root["map_v_bits"]);
  const int64_t blocks = (n + 255) / 256;
  for (element c : g.root["cases"].get_array()) {
    SCOPED_TRACE(std::string(std::string_view(c["name"])));
    cpu::AdamWHyper h;
    h.lr = double(c["lr"]), h.beta1 = double(c["beta1"]), h.beta2 = double(c["beta2"]), h.eps = double(c["eps"]);
    h.weight_decay = double(c["weight_decay"]);
    std::vector<float> p = hashed(n, 0);
    for (float& x : p) x /= 2.0f;
    const std::vector<float> p0 = p;
    std::vector<uint8_t> m(size_t(n), 0), v(size_t(n), 0);
    std::vector<float> am(size_t(blocks), 0.0f), av(size_t(blocks), 0.0f);
    const cpu::AdamW8bitState s{m.data(), v.data(), am.data(), av.data(), map_m.data(), map_v.data()};
    for (int64_t k = 1; k <= steps; ++k) {
      h.step = k;
      const std::vector<float> gk = grad(n, k);
      cpu::adamw8bit_step(p.data(), gk.data(), s, n, h, n);
      element want;
      if (c["kernel"][std::to_string(k)].get(want)) continue;  // stored after the first and the last step
      SCOPED_TRACE("after step " + std::to_string(k));
      EXPECT_EQ(bytes(want["m_hex"]), m);
      EXPECT_EQ(bytes(want["v_hex"]), v);
      EXPECT_EQ(floats(want["absmax_m_bits"]), am);
      EXPECT_EQ(floats(want["absmax_v_bits"]), av);
      const std::vector<float> wp = floats(want["p_bits"]);
      ASSERT_EQ(wp.size(), p.size());
      for (size_t i = 0; i < p.size(); ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(p[i]), std::bit_cast<uint32_t>(wp[i])) << i;
    }
    // bitsandbytes' CPU backend: the same optimizer within 1% of the largest update (measured: 0.5%).
    const std::vector<float> bnb = floats(c["bnb_cpu_p_bits"]);
    float largest = 0, worst = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      largest = std::max(largest, std::fabs(p[i] - p0[i]));
      worst = std::max(worst, std::fabs(p[i] - bnb[i]));
    }
    EXPECT_GT(largest, 0.0f);
    EXPECT_LE(worst, 0.01f * largest);
    std::printf("bitsandbytes CPU backend: largest difference %.3g of a largest update %.3g\n", worst, largest);
  }
}

}  // namespace
}  // namespace qsft::test
