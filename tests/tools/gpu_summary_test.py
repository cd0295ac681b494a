#!/usr/bin/env python3
"""tools/gpu_summary.py: merging the gpu-check summaries of one session's calls, and the follow-up's ONLY regex."""
import os
import subprocess
import sys
import tempfile

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu_summary.py")
HEAD = "# qwen-sft gpu-check 2026-12-01T10:00:00Z kit %s budget 570s\n# name: NVIDIA H200\n"
FIRST = HEAD % "abc1234 2026-12-01T09:00:00Z" + """env                            PASS       0     1
test-gemm                      PASS       0     7
test-loss                      FAIL       1     3
racecheck-attention            TIMEOUT  124    23
racecheck-gemm                 NOTIME     -     0
e2e-0.5b                       PASS       0    38
# total 72s of 570s
# results_jsonl: 9 figures appended
"""
FOLLOWUP = HEAD % "abc1234 2026-12-01T09:00:00Z" + """# racecheck and synccheck leave out: --kernel-name-exclude kns=nvjet
racecheck-attention            PASS       0    61
racecheck-gemm                 PASS       0     9
test-loss                      PASS       0     3
# total 73s of 200s
"""


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def stage_lines(text):
    return {l.split()[0]: l.split() for l in text.splitlines() if l.strip() and not l.startswith("#")}


def main():
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
        print(("ok   " if cond else "FAIL ") + what)

    with tempfile.TemporaryDirectory() as d:
        a, b = write(d, "first.txt", FIRST), write(d, "followup.txt", FOLLOWUP)
        m = run("merge", a, b)
        check(m.returncode == 0, "merge of two calls of one kit succeeds: " + m.stderr.strip())
        s = stage_lines(m.stdout)
        check(list(s) == ["env", "test-gemm", "test-loss", "racecheck-attention", "racecheck-gemm", "e2e-0.5b"],
              "stages in the order the calls ran them, each once: %s" % list(s))
        check(s["test-loss"][1:3] == ["FAIL", "1"] and s["test-loss"][-1] == "1",
              "a FAIL stays although a later call passed: %s" % s["test-loss"])
        check(s["racecheck-attention"][1] == "PASS" and s["racecheck-attention"][-1] == "2",
              "a TIMEOUT then a PASS: the PASS of call 2: %s" % s["racecheck-attention"])
        check(s["racecheck-gemm"][1] == "PASS", "NOTIME then PASS: PASS")
        check("#   test-loss: call 1 FAIL 3s, call 2 PASS 3s" in m.stdout, "every call's result of a rerun stage listed")
        check("kit abc1234 2026-12-01T09:00:00Z" in m.stdout.splitlines()[0], "the kit named in the first line")
        check("# call 2: racecheck and synccheck leave out: --kernel-name-exclude kns=nvjet" in m.stdout,
              "the calls' notes kept")
        check(not any(w in l for l in m.stdout.splitlines() if not l.startswith("#")
                      for w in (" NOTIME ", " TIMEOUT ")), "nothing left undone after the follow-up")

        r = run("rerun", a)
        check(r.stdout.strip() == "racecheck-attention|racecheck-gemm", "rerun: TIMEOUT and NOTIME stages: %r" %
              r.stdout.strip())
        check("test-loss FAIL" in r.stderr, "rerun names the FAIL it leaves out: %r" % r.stderr.strip())
        check(run("rerun", a, b).stdout.strip() == "", "rerun after the follow-up: nothing")
        dot = write(d, "dot.txt", HEAD % "abc1234 x" + "e2e-0.5b                       NOTIME     -     0\n")
        check(run("rerun", dot).stdout.strip() == "e2e-0\\.5b", "rerun: a '.' in a stage name escaped")

        other = write(d, "other.txt", FOLLOWUP.replace("abc1234", "def5678"))
        o = run("merge", a, other)
        check(o.returncode != 0 and "different kits" in o.stderr and "other.txt" in o.stderr,
              "calls of different kits refused, the files named: %r" % o.stderr.strip())
        bad = write(d, "bad.txt", FIRST + "test-gemm PASSED 0 1\n")
        e = run("merge", bad)
        check(e.returncode != 0 and "bad.txt line 11" in e.stderr, "a malformed line named: %r" % e.stderr.strip())
        nohead = write(d, "nohead.txt", "env PASS 0 1\n")
        n = run("merge", nohead)
        check(n.returncode != 0 and "nohead.txt line 1" in n.stderr, "a file without the header refused")

    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
