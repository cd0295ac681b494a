#!/usr/bin/env python3
"""How far a bf16 forward/backward is from the exact one on the GPU step tests' fixtures and batches, measured with
torch on the CPU: the scale of the tolerances in tests/gpu/gpu_model_step_test.cpp and gpu_full_ft_step_test.cpp
(our CUDA step in bf16 against our fp32 CPU step).
For each fixture (tests/data/fixtures/{tied,untied,qwen3}) and its packed batch (each sequence run on its own,
positions from 0, as tools/make_fixtures.py does), the loss and gradients of
  - LoRA (the fixture's adapter with B ~ U(-0.05, 0.05) as the GPU test draws it), base weights and activations
    bf16, the adapter fp32 (PEFT's default for a bf16 base) and all-bf16 (the adapter cast too);
  - LoRA r 16 with lora_dropout 0.05 and every LoRA parameter ~ U(-0.1, 0.1) (GpuModelStep.DropoutR16OneStepMatchesCpu;
    the masks depend only on the module and the call, so the bf16 and float64 runs drop the same elements);
  - full fine-tuning (the whole model bf16),
against the same in float64. Prints per case the worst relative L2 error and cosine over the gradients and the
loss's relative difference. Needs torch, transformers, peft, safetensors; exits 77 without them.
  bf16_grad_noise.py [--fixtures tests/data/fixtures] [--seeds 3]"""
import argparse
import copy
import json
import os
import sys

try:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"skipped: {e.name} is not installed")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def batch_of(case_dir):
    g = json.load(open(os.path.join(case_dir, "golden.json")))
    return g["input_ids"], g["targets"], g["cu_seqlens"]


def loss_and_grads(model, batch):
    """Mean cross-entropy over the targets of the packed batch (each sequence alone) and every trainable gradient,
    as float64 on the CPU."""
    ids, targets, cu = batch
    model.zero_grad(set_to_none=True)
    for m in model.modules():
        if isinstance(m, FixedDropout):
            m.calls = 0
    logits = []
    for s in range(len(cu) - 1):
        x = torch.tensor(ids[cu[s]:cu[s + 1]])[None]
        logits.append(model(input_ids=x, position_ids=torch.arange(x.shape[1])[None], use_cache=False).logits[0])
    loss = torch.nn.functional.cross_entropy(torch.cat(logits).double(), torch.tensor(targets), ignore_index=-100)
    loss.backward()
    return float(loss), {n: p.grad.double().flatten() for n, p in model.named_parameters() if p.grad is not None}


def worst(grads, exact):
    """(largest rel. L2 error, its name), (smallest cosine, its name) over the gradients."""
    rel, cos = [], []
    for n, e in exact.items():
        g = grads[n]
        rel.append((float((g - e).norm() / e.norm()), n))
        cos.append((float(torch.nn.functional.cosine_similarity(g, e, dim=0)), n))
    return max(rel), min(cos)


def lora_models(case_dir, seed):
    """float64, bf16 base + fp32 adapter, all-bf16: the fixture's adapter with B ~ U(-0.05, 0.05)."""
    base = AutoModelForCausalLM.from_pretrained(os.path.join(case_dir, "model"), dtype=torch.float64)
    exact = PeftModel.from_pretrained(base, os.path.join(case_dir, "adapter"), is_trainable=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in exact.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64) * 0.1 - 0.05)
    mixed = copy.deepcopy(exact)
    for n, p in mixed.named_parameters():
        p.data = p.data.float() if "lora_" in n else p.data.bfloat16()
    for n, b in mixed.named_buffers():
        if b.is_floating_point():
            b.data = b.data.float()
    return exact, mixed, copy.deepcopy(mixed).bfloat16()


class FixedDropout(torch.nn.Module):
    """Inverted dropout whose mask is a function of (module seed, call number) alone, drawn in float64: runs of the
    same model in two dtypes drop the same elements. x * keep * 1/(1-p) in x's dtype, as our kernels round it."""

    def __init__(self, p, seed):
        super().__init__()
        self.p, self.seed, self.calls = p, seed, 0

    def forward(self, x):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.calls)
        self.calls += 1
        keep = torch.rand(x.shape, generator=g, dtype=torch.float64) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


def dropout_r16_models(case_dir, seed, p=0.05):
    """float64 and all-bf16 (ours on the GPU: bf16 copies of A and B) of the fixture's adapter made r 16 with
    lora_dropout p, every LoRA parameter ~ U(-0.1, 0.1), as DropoutR16OneStepMatchesCpu draws them."""
    base = AutoModelForCausalLM.from_pretrained(os.path.join(case_dir, "model"), dtype=torch.float64)
    cfg = LoraConfig.from_pretrained(os.path.join(case_dir, "adapter"))
    cfg.r, cfg.lora_dropout, cfg.inference_mode = 16, p, False
    exact = get_peft_model(base, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, q in exact.named_parameters():
            if "lora_" in n:
                q.copy_(torch.rand(q.shape, generator=gen, dtype=torch.float64) * 0.2 - 0.1)
    k = 0
    for m in exact.modules():
        if hasattr(m, "lora_dropout"):
            for name in list(m.lora_dropout.keys()):
                m.lora_dropout[name] = FixedDropout(p, seed * 1000 + k)
                k += 1
    assert k > 0, "no LoRA dropout module found"
    return exact, copy.deepcopy(exact).bfloat16()


def report(what, batch, model, exact_loss, exact_grads):
    loss, grads = loss_and_grads(model, batch)
    (rel, rel_name), (cos, cos_name) = worst(grads, exact_grads)
    print(f"{what}: loss rel. diff {abs(loss - exact_loss) / exact_loss:.2e}; worst rel. L2 {rel:.2e} ({rel_name}), "
          f"worst cosine {cos:.6f} ({cos_name})")
    return rel, cos


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "data", "fixtures"))
    ap.add_argument("--seeds", type=int, default=3, help="draws of B per LoRA case")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    summary = {}
    for case in ("tied", "untied", "qwen3"):
        d = os.path.join(a.fixtures, case)
        batch = batch_of(d)
        for seed in range(a.seeds):
            exact, mixed, all_bf16 = lora_models(d, 61 + seed)
            loss, grads = loss_and_grads(exact, batch)
            for name, model in (("lora bf16 base + fp32 adapter", mixed), ("lora all bf16", all_bf16)):
                r = report(f"{case} seed {seed} {name}", batch, model, loss, grads)
                summary.setdefault(name, []).append(r)
            exact, all_bf16 = dropout_r16_models(d, 63 + seed)
            loss, grads = loss_and_grads(exact, batch)
            name = "lora r16 dropout 0.05 all bf16"
            summary.setdefault(name, []).append(report(f"{case} seed {seed} {name}", batch, all_bf16, loss, grads))
        exact = AutoModelForCausalLM.from_pretrained(os.path.join(d, "model"), dtype=torch.float64)
        loss, grads = loss_and_grads(exact, batch)
        r = report(f"{case} full fine-tuning bf16", batch, copy.deepcopy(exact).bfloat16(), loss, grads)
        summary.setdefault("full fine-tuning bf16", []).append(r)
    for name, rs in summary.items():
        print(f"== {name}: over {len(rs)} runs worst rel. L2 {max(r for r, _ in rs):.2e}, "
              f"worst cosine {min(c for _, c in rs):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
