#!/usr/bin/env python3
"""SIGTERM or SIGINT during a CPU training run: the run finishes the step it is in, writes a checkpoint of it, and
exits 128 + the signal number (143, 130) saying so; resuming gives the weights and loss curve of an uninterrupted
run, bit for bit. A second signal ends the run at once."""
import glob
import os
import signal
import subprocess
import time

from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config
from kill_resume_test import curve, logged_steps

STEPS = 16
TRAINING = dict(max_steps=STEPS, gradient_accumulation_steps=2, neftune_noise_alpha=5.0)


def start(a, cfg, env=None):
    return subprocess.Popen([a.bin, "train", cfg, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)


def wait_for_steps(p, metrics, n):
    while p.poll() is None and not (os.path.exists(metrics) and logged_steps(metrics) >= n):
        time.sleep(0.005)
    expect(p.poll() is None, f"the run ended (exit {p.returncode}) before step {n}")


def main():
    a = parse_args()
    d = work_dir("signal_resume")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    # save_steps larger than the run: only the signal and the end write checkpoints.
    ref = write_config(os.path.join(d, "ref.json"), model, os.path.join(d, "ref"), top={"save_steps": 100},
                       **TRAINING)
    cfg = write_config(os.path.join(d, "sig.json"), model, os.path.join(d, "sig"), top={"save_steps": 100},
                       **TRAINING)
    run(a.bin, "train", ref, "--quiet")
    out = os.path.join(d, "sig")
    metrics = os.path.join(out, "metrics.jsonl")

    for sig, target, code in ((signal.SIGTERM, 3, 143), (signal.SIGINT, 9, 130)):
        p = start(a, cfg)
        wait_for_steps(p, metrics, target)
        p.send_signal(sig)
        err = p.communicate()[1].decode()
        expect(p.returncode == code, f"{sig.name}: exit {p.returncode}, want {code}: {err}")
        steps = [int(c.rsplit("-", 1)[1]) for c in glob.glob(os.path.join(out, "checkpoint-*"))]
        expect(steps and max(steps) >= target, f"{sig.name}: no checkpoint of the step reached ({steps})")
        expect(sig.name in err and f"checkpoint-{max(steps)}" in err, f"{sig.name}: unclear message: {err}")
        print(f"ok: {sig.name} after step {target}: exit {code}, {err.strip()}")

    # A second signal does not wait: sent while the first one's checkpoint write is held, it ends the run at once.
    p = start(a, cfg, dict(os.environ, QSFT_TEST_CHECKPOINT_PAUSE_MS="600000"))
    wait_for_steps(p, metrics, 11)
    p.send_signal(signal.SIGTERM)
    while p.poll() is None and not glob.glob(os.path.join(out, ".tmp-checkpoint-*")):
        time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    expect(p.returncode == -signal.SIGTERM, f"second SIGTERM: exit {p.returncode}, want killed by SIGTERM")
    print("ok: a second SIGTERM ends the run at once")

    run(a.bin, "train", cfg, "--quiet")
    final = [open(os.path.join(r, f"checkpoint-{STEPS}", "adapter_model.safetensors"), "rb").read()
             for r in (out, os.path.join(d, "ref"))]
    expect(final[0] == final[1], "final LoRA weights differ from the uninterrupted run")
    expect(curve(out) == curve(os.path.join(d, "ref")), "metrics.jsonl differs from the uninterrupted run")
    print("ok: after the signals the resumed run equals the uninterrupted one bit for bit")


if __name__ == "__main__":
    main()
