#!/usr/bin/env python3
"""Appends one JSON line per figure of a GPU run to a results file (bench/results.jsonl in the repository):
  {"date", "commit", "gpu", "bench", "metric", "value", "baseline", "baseline_value"}
from the outputs of the benches (tools/gpu-check.sh runs it over its $OUT logs and writes $OUT/results.jsonl; the
lead appends that to bench/results.jsonl with the committed run in bench/gpu-runs/):
  gpu_ops_bench          "ceilings: ..." and every "| op | size | tokens | ms | rate unit | ceil |" row: the rate,
                         against the GEMM or copy ceiling of the same run; the fused LoRA lines ("lora A dropout",
                         "lora dA dropout", "lora dB+du"): the fused op's ms against what it replaces
  gpu_attention_bench    each variant's forward/backward TFLOP/s, against torch SDPA flash (attention_torch_baseline.py)
  e2e_compare.py         "E2E_RESULT {json}": tokens/s, peak memory and MFU (model FLOPs per token x tokens/s over the
                         GEMM ceiling of the same run) against transformers + PEFT, our step share per op family, and
                         the longest GEMM shapes' share, TFLOP/s and GB/s against the run's GEMM and copy ceilings
  context_search.py      "CONTEXT_RESULT {json}": the longest trainable context against transformers + PEFT
  results_jsonl.py --out FILE --commit C --gpu NAME [--date D] LOG...
A figure missing from the logs is simply absent; a log that does not exist is skipped."""
import argparse
import datetime
import json
import os
import re
import sys

ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s+(TFLOP/s|GB/s)\s*\|")
CEIL = re.compile(r"^ceilings: bf16 GEMM \S+ ([\d.]+) TFLOP/s, device copy ([\d.]+) GB/s"
                  r"(?: \(read \+ write; cudaMemcpy ([\d.]+), 16-byte copy kernel ([\d.]+)\))?")
# "lora A dropout ... 7B T=16384 in=3584 n=3 r=16: fused 0.090 ms (...), dropout+gemm 0.287 ms (...): 3.19x" and
# "lora dB+du ... 7B T=16384 out=3584 r=16: fused ... ms (...), two GEMMs ... ms (...)": a fused op against what it
# replaces.
FUSED = re.compile(r"^lora (.+?)\s+7B (T=\d+ \S+(?: n=\d+)? r=\d+): fused ([\d.]+) ms \(.*?\), "
                   r"(dropout\+gemm|two GEMMs) ([\d.]+) ms")
ATT_SECTION = re.compile(r"^(\S+): T = \d+")
ATT_ROW = re.compile(r"^  (\S.*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.e+-]+\s+[\d.e+-]+$")
ATT_TORCH = re.compile(r"^  (\S+)\s+torch sdpa flash\s+fwd\s+[\d.]+ ms\s+([\d.]+) TF/s\s+bwd\s+[\d.]+ ms\s+([\d.]+) TF/s")


def figures(lines):
    """Yields (bench, metric, value, baseline, baseline_value) from the lines of every log."""
    gemm = copy = None
    attention, torch = {}, {}  # (shape, variant) -> (fwd, bwd); shape -> (fwd, bwd)
    section = None
    for line in lines:
        line = line.rstrip("\n")
        if m := CEIL.match(line):
            gemm, copy = float(m[1]), float(m[2])
            yield "gpu_ops_bench", "ceiling gemm bf16 8192^3 TFLOP/s", gemm, None, None
            if m[3]:
                yield "gpu_ops_bench", "ceiling copy kernel 16-byte GB/s", float(m[4]), "cudaMemcpy D2D", float(m[3])
        elif m := ROW.match(line):
            op, shape, tokens, rate, unit = m[1], m[2], m[3], float(m[5]), m[6]
            ceiling = ("gemm ceiling", gemm) if unit == "TFLOP/s" else ("copy ceiling", copy)
            if line.endswith("latency: not judged"):  # a synchronisation in the timing: no ceiling applies
                ceiling = (None, None)
            yield "gpu_ops_bench", "%s %s T=%s %s" % (op, shape, tokens, unit), rate, ceiling[0], ceiling[1]
        elif m := FUSED.match(line):
            yield "gpu_ops_bench", "lora %s 7B %s ms" % (m[1], m[2]), float(m[3]), m[4], float(m[5])
        elif m := ATT_SECTION.match(line):
            section = m[1]
        elif m := ATT_TORCH.match(line):
            torch[m[1]] = (float(m[2]), float(m[3]))
        elif section and (m := ATT_ROW.match(line)):
            attention[(section, m[1])] = (float(m[3]), float(m[5]))
        elif line.startswith("E2E_RESULT "):
            yield from e2e_figures(json.loads(line[len("E2E_RESULT "):]), gemm, copy)
        elif line.startswith("CONTEXT_RESULT "):
            r = json.loads(line[len("CONTEXT_RESULT "):])
            yield "context " + r["preset"], "longest trainable tokens", r.get("ours_longest"), "hf-peft", \
                r.get("hf_longest")
    for (shape, variant), (fwd, bwd) in attention.items():
        base = torch.get(shape, (None, None))
        yield "gpu_attention_bench", "%s %s fwd TFLOP/s" % (shape, variant), fwd, "torch sdpa flash", base[0]
        yield "gpu_attention_bench", "%s %s bwd TFLOP/s" % (shape, variant), bwd, "torch sdpa flash", base[1]


def e2e_figures(r, gemm_tflops, copy_gbs=None):
    bench = "e2e %s %dk" % (r["preset"], r.get("micro_batch_tokens", 16384) // 1024) + \
        (" recompute" if r.get("recompute") else "") + (" (ours: auto)" if r.get("ours_auto") else "")
    ours, hf = r.get("ours_tok_s"), r.get("hf_tok_s")
    hf_mb = r.get("hf_micro_batch_tokens", r.get("micro_batch_tokens", 16384))
    base = "hf-peft" if hf_mb == r.get("micro_batch_tokens", 16384) else "hf-peft %dk (out of memory at more)" % (
        hf_mb // 1024)
    yield bench, "tokens/s", ours, base, hf
    yield bench, "peak GPU memory GiB", r.get("ours_peak_gib"), base, r.get("hf_peak_gib")
    if gemm_tflops and r.get("flops_per_token"):
        mfu = lambda tok_s: None if tok_s is None else tok_s * r["flops_per_token"] / (gemm_tflops * 1e12)
        yield bench, "MFU (model FLOPs / GEMM ceiling of the run)", mfu(ours), base, mfu(hf)
    yield bench, "GPU busy (ops' device time / step wall time)", r.get("ours_gpu_busy"), None, None
    for family, share in r.get("ours_profile_share", {}).items():
        yield bench, "step share %% %s" % family, share, None, None
    for g in r.get("ours_gemm_shapes", []):  # the longest GEMM shapes: their rates against the run's ceilings
        shape = "GEMM %s %sx%sx%s" % (g["op"], g["M"], g["N"], g["K"])
        yield bench, shape + " step share %", g["share"], None, None
        yield bench, shape + " TFLOP/s", g["tflops"], "gemm ceiling", gemm_tflops
        yield bench, shape + " GB/s", g["gbs"], "copy ceiling", copy_gbs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ap.add_argument("logs", nargs="+")
    a = ap.parse_args()
    lines = []
    for path in a.logs:
        if os.path.exists(path):
            lines += open(path, errors="replace").readlines()
    n = 0
    with open(a.out, "a") as f:
        for bench, metric, value, baseline, baseline_value in figures(lines):
            if value is None:
                continue
            f.write(json.dumps({"date": a.date, "commit": a.commit, "gpu": a.gpu, "bench": bench, "metric": metric,
                                "value": value, "baseline": baseline, "baseline_value": baseline_value}) + "\n")
            n += 1
    print("results_jsonl: %d figures appended to %s" % (n, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
