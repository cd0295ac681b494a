#!/usr/bin/env python3
"""Data parallel on the CPU under mpirun (oversubscribed): 2 ranks x GA 2 and 4 ranks x GA 1 give the losses, grad
norms and final adapter of 1 rank x GA 4 within 1e-6 relative; a 2-rank run is bit-identical run to run; a
checkpoint resumes on another world size (2 -> 1, 1 -> 4) and continues the 1-rank curve; a resume that would change
the micro-batches per step is refused. Full fine-tuning (the flat buffer of every weight, sharded the same way):
2 ranks x GA 2 give the metrics and the weights of 1 rank x GA 4 within 1e-6."""
import json
import os

from e2e_common import curve, expect, parse_args, tiny_model, work_dir
from mpi_common import require_mpirun, tensors, train, train_config, truncated_copy, worst_relative

TOL = 1e-6
STEPS = 6


def adapter(run_dir):
    return tensors(os.path.join(run_dir, f"checkpoint-{STEPS}", "adapter_model.safetensors"))


def same_run(ref, run_dir, what):
    dm, da = worst_relative(curve(ref), curve(run_dir)), worst_relative(adapter(ref), adapter(run_dir))
    print(f"{what}: metrics within {dm:.2e}, adapter within {da:.2e} of 1 rank x GA 4")
    expect(dm <= TOL and da <= TOL, f"{what} departs from 1 rank x GA 4")


def full_ft(bin_path, d, model):
    """Full fine-tuning on 2 ranks x GA 2 against 1 rank x GA 4. k_proj.bias is left out: its gradient is zero in
    exact arithmetic (softmax ignores a shift shared by all keys), so Adam's normalized step turns the rounding noise
    of either summation order into updates that differ by ~1e-5 relative."""
    runs = {}
    for name, ranks, ga in [("full_w1", 1, 4), ("full_w2", 2, 2)]:
        runs[name] = os.path.join(d, name)
        cfg = train_config(os.path.join(d, name + ".json"), model, runs[name], gradient_accumulation_steps=ga)
        c = json.load(open(cfg))
        del c["lora"]
        json.dump(c, open(cfg, "w"), indent=2)
        train(bin_path, ranks, cfg)
    w = [{k: v for k, v in tensors(os.path.join(runs[r], f"checkpoint-{STEPS}", "model.safetensors")).items()
          if not k.endswith("k_proj.bias")} for r in ("full_w1", "full_w2")]
    dm, dw = worst_relative(curve(runs["full_w1"]), curve(runs["full_w2"])), worst_relative(w[0], w[1])
    print(f"full fine-tuning, 2 ranks x GA 2: metrics within {dm:.2e}, weights within {dw:.2e} of 1 rank x GA 4")
    expect(dm <= TOL and dw <= TOL, "full fine-tuning on 2 ranks departs from 1 rank x GA 4")


def main():
    a = parse_args()
    d = work_dir("multi_rank")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    require_mpirun(a.bin, d, model)
    runs = {}
    for name, ranks, ga in [("w1", 1, 4), ("w2", 2, 2), ("w4", 4, 1), ("w2_again", 2, 2)]:
        runs[name] = os.path.join(d, name)
        train(a.bin, ranks, train_config(os.path.join(d, name + ".json"), model, runs[name],
                                         gradient_accumulation_steps=ga))
    expect(len(curve(runs["w1"])) >= STEPS, "the 1-rank run logged fewer lines than steps")
    same_run(runs["w1"], runs["w2"], "2 ranks x GA 2")
    same_run(runs["w1"], runs["w4"], "4 ranks x GA 1")
    for f in ("adapter_model.safetensors", "optimizer.safetensors"):
        same = [open(os.path.join(runs[r], f"checkpoint-{STEPS}", f), "rb").read() for r in ("w2", "w2_again")]
        expect(same[0] == same[1], f"two 2-rank runs differ in {f}")
    expect(curve(runs["w2"]) == curve(runs["w2_again"]), "two 2-rank runs differ in metrics.jsonl")
    print("2 ranks twice: adapter, optimizer and metrics bit-identical")

    # Resize: the 2-rank run's checkpoint-2 resumed by 1 rank x GA 4, the 1-rank run's by 4 ranks x GA 1.
    for src, ranks, ga, name in [("w2", 1, 4, "2 -> 1"), ("w1", 4, 1, "1 -> 4")]:
        out = os.path.join(d, "resized_" + src)
        truncated_copy(runs[src], out, 2)
        train(a.bin, ranks, train_config(os.path.join(d, f"resized_{src}.json"), model, out,
                                         gradient_accumulation_steps=ga))
        same_run(runs["w1"], out, f"resumed at step 2 on {name} ranks")

    full_ft(a.bin, d, model)

    # Another global batch on resume: refused, naming the fix.
    out = os.path.join(d, "wrong_batch")
    truncated_copy(runs["w2"], out, 2)
    p = train(a.bin, 1, train_config(os.path.join(d, "wrong_batch.json"), model, out, gradient_accumulation_steps=2),
              check=False)
    expect(p.returncode == 2 and "set gradient_accumulation_steps to 4" in p.stderr,
           f"a resume with another global batch was not refused as expected ({p.returncode}): {p.stderr}")
    print("ok")


if __name__ == "__main__":
    main()
