#!/usr/bin/env python3
"""Baseline for bench/tokenizer_bench.cpp: Hugging Face `tokenizers` encode throughput on the same corpus.

The corpus is every string field of every record in ../shared/testdata/sft (English and Chinese instructions,
tool calls, medical reasoning), one document per string, written NUL-separated to --corpus when that file is
absent so that the C++ benchmark reads exactly the same documents.

  python3 bench/tokenizer_baseline.py --corpus /tmp/tok_corpus.bin [--model ../shared/testdata/qwen2.5]
  build/tokenizer_bench /tmp/tok_corpus.bin ../shared/testdata/qwen2.5
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "..", "shared", "testdata")
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from parity_common import sft_strings  # noqa: E402


def write_corpus(path):
    docs = sft_strings(TESTDATA)
    with open(path, "wb") as f:
        f.write(b"\0".join(d.encode() for d in docs if d and "\0" not in d))


def measure(label, fn, nbytes, repeats=5):
    """Prints the first (cold cache) pass and the best of the repeats (warm cache)."""
    times, ntok = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        ntok = fn()
        times.append(time.perf_counter() - t)
    for name, dt in (("cold", times[0]), ("warm", min(times))):
        print("%-44s %8.2f MB/s %12.0f tokens/s  (%d tokens, %.3f s)"
              % (label + ", " + name, nbytes / dt / 1e6, ntok / dt, ntok, dt))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", default=os.path.join(TESTDATA, "qwen2.5"))
    ap.add_argument("--single", action="store_true", help="(internal) the single-threaded run")
    args = ap.parse_args()
    if not os.path.exists(args.corpus):
        write_corpus(args.corpus)
    data = open(args.corpus, "rb").read()
    docs = [d.decode() for d in data.split(b"\0")]
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    if args.single:
        measure("tokenizers encode_batch, 1 thread", lambda: sum(len(e.ids) for e in tok.encode_batch(docs)), len(data))
        return
    print("corpus: %d documents, %.1f MB; tokenizers %s; %d cores" % (len(docs), len(data) / 1e6,
                                                                     tokenizers.__version__, os.cpu_count()))
    # tokenizers runs encode_batch on one thread when TOKENIZERS_PARALLELISM=false (set before it starts).
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    subprocess.run([sys.executable, __file__, "--corpus", args.corpus, "--model", args.model, "--single"], env=env,
                   check=True)
    measure("tokenizers encode_batch, all cores", lambda: sum(len(e.ids) for e in tok.encode_batch(docs)), len(data))


if __name__ == "__main__":
    main()
