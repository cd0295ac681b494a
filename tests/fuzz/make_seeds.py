#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into OUT/<target>/ from the repository's test data (tests/data), the shared
test data (../shared/testdata, when present) and the hand-written seeds in tests/fuzz/seeds/<target>/, in each
target's input layout (see the comment at the top of tests/fuzz/<target>_fuzz.cpp). Run by tools/fuzz.sh.

    make_seeds.py OUT
"""
import glob
import hashlib
import json
import os
import struct
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "testdata")
HAND = os.path.join(REPO, "tests", "fuzz", "seeds")
MAX_SEED = 64 << 10  # the fuzzers' -max_len (tools/fuzz.sh): longer seeds would be cut


def read(path):
    with open(path, "rb") as f:
        return f.read()


def put(out, target, data):
    if len(data) > MAX_SEED:
        return
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def hand_written(target):
    return [read(p) for p in sorted(glob.glob(os.path.join(HAND, target, "*")))]


def safetensors(header, data=b""):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def first_tensors(path, budget=32 << 10):
    """The file's first tensors (in data order) whose bytes fit in budget, as a file of their own."""
    blob = read(path)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data, out = blob[8 + n:], {"__metadata__": header.pop("__metadata__", {})}
    kept = b""
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, end = t["data_offsets"]
        if len(kept) + end - begin > budget:
            break
        out[name] = dict(t, data_offsets=[len(kept), len(kept) + end - begin])
        kept += data[begin:end]
    return safetensors(out, kept)


def safetensors_seeds():
    seeds = [first_tensors(p) for p in glob.glob(os.path.join(REPO, "tests", "data", "**", "*.safetensors"),
                                                 recursive=True)]
    seeds.append(safetensors({"__metadata__": {"format": "pt"},
                              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
                              "c": {"dtype": "F16", "shape": [], "data_offsets": [22, 24]},
                              "d": {"dtype": "I64", "shape": [0, 5], "data_offsets": [24, 24]}}, bytes(range(24))))
    # model.safetensors.index.json over the fuzzer's fixed shards (a, b in 00001; c, d in 00002)
    shard = lambda i: "model-0000%d-of-00002.safetensors" % i
    seeds.append(json.dumps({"metadata": {"total_size": 44}, "weight_map": {
        "a": shard(1), "b": shard(1), "c": shard(2), "d": shard(2)}}).encode())
    return seeds


def model_config_seeds():
    paths = glob.glob(os.path.join(REPO, "tests", "data", "**", "config.json"), recursive=True)
    paths += glob.glob(os.path.join(SHARED, "**", "config.json"), recursive=True)
    return [read(p) for p in paths if b"model_type" in read(p)]


def small_tokenizer(path, keep=400):
    """tokenizer.json with its first `keep` tokens, the merges among them, and its added tokens renumbered after
    them: the file's structure (normalizer, pre-tokenizer, post-processor, decoder) at a fuzzable size."""
    tok = json.loads(read(path))
    model = tok["model"]
    vocab = {t: i for t, i in model["vocab"].items() if i < keep}
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    renumber = {}
    for i, added in enumerate(tok.get("added_tokens") or []):
        renumber[added["id"]] = keep + i
        added["id"] = keep + i
    for special in ((tok.get("post_processor") or {}).get("special_tokens") or {}).values():
        special["ids"] = [renumber.get(i, i) for i in special["ids"]]
    return json.dumps(tok, ensure_ascii=False).encode()


def tokenizer_seeds():
    files = [small_tokenizer(p) for p in sorted(glob.glob(os.path.join(SHARED, "*", "tokenizer.json")))]
    files += hand_written("tokenizer")
    texts = [b"", "<|im_start|>system\nYou are helpful.<|im_end|>\n 你好, world!  123\t\n".encode(), b"\xff bad"]
    return files + [f + b"\0" + t for f in files for t in texts]


def records(path, n=2):
    """The first n records of a JSON array, JSONL file or JSON values one after another."""
    text = read(path).decode("utf-8").strip()
    if text.startswith("["):
        return json.loads(text)[:n]
    out, pos, decoder = [], 0, json.JSONDecoder()
    while pos < len(text) and len(out) < n:
        value, pos = decoder.raw_decode(text, pos)
        out.append(value)
        pos = len(text) - len(text[pos:].lstrip())
    return out


def data_seeds():
    sets = [records(p) for p in sorted(glob.glob(os.path.join(SHARED, "sft", "*.json*")))]
    sets += [records(p, 3) for p in sorted(glob.glob(os.path.join(REPO, "configs", "data", "*.json*")))]
    sets += [records(p, 100) for p in sorted(glob.glob(os.path.join(HAND, "data", "*.json*")))]
    seeds = []
    for i, recs in enumerate(sets):
        jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode()
        array = json.dumps(recs, ensure_ascii=False, indent=1).encode()
        # option byte 0: bits 0-1 the file name (0 .jsonl, 1 .json, 3 .json.gz), bits 5-6 loss mask, bit 7
        # eval_split; byte 1: chat format, truncation, append_eos (see data_fuzz.cpp)
        loss, chat, split = (i % 4) << 5, i % 2, (i % 3) << 1
        seeds.append(bytes([0 | loss, 8 | chat | split]) + jsonl)
        seeds.append(bytes([1 | loss | 128, 8 | split]) + array)
        seeds.append(bytes([3 | loss, 32 | 8 | chat]) + jsonl)  # objects one a line in a .json(.gz): a value stream
    return seeds


def train_config_seeds():
    configs = [read(p) for p in sorted(glob.glob(os.path.join(REPO, "configs", "*.json")))]
    configs += hand_written("train_config")
    sets = [[], ["training.learning_rate=1e-4", "lora.r=8"], ["data.max_length=64", "data.eval_files=[\"x.jsonl\"]"],
            ["training.lr_scheduler_type=cosine", "output_dir=out", "lora.target_modules=[\"q_proj\"]"]]
    return [b"\0".join([c] + [s.encode() for s in overrides]) for c in configs for overrides in sets]


def main():
    out = sys.argv[1]
    for target, seeds in [("safetensors", safetensors_seeds()), ("model_config", model_config_seeds()),
                          ("tokenizer", tokenizer_seeds()), ("data", data_seeds()),
                          ("train_config", train_config_seeds())]:
        for s in seeds + (hand_written(target) if target not in ("tokenizer", "data", "train_config") else []):
            put(out, target, s)
    if not os.path.isdir(SHARED):
        print("make_seeds: %s is absent: seeds from the repository only" % SHARED)


if __name__ == "__main__":
    main()
