#!/usr/bin/env python3
"""QLoRA end to end on one GPU (tools/gpu-check.sh stage qlora-0.5b): a random model of a preset (qwen-sft
init-model) with the real Qwen2.5 tokenizer and the kit's SFT files, LoRA r16 all-linear over its NF4
double-quantized base, 4096-token packed bins, gradient checkpointing, a few steps. Prints `qwen-sft plan`'s total,
the measured peak GPU memory (nvidia-smi, as bench/e2e_compare.py measures it: with the CUDA context, which the plan
estimates, docs/qlora.md) and tokens/s, then the same for the bf16 base. Fails when a run fails, when a measured
peak is not the plan's total within 5%, or when the 4-bit run's peak is not below the bf16 run's.
  qlora_e2e.py --bin QWEN_SFT --kit build-gpucarry [--preset qwen2.5-0.5b] [--steps 6]"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from e2e_compare import GpuMemoryPeak, steady  # noqa: E402


def train(a, model_dir, work, quantized):
    name = "nf4" if quantized else "bf16"
    run_dir = os.path.join(work, "run-" + name)
    cfg = {"model": model_dir, "data": {"train_files": [os.path.join(a.kit, "data")], "max_length": 4096,
                                        "packing": True},
           "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
           "training": {"max_steps": a.steps, "per_device_train_batch_size": 1, "learning_rate": 1e-4,
                        "lr_scheduler_type": "constant", "gradient_checkpointing": True, "seed": 42},
           "logging_steps": 1, "save_steps": 0, "output_dir": run_dir, "device": "cuda",
           "quantization": {"load_in_4bit": quantized, "bnb_4bit_quant_type": "nf4",
                            "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"}}
    path = os.path.join(work, f"cfg-{name}.json")
    json.dump(cfg, open(path, "w"), indent=1)
    plan = subprocess.run([a.bin, "plan", path, "--device", "cuda"], capture_output=True, text=True).stdout
    planned = float(plan.split("total on the gpu")[1].split()[0])
    with GpuMemoryPeak() as mem:
        p = subprocess.run([a.bin, "train", path], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"qwen-sft train ({name}) failed ({p.returncode}):\n{p.stderr[-4000:]}")
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"tokens_per_second"' in l]
    pts = [(r["num_tokens"], r["num_tokens"] / r["tokens_per_second"]) for r in rows if r.get("tokens_per_second")]
    s = steady(pts)
    peak = mem.gib()
    print(f"QLORA {a.preset} {name}: plan {planned:.3f} GiB, measured peak "
          f"{'n/a' if peak is None else '%.3f GiB' % peak}, {'n/a' if s is None else '%.0f tok/s' % s[0]}, "
          f"final loss {rows[-1]['loss']:.4f}")
    if peak is not None and abs(peak - planned) > 0.05 * planned:
        sys.exit(f"{name}: the measured peak {peak:.3f} GiB is not the plan's {planned:.3f} GiB within 5%:\n{plan}")
    return peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kit", required=True)
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--work", default="/tmp/qsft-qlora")
    a = ap.parse_args()
    a.bin, a.kit = os.path.abspath(a.bin), os.path.abspath(a.kit)
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        print("skipped: no GPU (nvidia-smi -L fails)")
        return 77
    work = os.path.join(a.work, a.preset)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model_dir = os.path.join(work, "model")
    subprocess.run([a.bin, "init-model", "--preset", a.preset, "--out", model_dir], check=True)
    for f in os.listdir(os.path.join(a.kit, "tok")):
        shutil.copy(os.path.join(a.kit, "tok", f), model_dir)
    q, d = train(a, model_dir, work, True), train(a, model_dir, work, False)
    shutil.rmtree(work, ignore_errors=True)
    if q is not None and d is not None and q >= d:
        sys.exit(f"the 4-bit run's peak {q:.3f} GiB is not below the bf16 run's {d:.3f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
