#!/usr/bin/env python3
"""Gradient buckets reduced during the backward (QSFT_GRAD_BUCKETS=1, engine/dist/grad_buckets.h) against one
reduce-scatter after it (QSFT_GRAD_BUCKETS=0), on the CPU under mpirun: 2 ranks x GA 2 and 4 ranks x GA 1, LoRA
and full fine-tuning, with buckets small enough that there are many, cut through layers and shards. The MPI Comm
sums each element in rank order however the buffer is split, so the metrics, the trained weights and the AdamW
moments of every checkpoint are bit-identical."""
import json
import os
import subprocess

from e2e_common import curve, expect, parse_args, tiny_model, work_dir
from mpi_common import mpirun_cmd, mpirun_env, require_mpirun, train_config

STEPS = 4
BUCKET_MIB = 0.01  # ~2600 floats a bucket: dozens of buckets on the tiny model


def train(bin_path, ranks, cfg, buckets):
    """qwen-sft train under mpirun with the buckets forced on or off; returns its output (rank 0's lines)."""
    env = dict(mpirun_env(), QSFT_GRAD_BUCKETS="1" if buckets else "0")
    p = subprocess.run(mpirun_cmd(ranks, bin_path, "train", cfg), capture_output=True, text=True, env=env)
    expect(p.returncode == 0, f"{ranks} ranks, buckets {buckets}: exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def checkpoint_files(run_dir, step):
    d = os.path.join(run_dir, f"checkpoint-{step}")
    names = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    return {f: open(os.path.join(d, f), "rb").read() for f in names}


def compare(bin_path, d, model, ranks, ga, full):
    what = f"{'full fine-tuning' if full else 'LoRA'}, {ranks} ranks x GA {ga}"
    runs = {}
    for buckets in (False, True):
        name = f"{'full' if full else 'lora'}_w{ranks}_{'buckets' if buckets else 'one'}"
        runs[buckets] = os.path.join(d, name)
        cfg = train_config(os.path.join(d, name + ".json"), model, runs[buckets], max_steps=STEPS,
                           gradient_accumulation_steps=ga, ddp_bucket_cap_mb=BUCKET_MIB)
        if full:
            c = json.load(open(cfg))
            del c["lora"]
            json.dump(c, open(cfg, "w"), indent=2)
        out = train(bin_path, ranks, cfg, buckets)
        said = "buckets during the backward" in out
        expect(said == buckets, f"{what}: the run {'does not say' if buckets else 'says'} it reduces in buckets:\n"
               + out[-2000:])
    expect(curve(runs[False]) == curve(runs[True]), f"{what}: metrics differ with buckets")
    for step in range(2, STEPS + 1, 2):
        one, buckets = checkpoint_files(runs[False], step), checkpoint_files(runs[True], step)
        expect(one.keys() == buckets.keys() and len(one) >= 2, f"{what}: checkpoint files {one.keys()}")
        for f in one:
            expect(one[f] == buckets[f], f"{what}: checkpoint-{step}/{f} differs with buckets")
    print(f"{what}: metrics and checkpoints ({', '.join(one)}) bit-identical with buckets")


def main():
    a = parse_args()
    d = work_dir("multi_rank_buckets")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    require_mpirun(a.bin, d, model)
    for full in (False, True):
        for ranks, ga in ((2, 2), (4, 1)):
            compare(a.bin, d, model, ranks, ga, full)
    print("ok")


if __name__ == "__main__":
    main()
