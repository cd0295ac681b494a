#!/usr/bin/env python3
"""The bench's machine-readable figures: e2e_compare.py reads the QSFT_PROFILE table of a real `qwen-sft train`
(shares per op family, their total) and counts the model FLOPs per token from config.json; results_jsonl.py turns
lines in the formats gpu_ops_bench, gpu_attention_bench, attention_torch_baseline.py, e2e_compare.py and
context_search.py print into one JSON line per figure, with its baseline and MFU against the run's GEMM ceiling."""
import json
import os
import shutil
import subprocess
import sys

from e2e_common import REPO, expect, parse_args, run, tiny_model, work_dir, write_config

sys.path.insert(0, os.path.join(REPO, "bench"))
import e2e_compare  # noqa: E402


def check_profile_and_flops(bin_path, work):
    model = tiny_model(bin_path, os.path.join(work, "model"))
    cfg = write_config(os.path.join(work, "cfg.json"), model, os.path.join(work, "run"), max_steps=3,
                       top={"eval_steps": 0, "save_steps": 0})
    p = run(bin_path, "train", cfg, env=dict(os.environ, QSFT_PROFILE="1"))
    shares, total_ms = e2e_compare.profile_shares(p.stderr)
    expect(total_ms is not None and total_ms > 0, "no 'total (in ops)' in the profile:\n" + p.stderr[-2000:])
    expect({"linear (frozen)", "attention", "lm_head+CE", "optimizer"} <= set(shares), "families: %s" % shares)
    expect(abs(sum(shares.values()) - 100) < 1, "the shares do not add up to 100%%: %s" % shares)
    gemms = e2e_compare.profile_gemm_shapes(p.stderr)
    ops = {g["op"] for g in gemms}
    expect(gemms and any(o.startswith("linear ") or o == "linear" for o in ops) and
           any(o.startswith("linear_dgrad") for o in ops), "GEMM shape rows: %s\n%s" % (gemms, p.stderr[-3000:]))
    expect(all(g["M"] == "T" for g in gemms if g["op"].startswith("linear")), "the token dimension of the linear "
           "layers is T whatever the batch's count: %s" % gemms)
    expect(all(g["calls"] > 0 and all(g[d] == "T" or g[d] > 0 for d in "MNK") for g in gemms), "rows: %s" % gemms)
    expect([g["ms"] for g in gemms] == sorted((g["ms"] for g in gemms), reverse=True), "not longest first: %s" % gemms)
    c = json.load(open(os.path.join(model, "config.json")))
    H, I, L, n, kv = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["num_attention_heads"],
                      c["num_key_value_heads"])
    D = c.get("head_dim") or H // n
    want = 4 * (L * (H * (n + 2 * kv) * D + n * D * H + 3 * H * I) + c["vocab_size"] * H) + \
        L * 4 * n * D * 4097 / 2 * 3.5
    expect(abs(e2e_compare.flops_per_token(model) - want) < 1, "flops_per_token %s != %s" %
           (e2e_compare.flops_per_token(model), want))


def bench_lines():
    """Lines as the benches print them (the C++ printf formats, reproduced)."""
    row = "| %-22s | %-4s | %6d | %9.3f | %9.1f %-6s | %5.1f%% |"
    e2e = {"preset": "qwen2.5-7b", "recompute": True, "micro_batch_tokens": 16384, "flops_per_token": 31.2e9,
           "ours_profile_share": {"lm_head+CE": 4.5}, "ours_tok_s": 15000.0, "ours_peak_gib": 40.0,
           "ours_gpu_busy": 0.98, "hf_tok_s": 5000.0, "hf_peak_gib": 60.0,
           "ours_gemm_shapes": [{"op": "gemm NT +=", "M": "T", "N": 18944, "K": 16, "calls": 140, "ms": 93.0,
                                 "share": 2.0, "tflops": 95.0, "gbs": 3500.0}]}
    return [
        "ceilings: bf16 GEMM 8192^3 780.0 TFLOP/s, device copy 4000.0 GB/s (read + write; cudaMemcpy 3900.0, "
        "16-byte copy kernel 4000.0)",
        row % ("gemm qkv", "7B", 8192, 0.5, 600.0, "TFLOP/s", 76.9),
        row % ("rmsnorm_fwd", "7B", 8192, 0.03, 3600.0, "GB/s", 90.0),
        row % ("ce rows 03 cluster of 4, row in smem", "7B", 4096, 0.9, 4100.0, "GB/s", 102.5),
        row % ("sum_squares to host", "7B", 40370176, 0.069, 2355.9, "GB/s", 55.4) + " latency: not judged",
        "lora dA dropout 7B T=16384 in=3584 n=3 r=16: fused 0.100 ms (1174 GB/s of x, 28% of copy), dropout+gemm "
        "0.300 ms (391 GB/s, 9%): 3.00x",
        "lora dB+du      7B T=16384 out=18944 r=16: fused 0.200 ms (3103 GB/s of dy, 73% of copy), two GEMMs 0.500 ms "
        "(1241 GB/s, 29%): 2.50x",
        "",
        "7B: T = 16384 (4 x 4096 causal), heads 28/4, D = 128; forward 0.96 TFLOP, backward 2.40 TFLOP",
        "  %-28s %10s %10s %10s %10s %12s %12s" % ("variant", "fwd ms", "fwd TF/s", "bwd ms", "bwd TF/s",
                                                   "|out-first|", "|dq-first|"),
        "  %-28s %10.3f %10.1f %10.3f %10.1f %12.2e %12.2e" % ("mma large (production)", 2.0, 480.0, 6.0, 400.0, 0, 0),
        "  %-6s torch sdpa flash  fwd %8.3f ms %7.1f TF/s   bwd %8.3f ms %7.1f TF/s" % ("7B", 2.1, 460.0, 6.5, 370.0),
        "E2E_RESULT " + json.dumps(e2e),
        "E2E_RESULT " + json.dumps(dict(e2e, preset="qwen2.5-14b", hf_micro_batch_tokens=8192, hf_tok_s=1500.0)),
        "CONTEXT_RESULT " + json.dumps({"preset": "qwen2.5-7b", "ours_longest": 131072, "hf_longest": 32768}),
    ]


def check_results_jsonl(work):
    log, out = os.path.join(work, "bench.log"), os.path.join(work, "results.jsonl")
    open(log, "w").write("\n".join(bench_lines()) + "\n")
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "results_jsonl.py"), "--out", out, "--commit",
                    "abc1234", "--gpu", "NVIDIA H200", log, os.path.join(work, "absent.log")], check=True)
    rows = [json.loads(line) for line in open(out)]
    keys = {"date", "commit", "gpu", "bench", "metric", "value", "baseline", "baseline_value"}
    expect(all(set(r) == keys and r["commit"] == "abc1234" and r["gpu"] == "NVIDIA H200" for r in rows),
           "fields: %s" % rows[:2])
    by = {(r["bench"], r["metric"]): r for r in rows}

    def get(bench, metric):
        expect((bench, metric) in by, "no figure %s / %s in %s" % (bench, metric, sorted(by)))
        return by[(bench, metric)]

    expect(get("gpu_ops_bench", "rmsnorm_fwd 7B T=8192 GB/s")["baseline_value"] == 4000.0, "copy ceiling")
    expect(get("gpu_ops_bench", "gemm qkv 7B T=8192 TFLOP/s")["baseline_value"] == 780.0, "gemm ceiling")
    get("gpu_ops_bench", "ce rows 03 cluster of 4, row in smem 7B T=4096 GB/s")
    latency = get("gpu_ops_bench", "sum_squares to host 7B T=40370176 GB/s")
    expect(latency["baseline"] is None and latency["baseline_value"] is None, "a latency row: %s" % latency)
    expect(get("gpu_ops_bench", "ceiling copy kernel 16-byte GB/s")["baseline_value"] == 3900.0, "memcpy")
    da = get("gpu_ops_bench", "lora dA dropout 7B T=16384 in=3584 n=3 r=16 ms")
    expect(da["value"] == 0.1 and da["baseline"] == "dropout+gemm" and da["baseline_value"] == 0.3, "dA: %s" % da)
    dbdu = get("gpu_ops_bench", "lora dB+du 7B T=16384 out=18944 r=16 ms")
    expect(dbdu["value"] == 0.2 and dbdu["baseline"] == "two GEMMs" and dbdu["baseline_value"] == 0.5,
           "dB+du: %s" % dbdu)
    att = get("gpu_attention_bench", "7B mma large (production) bwd TFLOP/s")
    expect(att["value"] == 400.0 and att["baseline_value"] == 370.0, "attention vs sdpa: %s" % att)
    e2e = "e2e qwen2.5-7b 16k recompute"
    tok = get(e2e, "tokens/s")
    expect(tok["value"] == 15000.0 and tok["baseline_value"] == 5000.0, "tokens/s: %s" % tok)
    expect(tok["baseline"] == "hf-peft", "the baseline at our micro-batch: %s" % tok)
    small = get("e2e qwen2.5-14b 16k recompute", "tokens/s")
    expect(small["baseline"] == "hf-peft 8k (out of memory at more)" and small["baseline_value"] == 1500.0,
           "a baseline that ran at a smaller micro-batch says so: %s" % small)
    mfu = get(e2e, "MFU (model FLOPs / GEMM ceiling of the run)")
    expect(abs(mfu["value"] - 15000 * 31.2e9 / 780e12) < 1e-9, "MFU: %s" % mfu)
    expect(get(e2e, "step share % lm_head+CE")["value"] == 4.5, "share")
    expect(get(e2e, "GPU busy (ops' device time / step wall time)")["value"] == 0.98, "busy")
    lora_up = get(e2e, "GEMM gemm NT += Tx18944x16 GB/s")
    expect(lora_up["value"] == 3500.0 and lora_up["baseline"] == "copy ceiling" and lora_up["baseline_value"] == 4000.0,
           "a GEMM shape's GB/s against the copy ceiling: %s" % lora_up)
    expect(get(e2e, "GEMM gemm NT += Tx18944x16 TFLOP/s")["baseline_value"] == 780.0, "against the GEMM ceiling")
    expect(get("context qwen2.5-7b", "longest trainable tokens")["baseline_value"] == 32768, "context")


def check_hf_out_of_memory_retry():
    """The baseline out of GPU memory runs again at half the micro-batch (a stand-in for hf_peft.py)."""
    asked = []
    hf = {"tok_s": 1500.0, "s_per_step": 5.0, "tok_per_step": 8192, "steps": 6, "final_loss": 12.0,
          "max_reserved_gib": 130.0, "profile_ms_by_family": {}, "packed_mask": "block-diagonal"}

    def fake_run(cmd, **kw):
        mb = int(cmd[cmd.index("--micro-batch") + 1])
        asked.append(mb)
        if mb > 8192:
            return subprocess.CompletedProcess(cmd, 1, "", "torch.OutOfMemoryError: CUDA out of memory. Tried...")
        return subprocess.CompletedProcess(cmd, 0, "HF_RESULT " + json.dumps(hf) + "\n", "")

    class A:
        preset, kit, steps, recompute, micro_batch_tokens, result = "qwen2.5-14b", "kit", 6, True, 16384, {}
    real = e2e_compare.subprocess.run
    e2e_compare.subprocess.run = fake_run
    try:
        tok_s = e2e_compare.run_hf(A, "model")
    finally:
        e2e_compare.subprocess.run = real
    expect(asked == [16384, 8192] and tok_s == 1500.0, "asked %s, got %s" % (asked, tok_s))
    expect(A.result["hf_micro_batch_tokens"] == 8192, "result: %s" % A.result)


def main():
    a = parse_args()
    work = work_dir("bench_results")
    check_results_jsonl(work)
    check_hf_out_of_memory_retry()
    check_profile_and_flops(a.bin, work)
    shutil.rmtree(work)
    print("bench results: ok")


if __name__ == "__main__":
    main()
