#!/usr/bin/env python3
"""optim "adamw_8bit" end to end on the tiny preset (CPU), with LoRA and with full fine-tuning (the no-decay group
of biases and norm weights begins inside a block of 256): the loss falls, optimizer.safetensors holds the 8-bit
state (U8 codes and per-block absmax), a run resumed from a middle checkpoint ends with the same weights, optimizer
state and metrics, bit for bit, as the uninterrupted run. The schedule is warmup_stable_decay, so the resumed run
must also continue the schedule exactly."""
import json
import os
import shutil
import struct

from e2e_common import curve, expect, parse_args, run, tiny_model, work_dir, write_config

STEPS = 8
TRAINING = dict(max_steps=STEPS, optim="adamw_8bit", weight_decay=0.01, lr_scheduler_type="warmup_stable_decay",
                lr_scheduler_kwargs={"num_decay_steps": 3, "min_lr_ratio": 0.1})


def read(path):
    with open(path, "rb") as f:
        return f.read()


def header(path):
    """A safetensors file's header: {name: {"dtype", "shape", ...}}."""
    data = read(path)
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])


def config(path, model, out, full):
    write_config(path, model, out, top={"save_steps": 4}, **TRAINING)
    if full:  # no lora section: full fine-tuning
        c = json.load(open(path))
        del c["lora"]
        json.dump(c, open(path, "w"), indent=2)
    return path


def check(bin_path, d, model, full):
    kind = "full" if full else "lora"
    weights = "model.safetensors" if full else "adapter_model.safetensors"
    ref = os.path.join(d, "ref_" + kind)
    run(bin_path, "train", config(os.path.join(d, f"ref_{kind}.json"), model, ref, full), "--quiet")

    losses = [m["loss"] for m in curve(ref) if "loss" in m]
    expect(len(losses) == STEPS and losses[-1] < losses[0], f"{kind}: the loss did not fall: {losses}")
    h = header(os.path.join(ref, f"checkpoint-{STEPS}", "optimizer.safetensors"))
    p = h["exp_avg"]["shape"][0]
    expect(h["exp_avg"]["dtype"] == "U8" and h["exp_avg_sq"]["dtype"] == "U8", f"8-bit codes expected: {h}")
    expect(h["exp_avg_absmax"]["shape"] == [(p + 255) // 256], f"one absmax per 256 parameters: {h}")

    # Resume from checkpoint-4 in a copy of the run: steps 5..8 again, the same bits.
    resumed = os.path.join(d, "resumed_" + kind)
    shutil.copytree(ref, resumed, ignore=shutil.ignore_patterns(f"checkpoint-{STEPS}", "*.lock"))
    out = run(bin_path, "train", config(os.path.join(d, f"resumed_{kind}.json"), model, resumed, full))
    expect("resuming from" in out.stderr + out.stdout, f"{kind}: the second run did not resume")
    for name in (weights, "optimizer.safetensors"):
        expect(read(os.path.join(ref, f"checkpoint-{STEPS}", name)) ==
               read(os.path.join(resumed, f"checkpoint-{STEPS}", name)), f"{kind}: {name} differs after the resume")
    expect(curve(ref) == curve(resumed), f"{kind}: the metrics differ after the resume")
    print(f"adamw_8bit, {kind}: loss {losses[0]:.4f} -> {losses[-1]:.4f} in {STEPS} steps, {p} parameters; "
          "resume bit-exact")


def main():
    a = parse_args()
    d = work_dir("optim_8bit")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    for full in (False, True):
        check(a.bin, d, model, full)


if __name__ == "__main__":
    main()
