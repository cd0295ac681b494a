#!/usr/bin/env python3
"""Learning-rate schedule goldens from Hugging Face transformers: tests/data/lr_schedule_golden.json.

Each case is what a TrainingArguments run would pass to transformers.get_scheduler: lr_scheduler_type, the optimizer's
learning rate, num_warmup_steps, num_training_steps and lr_scheduler_kwargs. The scheduler (a LambdaLR over a
torch.optim.AdamW) is stepped through the whole run and the rate of every step is recorded before that step (the
rate the optimizer update at step k uses, as the Trainer logs it). Python floats are written with repr, which a JSON
reader turns back into the same double. tests/unit/lr_schedule_golden_test.cpp reads the same arguments through our
config parser and requires the same doubles.

Usage:  ~/.cache/qwen-sft/venv/bin/python tools/make_lr_schedule_golden.py [--out tests/data/lr_schedule_golden.json]
"""
import argparse
import os

import torch
import transformers
from transformers import get_scheduler

from golden_json import write_golden

# (name, lr_scheduler_type, learning_rate, num_warmup_steps, num_training_steps, lr_scheduler_kwargs)
CASES = [
    ("linear", "linear", 2e-4, 3, 17, {}),
    ("linear_no_warmup", "linear", 5e-5, 0, 10, {}),
    ("cosine", "cosine", 1e-3, 10, 110, {}),
    ("cosine_odd", "cosine", 3e-4, 7, 29, {}),
    ("cosine_cycles", "cosine", 3e-4, 2, 20, {"num_cycles": 1.5}),
    ("constant", "constant", 3e-4, 5, 9, {}),
    ("constant_with_warmup", "constant_with_warmup", 2e-4, 4, 12, {}),
    ("cosine_with_min_lr_rate", "cosine_with_min_lr", 2e-4, 3, 23, {"min_lr_rate": 0.1}),
    ("cosine_with_min_lr", "cosine_with_min_lr", 3e-4, 5, 41, {"min_lr": 1e-5}),
    ("cosine_with_min_lr_cycles", "cosine_with_min_lr", 1e-3, 0, 16, {"min_lr": 3e-5, "num_cycles": 0.75}),
    ("wsd_default", "warmup_stable_decay", 2e-4, 4, 30, {"num_decay_steps": 10}),
    ("wsd_linear", "warmup_stable_decay", 1e-3, 3, 25,
     {"num_decay_steps": 7, "decay_type": "linear", "min_lr_ratio": 0.1}),
    ("wsd_1sqrt", "warmup_stable_decay", 5e-4, 6, 31,
     {"num_decay_steps": 9, "decay_type": "1-sqrt", "warmup_type": "1-sqrt", "min_lr_ratio": 0.05}),
    ("wsd_cosine_warmup_stable", "warmup_stable_decay", 3e-4, 5, 40,
     {"num_decay_steps": 8, "num_stable_steps": 12, "warmup_type": "cosine", "num_cycles": 0.25}),
    ("wsd_no_warmup", "warmup_stable_decay", 1e-4, 0, 12, {"num_decay_steps": 12, "min_lr_ratio": 0.2}),
]


def rates(kind, lr, warmup, total, kwargs):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=total,
                          scheduler_specific_kwargs=dict(kwargs))
    out = []
    for _ in range(total + 2):  # two steps past the end: the schedule's tail
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                  "lr_schedule_golden.json"))
    args = ap.parse_args()
    cases = [{"name": n, "lr_scheduler_type": t, "learning_rate": lr, "warmup_steps": w, "total_steps": total,
              "lr_scheduler_kwargs": kw, "rates": rates(t, lr, w, total, kw)} for n, t, lr, w, total, kw in CASES]
    out = {"generator": "tools/make_lr_schedule_golden.py", "transformers": transformers.__version__,
           "torch": torch.__version__, "cases": cases}
    write_golden(args.out, out, indent=1)


if __name__ == "__main__":
    main()
