#!/usr/bin/env python3
"""Our full fine-tuning export in Hugging Face: a tiny model saved in bf16 by transformers is fully fine-tuned a few
steps (a config without a lora section), `qwen-sft export` writes its model folder, and transformers loads it:
bf16 like the base, lm_head re-tied, every tensor equal to the checkpoint's fp32 master weight rounded to bf16, and
its fp32 logits equal to our engine's on the exported folder (<= 1e-4 rel.), away from the base model's.
Needs torch, transformers and safetensors; without them it prints why and exits 77 (skipped)."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config  # noqa: E402

try:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"skipped: {e.name} is not installed (pip install torch transformers safetensors)")
    sys.exit(77)

SEQS = [[5, 17, 300, 42, 9, 100, 7], [600, 1, 2, 3, 250, 11, 12, 13, 14, 15, 16]]
STEPS = 6


def hf_logits(folder):
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        return torch.cat([m(torch.tensor([s])).logits[0] for s in SEQS]).float()


def rel_max(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    a = parse_args()
    d = work_dir("full_ft_export")
    fp32 = tiny_model(a.bin, os.path.join(d, "fp32"))
    base = os.path.join(d, "base")  # the same model in bf16, as released Qwen models are
    AutoModelForCausalLM.from_pretrained(fp32).to(torch.bfloat16).save_pretrained(base)
    for f in os.listdir(fp32):
        if f.startswith("tokenizer") or f.endswith(".jinja"):
            shutil.copy(os.path.join(fp32, f), base)
    cfg = write_config(os.path.join(d, "cfg.json"), base, os.path.join(d, "run"), max_steps=STEPS, learning_rate=1e-3)
    c = json.load(open(cfg))
    del c["lora"]
    json.dump(c, open(cfg, "w"))
    run(a.bin, "train", cfg, "--quiet")
    out = os.path.join(d, "exported")
    run(a.bin, "export", os.path.join(d, "run"), "--out", out)

    m = AutoModelForCausalLM.from_pretrained(out)
    expect(m.dtype == torch.bfloat16, f"the export of a bf16 base is {m.dtype}")
    expect(m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr(), "lm_head not re-tied")
    master = load_file(os.path.join(d, "run", f"checkpoint-{STEPS}", "model.safetensors"))
    sd = m.state_dict()
    expect(sorted(master) == sorted(k for k in sd if k != "lm_head.weight"), "exported tensor names")
    for k, v in master.items():
        expect(v.dtype == torch.float32, f"checkpoint {k} is {v.dtype}, not the fp32 master weight")
        expect(torch.equal(sd[k], v.to(torch.bfloat16)), f"exported {k} is not the master weight rounded to bf16")

    ours_file = os.path.join(d, "ours.safetensors")
    run(a.bin, "logits", "--model", out, "--ids", ";".join(",".join(map(str, s)) for s in SEQS), "--out", ours_file)
    ours = load_file(ours_file)["logits"]
    err = rel_max(ours, hf_logits(out))
    moved = rel_max(ours, hf_logits(base))
    print(f"{len(master)} tensors; logits max rel. error vs transformers {err:.3g} (training moved them by {moved:.3g})")
    expect(err <= 1e-4, "transformers' logits of the exported model differ from ours")
    expect(moved > 1e-3, "the fine-tuned model's logits equal the base model's")
    print("ok")


if __name__ == "__main__":
    main()
