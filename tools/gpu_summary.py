#!/usr/bin/env python3
"""Summaries of tools/gpu-check.sh across the calls of one GPU session.

One session's GPU time (~15 minutes, the machine's start included) may not hold every stage in its first call; the
follow-up call runs, with the same kit, the stages the first left undone. These two commands join them:

  tools/gpu_summary.py rerun SUMMARY...         the ONLY regex of the stages no call finished (NOTIME, TIMEOUT)
  tools/gpu_summary.py merge SUMMARY... > OUT   one summary of every stage, in the order the calls ran them

merge refuses calls of different kits (the "kit <commit> <built at>" of each header): a merged summary holds the
results of one build. A stage's line is the one of the call that decided it, with that call's number appended:
a FAIL in any call is kept (the same binaries failed once: flaky at best); else the last PASS; else the last run
(TIMEOUT, SKIPPED); NOTIME only when no call ran the stage. A stage run by more than one call gets a comment line
listing every call's result, so nothing a call found is hidden.
"""
import re
import sys

STAGE = re.compile(r"^(\S+)\s+(PASS|FAIL|TIMEOUT|SKIPPED|NOTIME)\s+(\S+)\s+(\d+)")
KIT = re.compile(r"^# qwen-sft gpu-check \S+ kit (\S+ \S+)")
ENV = re.compile(r"^# (qwen-sft gpu-check |name,|nvcc:|compute-sanitizer:|python:|cpus )")  # the env stage's header


class Call:
    """One gpu-check summary: its header (the env lines), its kit, its stage results in order, its other notes."""

    def __init__(self, path):
        self.path, self.header, self.stages, self.notes, self.kit = path, [], [], [], None
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                m = STAGE.match(line)
                if m:
                    name, status, rc, secs = m.groups()
                    self.stages.append((name, status, rc, int(secs)))
                elif ENV.match(line):
                    self.header.append(line)
                elif line.startswith("#") and not line.startswith("# total "):
                    self.notes.append(line)  # e.g. what racecheck leaves out, the results_jsonl count
                elif line.strip() and not line.startswith("#"):
                    raise SystemExit("%s line %d: not a gpu-check summary line: %r" % (path, n, line))
        k = KIT.match(self.header[0]) if self.header else None
        if not k:
            raise SystemExit("%s line 1: no '# qwen-sft gpu-check ... kit <commit> <built at>' header" % path)
        self.kit = k.group(1)


def decide(runs):
    """The deciding run of one stage: runs = [(call number, status, rc, seconds)] in call order."""
    ran = [r for r in runs if r[1] != "NOTIME"]
    failed = [r for r in ran if r[1] == "FAIL"]
    if failed:
        return failed[0]
    passed = [r for r in ran if r[1] == "PASS"]
    if passed:
        return passed[-1]
    return ran[-1] if ran else runs[0]


def merge(calls, out):
    kits = {c.kit for c in calls}
    if len(kits) > 1:
        raise SystemExit("calls of different kits, not merged: " +
                         ", ".join("%s (kit %s)" % (c.path, c.kit) for c in calls))
    out.write("# qwen-sft gpu-check merged: %d calls of kit %s (tools/gpu_summary.py merge)\n" %
              (len(calls), calls[0].kit))
    for i, c in enumerate(calls, 1):
        out.write("# call %d (%s): %s\n" % (i, c.path, c.header[0].lstrip("# ")))
    out.writelines(line + "\n" for line in calls[0].header[1:])
    runs = runs_by_stage(calls)
    for name, rs in runs.items():
        call, status, rc, secs = decide(rs)
        out.write("%-30s %-7s %4s %5d  call %d\n" % (name, status, rc, secs, call))
        ran = [r for r in rs if r[1] != "NOTIME"]
        if len(ran) > 1:
            out.write("#   %s: %s\n" % (name, ", ".join("call %d %s %ss" % (r[0], r[1], r[3]) for r in ran)))
    for i, c in enumerate(calls, 1):
        out.writelines("# call %d: %s\n" % (i, note.lstrip("# ")) for note in c.notes)
    out.write("# total %ds over %d calls\n" % (sum(r[3] for rs in runs.values() for r in rs), len(calls)))


def runs_by_stage(calls):
    """stage -> [(call number, status, rc, seconds)], the stages in the order first seen."""
    runs = {}
    for i, c in enumerate(calls, 1):
        for name, status, rc, secs in c.stages:
            runs.setdefault(name, []).append((i, status, rc, secs))
    return runs


def rerun(calls, out):
    """Stages no call finished: NOTIME, or TIMEOUT (often a timeout the budget shrank). A FAIL or a SKIPPED needs
    a fix and a new kit, not the same binaries again: named on stderr, left out."""
    todo, not_again = [], []
    for name, rs in runs_by_stage(calls).items():
        status = decide(rs)[1]
        if status in ("NOTIME", "TIMEOUT"):
            todo.append(name)
        elif status != "PASS":
            not_again.append("%s %s" % (name, status))
    if not_again:
        sys.stderr.write("not rerun (a fix and a new kit first): %s\n" % ", ".join(not_again))
    out.write("|".join(n.replace(".", "\\.") for n in todo) + "\n")


def main(argv):
    if len(argv) < 3 or argv[1] not in ("merge", "rerun"):
        raise SystemExit(__doc__)
    calls = [Call(p) for p in argv[2:]]
    (merge if argv[1] == "merge" else rerun)(calls, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
