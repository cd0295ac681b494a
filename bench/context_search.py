#!/usr/bin/env python3
"""The longest trainable context on one GPU, qwen-sft and transformers + PEFT (bench/baselines/hf_peft.py) on the same
random model of a preset: one sequence of L tokens per micro-batch (L = 4096, 8192, ... doubling until a run fails,
out of memory or over its time limit), LoRA r16 all-linear, gradient checkpointing on both sides, 2 optimizer steps
each (--steps; the peak comes in the first, whose optimizer step allocates the states, and the second shows that it
holds). The data is one JSONL of {"text": ...} records of random words, each longer than the largest L tried, so
every micro-batch is a single sequence of exactly L tokens (causal attention over all of it).
Prints "CONTEXT <side> <preset>: longest L ..., stopped by ..." per side (a failed run's last line of output, or
"over the N s limit": a context limited by time, not memory) and one line "CONTEXT_RESULT {json}" for
bench/results_jsonl.py. Run by tools/gpu-check.sh (stage context-7b, on request).
  context_search.py --bin QWEN_SFT --kit build-gpucarry --preset qwen2.5-7b [--start 4096] [--max 262144]
                    [--steps 2] [--timeout 240] [--side both|ours|hf] [--work DIR]"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

from e2e_compare import GpuMemoryPeak, fmt_mem, make_model

HERE = os.path.dirname(os.path.abspath(__file__))


def write_long_texts(path, tokens, records=3, seed=1):
    """records x {"text": random lowercase words}: about 1.3 Qwen2.5 tokens a word, so `tokens` words suffice."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    with open(path, "w") as f:
        for _ in range(records):
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(tokens))}) + "\n")


def try_ours(a, model_dir, data_dir, L, work):
    run_dir = os.path.join(work, "run-%d" % L)
    cfg = {
        "model": model_dir,
        "data": {"train_files": [data_dir], "max_length": L, "packing": True},
        "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
        "training": {"max_steps": a.steps, "micro_batch_tokens": L, "gradient_accumulation_steps": 1,
                     "learning_rate": 1e-4, "gradient_checkpointing": True, "seed": 42},
        "logging_steps": 1, "save_steps": 0, "output_dir": run_dir,
    }
    cfg_path = os.path.join(work, "cfg-%d.json" % L)
    json.dump(cfg, open(cfg_path, "w"), indent=1)
    return run([a.bin, "train", cfg_path], a.timeout, run_dir)


def try_hf(a, model_dir, data_dir, L, work):
    cmd = [sys.executable, os.path.join(HERE, "baselines", "hf_peft.py"), "--model", model_dir, "--data", data_dir,
           "--steps", str(a.steps), "--no-profile", "--recompute", "--bin", str(L), "--micro-batch", str(L)]
    return run(cmd, a.timeout, None)


def run(cmd, timeout, cleanup):
    """(ok, peak GiB, the last line of output: why it failed)."""
    with GpuMemoryPeak() as mem:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            ok, tail = p.returncode == 0, (p.stdout + p.stderr).strip().splitlines()[-1:]
        except subprocess.TimeoutExpired:
            ok, tail = False, ["over the %d s limit" % timeout]
    if cleanup:
        shutil.rmtree(cleanup, ignore_errors=True)
    return ok, mem.gib(), (tail[0] if tail else "")[:200]


def search(a, side, attempt, model_dir, data_dir, work):
    """(the longest L trained or None, why the next one failed or None when a.max was reached)."""
    longest, peak, L, why = None, None, a.start, None
    while L <= a.max:
        ok, gib, why = attempt(a, model_dir, data_dir, L, work)
        print("CONTEXT %s %s: L = %d %s (peak GPU memory %s)%s" %
              (side, a.preset, L, "trained" if ok else "FAILED", fmt_mem(gib), "" if ok else ": " + why), flush=True)
        if not ok:
            break
        longest, peak, L, why = L, gib, 2 * L, None
    print("CONTEXT %s %s: longest L %s (peak %s), stopped by %s" %
          (side, a.preset, longest, fmt_mem(peak), why or "the --max %d" % a.max), flush=True)
    return longest, why


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kit", required=True)
    ap.add_argument("--preset", default="qwen2.5-7b")
    ap.add_argument("--start", type=int, default=4096)
    ap.add_argument("--max", type=int, default=262144)
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per attempt")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per attempt")
    ap.add_argument("--side", choices=["both", "ours", "hf"], default="both")
    ap.add_argument("--work", default="/tmp/qsft-context")
    a = ap.parse_args()
    a.bin, a.kit = os.path.abspath(a.bin), os.path.abspath(a.kit)
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        print("skipped: no GPU (nvidia-smi -L fails)")
        return 77
    work = os.path.join(a.work, a.preset)
    model_dir = make_model(a.bin, a.kit, a.preset, work)
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    write_long_texts(os.path.join(data_dir, "long.jsonl"), a.max)
    result = {"preset": a.preset, "start": a.start, "max": a.max, "steps": a.steps, "timeout_s": a.timeout}
    if a.side in ("both", "ours"):
        result["ours_longest"], result["ours_stopped_by"] = search(a, "qwen-sft", try_ours, model_dir, data_dir, work)
    if a.side in ("both", "hf"):
        result["hf_longest"], result["hf_stopped_by"] = search(a, "hf-peft", try_hf, model_dir, data_dir, work)
    print("CONTEXT_RESULT " + json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result.get("ours_longest") or result.get("hf_longest") else 1


if __name__ == "__main__":
    sys.exit(main())
