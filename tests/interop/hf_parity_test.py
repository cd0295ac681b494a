#!/usr/bin/env python3
"""One training step of qwen-sft against transformers + PEFT on the same weights, adapter and packed batch:
the qwen2.5-0.5b preset with random bf16 weights (qwen-sft init-model), LoRA r16 all-linear with random A and B
(PEFT creates and saves it; we read the saved adapter), a padding-free packed batch of mixed-length sequences
(position_ids restarting per sequence) with masked targets. `qwen-sft grads` gives our loss and every LoRA
gradient; the reference is PeftModel's loss.backward() on the same batch.
  - CUDA backend vs the reference in bf16 with sdpa on the same GPU (when both have a GPU): loss within 1e-2
    relative, every LoRA gradient cosine >= 0.99;
  - CPU backend vs the reference in fp32 on the CPU: loss within 1e-4 relative, cosine >= 0.9999;
  - on each device, that the reference's packed path keeps sequences apart (fp32: packing_leak).
Prints one "hf-parity ..." line per comparison with the worst module. Needs torch, transformers, peft and
safetensors; without them it prints why and exits 77 (skipped), as it does when neither comparison can run.
  hf_parity_test.py --bin build/qwen-sft [--preset tiny] [--device cpu|cuda|both]"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"skipped: {e.name} is not installed (pip install torch transformers peft safetensors)")
    sys.exit(77)

LENGTHS = [37, 211, 5, 402, 96]  # mixed lengths, one very short
TOLERANCE = {"cuda": (1e-2, 0.99), "cpu": (1e-4, 0.9999)}  # (loss rel. difference, min gradient cosine)
LEAK_TOLERANCE = 1e-4  # the reference's packing leak in fp32 (packing_leak)


def make_adapter(model_dir, out_dir):
    """PEFT's LoRA r16 all-linear on the model, with B random too (PEFT's B = 0 would give A no gradient)."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                           task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.02)
    peft.save_pretrained(out_dir)
    return base.config.vocab_size


def make_batch(vocab, path):
    """ids, targets (next token, -100 over each sequence's first ~40% = the prompt, and at its end), cu_seqlens."""
    gen = torch.Generator().manual_seed(11)
    ids, targets, cu = [], [], [0]
    for n in LENGTHS:
        seq = torch.randint(0, vocab, (n,), generator=gen).tolist()
        prompt = max(1, int(0.4 * n))
        targets += [seq[t + 1] if prompt <= t + 1 < n else -100 for t in range(n)]
        ids += seq
        cu.append(cu[-1] + n)
    batch = {k: torch.tensor(v, dtype=torch.int32) for k, v in (("ids", ids), ("targets", targets), ("cu_seqlens", cu))}
    save_file(batch, path)
    return batch


def reference(model_dir, adapter_dir, batch, device):
    """transformers + PEFT: the mean cross-entropy over the trained targets and d loss / d every LoRA matrix."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa").to(device)
    model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True).to(device)
    cu = batch["cu_seqlens"].tolist()
    ids = batch["ids"].long().to(device)[None]
    pos = torch.cat([torch.arange(cu[s + 1] - cu[s]) for s in range(len(cu) - 1)]).to(device)[None]
    targets = batch["targets"].long().to(device)
    logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0]  # a cache turns packing detection off
    loss = torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-100)
    loss.backward()
    grads = {n.replace(".default", ""): p.grad.float().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss), grads


def packing_leak(model_dir, batch, device):
    """Whether transformers' padding-free path (position_ids restarting per sequence) keeps sequences apart: the
    last sequence's logits inside the packed batch against the same sequence alone, max |difference| / max |logit|.
    A property of that code path, not of the dtype, so measured in fp32 (no TF32) on `device`: rounding gives
    ~1e-6 there, while in bf16 the two runs' different shapes alone differ by ~2e-2; attention across sequences
    (the last one seeing the 751 tokens before it) changes its logits by O(1) of their scale."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
        model = model.to(device).eval()
        cu = batch["cu_seqlens"].tolist()
        ids = batch["ids"].long().to(device)[None]
        pos = torch.cat([torch.arange(cu[s + 1] - cu[s]) for s in range(len(cu) - 1)]).to(device)[None]
        with torch.no_grad():
            packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0, cu[-2]:]
            alone = model(input_ids=ids[:, cu[-2]:], position_ids=pos[:, cu[-2]:], use_cache=False).logits[0]
        return float((alone - packed).abs().max() / alone.abs().max())
    finally:
        torch.set_float32_matmul_precision(precision)


def compare(a, device, model_dir, adapter_dir, batch_path, batch, work):
    out = os.path.join(work, f"grads_{device}.safetensors")
    p = subprocess.run([a.bin, "grads", "--model", model_dir, "--adapter", adapter_dir, "--batch", batch_path,
                        "--out", out, "--device", device], capture_output=True, text=True)
    if p.returncode != 0 and "built without the CUDA backend" in p.stderr:
        print(f"hf-parity {device}: skipped (this qwen-sft has no CUDA backend)")
        return True
    if p.returncode != 0:
        print(f"hf-parity {device}: qwen-sft grads failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
        return False
    ours = load_file(out)
    ref_loss, ref_grads = reference(model_dir, adapter_dir, batch, device)
    leak = packing_leak(model_dir, batch, device)
    loss = float(ours.pop("loss")[0])
    loss_tol, cos_min = TOLERANCE[device]
    missing = sorted(set(ref_grads) ^ set(ours))
    worst = min((float(torch.nn.functional.cosine_similarity(ours[k].flatten().double(),
                                                            ref_grads[k].flatten().double(), dim=0)), k)
                for k in ref_grads if k in ours)
    rel = abs(loss - ref_loss) / abs(ref_loss)
    ok = rel <= loss_tol and worst[0] >= cos_min and not missing and leak <= LEAK_TOLERANCE
    print(f"hf-parity {device} {a.preset}: loss ours {loss:.6f} ref {ref_loss:.6f} rel. diff {rel:.2e} "
          f"(<= {loss_tol:.0e}); {len(ref_grads)} LoRA gradients, worst cosine {worst[0]:.6f} ({worst[1]}, "
          f">= {cos_min}); reference packing leak (fp32) {leak:.1e} (<= {LEAK_TOLERANCE:.0e}); "
          f"{'ok' if ok else 'FAILED'}")
    if missing:
        print(f"hf-parity {device}: gradients present on one side only: {missing[:6]}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--build")
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--device", default="both", choices=["cpu", "cuda", "both"])
    a = ap.parse_args()
    devices = ["cuda", "cpu"] if a.device == "both" else [a.device]
    if "cuda" in devices and not torch.cuda.is_available():
        print("hf-parity cuda: skipped (torch sees no CUDA device)")
        devices.remove("cuda")
    if not devices:
        print("skipped: no comparison can run here")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="qsft-hf-parity-")
    try:
        model_dir, adapter_dir = os.path.join(work, "model"), os.path.join(work, "adapter")
        subprocess.run([a.bin, "init-model", "--preset", a.preset, "--out", model_dir], check=True,
                       stdout=subprocess.DEVNULL)
        vocab = make_adapter(model_dir, adapter_dir)
        batch_path = os.path.join(work, "batch.safetensors")
        batch = make_batch(vocab, batch_path)
        results = [compare(a, d, model_dir, adapter_dir, batch_path, batch, work) for d in devices]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
