#!/usr/bin/env python3
"""A model folder saved by transformers + bitsandbytes in 4-bit form (save_pretrained of a BitsAndBytesConfig
(load_in_4bit=True) model, quantized on the CPU) loads in qwen-sft as saved, for nf4 and fp4, plain and
double-quantized:
- our dequantized weights are bitsandbytes' dequantize_4bit bit for bit: the logits of qwen-sft over the 4-bit
  folder equal, exactly, its logits over a dense folder of bitsandbytes' dequantized weights (the CPU 4-bit linear is
  the dense linear over the dequantized weight, bit for bit: tests/unit/ops_nf4_test.cpp);
- they match the bitsandbytes model's own logits (fp32 on both sides) to fp32 rounding;
- LoRA trains over the folder (no quantization keys in the run config: the folder's config.json decides), a run
  asking for another 4-bit format and full fine-tuning are refused (exit 2), and so is export --merge onto the 4-bit
  folder (it needs the bf16 or fp32 model).
Needs torch, transformers and bitsandbytes (its CPU path is enough); without bitsandbytes it prints why and exits 77
(skipped)."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import curve, expect, parse_args, run, tiny_model, work_dir, write_config  # noqa: E402

try:
    import bitsandbytes  # noqa: F401
except ImportError:
    print("skipped: bitsandbytes is not installed (pip install bitsandbytes), needed to save a 4-bit model")
    sys.exit(77)
from peft_roundtrip_test import SEQS, hf_logits, rel_max  # noqa: E402
import torch  # noqa: E402
from bitsandbytes.functional import dequantize_4bit  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402

TOL = 1e-5  # ours vs bitsandbytes' logits: the same weights, GEMMs summed in another order


def ours(a, d, model_dir):
    out = os.path.join(d, "logits.safetensors")
    run(a.bin, "logits", "--model", model_dir, "--out", out, "--ids", ";".join(",".join(map(str, s)) for s in SEQS))
    return load_file(out)["logits"]


def save_4bit(model_dir, out, quant_type, double_quant):
    """The bitsandbytes 4-bit model of model_dir (fp32 compute, its AVX512-BF16 kernels off), saved into out."""
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                             bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=torch.float32)
    m = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=bnb, dtype=torch.float32,
                                             device_map="cpu")
    for mod in m.modules():
        if hasattr(mod, "support_avx512bf16_for_cpu"):
            mod.support_avx512bf16_for_cpu = False
    m.save_pretrained(out)
    for f in os.listdir(model_dir):  # the tokenizer, for training
        if f.startswith("tokenizer") or f == "vocab.json" or f == "merges.txt":
            shutil.copy(os.path.join(model_dir, f), out)
    return m


def save_dequantized(model_dir, m4, out):
    """model_dir's model with every 4-bit Linear replaced by bitsandbytes' dequantize_4bit of m4's, saved dense."""
    dense = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    modules = dict(dense.named_modules())
    n = 0
    for name, mod in m4.named_modules():
        if isinstance(mod, bitsandbytes.nn.Linear4bit):
            w = dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
            modules[name].weight.data.copy_(w)
            n += 1
    dense.save_pretrained(out)
    return n


def trains_over(a, d, model_dir, name):
    cfg = write_config(os.path.join(d, name + ".json"), model_dir, os.path.join(d, name), max_steps=4,
                       learning_rate=5e-3)
    run(a.bin, "train", cfg, "--quiet")
    losses = [m["loss"] for m in curve(os.path.join(d, name)) if "loss" in m]
    expect(len(losses) == 4 and losses[-1] < losses[0], f"LoRA over the saved 4-bit folder: losses {losses}")
    return losses


def refused(a, d, model_dir, name, edit, what):
    cfg = write_config(os.path.join(d, name + ".json"), model_dir, os.path.join(d, name), max_steps=1)
    c = json.load(open(cfg))
    edit(c)
    json.dump(c, open(cfg, "w"))
    p = run(a.bin, "train", cfg, "--quiet", check=False)
    expect(p.returncode == 2 and what in p.stderr, f"{name}: expected exit 2 with '{what}', got {p.returncode}: "
           f"{p.stderr}")


def main():
    a = parse_args()
    d = work_dir("bnb_checkpoint")
    model_dir = tiny_model(a.bin, os.path.join(d, "model"))
    for qt, dq in (("nf4", False), ("fp4", False), ("nf4", True), ("fp4", True)):
        kind = qt + ("_dq" if dq else "")
        saved, deq = os.path.join(d, "saved_" + kind), os.path.join(d, "dequantized_" + kind)
        m4 = save_4bit(model_dir, saved, qt, dq)
        n = save_dequantized(model_dir, m4, deq)
        mine, mine_dense = ours(a, d, saved), ours(a, d, deq)
        expect(torch.equal(mine, mine_dense),
               f"{kind}: our logits over the saved folder differ from those over bitsandbytes' dequantized weights "
               f"({rel_max(mine, mine_dense):.2e})")
        err = rel_max(mine, hf_logits(m4))
        print(f"{kind}: {n} Linears as saved = bitsandbytes' dequantize_4bit bit for bit (logits identical); "
              f"vs the bitsandbytes model's logits: rel max {err:.2e}")
        expect(err <= TOL, f"{kind}: our logits are not bitsandbytes' ({err:.2e})")
    losses = trains_over(a, d, os.path.join(d, "saved_nf4_dq"), "train_nf4_dq")
    print(f"LoRA over the saved nf4 double-quantized folder: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    saved = os.path.join(d, "saved_nf4_dq")
    refused(a, d, saved, "other_format", lambda c: c.update(load_in_4bit=True, bnb_4bit_quant_type="fp4"),
            "saved as bitsandbytes nf4 double-quantized but the run asks for fp4")
    refused(a, d, saved, "full", lambda c: c.pop("lora"), "full fine-tuning needs the unquantized model")
    merged = os.path.join(d, "merged")
    p = run(a.bin, "export", os.path.join(d, "train_nf4_dq"), "--merge", "--out", merged, check=False)
    expect(p.returncode == 2 and "export --merge needs the bf16 or fp32 model" in p.stderr and
           not os.path.exists(merged), f"export --merge onto the 4-bit folder: exit {p.returncode}: {p.stderr}")
    print("PASS")


if __name__ == "__main__":
    main()
