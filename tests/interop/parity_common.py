"""Helpers shared by the parity tests (tests/interop/*_parity_test.py) and bench/tokenizer_baseline.py: the shared
test data, skipping, the command line, `qwen-sft tokenize` runs and the strings of the shared SFT data."""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.environ.get("QSFT_SHARED_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))


def skip(why):
    print("skipped: " + why)
    sys.exit(77)


def parse_args():
    """--bin (the qwen-sft binary, required) and --build (the build folder, unused)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--build")
    return ap.parse_args()


def run_tokenize(binary, model_dir, records, *flags):
    """One qwen-sft tokenize run over records (dicts); returns the output records."""
    stdin = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    p = subprocess.run([binary, "tokenize", "--model", model_dir, *flags], input=stdin.encode(), capture_output=True)
    if p.returncode != 0:
        sys.exit("qwen-sft tokenize failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")[:2000]))
    out = [json.loads(line) for line in p.stdout.decode().split("\n") if line]
    assert len(out) == len(records), (len(out), len(records))
    return out


def string_fields(value, out):
    """Appends every string inside value (nested dicts and lists) to out."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            string_fields(v, out)
    elif isinstance(value, list):
        for v in value:
            string_fields(v, out)


def sft_strings(testdata=TESTDATA):
    """Every string field of every record in testdata/sft, the files in name order."""
    out = []
    sft = os.path.join(testdata, "sft")
    for name in sorted(os.listdir(sft)):
        with open(os.path.join(sft, name), encoding="utf-8") as f:
            if name.endswith(".jsonl"):
                for line in f:
                    if line.strip():
                        string_fields(json.loads(line), out)
            else:
                string_fields(json.load(f), out)
    return out
