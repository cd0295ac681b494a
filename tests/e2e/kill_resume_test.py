#!/usr/bin/env python3
"""kill -9 at random moments of a CPU training run (once during a checkpoint write), resuming each time: the final
LoRA weights and the loss curve must equal those of an uninterrupted run, bit for bit."""
import json
import os
import random
import signal
import subprocess
import time

from e2e_common import curve, expect, parse_args, run, tiny_model, work_dir, write_config

STEPS = 24
# Dropout, NEFTune and gradient accumulation on: resuming must redraw the same random masks and batches.
TRAINING = dict(max_steps=STEPS, gradient_accumulation_steps=2, neftune_noise_alpha=5.0)


def logged_steps(metrics):
    with open(metrics) as f:
        return sum(1 for line in f if '"loss"' in line)


def final_weights(run_dir):
    with open(os.path.join(run_dir, f"checkpoint-{STEPS}", "adapter_model.safetensors"), "rb") as f:
        return f.read()


def main():
    a = parse_args()
    d = work_dir("kill_resume")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    ref_cfg = write_config(os.path.join(d, "ref.json"), model, os.path.join(d, "ref"), **TRAINING)
    cfg = write_config(os.path.join(d, "killed.json"), model, os.path.join(d, "killed"), **TRAINING)
    for c in (ref_cfg, cfg):  # LoRA dropout too
        j = json.load(open(c))
        j["lora"]["lora_dropout"] = 0.1
        json.dump(j, open(c, "w"), indent=2)

    t0 = time.time()
    run(a.bin, "train", ref_cfg, "--quiet")
    print(f"uninterrupted run: {time.time() - t0:.1f} s")

    # Kills land at planned points of progress (so the test does not depend on the machine's speed): once before
    # the first step, then after a random number of logged steps, and once inside a checkpoint write (the write
    # pauses before its rename, with its temporary directory complete).
    rng = random.Random(20261123)
    killed_dir = os.path.join(d, "killed")
    metrics = os.path.join(killed_dir, "metrics.jsonl")
    plan = ["start", rng.randint(2, 6), "checkpoint", rng.randint(10, 15), rng.randint(17, 21)]
    kills, during_checkpoint = 0, False
    env = dict(os.environ)
    for target in plan + [None]:
        env["QSFT_TEST_CHECKPOINT_PAUSE_MS"] = "600000" if target == "checkpoint" else "0"
        p = subprocess.Popen([a.bin, "train", cfg, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env)
        if target is None:  # the last run goes to the end
            err = p.communicate()[1].decode()
            expect(p.returncode == 0, f"resumed run failed ({p.returncode}): {err}")
            break
        if target == "start":
            time.sleep(rng.uniform(0.0, 0.3))
        while p.poll() is None:
            if target == "checkpoint":
                if os.path.isdir(killed_dir) and any(n.startswith(".tmp-checkpoint-") for n in os.listdir(killed_dir)):
                    during_checkpoint = True
                    break
            elif target != "start" and os.path.exists(metrics) and logged_steps(metrics) >= target:
                time.sleep(rng.uniform(0.0, 0.05))
                break
            elif target == "start":
                break
            time.sleep(0.005)
        if p.poll() is not None:  # (reading stderr waits for the process to end: only once it has)
            expect(False, f"the run ended (exit {p.returncode}) before the planned kill at {target}: "
                          f"{p.stderr.read().decode()}")
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
    print(f"killed {kills} times (once during a checkpoint write: {during_checkpoint}), then it finished")
    expect(kills == len(plan) and during_checkpoint, "the test did not interrupt the run as planned")
    expect(final_weights(killed_dir) == final_weights(os.path.join(d, "ref")),
           "final LoRA weights differ from the uninterrupted run")
    expect(curve(killed_dir) == curve(os.path.join(d, "ref")), "metrics.jsonl differs from the uninterrupted run")
    print(f"ok: final weights and {len(curve(killed_dir))} metrics lines equal the uninterrupted run bit for bit")


if __name__ == "__main__":
    main()
