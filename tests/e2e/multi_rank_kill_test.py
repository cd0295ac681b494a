#!/usr/bin/env python3
"""Failures of a 2-rank CPU run under mpirun. A rank that never joins a collective: the other ends the job within
the timeout, naming it. SIGTERM to rank 1 alone: both stop after the same step with its checkpoint. kill -9 of a
rank mid-training and of rank 0 inside a checkpoint write: the job ends (mpirun names the rank). Resuming after all
of these gives the final weights and metrics of an uninterrupted 2-rank run, bit for bit."""
import os
import signal
import subprocess
import time

from e2e_common import curve, expect, parse_args, tiny_model, work_dir
from mpi_common import mpirun_cmd, mpirun_env, require_mpirun, train, train_config

STEPS = 6


def ranks_of(mpirun_pid):
    """{rank: pid} of mpirun's qwen-sft children."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != mpirun_pid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return out


def logged_steps(run_dir):
    try:
        return sum(1 for m in curve(run_dir) if "loss" in m)
    except (OSError, ValueError):
        return 0


def signal_rank(a, cfg, run_dir, rank, when, env, sig=signal.SIGKILL):
    """Starts 2 ranks, waits until when(run_dir), sends sig to `rank`; returns mpirun's exit code and stderr."""
    p = subprocess.Popen(mpirun_cmd(2, a.bin, "train", cfg, "--quiet"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not (when(run_dir) and rank in ranks_of(p.pid)) and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    pids = ranks_of(p.pid)
    expect(p.poll() is None and rank in pids, f"the run ended or has no rank {rank} before the signal: {pids}")
    os.kill(pids[rank], sig)
    err = p.communicate(timeout=120)[1]
    expect(p.returncode != 0, f"mpirun exited 0 after rank {rank} got signal {sig}")
    return err


def main():
    a = parse_args()
    d = work_dir("multi_rank_kill")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    require_mpirun(a.bin, d, model)

    # A peer that never joins: the timeout ends the job and names it.
    stall = os.path.join(a.build, "tests", "mpi_stall")
    if os.path.exists(stall):
        cfg = train_config(os.path.join(d, "stall.json"), model, os.path.join(d, "stall"))
        env = dict(mpirun_env(), QSFT_COLLECTIVE_TIMEOUT="3")
        t0 = time.time()
        p = subprocess.run(["mpirun", "-np", "1", a.bin, "train", cfg, "--quiet", ":", "-np", "1", stall, "120"],
                           capture_output=True, text=True, env=env, timeout=100)
        print(f"stalled peer: job ended after {time.time() - t0:.1f} s, exit {p.returncode}")
        expect(p.returncode != 0 and "waited 3 s for rank 1" in p.stderr,
               f"no timeout naming rank 1 ({p.returncode}): {p.stderr[-2000:]}")
    else:
        print(f"(no {stall}: the stalled-peer case is skipped)")

    ref = os.path.join(d, "ref")
    train(a.bin, 2, train_config(os.path.join(d, "ref.json"), model, ref, gradient_accumulation_steps=2))
    killed = os.path.join(d, "killed")
    cfg = train_config(os.path.join(d, "killed.json"), model, killed, gradient_accumulation_steps=2)
    # SIGTERM to rank 1 only (as a preemption may reach one task first): both ranks stop after the same step,
    # with a checkpoint of it.
    err = signal_rank(a, cfg, killed, 1, lambda r: logged_steps(r) >= 2, mpirun_env(), signal.SIGTERM)
    expect("stopped by SIGTERM" in err and "written" in err, f"no checkpoint after SIGTERM to rank 1: {err[-2000:]}")
    expect(f"checkpoint-{logged_steps(killed)}" in os.listdir(killed), "the last step before SIGTERM was not saved")
    err = signal_rank(a, cfg, killed, 1, lambda r: logged_steps(r) >= 4, mpirun_env())
    expect("rank 1" in err, f"mpirun's message does not name rank 1: {err[-2000:]}")
    in_write = lambda r: os.path.isdir(r) and any(n.startswith(".tmp-checkpoint-") for n in os.listdir(r))
    signal_rank(a, cfg, killed, 0, in_write, dict(mpirun_env(), QSFT_TEST_CHECKPOINT_PAUSE_MS="600000"))
    train(a.bin, 2, cfg)
    for f in ("adapter_model.safetensors", "optimizer.safetensors"):
        both = [open(os.path.join(r, f"checkpoint-{STEPS}", f), "rb").read() for r in (ref, killed)]
        expect(both[0] == both[1], f"{f} after the kills differs from the uninterrupted run")
    expect(curve(killed) == curve(ref), "metrics.jsonl after the kills differs from the uninterrupted run")
    print("ok: SIGTERM to rank 1, kill -9 of rank 1 mid-run and of rank 0 in a checkpoint write; resumed to the "
          "uninterrupted run's results")


if __name__ == "__main__":
    main()
