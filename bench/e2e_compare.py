#!/usr/bin/env python3
"""End-to-end training throughput on one GPU: qwen-sft against transformers + PEFT (bench/baselines/hf_peft.py) on
the same random model of a preset (qwen-sft init-model), the real Qwen2.5 tokenizer and the same SFT files, LoRA r16
all-linear (alpha 32, dropout 0.05), packed 4096-token bins, 16384 tokens per micro-batch, AdamW.
Prints, for each side, steady-state tokens/s (steps 3..N), seconds per step, peak GPU memory (nvidia-smi, both
sides measured the same way) and the step time by op family (qwen-sft: QSFT_PROFILE=1; HF: torch.profiler on one
step), then the ratio ours/theirs, and last one machine-readable line "E2E_RESULT {json}" with the model FLOPs per
token (bench/README.md) that bench/results_jsonl.py turns into MFU against the GEMM ceiling of the same run.
Run by tools/gpu-check.sh (stages e2e-0.5b, e2e-7b; e2e-1.5b and e2e-14b on request).
  e2e_compare.py --bin QWEN_SFT --kit build-gpucarry --preset qwen2.5-0.5b --steps 12 [--recompute]
                 [--ours-checkpointing auto|true|false] [--device cpu]
Each side trains as its user gets by default: qwen-sft with gradient_checkpointing "auto" (every layer's activations
kept when `qwen-sft plan` says they fit, else the fewest layers recomputed), the baseline with --recompute: HF
gradient checkpointing (TRL's SFTConfig default; without --recompute it keeps every activation, if they fit).
--ours-checkpointing true|false forces qwen-sft's setting.
Both sides' settings are printed ("E2E settings") before the runs.
--device cpu with --preset tiny checks this script on a machine without a GPU (no HF side)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_TOKENS = 4096  # both sides pack sequences into bins of this many tokens, whole bins per micro-batch


class GpuMemoryPeak:
    """Largest nvidia-smi memory.used (MiB) while running, minus the value at the start."""

    def __init__(self):
        self.base = self.peak = None
        self.proc = None

    def __enter__(self):
        if shutil.which("nvidia-smi") is None:
            return self
        cmd = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "200"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                v = float(line.split(",")[0])
            except ValueError:
                continue
            self.base = v if self.base is None else self.base
            self.peak = v if self.peak is None else max(self.peak, v)

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def gib(self):
        return None if self.peak is None else (self.peak - self.base) / 1024.0


def steady(points):
    """points: (cumulative tokens, cumulative seconds) per step. Tokens/s, s/step, tokens/step over steps 3..N."""
    if len(points) < 4:
        return None
    (n0, t0), (n1, t1) = points[1], points[-1]
    steps = len(points) - 2
    return (n1 - n0) / (t1 - t0), (t1 - t0) / steps, (n1 - n0) / steps


def flops_per_token(model_dir, context=4096):
    """Model FLOPs of one trained token of a LoRA step (bench/README.md): forward 2 and input-gradient 2 FLOPs per
    frozen matmul parameter (every Linear of the layers and the LM head; no weight gradient), plus causal attention
    over bins of `context` tokens (mean context (context + 1) / 2): 4 n D FLOPs per key forward, 2.5x that backward.
    LoRA's own products (r = 16: < 1%) and recomputation are not counted."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    H, I, L, n = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["num_attention_heads"]
    kv = c.get("num_key_value_heads", n)
    D = c.get("head_dim") or H // n
    per_layer = H * (n + 2 * kv) * D + n * D * H + 3 * H * I
    matmul_params = L * per_layer + c["vocab_size"] * H
    attention = L * 4 * n * D * (context + 1) / 2 * 3.5
    return 4 * matmul_params + attention


def profile_shares(stderr):
    """({family: share %}, total ms in ops) from the QSFT_PROFILE table at the end of qwen-sft's stderr."""
    shares, total, table = {}, None, False
    for line in stderr.splitlines():
        if line.startswith("op family"):
            table, shares = True, {}
        elif table and line.rstrip().endswith("%"):
            parts = line.rsplit(None, 3)  # family (may hold spaces), calls, ms, share
            shares[parts[0].strip()] = float(parts[3].rstrip("%"))
        elif table and line.startswith("total (in ops)"):
            total, table = float(line.split()[-1]), False
    return shares, total


def profile_gemm_shapes(stderr):
    """The GEMM shape rows after the QSFT_PROFILE family table, longest first: [{op, M, N, K, calls, ms, share,
    tflops, gbs}] (the op's name may hold spaces: the 8 numbers are the row's last fields; a dimension that is the
    micro-batch's token count is "T")."""
    rows, table = [], False
    for line in stderr.splitlines():
        if line.startswith("GEMM shapes by time"):
            table, rows = True, []
        elif table and line.startswith("op "):
            continue
        elif table:
            parts = line.rsplit(None, 8)
            if len(parts) != 9:
                table = False
                continue
            try:
                M, N, K = (v if v == "T" else int(v) for v in parts[1:4])
                calls = int(parts[4])
                ms, share, tflops, gbs = float(parts[5]), float(parts[6].rstrip("%")), float(parts[7]), float(parts[8])
            except ValueError:
                table = False
                continue
            rows.append({"op": parts[0].strip(), "M": M, "N": N, "K": K, "calls": calls, "ms": ms, "share": share,
                         "tflops": tflops, "gbs": gbs})
    return rows


def fmt_mem(gib):
    return "n/a" if gib is None else "%.1f GiB" % gib


def ours_checkpointing_value(a):
    """The config's gradient_checkpointing: "auto" (qwen-sft's default) or the forced true/false."""
    return "auto" if a.ours_checkpointing == "auto" else a.ours_checkpointing == "true"


def print_settings(a, cfg_path):
    """Both sides' settings, qwen-sft's recompute decision as `qwen-sft plan` makes it on this device."""
    p = subprocess.run([a.bin, "plan", cfg_path], capture_output=True, text=True)
    plan = [l.split("gradient checkpointing", 1)[1].strip() for l in p.stdout.splitlines()
            if l.strip().startswith("gradient checkpointing")]
    a.result["ours_checkpointing"] = plan[0] if plan else "unknown (qwen-sft plan exit %d)" % p.returncode
    a.result["hf_gradient_checkpointing"] = a.recompute
    print("E2E settings %s: LoRA r16 all-linear alpha 32 dropout 0.05 on both sides, %d tokens per micro-batch in "
          "4096-token bins; qwen-sft gradient_checkpointing %s -> %s; hf-peft gradient checkpointing %s" %
          (a.preset, a.micro_batch_tokens, json.dumps(ours_checkpointing_value(a)), a.result["ours_checkpointing"],
           "on (use_reentrant=False)" if a.recompute else "off"))


def run_ours(a, model_dir, work):
    run_dir = os.path.join(work, "run")
    cfg = {
        "model": model_dir,
        "data": {"train_files": [os.path.join(a.kit, "data")], "max_length": 4096, "packing": True},
        "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
        "training": {"max_steps": a.steps, "micro_batch_tokens": a.micro_batch_tokens,
                     "gradient_accumulation_steps": 1,
                     "learning_rate": 1e-4, "lr_scheduler_type": "constant", "max_grad_norm": 1.0,
                     "gradient_checkpointing": ours_checkpointing_value(a), "seed": 42},
        "logging_steps": 1, "save_steps": 0, "output_dir": run_dir, "device": a.device,
    }
    cfg_path = os.path.join(work, "cfg.json")
    json.dump(cfg, open(cfg_path, "w"), indent=1)
    print_settings(a, cfg_path)
    env = dict(os.environ, QSFT_PROFILE="1")
    t = time.time()
    with GpuMemoryPeak() as mem:
        p = subprocess.run([a.bin, "train", cfg_path], env=env, capture_output=True, text=True)
    print(p.stdout[-4000:] + p.stderr[-8000:])  # the profile table is printed last, on stderr
    if p.returncode != 0 and "no usable CUDA device" in p.stderr:
        print("skipped: no usable CUDA device for qwen-sft")
        sys.exit(77)
    if p.returncode != 0:
        sys.exit("qwen-sft train failed (%d)" % p.returncode)
    a.result["ours_profile_share"], ops_ms = profile_shares(p.stderr)
    a.result["ours_gemm_shapes"] = profile_gemm_shapes(p.stderr)[:8]
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if '"tokens_per_second"' in l]
    # tokens_per_second is cumulative since the start of the run: elapsed_k = num_tokens_k / tok_s_k
    pts = [(r["num_tokens"], r["num_tokens"] / r["tokens_per_second"]) for r in rows if r.get("tokens_per_second")]
    s = steady(pts)
    line = "E2E qwen-sft %s: " % a.preset
    if s is None:
        print(line + "too few logged steps (%d)" % len(pts))
        return None
    print(line + "steady %.0f tok/s over steps 3..%d (%.3f s/step, %.0f tok/step); first step %.2f s; peak GPU "
          "memory %s; final loss %.4f; wall %.0f s" % (s[0], len(pts), s[1], s[2], pts[0][1], fmt_mem(mem.gib()),
                                                       rows[-1]["loss"], time.time() - t))
    a.result.update(ours_tok_s=s[0], ours_peak_gib=mem.gib())
    # Launch overhead: the device time of the ops (QSFT_PROFILE, steps 2..N) over the wall time of those steps.
    # Near 1: the GPU never waits for the host, and CUDA graphs would not help.
    if ops_ms and len(pts) > 1 and pts[-1][1] > pts[0][1]:
        a.result["ours_gpu_busy"] = ops_ms / 1e3 / (pts[-1][1] - pts[0][1])
        print("E2E qwen-sft %s: the ops' device time is %.1f%% of the wall time of steps 2..%d (launch overhead "
              "and host work: the rest)" % (a.preset, 100 * a.result["ours_gpu_busy"], len(pts)))
    return s[0]


def run_hf(a, model_dir):
    """The baseline's run. Out of GPU memory at --micro-batch-tokens, it runs again at half as many (whole bins, down
    to one), as its user would: the tokens/s it reaches, at the micro-batch it fits (hf_micro_batch_tokens)."""
    micro_batch = a.micro_batch_tokens
    while True:
        cmd = [sys.executable, os.path.join(HERE, "baselines", "hf_peft.py"), "--model", model_dir, "--data",
               os.path.join(a.kit, "data"), "--steps", str(a.steps), "--micro-batch", str(micro_batch)] + \
            (["--recompute"] if a.recompute else [])
        with GpuMemoryPeak() as mem:
            p = subprocess.run(cmd, capture_output=True, text=True)
        print(p.stdout[-6000:] + p.stderr[-4000:])
        oom = p.returncode not in (0, 77) and "out of memory" in (p.stdout + p.stderr).lower()
        if not oom or micro_batch <= BIN_TOKENS:
            break
        print("E2E hf-peft %s: out of GPU memory at %d tokens per micro-batch; again at %d" %
              (a.preset, micro_batch, micro_batch // 2))
        micro_batch //= 2
    a.result["hf_micro_batch_tokens"] = micro_batch
    if p.returncode == 77:
        print("E2E hf-peft %s: skipped (%s)" % (a.preset, p.stdout.strip().splitlines()[-1:]))
        return None
    res = [json.loads(l[len("HF_RESULT "):]) for l in p.stdout.splitlines() if l.startswith("HF_RESULT ")]
    if p.returncode != 0 or not res:
        print("E2E hf-peft %s: failed (rc %d%s)" % (a.preset, p.returncode, ", out of memory" if oom else ""))
        return None
    r = res[-1]
    print("E2E hf-peft %s: steady %.0f tok/s over steps 3..%d (%.3f s/step, %.0f tok/step); peak GPU memory %s "
          "(torch max reserved %.1f GiB); final loss %.4f" % (a.preset, r["tok_s"], r["steps"], r["s_per_step"],
                                                           r["tok_per_step"], fmt_mem(mem.gib()),
                                                           r["max_reserved_gib"], r["final_loss"]))
    print("profile hf-peft %s (ms of one step, torch.profiler): %s; packed mask: %s" %
          (a.preset, r["profile_ms_by_family"], r["packed_mask"]))
    a.result.update(hf_tok_s=r["tok_s"], hf_peak_gib=mem.gib(), hf_profile_ms=r["profile_ms_by_family"])
    return r["tok_s"]


def make_model(bin_path, kit, preset, work):
    """A fresh `work` folder with the random model of `preset` in work/model (the real Qwen2.5 tokenizer from the
    kit beside real-size presets); returns the model folder."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model_dir = os.path.join(work, "model")
    t = time.time()
    subprocess.run([bin_path, "init-model", "--preset", preset, "--out", model_dir], check=True)
    if preset not in ("tiny", "tiny-qwen3"):  # real-size presets have no tokenizer: the real Qwen2.5 one
        for f in os.listdir(os.path.join(kit, "tok")):
            shutil.copy(os.path.join(kit, "tok", f), model_dir)
    print("init-model %s: %.0f s" % (preset, time.time() - t))
    return model_dir


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kit", required=True)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--recompute", action="store_true", help="the baseline recomputes (HF gradient checkpointing)")
    ap.add_argument("--ours-checkpointing", choices=["auto", "true", "false"], default="auto",
                    help='qwen-sft\'s gradient_checkpointing (default "auto", its own default)')
    ap.add_argument("--micro-batch-tokens", type=int, default=16384, help="tokens per micro-batch (4096-token bins)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--work", default="/tmp/qsft-e2e")
    a = ap.parse_args()
    a.bin, a.kit = os.path.abspath(a.bin), os.path.abspath(a.kit)  # the config's paths are read from its folder
    if a.device == "cuda" and (shutil.which("nvidia-smi") is None or
                               subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode != 0):
        print("skipped: no GPU (nvidia-smi -L fails)")  # before writing weights (15 GB for the 7B)
        return 77
    work = os.path.join(a.work, a.preset)
    model_dir = make_model(a.bin, a.kit, a.preset, work)
    a.result = {"preset": a.preset, "recompute": a.recompute, "ours_auto": a.ours_checkpointing == "auto",
                "micro_batch_tokens": a.micro_batch_tokens,
                "flops_per_token": flops_per_token(model_dir)}
    ours = run_ours(a, model_dir, work)
    theirs = run_hf(a, model_dir) if a.device == "cuda" else None
    if ours and theirs:
        print("E2E ratio %s: qwen-sft / hf-peft tokens/s = %.2f" % (a.preset, ours / theirs))
    print("E2E_RESULT " + json.dumps(a.result))
    shutil.rmtree(work, ignore_errors=True)  # the 7B weights are 15 GB
    return 0 if ours else 1


if __name__ == "__main__":
    sys.exit(main())
