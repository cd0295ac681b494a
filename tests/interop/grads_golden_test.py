#!/usr/bin/env python3
"""`qwen-sft grads` (the command hf_parity_test.py reads our gradients with) on the golden fixtures: the packed
batch of golden.json with the fixture's adapter must give the float64 transformers + PEFT loss and every LoRA
gradient of golden.safetensors (CPU backend, fp32: loss within 1e-5 relative, each gradient relative L2 error
<= 1e-4), with the LoRA terms written before the base GEMM adds onto them (the default) and added after it
(QSFT_LORA_FIRST=0). Also: a batch file with a bad field (a float tensor, a target outside the vocabulary) is an InputError
(exit 2) naming the file and the tensor.
Needs numpy and safetensors (without them: skipped, exit 77)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import REPO, expect, parse_args, work_dir  # noqa: E402

try:
    import numpy as np
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    print(f"skipped: {e.name} is not installed (pip install numpy safetensors)")
    sys.exit(77)


def grads(binary, fixture, batch_path, out, lora_first="1"):
    return subprocess.run([binary, "grads", "--model", os.path.join(fixture, "model"), "--adapter",
                           os.path.join(fixture, "adapter"), "--batch", batch_path, "--out", out, "--device", "cpu"],
                          capture_output=True, text=True, env=dict(os.environ, QSFT_LORA_FIRST=lora_first))


def check_case(binary, case, d, lora_first):
    fixture = os.path.join(REPO, "tests", "data", "fixtures", case)
    g = json.load(open(os.path.join(fixture, "golden.json")))
    batch = os.path.join(d, f"{case}_batch.safetensors")
    save_file({k: np.array(g[src], dtype=np.int32) for k, src in
               (("ids", "input_ids"), ("targets", "targets"), ("cu_seqlens", "cu_seqlens"))}, batch)
    out = os.path.join(d, f"{case}_grads.safetensors")
    p = grads(binary, fixture, batch, out, lora_first)
    expect(p.returncode == 0, f"qwen-sft grads ({case}) exited {p.returncode}: {p.stderr}")
    case += " (LoRA first)" if lora_first == "1" else " (LoRA after the base GEMM)"
    ours, ref = load_file(out), load_file(os.path.join(fixture, "golden.safetensors"))
    loss = float(ours.pop("loss")[0])
    expect(abs(loss - g["loss"]) <= 1e-5 * g["loss"], f"{case}: loss {loss} vs reference {g['loss']}")
    ref_grads = {k[len("grad."):]: v for k, v in ref.items() if k.startswith("grad.")}
    expect(sorted(ours) == sorted(ref_grads), f"{case}: gradient keys differ: {sorted(set(ours) ^ set(ref_grads))}")
    worst = max((float(np.linalg.norm(ours[k].astype(np.float64) - ref_grads[k]) / np.linalg.norm(ref_grads[k])), k)
                for k in ref_grads)
    print(f"{case}: loss {loss:.7f} (reference {g['loss']:.7f}), {len(ref_grads)} LoRA gradients, "
          f"worst rel. L2 error {worst[0]:.2e} ({worst[1]})")
    expect(worst[0] <= 1e-4, f"{case}: gradient {worst[1]} off by {worst[0]:.2e}")
    return fixture, g


def main():
    a = parse_args()
    d = work_dir("grads")
    for case in ("tied", "untied"):  # both orders of the LoRA terms and the base GEMM (QSFT_LORA_FIRST)
        for lora_first in ("1", "0"):
            fixture, g = check_case(a.bin, case, d, lora_first)
    bad = os.path.join(d, "bad_batch.safetensors")
    save_file({"ids": np.array(g["input_ids"], dtype=np.int32), "targets": np.array(g["targets"], dtype=np.float32),
               "cu_seqlens": np.array(g["cu_seqlens"], dtype=np.int32)}, bad)
    p = grads(a.bin, fixture, bad, os.path.join(d, "bad_out.safetensors"))
    expect(p.returncode == 2 and bad in p.stderr and "targets" in p.stderr,
           f"a float targets tensor: exit {p.returncode}, {p.stderr.strip()}")
    expect(not os.path.exists(os.path.join(d, "bad_out.safetensors")), "an output was written for a bad batch")
    vocab = json.load(open(os.path.join(fixture, "model", "config.json")))["vocab_size"]
    targets = np.array(g["targets"], dtype=np.int32)
    at = int(np.flatnonzero(targets != -100)[-1])
    targets[at] = vocab  # one past the vocabulary: the CUDA loss would read past the logits' row
    save_file({"ids": np.array(g["input_ids"], dtype=np.int32), "targets": targets,
               "cu_seqlens": np.array(g["cu_seqlens"], dtype=np.int32)}, bad)
    p = grads(a.bin, fixture, bad, os.path.join(d, "bad_out.safetensors"))
    expect(p.returncode == 2 and bad in p.stderr and f"targets[{at}] is {vocab}" in p.stderr,
           f"a target outside the vocabulary: exit {p.returncode}, {p.stderr.strip()}")
    expect(not os.path.exists(os.path.join(d, "bad_out.safetensors")), "an output was written for a bad batch")
    print("ok")


if __name__ == "__main__":
    main()
