#!/usr/bin/env python3
"""QLoRA on the CPU: LoRA training over a 4-bit (NF4, double-quantized) base of the tiny model. The loss falls; the
run differs from the same run over the dense base (the quantization is in effect); stopped after 6 steps and
resumed to 12 it ends with the bits of an uninterrupted 12-step run; its adapter exports, and merges onto the
(unquantized) base; `plan` counts the 4-bit weights."""
import json
import os

from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config

QUANT = {"quantization": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                          "bnb_4bit_compute_dtype": "bfloat16"}}
TRAINING = dict(max_steps=12, lr_scheduler_type="constant", warmup_ratio=0.0)


def losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [d["loss"] for d in map(json.loads, f) if "loss" in d]


def main():
    a = parse_args()
    d = work_dir("qlora_train")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    ref = os.path.join(d, "ref")
    run(a.bin, "train", write_config(os.path.join(d, "ref.json"), model, ref, top=QUANT, **TRAINING), "--quiet")
    l = losses(ref)
    expect(len(l) == 12 and sum(l[-3:]) / 3 < sum(l[:3]) / 3 - 0.1, f"the 4-bit run's loss falls: {l}")

    dense = os.path.join(d, "dense")
    run(a.bin, "train", write_config(os.path.join(d, "dense.json"), model, dense, **TRAINING), "--quiet")
    expect(losses(dense)[0] != l[0], "the 4-bit base gives another first loss than the dense one")

    resumed = os.path.join(d, "resumed")
    cfg = write_config(os.path.join(d, "resumed.json"), model, resumed, top=QUANT, **TRAINING)
    run(a.bin, "train", cfg, "--quiet", "--set", "training.max_steps=6")
    run(a.bin, "train", cfg, "--quiet")
    final = [open(os.path.join(r, "checkpoint-12", "adapter_model.safetensors"), "rb").read() for r in (resumed, ref)]
    expect(final[0] == final[1], "stopped at 6 and resumed: the adapter of the uninterrupted run")
    expect(losses(resumed) == l, "stopped at 6 and resumed: the same losses")

    out = os.path.join(d, "adapter")
    run(a.bin, "export", ref, "--out", out)
    expect(os.path.exists(os.path.join(out, "adapter_model.safetensors")), "the adapter exports")
    merged = os.path.join(d, "merged")
    run(a.bin, "export", ref, "--merge", "--out", merged)
    expect(os.path.exists(os.path.join(merged, "config.json")), "the adapter merges onto the base")

    plan4 = run(a.bin, "plan", cfg).stdout
    plan16 = run(a.bin, "plan", cfg, "--set", "quantization.load_in_4bit=false").stdout
    weights = lambda p: float(p.split("frozen weights")[1].split()[0])
    expect(weights(plan4) < weights(plan16), f"the 4-bit plan has fewer weight bytes:\n{plan4}\n{plan16}")
    print("PASS")


if __name__ == "__main__":
    main()
