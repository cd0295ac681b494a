#!/usr/bin/env python3
"""Our exported adapter in Hugging Face: train a tiny model a few steps, `qwen-sft export` (adapter and --merge),
then PeftModel.from_pretrained(base, adapter) and the merged model must reproduce our fp32 logits (<= 1e-4 rel.).
Also checks what vLLM requires of an adapter: only lora_A/lora_B tensors, no modules_to_save, no DoRA.
Needs torch, transformers and peft; without them it prints why and exits 77 (skipped)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config  # noqa: E402

try:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:
    print(f"skipped: {e.name} is not installed (pip install torch transformers peft safetensors)")
    sys.exit(77)

SEQS = [[5, 17, 300, 42, 9, 100, 7], [600, 1, 2, 3, 250, 11, 12, 13, 14, 15, 16]]


def hf_logits(model):
    with torch.no_grad():
        return torch.cat([model(torch.tensor([s])).logits[0] for s in SEQS]).float()


def rel_max(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    a = parse_args()
    d = work_dir("peft")
    model_dir = tiny_model(a.bin, os.path.join(d, "model"))
    cfg = write_config(os.path.join(d, "cfg.json"), model_dir, os.path.join(d, "run"), max_steps=8, learning_rate=5e-3)
    c = json.load(open(cfg))
    c["lora"] = {"r": 8, "lora_alpha": 16, "use_rslora": True, "target_modules": "all-linear"}
    json.dump(c, open(cfg, "w"))
    run(a.bin, "train", cfg, "--quiet")
    adapter, merged = os.path.join(d, "adapter"), os.path.join(d, "merged")
    run(a.bin, "export", os.path.join(d, "run"), "--out", adapter)
    run(a.bin, "export", os.path.join(d, "run"), "--out", merged, "--merge")

    ac = json.load(open(os.path.join(adapter, "adapter_config.json")))
    expect(ac["peft_type"] == "LORA" and ac["task_type"] == "CAUSAL_LM" and ac["modules_to_save"] is None
           and not ac["use_dora"] and ac["use_rslora"], f"adapter_config.json: {ac}")
    tensors = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    expect(all(k.startswith("base_model.model.model.layers.") and (".lora_A.weight" in k or ".lora_B.weight" in k)
               for k in tensors), "adapter holds tensors other than LoRA A/B")
    expect(any(float(v.abs().max()) > 0 for k, v in tensors.items() if "lora_B" in k), "LoRA B is still zero")

    ours_file = os.path.join(d, "ours.safetensors")
    run(a.bin, "logits", "--model", model_dir, "--adapter", adapter, "--ids",
        ";".join(",".join(map(str, s)) for s in SEQS), "--out", ours_file)
    ours = load_file(ours_file)["logits"]

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    peft_model = PeftModel.from_pretrained(base, adapter).eval()
    err_peft = rel_max(ours, hf_logits(peft_model))
    merged_model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32, attn_implementation="eager").eval()
    err_merged = rel_max(ours, hf_logits(merged_model))
    base_logits = hf_logits(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval())
    print(f"logits max rel. error vs PeftModel: {err_peft:.3g}, vs merged model: {err_merged:.3g} "
          f"(the adapter moves them by {rel_max(ours, base_logits):.3g})")
    expect(err_peft <= 1e-4, "PeftModel logits differ")
    expect(err_merged <= 1e-4, "merged model logits differ")
    print("ok")


if __name__ == "__main__":
    main()
