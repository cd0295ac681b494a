#!/usr/bin/env python3
"""optim "adamw_8bit" with data-parallel ranks (ZeRO-1 on the CPU under mpirun, oversubscribed): every rank's shard
starts on a block of 256 parameters, so it updates whole blocks of the 8-bit state as one rank would.
- LoRA and full fine-tuning: 2 ranks x GA 2 give the metrics and the final weights of 1 rank x GA 4 within
  TOL_METRICS and TOL_WEIGHTS. The gradients differ by fp32 rounding (the 2-rank sum adds the micro-batches in
  another order, as with adamw_torch, tests/e2e/multi_rank_test.py: 1e-6); an 8-bit moment rounds such a difference
  to a whole code now and then (measured: after 6 steps 2 of 77824 LoRA codes, 27 of 886912 full fine-tuning codes
  differ; none after step 2 but one), which moves that parameter's update by a fraction of lr. Measured: metrics
  within 2.2e-8 (LoRA) and 1.5e-8 (full), weights within 5.0e-6 and 1.3e-5 (relative L2).
- The 2-rank run resumed from its checkpoint-2 on 2 ranks ends with the uninterrupted 2-rank run's files and
  metrics bit for bit (the sharded state is gathered whole at save and split again at load without loss).
- The same checkpoint resumed on 1 rank x GA 4 (2 -> 1) continues the 1-rank curve within the same tolerances: the
  saved state is the one whole state, independent of the world size."""
import json
import os

from e2e_common import curve, expect, parse_args, tiny_model, work_dir
from mpi_common import require_mpirun, tensors, train, train_config, truncated_copy, worst_relative

STEPS = 6
TOL_METRICS = 1e-6
TOL_WEIGHTS = 5e-5


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


def files(run_dir, full):
    ck = os.path.join(run_dir, f"checkpoint-{STEPS}")
    names = ("model.safetensors" if full else "adapter_model.safetensors", "optimizer.safetensors")
    return {n: open(os.path.join(ck, n), "rb").read() for n in names}


def check(bin_path, d, model, full):
    kind = "full" if full else "lora"
    runs = {}
    for name, ranks, ga in [("w1", 1, 4), ("w2", 2, 2)]:
        runs[name] = os.path.join(d, f"{kind}_{name}")
        train(bin_path, ranks, config(d, model, f"{kind}_{name}", ga, full))
    compare(runs["w1"], runs["w2"], full, f"{kind}, adamw_8bit, 2 ranks x GA 2")

    for ranks, ga, name in [(2, 2, "2 -> 2"), (1, 4, "2 -> 1")]:
        out = os.path.join(d, f"{kind}_resumed_{ranks}")
        truncated_copy(runs["w2"], out, 2)
        train(bin_path, ranks, config(d, model, f"{kind}_resumed_{ranks}", ga, full))
        if ranks == 2:
            expect(files(out, full) == files(runs["w2"], full) and curve(out) == curve(runs["w2"]),
                   f"{kind}: the 2-rank run resumed on 2 ranks is not the uninterrupted run bit for bit")
            print(f"{kind}, adamw_8bit: resumed at step 2 on {name} ranks: weights, 8-bit state, metrics bit-identical")
        else:
            compare(runs["w1"], out, full, f"{kind}, adamw_8bit, resumed at step 2 on {name} ranks")


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
