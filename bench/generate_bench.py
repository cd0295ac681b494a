#!/usr/bin/env python3
"""Generation throughput: `qwen-sft generate` (KV cache, continuous batching) against transformers' generate() on
the same random model of a preset (qwen-sft init-model) and the same device, greedy, every sequence forced to
--new-tokens tokens (qwen-sft --ignore-eos; transformers min_new_tokens), short chat prompts (prefill is a small
part), at batch 1 and 32. Prints per batch: tokens/s of each side (generated tokens / wall time of generation,
model loading excluded) and the ratio; on cuda ours also with its decode steps run eagerly (QSFT_DECODE_GRAPHS=0)
next to the default (CUDA graphs: engine/generate/decode_graphs.h). Run by tools/gpu-check.sh (stage bench-generate).
--context N puts about N filler tokens before each prompt: decode then reads long KV caches (the split-K decode
attention at small batches); the prefill of those tokens is inside the timed generation on both sides.
  generate_bench.py --bin QWEN_SFT [--kit build-gpucarry] --preset qwen2.5-0.5b --device cuda [--batches 1,32]
  generate_bench.py --bin QWEN_SFT --preset qwen2.5-0.5b --device cuda --batches 1,8 --context 8192
  generate_bench.py --bin build/qwen-sft --preset tiny --device cpu --batches 1,4   (checks this script)"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
from generate_parity_test import make_model  # noqa: E402  the preset's random model with a real tokenizer


def prompts(n, context=0):
    filler = " ".join(["the"] * context) + "\n" if context else ""  # " the": one token each in Qwen's BPE
    return [[{"role": "user", "content": f"{filler}Tell me a story about the number {i}."}] for i in range(n)]


def ours(a, model, batch, d, graphs=True):
    path = os.path.join(d, f"prompts{batch}.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(p) + "\n" for p in prompts(batch, a.context)))
    p = subprocess.run([a.bin, "generate", "--model", model, "--prompts", path, "--greedy", "--ignore-eos",
                        "--max-new-tokens", str(a.new_tokens), "--batch-size", str(batch), "--device", a.device],
                       capture_output=True, text=True, env={**os.environ, "QSFT_DECODE_GRAPHS": "1" if graphs else "0"})
    m = re.search(r"\(([0-9.]+) tokens/s", p.stderr)
    if p.returncode != 0 or not m:
        print(f"qwen-sft generate failed (rc {p.returncode}): {p.stderr[-2000:]}")
        return None
    return float(m.group(1))


def theirs(a, model, batch):
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        print(f"transformers side skipped: no {e.name}")
        return None
    tok = AutoTokenizer.from_pretrained(model, padding_side="left")
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    m = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(a.device).eval()
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts(batch, a.context)]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(a.device)
    kw = dict(do_sample=False, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
              pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    with torch.no_grad():
        m.generate(**enc, **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        if a.device == "cuda":
            torch.cuda.synchronize()
        t = time.time()
        out = m.generate(**enc, **kw)
        if a.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t
    return batch * (out.shape[1] - enc.input_ids.shape[1]) / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--kit", default="")
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--context", type=int, default=0, help="filler tokens before each prompt (long KV caches)")
    a = ap.parse_args()
    if a.device == "cuda" and (not shutil.which("nvidia-smi")
                               or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode != 0):
        print("skipped: no GPU (nvidia-smi -L fails)")
        return 77
    d = tempfile.mkdtemp(prefix="qsft_generate_bench_")
    try:
        model = make_model(a, d)
        ok = True
        for b in [int(x) for x in a.batches.split(",")]:
            x, y = ours(a, model, b, d), theirs(a, model, b)
            eager = ours(a, model, b, d, graphs=False) if a.device == "cuda" else None
            ok = ok and x is not None
            ratio = f"ratio {x / y:.2f}" if x and y else ""
            context = f", context {a.context}" if a.context else ""
            graphs = f" (graphs off: {eager:.1f} tokens/s)" if eager else ""
            print(f"GEN {a.preset} {a.device} batch {b}{context}, {a.new_tokens} new tokens: qwen-sft "
                  f"{x or 0:.1f} tokens/s{graphs}, transformers {y or 0:.1f} tokens/s {ratio}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
