#!/usr/bin/env python3
"""Full fine-tuning end to end on the CPU (a config without a lora section): kill -9 twice during the run and
resume; the final master weights, AdamW moments and loss curve equal an uninterrupted run's bit for bit. Then
`export` writes a model folder (transformers loading it: tests/interop/full_ft_export_test.py)."""
import json
import os
import random
import signal
import subprocess
import time

from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config

STEPS = 9
TRAINING = dict(max_steps=STEPS, gradient_accumulation_steps=2, neftune_noise_alpha=5.0, learning_rate=1e-4)


def full_config(path, model, out):
    write_config(path, model, out, **TRAINING)
    j = json.load(open(path))
    del j["lora"]  # no lora section: full fine-tuning, as TRL without a peft_config
    json.dump(j, open(path, "w"), indent=2)
    return path


def curve(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_second"} for line in f]


def final_files(run_dir):
    ck = os.path.join(run_dir, f"checkpoint-{STEPS}")
    return {n: open(os.path.join(ck, n), "rb").read() for n in ("model.safetensors", "optimizer.safetensors")}


def logged_steps(metrics):
    if not os.path.exists(metrics):
        return 0
    with open(metrics) as f:
        return sum(1 for line in f if '"loss"' in line)


def check_export(bin_path, run_dir):
    run(bin_path, "export", run_dir)
    out = os.path.join(run_dir, "model")
    for n in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        expect(os.path.exists(os.path.join(out, n)), f"export wrote no {n}")
    expect(not any(n.startswith(".tmp-") for n in os.listdir(run_dir)), "export left a temporary folder")
    print("export wrote " + ", ".join(sorted(os.listdir(out))))


def main():
    a = parse_args()
    d = work_dir("full_ft")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    ref_cfg = full_config(os.path.join(d, "ref.json"), model, os.path.join(d, "ref"))
    cfg = full_config(os.path.join(d, "killed.json"), model, os.path.join(d, "killed"))
    t0 = time.time()
    out = run(a.bin, "train", ref_cfg).stderr
    expect("parameters (full fine-tuning)" in out, "the run does not say it trains every weight:\n" + out)
    print(f"uninterrupted run: {time.time() - t0:.1f} s")

    rng = random.Random(20261130)
    killed = os.path.join(d, "killed")
    metrics = os.path.join(killed, "metrics.jsonl")
    plan = [rng.randint(2, 3), rng.randint(5, 7)]
    for target in plan + [None]:
        p = subprocess.Popen([a.bin, "train", cfg, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if target is None:
            err = p.communicate()[1].decode()
            expect(p.returncode == 0, f"resumed run failed ({p.returncode}): {err}")
            break
        while p.poll() is None and logged_steps(metrics) < target:
            time.sleep(0.005)
        expect(p.poll() is None, f"the run ended before the planned kill at step {target}")
        p.send_signal(signal.SIGKILL)
        p.wait()
    expect(final_files(killed) == final_files(os.path.join(d, "ref")),
           "final master weights or AdamW moments differ from the uninterrupted run")
    expect(curve(killed) == curve(os.path.join(d, "ref")), "metrics.jsonl differs from the uninterrupted run")
    print(f"ok: killed at logged steps {plan}, resumed: weights, moments and {len(curve(killed))} metrics lines "
          "equal the uninterrupted run bit for bit")
    check_export(a.bin, os.path.join(d, "ref"))


if __name__ == "__main__":
    main()
