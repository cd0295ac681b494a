#!/usr/bin/env python3
"""The NCCL Comm on the GPU (tools/gpu-check.sh stage nccl-world1): a tiny LoRA run trained through NCCL in a world
of one (QSFT_COMM=nccl) must give the adapter, moments and metrics of the same run without it, bit for bit (with
one rank every collective is a copy), also with gradient buckets forced on (QSFT_GRAD_BUCKETS=1: the second stream,
its events and the decoder's hook). With 2+ GPUs also 2 ranks x GA 1 (torchrun-style environment, TCP rendezvous)
against 1 rank x GA 2, and with buckets against without, bit for bit (a sum of two is the same in either order, so
a bucket reduced before its gradients were final, or read before its reduction ended, would show).
Exit 77 (skipped) without a GPU or without libnccl.so.2.
  python3 tests/gpu/nccl_check.py --bin build/qwen-sft"""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import curve, expect, parse_args, tiny_model, work_dir, write_config  # noqa: E402
from mpi_common import tensors, worst_relative  # noqa: E402


def gpus():
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.count("GPU ")
    except OSError:
        return 0


def config(d, name, model, ga):
    """A tiny LoRA run on the GPU; 0.01 MiB gradient buckets (dozens) when QSFT_GRAD_BUCKETS=1 uses them."""
    return write_config(os.path.join(d, name + ".json"), model, os.path.join(d, name), top={"device": "cuda"},
                        max_steps=4, gradient_accumulation_steps=ga, ddp_bucket_cap_mb=0.01)


def same_runs(d, a, b, what):
    """Two runs' adapters, moments and metrics bit for bit."""
    for f in ("adapter_model.safetensors", "optimizer.safetensors"):
        expect(files(os.path.join(d, a), f) == files(os.path.join(d, b), f), f"{f} differs {what}")
    expect(curve(os.path.join(d, a)) == curve(os.path.join(d, b)), f"metrics differ {what}")


def train(bin_path, cfg, envs):
    """One process per environment in envs (the ranks), together; exits 77 when NCCL is not loadable."""
    procs = [subprocess.Popen([bin_path, "train", cfg, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, **e)) for e in envs]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0 and "libnccl.so.2" in err:
            print(f"skipped: {err.strip()}")
            sys.exit(77)
        expect(p.returncode == 0, f"qwen-sft train {cfg} exited {p.returncode}: {err[-3000:]}")
    print(outs[0][0].strip())


def files(run_dir, name):
    return open(os.path.join(run_dir, "checkpoint-4", name), "rb").read()


def main():
    a = parse_args()
    if gpus() == 0:
        print("skipped: no GPU")
        sys.exit(77)
    d = work_dir("nccl")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    train(a.bin, config(d, "single", model, 2), [{}])
    train(a.bin, config(d, "nccl1", model, 2), [{"QSFT_COMM": "nccl"}])
    same_runs(d, "single", "nccl1", "through NCCL")
    train(a.bin, config(d, "nccl1_buckets", model, 2), [{"QSFT_COMM": "nccl", "QSFT_GRAD_BUCKETS": "1"}])
    same_runs(d, "single", "nccl1_buckets", "through NCCL with gradient buckets")
    print("nccl world 1, with and without gradient buckets: adapter, moments and metrics bit-identical to the run "
          "without a Comm")
    if gpus() < 2:
        print("(one GPU: the 2-rank case needs two)")
        return
    rank = lambda r: {"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": "29611"}
    train(a.bin, config(d, "nccl2", model, 1), [rank(0), rank(1)])
    dm = worst_relative(curve(os.path.join(d, "single")), curve(os.path.join(d, "nccl2")))
    ad = lambda r: tensors(os.path.join(d, r, "checkpoint-4", "adapter_model.safetensors"))
    da = worst_relative(ad("single"), ad("nccl2"))
    print(f"nccl world 2 x GA 1 vs world 1 x GA 2: metrics within {dm:.2e}, adapter within {da:.2e}")
    expect(math.isfinite(dm) and dm <= 1e-4 and da <= 1e-3, "2 ranks depart from 1 rank x GA 2")
    buckets = lambda r: dict(rank(r), MASTER_PORT="29613", QSFT_GRAD_BUCKETS="1")
    train(a.bin, config(d, "nccl2_buckets", model, 1), [buckets(0), buckets(1)])
    same_runs(d, "nccl2", "nccl2_buckets", "on 2 ranks with gradient buckets")
    print("nccl world 2 with gradient buckets: adapter, moments and metrics bit-identical to one reduce-scatter")


if __name__ == "__main__":
    main()
