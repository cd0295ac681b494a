"""Helpers for the tests that run qwen-sft as several ranks under mpirun (CPU backend, oversubscribed cores)."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

from e2e_common import write_config


def mpirun_env():
    """The environment for mpirun: one OpenMP thread per rank (the ranks share the cores), root allowed (CI)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    env.setdefault("QSFT_COLLECTIVE_TIMEOUT", "300")
    return env


def mpirun_cmd(n, *args):
    return ["mpirun", "-np", str(n), "--oversubscribe", *args]


def require_mpirun(bin_path, work, model):
    """Exits 77 (skip) with the reason when mpirun is absent or this qwen-sft was built without MPI. The probe's
    output_dir is the model folder: with MPI rank 0 refuses it at once, without MPI the ranks stop before that."""
    if not shutil.which("mpirun"):
        print("SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
        sys.exit(77)
    cfg = write_config(os.path.join(work, "probe.json"), model, model)
    p = subprocess.run(mpirun_cmd(2, bin_path, "train", cfg, "--quiet"), capture_output=True, text=True,
                       env=mpirun_env())
    if "this build has none" in p.stderr:
        print("SKIP: qwen-sft was built without MPI")
        sys.exit(77)


def train_config(path, model, out, **training):
    """The multi-rank tests' run: dropout, NEFTune, eval and checkpoints every 2 steps; `training` overrides."""
    t = dict(max_steps=6, neftune_noise_alpha=5.0)
    t.update(training)
    write_config(path, model, out, top={"eval_steps": 3, "save_steps": 2}, **t)
    c = json.load(open(path))
    c["lora"]["lora_dropout"] = 0.1
    json.dump(c, open(path, "w"), indent=2)
    return path


def train(bin_path, n, cfg, check=True):
    """qwen-sft train on n ranks (n == 1: the plain binary, no mpirun). Returns the CompletedProcess."""
    cmd = [bin_path, "train", cfg, "--quiet"]
    p = subprocess.run(mpirun_cmd(n, *cmd) if n > 1 else cmd, capture_output=True, text=True, env=mpirun_env())
    if check and p.returncode != 0:
        sys.exit(f"FAIL: {n} ranks: qwen-sft train {cfg} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def tensors(path):
    """An F32 safetensors file: {name: list of floats}."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        b, e = t["data_offsets"]
        out[name] = struct.unpack(f"<{(e - b) // 4}f", raw[8 + n + b:8 + n + e])
    return out


def worst_relative(a, b):
    """How far apart two runs' outputs are (1.0 when their fields or tensors differ): for metrics lists the largest
    difference relative to the value, for tensor dicts the largest |a - b| / |a| (L2 norms) over the tensors. Adam
    divides each update by its gradient's running magnitude, so the rounding of a gradient summed in another order
    moves single small elements by more; the tensors' norms do not move."""
    if isinstance(a, list):
        if len(a) != len(b) or any(x.keys() != y.keys() for x, y in zip(a, b)):
            return 1.0
        return max((abs(x[k] - y[k]) / max(abs(x[k]), 1e-30) for x, y in zip(a, b) for k in x), default=0.0)
    if a.keys() != b.keys():
        return 1.0
    norm = lambda v: math.sqrt(sum(x * x for x in v))
    return max(norm([p - q for p, q in zip(a[k], b[k])]) / max(norm(a[k]), 1e-30) for k in a)


def truncated_copy(src, dst, step):
    """A copy of run folder src as it was when checkpoint-<step> was the newest (later checkpoints removed)."""
    shutil.copytree(src, dst)
    for name in os.listdir(dst):
        if name.startswith("checkpoint-") and int(name.split("-")[1]) > step:
            shutil.rmtree(os.path.join(dst, name))
