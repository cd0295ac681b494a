#!/usr/bin/env python3
"""QLoRA interop: an adapter trained by qwen-sft over a 4-bit base (NF4, double-quantized) loads with PEFT onto
transformers' bitsandbytes 4-bit base of the same model and gives our logits over our 4-bit base (fp32 compute on
both sides): NF4 and FP4 to fp32 rounding (the same dequantized weights); with double quantization to 2e-3, as
bitsandbytes' CPU kernel rounds about 0.2% of the absmax codes to the neighbour of the nearest and its offset (a
torch mean) may be an ulp off the exact mean (docs/qlora.md). `export --merge` folds the adapter onto the
unquantized base, which gives PEFT's logits over that base. bitsandbytes' bf16 CPU inference kernels (AVX512-BF16)
are turned off so it computes in fp32. Needs torch, transformers, peft and bitsandbytes (its CPU path is enough);
without them it prints why and exits 77 (skipped)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config  # noqa: E402

try:
    import bitsandbytes  # noqa: F401
except ImportError:
    print("skipped: bitsandbytes is not installed (pip install bitsandbytes)")
    sys.exit(77)
# torch, transformers, peft: skipped without them there
from peft_roundtrip_test import SEQS, hf_logits, rel_max  # noqa: E402
import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, BitsAndBytesConfig  # noqa: E402


def ours(a, d, model_dir, adapter, *quant):
    out = os.path.join(d, "logits.safetensors")
    run(a.bin, "logits", "--model", model_dir, "--adapter", adapter, *quant, "--out", out,
        "--ids", ";".join(",".join(map(str, s)) for s in SEQS))
    return load_file(out)["logits"]


def main():
    a = parse_args()
    d = work_dir("qlora_peft")
    model_dir = tiny_model(a.bin, os.path.join(d, "model"))
    quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
             "bnb_4bit_compute_dtype": "float32"}
    cfg = write_config(os.path.join(d, "cfg.json"), model_dir, os.path.join(d, "run"), max_steps=8,
                       learning_rate=5e-3, top={"quantization": quant})
    run(a.bin, "train", cfg, "--quiet")
    adapter, merged = os.path.join(d, "adapter"), os.path.join(d, "merged")
    run(a.bin, "export", os.path.join(d, "run"), "--out", adapter)
    run(a.bin, "export", os.path.join(d, "run"), "--out", merged, "--merge")

    for qt, dq, tol in (("nf4", False, 1e-5), ("fp4", False, 1e-5), ("nf4", True, 2e-3)):
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=qt, bnb_4bit_use_double_quant=dq,
                                 bnb_4bit_compute_dtype=torch.float32)
        base = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=bnb, dtype=torch.float32,
                                                    device_map="cpu")
        for m in base.modules():  # fp32 math, not its AVX512-BF16 inference path
            if hasattr(m, "support_avx512bf16_for_cpu"):
                m.support_avx512bf16_for_cpu = False
        theirs = hf_logits(PeftModel.from_pretrained(base, adapter))
        mine = ours(a, d, model_dir, adapter, "--load-in-4bit", qt, *(["--double-quant"] if dq else []))
        err = rel_max(mine, theirs)
        print(f"4-bit {qt}{' double-quant' if dq else ''} base + adapter: rel max |ours - peft/bitsandbytes| {err:.2e}")
        expect(err <= tol, f"{qt}: our logits over our 4-bit base are PEFT's over bitsandbytes' ({err:.2e})")

    dense = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_dense = hf_logits(PeftModel.from_pretrained(dense, adapter))
    merged_logits = hf_logits(AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32))
    err = rel_max(merged_logits, peft_dense)
    print(f"merged onto the unquantized base: rel max |merged - peft| {err:.2e}")
    expect(err <= 1e-4, f"export --merge onto the unquantized base is PEFT's model ({err:.2e})")
    print("PASS")


if __name__ == "__main__":
    main()
