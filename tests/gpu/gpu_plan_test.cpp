// `qwen-sft plan` on a GPU: after one training step the CUDA backend holds exactly the bytes the plan counts
// (Ops::bytes_held: arenas, cuBLASLt workspace, kernel scratch; the cross-entropy's chunk lent from the run state;
// Ops::host_bytes_held: the 7B's untied embedding in host-mapped memory, not on the device),
// and the device's used memory (cudaMemGetInfo) is the plan's total within 5%: the CUDA context is the estimate
// kCudaContextBytes (engine/train/plan.h), the value to put there is printed. Presets with zero weights (memory
// does not depend on the values): 0.5B LoRA r16 and 7B QLoRA r16 at 4096 tokens, 0.5B full fine-tuning. In stand-in
// mode the step runs on the stand-in and the device's used memory is not read (no GPU).
#include <filesystem>
#include <fstream>

#include "engine/io/random_model.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/plan_step.h"
#include "tests/test_util.h"

#if defined(QSFT_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace qsft::test {
namespace {

#if defined(QSFT_HAVE_CUDA)
size_t device_used() {
  size_t free = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
  return total - free;
}
#else
size_t device_used() { return 0; }
#endif

double mib(size_t b) { return double(b) / double(1 << 20); }

TEST(GpuPlan, BackendHoldsWhatThePlanCountsAndTheDeviceAgreesWithin5Percent) {
  QSFT_REQUIRE_GPU();
  const bool standin = standin_mode();
  if (standin) {
    std::printf("[ STAND-IN ] cudaMemGetInfo skipped: no GPU (the device's used memory is not compared)\n");
  } else {
    const size_t context = device_used();  // the context `gpu` made, nothing allocated yet
    std::printf("[ GPU      ] CUDA context before any allocation: %.1f MiB (kCudaContextBytes: %.1f MiB)\n",
                mib(context), mib(kCudaContextBytes));
  }
  gpu.reset();
  namespace fs = std::filesystem;
  const ScopedTempDir dir("gpu_plan");
  const std::string lora = R"("lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}, "finetuning_type": "lora",)";
  const std::string qlora = lora + R"("quantization": {"load_in_4bit": true, "bnb_4bit_use_double_quant": true},)";
  struct Case {
    const char* name;
    const char* preset;
    std::string top;  // the config's sections besides model, data and training
    int max_length;
    const char* checkpointing;
  };
  const std::vector<Case> cases = {
      {"0.5B LoRA r16, 4096 tokens, activations kept", "qwen2.5-0.5b", lora, 4096, "false"},
      {"7B QLoRA r16, 4096 tokens, recomputed", "qwen2.5-7b", qlora, 4096, "true"},
      {"0.5B full fine-tuning, 2048 tokens", "qwen2.5-0.5b", "", 2048, "false"},
  };
  for (const Case& c : cases) {
    fs::create_directories(dir / c.preset);
    std::ofstream(dir / c.preset / "config.json") << find_preset(c.preset).config.to_json();
    const std::string json = std::string(R"({"model": ")") + c.preset + R"(", )" + c.top +
                             R"( "data": {"train_files": ["x.jsonl"], "max_length": )" + std::to_string(c.max_length) +
                             R"(}, "output_dir": "o", "training": {"gradient_checkpointing": )" + c.checkpointing +
                             "}}";
    const TrainConfig cfg = parse_train_config(json, dir / "cfg.json");
    const size_t available = size_t(100) << 30;
    const TrainingPlan p = plan_training(cfg, Device::CUDA, available);
    // The device's used memory is read inside the step, while the model, optimizer and run state are alive.
    const HeldBytes held = bytes_after_a_step(*(standin ? make_standin_ops() : make_cuda_ops()), cfg, available, 1,
                                              standin ? nullptr : device_used);
    const double used = double(held.used), err = (used - double(p.total())) / used;
    std::printf(
        "[ GPU      ] plan %s: allocated %.1f MiB (plan %.1f), device used %.1f MiB (plan total %.1f, "
        "error %+.2f%%); beyond the allocations (context, allocator rounding): %+.1f MiB\n%s",
        c.name, mib(held.device), mib(p.allocated()), mib(held.used), mib(p.total()), 100 * err,
        (used - double(held.device)) / double(1 << 20), p.report().c_str());
    EXPECT_EQ(held.device, p.allocated()) << c.name;
    EXPECT_GT(held.used, held.device) << c.name << ": the device holds at least the allocations and the context";
    EXPECT_EQ(held.host, p.model.host_weights) << c.name;
    EXPECT_LE(std::fabs(err), 0.05) << c.name;
  }
}

}  // namespace
}  // namespace qsft::test
