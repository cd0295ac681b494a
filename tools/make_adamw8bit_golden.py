#!/usr/bin/env python3
"""8-bit AdamW goldens (optim="adamw_8bit"): tests/data/adamw8bit_golden.json.

bitsandbytes' 8-bit blockwise AdamW runs on CUDA as the kernel kOptimizerStatic8bit2StateBlockwise (csrc/kernels.cu);
its CPU backend (bitsandbytes/backends/cpu/ops.py) is a different implementation: torch ops with the weight decay
before the update and eps outside the bias correction, and a requantization through a 65536-entry lookup table
that approximates the nearest code. No GPU here, so the file holds two references:

- "kernel": a numpy float32 transcription of the CUDA kernel's per-block math (kernels/adamw8bit.h states it),
  with bitsandbytes' own create_dynamic_map tables. tests/unit/adamw8bit_test.cpp runs our CPU op on the same
  inputs and tables and requires the same bits: parameters, codes and absmax after 1 and after all steps.
- "bnb_cpu": bitsandbytes.optim.AdamW(optim_bits=8) stepped on the CPU. The test requires our parameters within a
  tolerance of these (the two implementations differ by the rounding above, see the test), and our dynamic maps
  within 2 ulps of create_dynamic_map's (torch builds them in fp32 with its vectorised linspace).
Without bitsandbytes the file cannot be regenerated (it is not a CI requirement).

Inputs are integer hashes turned into floats by one fp32 division, reproduced exactly by the test:
u(i, k) = float32((i * 2654435761 + k * 40503) % 4001 - 2000) / 2000; p0 = u(i, 0) / 2, g_k = u(i, k) * 1e-3 * k,
and g = 0 on [256, 512) (an all-zero block: the kernel's 0/0 path). n = 700: two full blocks and a partial one.

Usage:  ~/.cache/qwen-sft/venv/bin/python tools/make_adamw8bit_golden.py [--out tests/data/adamw8bit_golden.json]
"""
import argparse
import os

import numpy as np
import torch

import bitsandbytes
import bitsandbytes.functional as F

from golden_json import write_golden

f32 = np.float32
N, STEPS, BLOCK = 700, 5, 256
CASES = [  # name, lr, beta1, beta2, eps, weight_decay
    ("no_decay", 1e-3, 0.9, 0.999, 1e-8, 0.0),
    ("decay", 2e-3, 0.9, 0.95, 1e-6, 0.01),
]


def u(k):
    i = np.arange(N, dtype=np.int64)
    return ((i * 2654435761 + k * 40503) % 4001 - 2000).astype(f32) / f32(2000)


def grad(k):
    g = u(k) * f32(1e-3 * k)
    g[256:512] = 0
    return g


def bits(a):
    return [format(int(x), "08x") for x in np.asarray(a, dtype=f32).view(np.uint32)]


def quantize(code, x, signed):
    """quantize_2D over arrays: seven halvings from 127, then the nearer neighbour by the midpoint."""
    pivot = np.full(x.shape, 127)
    upper_pivot = np.full(x.shape, 255)
    lower_pivot = np.zeros(x.shape, dtype=np.int64)
    lower = np.full(x.shape, f32(-1.0 if signed else 0.0), dtype=f32)
    upper = np.full(x.shape, f32(1.0), dtype=f32)
    val = code[pivot]
    for i in (64, 32, 16, 8, 4, 2, 1):
        up = x > val
        lower_pivot = np.where(up, pivot, lower_pivot)
        lower = np.where(up, val, lower)
        upper_pivot = np.where(up, upper_pivot, pivot)
        upper = np.where(up, upper, val)
        pivot = np.where(up, pivot + i, pivot - i)
        val = code[pivot]
    above = x > val
    mid_up = ((upper + val) * f32(0.5)).astype(f32)
    mid_lo = ((lower + val) * f32(0.5)).astype(f32)
    return np.where(above, np.where(x > mid_up, upper_pivot, pivot), np.where(x < mid_lo, lower_pivot, pivot))


def kernel_step(p, g, st, code1, code2, lr, b1, b2, eps, wd, step):
    """One call of the kernel (gnorm_scale 1), every fp32 operation rounded alone; c1, c2 in double, rounded."""
    b1, b2, lr, wd, eps = f32(b1), f32(b2), f32(lr), f32(wd), f32(eps)
    c1 = f32(1.0 - float(b1) ** step)
    c2 = f32(np.sqrt(1.0 - float(b2) ** step))
    step_size = f32(-lr * c2) / c1
    blocks = (N + BLOCK - 1) // BLOCK
    m, v, a1, a2 = st
    pad = blocks * BLOCK - N
    gp = np.concatenate([g, np.zeros(pad, f32)])
    mp = np.concatenate([m, np.full(pad, 128)])
    vp = np.concatenate([v, np.zeros(pad, np.int64)])
    blk = np.arange(blocks * BLOCK) // BLOCK
    fin = np.isfinite(gp)
    s2 = (code2[vp] * a2[blk]) * b2 + (f32(1) - b2) * gp * gp
    s1 = (code1[mp] * a1[blk]) * b1 + (f32(1) - b1) * gp
    s1 = np.where(fin, s1, f32(0)).astype(f32)
    s2 = np.where(fin, s2, f32(0)).astype(f32)
    na1 = np.abs(s1).reshape(blocks, BLOCK).max(axis=1)
    na2 = np.abs(s2).reshape(blocks, BLOCK).max(axis=1)
    s1, s2 = s1[:N], s2[:N]
    with np.errstate(invalid="ignore", divide="ignore"):
        upd = step_size * (s1 / (np.sqrt(s2) + c2 * eps))
        pn = (p + upd).astype(f32)
        if wd > 0:
            pn = pn * (f32(1) - lr * wd)
        p = np.where(fin[:N], pn, p).astype(f32)
        x1 = (s1 / na1[blk[:N]]).astype(f32)
        x2 = (s2 / na2[blk[:N]]).astype(f32)
    c1s = quantize(code1, x1, True)
    flip = np.signbit(code1[c1s]) != np.signbit(s1)
    c1s = np.where(flip, np.where(s1 > 0, c1s + 1, c1s - 1), c1s) % 256
    c2s = quantize(code2, x2, False)
    return p, (c1s, c2s, na1.astype(f32), na2.astype(f32))


def state_json(p, st):
    m, v, a1, a2 = st
    return {"p_bits": bits(p), "m_hex": bytes(np.asarray(m, np.uint8)).hex(), "v_hex": bytes(np.asarray(v, np.uint8)).hex(),
            "absmax_m_bits": bits(a1), "absmax_v_bits": bits(a2)}


def run_case(name, lr, b1, b2, eps, wd, code1, code2):
    blocks = (N + BLOCK - 1) // BLOCK
    p = u(0) / f32(2)
    st = (np.zeros(N, np.int64), np.zeros(N, np.int64), np.zeros(blocks, f32), np.zeros(blocks, f32))
    after = {}
    for k in range(1, STEPS + 1):
        p, st = kernel_step(p, grad(k), st, code1, code2, lr, b1, b2, eps, wd, k)
        if k in (1, STEPS):
            after[str(k)] = state_json(p, st)
    param = torch.nn.Parameter(torch.from_numpy(u(0) / f32(2)))
    opt = bitsandbytes.optim.AdamW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, optim_bits=8,
                                   min_8bit_size=0)
    for k in range(1, STEPS + 1):
        param.grad = torch.from_numpy(grad(k))
        opt.step()
    return {"name": name, "lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "weight_decay": wd, "kernel": after,
            "bnb_cpu_p_bits": bits(param.detach().numpy())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                  "adamw8bit_golden.json"))
    args = ap.parse_args()
    code1 = F.create_dynamic_map(signed=True).numpy().astype(f32)
    code2 = F.create_dynamic_map(signed=False).numpy().astype(f32)
    out = {"generator": "tools/make_adamw8bit_golden.py", "bitsandbytes": bitsandbytes.__version__,
           "torch": torch.__version__, "n": N, "steps": STEPS, "map_m_bits": bits(code1), "map_v_bits": bits(code2),
           "cases": [run_case(*c, code1, code2) for c in CASES]}
    write_golden(args.out, out)


if __name__ == "__main__":
    main()
