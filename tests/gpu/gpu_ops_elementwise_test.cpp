// CUDA elementwise ops, embedding, NEFTune, reductions and AdamW against the CPU reference ops, on fresh random
// inputs at several sizes (odd ones included), in F32 and BF16.
#include <chrono>

#include "tests/gpu/gpu_test_util.h"

namespace qsft::test {
namespace {

const DType kFloatTypes[] = {DType::F32, DType::BF16};
// 1003 and 4099: tails whose last elements take the 2nd-4th 16-bit field of a dropout hash (rng::uniforms16)
const int64_t kSizes[] = {1, 1000, 1003, 4097, 4099, 896 * 257};

TEST(GpuElementwise, AddScaleDropoutCopyMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(11);
  for (DType dt : kFloatTypes)
    for (int64_t n : kSizes) {
      const std::string tag = std::string(dtype_name(dt)) + " n=" + std::to_string(n);
      Both y(*cpu, *gpu, dt, {n}, random_uniform(size_t(n), rng)),
          x(*cpu, *gpu, dt, {n}, random_uniform(size_t(n), rng));
      cpu->add_inplace(y.c.t, x.c.t);
      gpu->add_inplace(y.g.t, x.g.t);
      y.expect_close(tolerance(dt), "add_inplace " + tag);
      cpu->scale_inplace(y.c.t, -0.37f);
      gpu->scale_inplace(y.g.t, -0.37f);
      y.expect_close(tolerance(dt), "scale_inplace " + tag);
      Both d(*cpu, *gpu, dt, {n});
      cpu->dropout(x.c.t, 0.3f, 1234, d.c.t);
      gpu->dropout(x.g.t, 0.3f, 1234, d.g.t);
      d.expect_close(tolerance(dt), "dropout " + tag);
      const std::vector<float> g = d.g.get(), c = d.c.get();
      const auto mask_differs_at = [&](const std::vector<float>& a) {  // the first element, or -1
        return first_failing(int64_t(a.size()),
                             [&](int64_t i) { return (a[size_t(i)] == 0.0f) == (c[size_t(i)] == 0.0f); });
      };
      EXPECT_EQ(mask_differs_at(g), -1) << "dropout mask " << tag;
      cpu->dropout_add(y.c.t, x.c.t, 0.3f, 1234);  // y += the same mask's dropout of x, in one pass
      gpu->dropout_add(y.g.t, x.g.t, 0.3f, 1234);
      y.expect_close(tolerance(dt), "dropout_add " + tag);
      Both z(*cpu, *gpu, dt, {n}, std::vector<float>(size_t(n), 0.0f));  // onto zeros: dropout_add's mask exactly
      gpu->dropout_add(z.g.t, x.g.t, 0.3f, 1234);
      const std::vector<float> za = z.g.get();
      EXPECT_EQ(mask_differs_at(za), -1) << "dropout_add mask " << tag;
      Both copy(*cpu, *gpu, dt, {n});
      gpu->copy(copy.g.t, x.g.t);
      EXPECT_EQ(copy.g.get(), x.g.get()) << "copy " << tag;
    }
}

// The same ops on views that start one element into their buffer (not 16-byte aligned): the kernels fall back to
// one element per step and must give the CPU's results there too.
TEST(GpuElementwise, UnalignedViewsMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(15);
  const int64_t n = 1001;
  auto offset_view = [](OpsTensor& t) {
    return Tensor(static_cast<char*>(t.t.data) + dtype_size(t.t.dtype), t.t.dtype, {n}, t.t.device);
  };
  for (DType dt : kFloatTypes) {
    const std::string tag = std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " at element 1";
    Both y(*cpu, *gpu, dt, {n + 1}, random_uniform(size_t(n + 1), rng)),
        x(*cpu, *gpu, dt, {n + 1}, random_uniform(size_t(n + 1), rng)), d(*cpu, *gpu, dt, {n + 1});
    Tensor yc = offset_view(y.c), yg = offset_view(y.g), xc = offset_view(x.c), xg = offset_view(x.g);
    Tensor dc = offset_view(d.c), dg = offset_view(d.g);
    cpu->add_inplace(yc, xc);
    gpu->add_inplace(yg, xg);
    y.expect_close(tolerance(dt), "add_inplace " + tag);
    cpu->scale_inplace(yc, 0.71f);
    gpu->scale_inplace(yg, 0.71f);
    y.expect_close(tolerance(dt), "scale_inplace " + tag);
    cpu->neftune_noise(yc, 0.05f, 5);
    gpu->neftune_noise(yg, 0.05f, 5);
    y.expect_close(tolerance(dt), "neftune " + tag);
    cpu->zero(d.c.t);
    gpu->zero(d.g.t);
    cpu->dropout(xc, 0.3f, 77, dc);
    gpu->dropout(xg, 0.3f, 77, dg);
    d.expect_close(tolerance(dt), "dropout " + tag);
    cpu->dropout_add(yc, xc, 0.3f, 77);
    gpu->dropout_add(yg, xg, 0.3f, 77);
    y.expect_close(tolerance(dt), "dropout_add " + tag);
    const double want = cpu->sum_squares(xc), got = gpu->sum_squares(xg);
    EXPECT_NEAR(got, want, 1e-5 * want) << "sum_squares " << tag;
  }
  Both src(*cpu, *gpu, DType::F32, {n + 1}, random_uniform(size_t(n + 1), rng)), dst(*cpu, *gpu, DType::BF16, {n});
  gpu->cast(offset_view(src.g), dst.g.t);
  std::vector<float> want = src.c.get();
  want.erase(want.begin());
  for (float& v : want) v = bf16_to_f32(f32_to_bf16(v));
  EXPECT_EQ(dst.g.get(), want) << "cast from element 1";
}

// Ops::cast F32 -> BF16 (the LoRA parameters' compute copy): round to nearest even, bit for bit the host's rounding.
TEST(GpuElementwise, CastToBf16RoundsLikeTheHost) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(13);
  for (int64_t n : kSizes) {
    Both src(*cpu, *gpu, DType::F32, {n}, random_uniform(size_t(n), rng, -3.0f, 3.0f)),
        dst(*cpu, *gpu, DType::BF16, {n});
    gpu->cast(src.g.t, dst.g.t);
    std::vector<float> want = src.c.get();
    for (float& v : want) v = bf16_to_f32(f32_to_bf16(v));
    EXPECT_EQ(dst.g.get(), want) << "cast n=" << n;
  }
}

// Tables: tiny, the 0.5B vocabulary and width, the 7B width (its whole 152064 x 3584 table, 2.2 GB of host values
// to fill and copy, is EmbeddingFromHostMappedTableMatchesCpu's; the gather's index math is the same).
TEST(GpuElementwise, EmbeddingAndNeftuneMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(12);
  // H = 37: rows of 74 / 148 bytes, not whole 16-byte words: the element-at-a-time gathers.
  std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1000, 64, 37}, {97, 37, 11}, {151936, 896, 129}, {5003, 3584, 33}};
  if (small_shapes_only()) shapes.resize(2);
  for (DType dt : kFloatTypes)
    for (auto [V, H, T] : shapes) {
      const std::string tag = std::string(dtype_name(dt)) + " V=" + std::to_string(V) + " H=" + std::to_string(H);
      Both table(*cpu, *gpu, dt, {V, H}, hashed_uniform(size_t(V * H), rng())), out(*cpu, *gpu, dt, {T, H});
      std::vector<int32_t> ids(static_cast<size_t>(T));
      std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
      for (int32_t& id : ids) id = pick(rng);
      ids.back() = int32_t(V - 1);
      Both id_t(*cpu, *gpu, DType::I32, {T});
      id_t.c.set_i32(ids);
      id_t.g.set_i32(ids);
      cpu->embedding_fwd(id_t.c.t, table.c.t, out.c.t);
      gpu->embedding_fwd(id_t.g.t, table.g.t, out.g.t);
      EXPECT_EQ(out.g.get(), out.c.get()) << "embedding gathers exact rows " << tag;
      cpu->neftune_noise(out.c.t, 0.05f, 99);
      gpu->neftune_noise(out.g.t, 0.05f, 99);
      out.expect_close(tolerance(dt), "neftune " + tag);
    }
}

// The untied embedding of a LoRA run lives in pinned host memory mapped for the GPU (Ops::alloc_host_mapped): the
// gather kernel reads its rows over PCIe, exactly the CPU op's rows; the bytes are host memory (read here through
// the host pointer) and counted by host_bytes_held, not bytes_held. Prints the gather's time for a 7B table.
TEST(GpuElementwise, EmbeddingFromHostMappedTableMatchesCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(14);
  std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {{1000, 64, 37}, {152064, 3584, 4096}};
  if (small_shapes_only()) shapes.resize(1);
  for (auto [V, H, T] : shapes) {
    const std::string tag = "V=" + std::to_string(V) + " H=" + std::to_string(H) + " T=" + std::to_string(T);
    const std::vector<float> values = round_bf16(hashed_uniform(size_t(V * H), rng()));
    const size_t device_before = gpu->bytes_held(), host_before = gpu->host_bytes_held();
    OpsTensor table_c(*cpu, DType::F32, {V, H}), table_g(*gpu, DType::BF16, {V, H}, MemoryKind::host_mapped);
    EXPECT_EQ(gpu->host_bytes_held() - host_before, table_g.t.nbytes()) << tag;
    EXPECT_EQ(gpu->bytes_held(), device_before) << tag;
    table_c.set(values);
    table_g.set(values);
    const uint16_t* host = static_cast<const uint16_t*>(table_g.t.data);  // the host sees what was uploaded
    EXPECT_EQ(bf16_to_f32(host[0]), values[0]) << tag;
    EXPECT_EQ(bf16_to_f32(host[size_t(V * H) - 1]), values.back()) << tag;
    std::vector<int32_t> ids(static_cast<size_t>(T));
    std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
    for (int32_t& id : ids) id = pick(rng);
    ids.front() = 0;
    ids.back() = int32_t(V - 1);
    Both id_t(*cpu, *gpu, DType::I32, {T}), out(*cpu, *gpu, DType::BF16, {T, H});  // out poisoned
    id_t.c.set_i32(ids);
    id_t.g.set_i32(ids);
    cpu->embedding_fwd(id_t.c.t, table_c.t, out.c.t);
    gpu->embedding_fwd(id_t.g.t, table_g.t, out.g.t);
    gpu->synchronize();
    const auto start = std::chrono::steady_clock::now();
    gpu->embedding_fwd(id_t.g.t, table_g.t, out.g.t);
    gpu->synchronize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s embedding gather from host-mapped memory %s: %.3f ms (%.1f MiB over PCIe)\n", measured_tag(),
                tag.c_str(), ms, double(T * H * 2) / double(1 << 20));
    EXPECT_EQ(out.g.get(), out.c.get()) << "embedding gathers exact rows from host-mapped memory " << tag;
  }
}

TEST(GpuReduce, SumSquaresMatchesCpuAndIsDeterministic) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(13);
  for (int64_t n : {int64_t(1), int64_t(4095), int64_t(4097), int64_t(3) << 22}) {
    Both x(*cpu, *gpu, DType::F32, {n}, random_uniform(size_t(n), rng));
    const double want = cpu->sum_squares(x.c.t), got = gpu->sum_squares(x.g.t);
    std::printf("%s sum_squares [%lld] gpu %.17g cpu %.17g rel. error %.2e (tolerance 1e-12)\n", measured_tag(),
                static_cast<long long>(n), got, want, std::fabs(got - want) / want);
    EXPECT_NEAR(got, want, 1e-12 * want) << "n=" << n;
    EXPECT_EQ(gpu->sum_squares(x.g.t), got) << "same input, same bits";
    Both dev(*cpu, *gpu, DType::F32, {1});  // the device-value form: the same sum, rounded to fp32
    gpu->sum_squares(x.g.t, dev.g.t);
    EXPECT_EQ(dev.g.get()[0], float(got)) << "sum_squares into a device value, n=" << n;
  }
}

TEST(GpuAdamW, StepsMatchCpu) {
  QSFT_REQUIRE_GPU();
  std::mt19937 rng(14);
  const int64_t n = 100003;
  Both p(*cpu, *gpu, DType::F32, {n}, random_uniform(size_t(n), rng)), m(*cpu, *gpu, DType::F32, {n}),
      v(*cpu, *gpu, DType::F32, {n});
  for (Both* s : {&m, &v}) {
    cpu->zero(s->c.t);
    gpu->zero(s->g.t);
  }
  for (int64_t step = 1; step <= 5; ++step) {
    Both g(*cpu, *gpu, DType::F32, {n}, random_uniform(size_t(n), rng, -0.1f, 0.1f));
    const AdamWHyper h{1e-3, 0.9, 0.999, 1e-8, 0.01, step};
    cpu->adamw_step(p.c.t, g.c.t, m.c.t, v.c.t, h);
    gpu->adamw_step(p.g.t, g.g.t, m.g.t, v.g.t, h);
  }
  p.expect_close(1e-6, "adamw p after 5 steps");
  m.expect_close(1e-6, "adamw m");
  v.expect_close(1e-6, "adamw v");
}

}  // namespace
}  // namespace qsft::test
