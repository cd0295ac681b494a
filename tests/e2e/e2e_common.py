"""Helpers shared by the end-to-end tests: arguments, a tiny model, a config, running qwen-sft."""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_DATA = os.path.join(REPO, "configs", "data", "demo_chat.jsonl")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="the qwen-sft binary")
    p.add_argument("--build", default="", help="the build folder")
    a = p.parse_args()
    a.bin = os.path.abspath(a.bin)  # tests may run it from other working directories
    return a


def work_dir(name):
    """An empty folder of the test's own, <temp>/qsft_e2e_NAME_PID, removed when the test exits (kept with
    QSFT_KEEP_TEST_DIRS=1, to look at what a failed run wrote)."""
    d = os.path.join(tempfile.gettempdir(), f"qsft_e2e_{name}_{os.getpid()}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if os.environ.get("QSFT_KEEP_TEST_DIRS") != "1":
        atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def run(bin_path, *args, env=None, check=True, **kw):
    """Runs qwen-sft; returns the CompletedProcess (stdout/stderr as text)."""
    p = subprocess.run([bin_path, *args], capture_output=True, text=True, env=env, **kw)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: qwen-sft {' '.join(args)} exited {p.returncode}\n{p.stderr}")
    return p


def tiny_model(bin_path, out_dir):
    run(bin_path, "init-model", "--preset", "tiny", "--out", out_dir)
    return out_dir


def write_config(path, model, output_dir, data=DEMO_DATA, top=None, **training):
    """A small CPU training config; `training` keys and top-level keys (`top`) override the defaults below."""
    t = {"max_steps": 12, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
         "learning_rate": 2e-3, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "seed": 3}
    t.update(training)
    cfg = {"model": model, "data": {"train_files": [data], "eval_split": 0.05, "max_length": 128},
           "lora": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}, "training": t,
           "logging_steps": 1, "eval_steps": 4, "save_steps": 3, "output_dir": output_dir, "device": "cpu"}
    cfg.update(top or {})
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


def expect(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def curve(run_dir):
    """Every line of a run's metrics.jsonl without its timing field."""
    lines = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            d.pop("tokens_per_second", None)
            lines.append(d)
    return lines
