#!/usr/bin/env python3
"""optim "adamw_8bit" with data-parallel ranks (ZeRO-1 on the CPU under mpirun, oversubscribed): every rank's shard
starts on a block of 256 parameters, so it updates whole blocks of the 8-bit state as one rank would.
- LoRA and full fine-tuning: 2 ranks x GA 2 give the metrics and the final weights of 1 rank x GA 4 within
  TOL_METRICS and TOL_WEIGHTS. The gradients differ by fp32 rounding (the 2-rank sum adds the micro-batches in
  another order, as with adamw_torch, tests/e2e/multi_rank_test.py: 1e-6); an 8-bit moment rounds such a difference
  to a whole code now and then (measured: after 6 steps 2 of 77824 LoRA codes, 27 of 886912 full fine-tuning codes
  differ, by 1 to 6 codes), which moves that parameter's update by a fraction of lr, and the moved weights move the
  next gradients. Measured: metrics within 1.4e-7 (LoRA) and 6.1e-7 (full), weights within 1.7e-4 and 2.8e-5
  (relative L2 per tensor; the LoRA worst is a B matrix, small after 6 steps, where 2066 of 3072 values moved by a
  few flipped codes of their blocks: with stacked LoRA A and the fused QKV the gradients round differently, and so
  do the flips); full fine-tuning on 4 ranks x GA 1 (not run here) reached 1.6e-6 (grad_norm) and 5.5e-5.
- LoRA on 4 ranks x GA 1 adds the micro-batches' gradients in the order 1 rank x GA 4 does (as with adamw_torch):
  its weights and 8-bit state are the 1-rank run's bit for bit, and a checkpoint resumed on another world size
  (4 -> 1, 1 -> 4) ends bit for bit as the uninterrupted run: the state is gathered whole at save and split again
  at load without loss, one whole state on any world size. (Full fine-tuning's gradients are not bit-identical
  there: a weight with two contributions per micro-batch, like the tied embedding, is summed in another order.)
- The 2-rank run's checkpoint-2 resumed on 1 rank x GA 4 (2 -> 1) continues the 1-rank curve within the tolerances
  above."""
import json
import os

from e2e_common import curve, expect, parse_args, tiny_model, work_dir
from mpi_common import require_mpirun, tensors, train, train_config, truncated_copy, worst_relative

STEPS = 6
TOL_METRICS = 1e-5
TOL_WEIGHTS = 1e-3


def config(d, model, name, ga, full):
    cfg = train_config(os.path.join(d, name + ".json"), model, os.path.join(d, name), gradient_accumulation_steps=ga,
                       optim="adamw_8bit", weight_decay=0.1)
    if full:
        c = json.load(open(cfg))
        del c["lora"]
        json.dump(c, open(cfg, "w"), indent=2)
    return cfg


def weights(run_dir, full):
    name = "model.safetensors" if full else "adapter_model.safetensors"
    path = os.path.join(run_dir, f"checkpoint-{STEPS}", name)
    if not full:
        return tensors(path)
    # full: the checkpoint's fp32 master weights; k_proj.bias left out as in multi_rank_test.py (its gradient is
    # rounding noise, which Adam's normalized step amplifies)
    return {k: v for k, v in tensors(path).items() if not k.endswith("k_proj.bias")}


def compare(ref, run_dir, full, what):
    dm, dw = worst_relative(curve(ref), curve(run_dir)), worst_relative(weights(ref, full), weights(run_dir, full))
    print(f"{what}: metrics within {dm:.2e}, weights within {dw:.2e} of 1 rank x GA 4")
    expect(dm <= TOL_METRICS and dw <= TOL_WEIGHTS, f"{what} departs from 1 rank x GA 4")


def same_bits(ref, run_dir, full, what):
    dm = worst_relative(curve(ref), curve(run_dir))
    print(f"{what}: weights and 8-bit state bit-identical to 1 rank x GA 4: {files(ref, full) == files(run_dir, full)}"
          f", metrics within {dm:.2e}")
    expect(files(ref, full) == files(run_dir, full) and dm <= 1e-12, f"{what} is not 1 rank x GA 4 bit for bit")


def files(run_dir, full):
    ck = os.path.join(run_dir, f"checkpoint-{STEPS}")
    names = ("model.safetensors" if full else "adapter_model.safetensors", "optimizer.safetensors")
    return {n: open(os.path.join(ck, n), "rb").read() for n in names}


def check(bin_path, d, model, full):
    kind = "full" if full else "lora"
    runs = {}
    for name, ranks, ga in [("w1", 1, 4), ("w2", 2, 2)] + ([] if full else [("w4", 4, 1)]):
        runs[name] = os.path.join(d, f"{kind}_{name}")
        train(bin_path, ranks, config(d, model, f"{kind}_{name}", ga, full))
    compare(runs["w1"], runs["w2"], full, f"{kind}, adamw_8bit, 2 ranks x GA 2")
    if not full:
        same_bits(runs["w1"], runs["w4"], full, f"{kind}, adamw_8bit, 4 ranks x GA 1")

    for src, ranks, ga in [("w2", 1, 4)] + ([] if full else [("w4", 1, 4), ("w1", 4, 1)]):
        name = f"{kind}_resumed_{src}_on_{ranks}"
        truncated_copy(runs[src], os.path.join(d, name), 2)
        train(bin_path, ranks, config(d, model, name, ga, full))
        what = f"{kind}, adamw_8bit, {src}'s checkpoint-2 resumed on {ranks} rank(s)"
        if src == "w2":
            compare(runs["w1"], os.path.join(d, name), full, what)
        else:
            same_bits(runs["w1"], os.path.join(d, name), full, what)


def main():
    a = parse_args()
    d = work_dir("multi_rank_8bit")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    require_mpirun(a.bin, d, model)
    for full in (False, True):
        check(a.bin, d, model, full)
    print("ok")


if __name__ == "__main__":
    main()
