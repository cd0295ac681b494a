#!/usr/bin/env python3
"""The transformers + PEFT baseline of the end-to-end benchmark (bench/e2e_compare.py): the same model folder,
data files and LoRA as the qwen-sft run, trained the way a tuned Hugging Face script would: bf16 weights, sdpa
attention, padding-free packed micro-batches (sequences of at most 4096 tokens packed first-fit-decreasing into
4096-token bins, 4 bins = 16384 tokens per micro-batch, one [1, T] row with position_ids restarting per sequence),
LoRA r16 all-linear (alpha 32, dropout 0.05, fp32 adapter weights), torch AdamW, gradient clipping at 1.0.
Every token is a label except each sequence's first (the throughput does not depend on the mask: transformers
computes the logits of every position either way).
Prints one "HF_RESULT {json}" line: steady-state tokens/s over steps 3..N (CUDA-synchronised wall clock per step),
s/step, tokens/step, torch's peak reserved memory, the final loss, and the CUDA time of one profiled step by family.
Exits 77 when torch, transformers, peft or a GPU is missing.
  hf_peft.py --model DIR --data DIR --steps 12 [--recompute] [--bin 4096 --micro-batch 16384] [--no-profile]
(bench/context_search.py sets --bin and --micro-batch to the context length it tries, 2 steps and --no-profile: the
speed figures need 3 steps or more, and are then left out.)"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as e:
    print("skipped: %s is not installed" % e.name)
    sys.exit(77)

FAMILIES = [("gemm", ("gemm", "gemv", "cutlass", "xmma", "nvjet", "cublas", "matmul")),
            ("attention", ("flash", "fmha", "attention", "sdpa", "efficient")),
            ("loss", ("cross_entropy", "log_softmax", "nll")),
            ("optimizer", ("adam", "foreach", "multi_tensor"))]


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def records(data_dir):
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        with open(path, encoding="utf-8") as f:
            items = [json.loads(l) for l in f if l.strip()] if name.endswith(".jsonl") else json.load(f)
        yield from items


def micro_batches(tokenizer, data_dir, bin_tokens, micro_batch):
    """Lists of token-id sequences, each list packing into micro_batch // bin_tokens bins of bin_tokens tokens."""
    seqs = [tokenizer("\n".join(strings(r)))["input_ids"][:bin_tokens] for r in records(data_dir)]
    seqs = [s for s in seqs if len(s) > 1]
    bins = []  # [free, [seq, ...]]
    for s in sorted(seqs, key=len, reverse=True):
        for b in bins:
            if b[0] >= len(s):
                b[0] -= len(s)
                b[1].append(s)
                break
        else:
            bins.append([bin_tokens - len(s), [s]])
    per = micro_batch // bin_tokens
    return [sum((b[1] for b in bins[i:i + per]), []) for i in range(0, len(bins) - per + 1, per)]


def to_device(seqs):
    ids = torch.tensor([t for s in seqs for t in s], device="cuda")[None]
    pos = torch.tensor([p for s in seqs for p in range(len(s))], device="cuda")[None]
    labels = ids.clone()
    labels[pos == 0] = -100  # no target crosses into a sequence from the one before
    return ids, pos, labels


def family_times(prof):
    totals = {}
    for e in prof.key_averages():
        us = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        if us <= 0:
            continue
        name = e.key.lower()
        fam = next((f for f, keys in FAMILIES if any(k in name for k in keys)), "elementwise/other")
        totals[fam] = totals.get(fam, 0.0) + us / 1e3
    return {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def packed_mask_support():
    """transformers >= 4.56 builds sdpa's block-diagonal causal mask from position_ids that restart (padding-free)."""
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
        return "block-diagonal from position_ids"
    except ImportError:
        return "not detected: sdpa attends across the packed sequences in this transformers"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--recompute", action="store_true")
    ap.add_argument("--bin", type=int, default=4096, help="tokens per packed bin (the longest sequence)")
    ap.add_argument("--micro-batch", type=int, default=16384, help="tokens per micro-batch (whole bins)")
    ap.add_argument("--no-profile", action="store_true", help="no extra step under torch.profiler")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device for torch")
        sys.exit(77)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    batches = micro_batches(tokenizer, a.data, a.bin, a.micro_batch)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    if a.recompute:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    model.train()

    def step(i):
        ids, pos, labels = to_device(batches[i % len(batches)])
        # use_cache=False: with a cache transformers does not detect the packed sequences (attention would cross them)
        loss = model(input_ids=ids, position_ids=pos, labels=labels, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss), ids.shape[1]

    points, tokens, t0, loss = [], 0, time.time(), 0.0
    for i in range(a.steps):
        loss, n = step(i)  # float(loss) synchronises
        torch.cuda.synchronize()
        tokens += n
        points.append((tokens, time.time() - t0))
        print("step %d: loss %.4f, %d tokens, %.3f s" % (i + 1, loss, n, points[-1][1] - (points[-2][1] if i else 0)))
    speed = {}
    if len(points) >= 3:  # steady state: steps 3..N
        (n0, e0), (n1, e1) = points[1], points[-1]
        steps = len(points) - 2
        speed = {"tok_s": (n1 - n0) / (e1 - e0), "s_per_step": (e1 - e0) / steps, "tok_per_step": (n1 - n0) / steps}
    if not a.no_profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            step(a.steps)
            torch.cuda.synchronize()
        speed["profile_ms_by_family"] = family_times(prof)
    print("HF_RESULT " + json.dumps({
        **speed, "steps": len(points), "final_loss": loss,
        "max_reserved_gib": torch.cuda.max_memory_reserved() / 2**30, "micro_batches": len(batches),
        "torch": torch.__version__, "packed_mask": packed_mask_support(),
        "gradient_checkpointing": "on (use_reentrant=False)" if a.recompute else "off"}))


if __name__ == "__main__":
    main()
