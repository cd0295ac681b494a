#!/usr/bin/env python3
"""The README's demo path, shortened: init-model, `qwen-sft train configs/demo.json` (relative paths, as shipped)
for a few steps into a temporary output_dir, then `qwen-sft export` of the run from another working directory.
The loss must fall and the exported adapter must hold every LoRA tensor."""
import json
import os

from e2e_common import REPO, expect, parse_args, run, tiny_model, work_dir


def main():
    a = parse_args()
    d = work_dir("demo")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    out = os.path.join(d, "run")
    run(a.bin, "train", os.path.join(REPO, "configs", "demo.json"), "--quiet", "--set", f"model={json.dumps(model)}",
        "--set", f"output_dir={json.dumps(out)}", "--set", "training.max_steps=20", "--set", "eval_steps=10",
        "--set", "device=\"cpu\"", cwd=d)
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    losses = [l["loss"] for l in lines if "loss" in l]
    expect(losses[-1] < losses[0] - 0.3, f"the loss did not fall: {losses}")
    train_lines = [l for l in lines if "loss" in l]
    expect(all(0 <= l["mean_token_accuracy"] <= 1 for l in train_lines), "mean_token_accuracy missing or out of range")
    expect(all(k in lines[-1] for k in ("eval_loss", "eval_accuracy")), f"no final eval line: {lines[-1]}")
    cfg = json.load(open(os.path.join(out, "config.json")))
    expect(os.path.isabs(cfg["data"]["train_files"][0]), "the saved config keeps a relative data path")
    run(a.bin, "export", out, "--out", os.path.join(d, "adapter"), cwd="/")
    files = sorted(os.listdir(os.path.join(d, "adapter")))
    expect(files == ["adapter_config.json", "adapter_model.safetensors"], f"adapter files: {files}")
    print(f"ok: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps; exported {files}")


if __name__ == "__main__":
    main()
