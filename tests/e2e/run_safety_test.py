#!/usr/bin/env python3
"""A run's folder stays sound whatever happens around it:
- divergence (a huge learning rate): the run stops at the first non-finite loss or gradient norm with a clear error
  and a non-zero exit; no checkpoint holds a non-finite value, none of the good ones is pruned for it, and export
  refuses an adapter with NaN values;
- a second `train` into a running run's output_dir is refused (the lock names the folder), and neither it nor an
  `export` deletes the running one's temporary checkpoint (whose name carries its pid);
- token-cache temporaries of dead processes are removed, those of live ones kept;
- `export --merge` publishes the merged model in one step: into the base model's folder or an unrelated existing
  folder it is refused and writes nothing, over an earlier export it replaces it, and it leaves no temporary;
- every rename (checkpoint, atomic file, token cache) is followed by an fsync of its folder before anything else
  is renamed or removed (checked with strace, skipped without it)."""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import time

from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config


def read_floats(path):
    """Every F32 tensor of a safetensors file, as one list."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    values = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        expect(t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}")
        a, b = t["data_offsets"]
        values += struct.unpack(f"<{(b - a) // 4}f", raw[8 + n + a:8 + n + b])
    return values


def finite(values):
    return all(v == v and abs(v) != float("inf") for v in values)


def checkpoints(out):
    return sorted(glob.glob(os.path.join(out, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))


def divergence(a, d, model):
    out = os.path.join(d, "diverged")
    cfg = write_config(os.path.join(d, "diverged.json"), model, out, max_steps=12, learning_rate=1e30,
                       top={"save_steps": 1, "save_total_limit": 2})
    p = run(a.bin, "train", cfg, "--quiet", check=False)
    expect(p.returncode == 2, f"a diverging run exited {p.returncode}, want 2: {p.stderr}")
    expect("diverged" in p.stderr and "learning_rate" in p.stderr, f"unclear divergence error: {p.stderr}")
    cks = checkpoints(out)
    expect(cks and int(cks[-1].rsplit("-", 1)[1]) < 12, f"checkpoints after the divergence: {cks}")
    for ck in cks:
        for f in ("adapter_model.safetensors", "optimizer.safetensors"):
            expect(finite(read_floats(os.path.join(ck, f))), f"{ck}/{f} holds non-finite values")
    print("ok:", p.stderr.strip()[:200], "; kept", [os.path.basename(c) for c in cks])

    # An adapter with NaN values (a run from before this check, or a hand-made one) does not export.
    nan_ck = os.path.join(out, "checkpoint-99")
    shutil.copytree(cks[-1], nan_ck)
    st = os.path.join(nan_ck, "adapter_model.safetensors")
    with open(st, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + n)
        f.write(struct.pack("<f", float("nan")) * 4)
    p = run(a.bin, "export", nan_ck, "--out", os.path.join(d, "nan-export"), check=False)
    expect(p.returncode == 2 and "adapter_model.safetensors" in p.stderr and "non-finite" in p.stderr,
           f"export of a NaN adapter: exit {p.returncode}: {p.stderr}")
    expect(not os.path.exists(os.path.join(d, "nan-export")), "a NaN adapter was exported")
    print("ok:", p.stderr.strip()[:200])


def lock(a, d, model):
    out = os.path.join(d, "locked")
    cfg = write_config(os.path.join(d, "locked.json"), model, out, max_steps=4, top={"save_steps": 2})
    env = dict(os.environ, QSFT_TEST_CHECKPOINT_PAUSE_MS="600000")  # the first run holds its checkpoint write
    first = subprocess.Popen([a.bin, "train", cfg, "--quiet"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    tmp = []
    while first.poll() is None and not tmp:
        time.sleep(0.01)
        tmp = glob.glob(os.path.join(out, ".tmp-checkpoint-*"))
    expect(first.poll() is None, "the first run ended before its checkpoint write")
    try:
        expect(tmp[0].endswith(f".{first.pid}"), f"temporary checkpoint {tmp[0]} does not carry the pid {first.pid}")
        second = run(a.bin, "train", cfg, "--quiet", check=False)
        expect(second.returncode == 2 and out in second.stderr and "another" in second.stderr,
               f"a second train into a running output_dir: exit {second.returncode}: {second.stderr}")
        expect(os.path.isdir(tmp[0]), "the second train deleted the running one's temporary checkpoint")
        run(a.bin, "export", out, check=False)
        expect(os.path.isdir(tmp[0]), "export deleted the running train's temporary checkpoint")
        print("ok:", second.stderr.strip()[:200])
    finally:
        first.kill()
        first.wait()
    run(a.bin, "train", cfg, "--quiet")  # the lock went with the process; the leftover is cleaned up
    expect(os.path.isdir(os.path.join(out, "checkpoint-4")), "the resumed run did not finish")
    expect(not glob.glob(os.path.join(out, ".tmp-checkpoint-*")), "the dead run's temporary checkpoint was left")
    print("ok: the lock ends with its process; the next run removed the dead one's temporary checkpoint")


def stale_cache_temps(a, d, model):
    out = os.path.join(d, "cache_run")
    cfg = write_config(os.path.join(d, "cache_run.json"), model, out, max_steps=1)
    cache = os.path.join(out, "cache")
    os.makedirs(cache)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = os.path.join(cache, f"tokens-0123456789abcdef.bin.tmp{gone.pid}")
    live = os.path.join(cache, f"tokens-0123456789abcdef.bin.tmp{os.getpid()}")
    for f in (stale, live):
        with open(f, "wb") as fh:
            fh.write(b"\0" * 4096)
    run(a.bin, "data", cfg)
    expect(not os.path.exists(stale), "a dead process's token-cache temporary was left")
    expect(os.path.exists(live), "a live process's token-cache temporary was removed")
    print("ok: dead process's cache temporary removed, live one's kept")


def merge_export(a, d, model):
    out = os.path.join(d, "merge_run")
    run(a.bin, "train", write_config(os.path.join(d, "merge_run.json"), model, out, max_steps=1), "--quiet")
    before = sorted(os.listdir(model))
    for target, why in ((model, "is the base model folder"), (os.path.join(d, "merge_run"), "not an exported model")):
        p = run(a.bin, "export", out, "--merge", "--out", target, check=False)
        expect(p.returncode == 2 and why in p.stderr, f"export --merge --out {target}: exit {p.returncode}: {p.stderr}")
    expect(sorted(os.listdir(model)) == before, "a refused export --merge changed the base model's folder")
    merged = os.path.join(d, "merged")
    for _ in range(2):  # the second replaces the first
        run(a.bin, "export", out, "--merge", "--out", merged)
        expect(os.path.exists(os.path.join(merged, "config.json")), "export --merge wrote no config.json")
    expect(not glob.glob(os.path.join(d, ".tmp-merged*")), "export --merge left a temporary folder")
    print("ok: export --merge refuses the base model's folder and a foreign one, replaces an earlier export")


def fsyncs(a, d, model):
    if not shutil.which("strace"):
        print("skip fsync check: no strace")
        return
    out = os.path.join(d, "synced")
    cfg = write_config(os.path.join(d, "synced.json"), model, out, max_steps=3,
                       top={"save_steps": 1, "save_total_limit": 1})
    trace = os.path.join(d, "trace.txt")
    subprocess.run(["strace", "-f", "-y", "-o", trace, "-e",
                    "trace=rename,renameat,renameat2,fsync,unlink,unlinkat,rmdir", a.bin, "train", cfg, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = [l for l in open(trace).read().splitlines() if "= 0" in l]
    renames = 0
    for i, line in enumerate(events):
        if not re.search(r"\brename(at2?)?\(", line):
            continue
        renames += 1
        target = os.path.dirname(re.findall(r'"([^"]*)"', line)[-1])
        nxt = next((l for l in events[i + 1:] if l.split()[0] == line.split()[0]), "")
        expect(re.search(r"fsync\(\d+<" + re.escape(os.path.realpath(target)) + r">\)", nxt),
               f"no fsync of {target} right after\n  {line}\nnext: {nxt}")
    expect(renames >= 6, f"only {renames} renames traced")
    print(f"ok: each of {renames} renames followed by an fsync of its folder")


def main():
    a = parse_args()
    d = work_dir("run_safety")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    divergence(a, d, model)
    lock(a, d, model)
    stale_cache_temps(a, d, model)
    merge_export(a, d, model)
    fsyncs(a, d, model)


if __name__ == "__main__":
    main()
