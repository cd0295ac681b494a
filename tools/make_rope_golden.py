#!/usr/bin/env python3
"""RoPE scaling goldens from Hugging Face transformers: tests/data/rope_golden.json.

For each case a Qwen2 config.json (rope_scaling in the v4 spelling or rope_parameters in the v5 one) is loaded by
transformers' Qwen2Config, a Qwen2RotaryEmbedding is built from it and run once on position_ids 0..seq_len-1 (so a
"dynamic" table is refreshed as in a forward pass), and its inv_freq buffer (fp32, stored as the hex of the bits) and
attention_scaling (a Python float, stored as repr) are written. tests/unit/rope_scaling_test.cpp parses the same
config.json text with our engine and requires the same bits.

One op is not reproducible bit for bit: torch computes base ** (arange(0, D, 2).float() / D) with its SIMD powf
(Sleef, error up to 1 ulp), our engine with the C library's powf, correctly rounded in practice. So each case also
lists pow_off_indices: the i where torch's fp32 power differs from the correctly rounded one (computed in float64
and rounded); there the test allows inv_freq 2 ulps apart (1 ulp of the power, up to 2 of its reciprocal),
everywhere else it requires the same bits.

Usage:  /tmp/venv-ref/bin/python tools/make_rope_golden.py [--out tests/data/rope_golden.json]
"""
import argparse
import json
import os
import struct
import tempfile

import torch
import transformers
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from golden_json import write_golden


def config(head_dim, theta, max_pos, scaling=None, v5=True):
    """A small Qwen2 config.json; `scaling` goes into rope_parameters (v5) or rope_scaling + rope_theta (v4)."""
    c = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": head_dim * 2,
         "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
         "vocab_size": 32, "max_position_embeddings": max_pos}
    if v5:
        c["rope_parameters"] = dict({"rope_type": "default", "rope_theta": theta}, **(scaling or {}))
    else:
        c["rope_theta"] = theta
        c["rope_scaling"] = scaling
    return c


QWEN25_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}

# (name, config.json, seq_len of the forward pass)
CASES = [
    ("default_128_1e6", config(128, 1e6, 32768), 16),
    ("qwen25_yarn_v4_128_1e6", config(128, 1e6, 131072, QWEN25_YARN, v5=False), 16),
    ("qwen25_yarn_v5_128_1e6", config(128, 1e6, 131072, {"rope_type": "yarn", "factor": 4.0,
                                                          "original_max_position_embeddings": 32768}), 16),
    ("yarn_64_1e4", config(64, 1e4, 8192, {"rope_type": "yarn", "factor": 2.0,
                                           "original_max_position_embeddings": 4096}), 16),
    ("yarn_attention_factor", config(64, 1e4, 8192, {"rope_type": "yarn", "factor": 2.0, "attention_factor": 0.8,
                                                     "original_max_position_embeddings": 4096}), 16),
    ("yarn_mscale", config(128, 1e4, 16384, {"rope_type": "yarn", "factor": 4.0, "mscale": 0.707,
                                             "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096}), 16),
    ("yarn_mscale_differ", config(64, 1e4, 16384, {"rope_type": "yarn", "factor": 40.0, "mscale": 1.0,
                                                   "mscale_all_dim": 0.5, "original_max_position_embeddings": 4096}),
     16),
    ("yarn_betas_no_truncate", config(128, 1e6, 65536, {"rope_type": "yarn", "factor": 2.0, "beta_fast": 16,
                                                         "beta_slow": 2, "truncate": False,
                                                         "original_max_position_embeddings": 32768}), 16),
    ("yarn_truncate_null", config(64, 1e4, 8192, {"rope_type": "yarn", "factor": 3.0, "truncate": None,
                                                  "original_max_position_embeddings": 4096}), 16),
    ("yarn_top_level_original", dict(config(128, 1e6, 32768, {"rope_type": "yarn", "factor": 8.0,
                                                              "original_max_position_embeddings": 4096}),
                                     original_max_position_embeddings=2048), 16),  # the top level wins (Phi3)
    ("yarn_no_original", config(64, 1e6, 32768, {"rope_type": "yarn", "factor": 4.0}), 16),
    ("linear_64_1e4", config(64, 1e4, 4096, {"rope_type": "linear", "factor": 2.0}), 16),
    ("linear_v4_128_1e6", config(128, 1e6, 32768, {"type": "linear", "factor": 2.0}, v5=False), 16),
    ("dynamic_below_64_1e4", config(64, 1e4, 64, {"rope_type": "dynamic", "factor": 2.0}), 40),
    ("dynamic_at_64_1e4", config(64, 1e4, 64, {"rope_type": "dynamic", "factor": 2.0}), 64),
    ("dynamic_above_64_1e4", config(64, 1e4, 64, {"rope_type": "dynamic", "factor": 2.0}), 100),
    ("dynamic_above_128_1e6", config(128, 1e6, 128, {"rope_type": "dynamic", "factor": 3.0}), 1000),
    ("dynamic_v4_above", config(128, 1e4, 96, {"type": "dynamic", "factor": 2.0}, v5=False), 333),
    ("llama3_128_5e5", config(128, 5e5, 131072, LLAMA3), 16),
    ("llama3_64_1e4", config(64, 1e4, 32768, dict(LLAMA3, factor=4.0, low_freq_factor=2.0,
                                                  original_max_position_embeddings=2048)), 16),
]


def pow_base(cfg, seq_len):
    """The base transformers raises to 2i/D: rope_theta, or for dynamic NTK beyond max_position_embeddings the grown
    base, computed (as in _compute_dynamic_ntk_parameters called from the forward pass) from an int64 seq_len tensor."""
    rp = cfg.rope_parameters
    base = rp["rope_theta"]
    if rp["rope_type"] != "dynamic" or seq_len <= cfg.max_position_embeddings:
        return base
    d, factor = head_dim(cfg), rp["factor"]
    return base * ((factor * torch.tensor(seq_len) / cfg.max_position_embeddings) - (factor - 1)) ** (d / (d - 2))


def head_dim(cfg):
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def pow_off_indices(cfg, seq_len):
    d = head_dim(cfg)
    e = torch.arange(0, d, 2, dtype=torch.int64).float() / d
    base = pow_base(cfg, seq_len)
    torch_pow = base ** e
    exact = torch.tensor([torch.as_tensor(base, dtype=torch.float32).item() ** x for x in e.double().tolist()]).float()
    return [i for i in range(d // 2) if torch_pow[i].item() != exact[i].item()]


def golden(cfg_json, seq_len):
    with tempfile.TemporaryDirectory() as d:  # load exactly as from_pretrained reads a model folder's config.json
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_json, f)
        cfg = Qwen2Config.from_pretrained(d)
    rope = Qwen2RotaryEmbedding(cfg)
    x = torch.zeros(1, seq_len, 4)
    rope(x, torch.arange(seq_len)[None])
    bits = [format(struct.unpack("<I", struct.pack("<f", v))[0], "08x") for v in rope.inv_freq.tolist()]
    return {"inv_freq_bits": bits, "attention_scaling": float(rope.attention_scaling),
            "pow_off_indices": pow_off_indices(cfg, seq_len)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "rope_golden.json"))
    args = ap.parse_args()
    cases = []
    for name, cfg_json, seq_len in CASES:
        cases.append(dict({"name": name, "config": cfg_json, "seq_len": seq_len}, **golden(cfg_json, seq_len)))
    out = {"generator": "tools/make_rope_golden.py", "transformers": transformers.__version__,
           "torch": torch.__version__, "cases": cases}
    write_golden(args.out, out, indent=1)


if __name__ == "__main__":
    main()
