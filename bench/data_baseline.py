#!/usr/bin/env python3
"""Baseline for bench/data_bench.cpp: SFT preprocessing as TRL's SFTTrainer does it, on the same input.

--make-input DIR writes the benchmark input (when DIR has none): the shared SFT data of ../shared/testdata/sft,
repeated to at least --mb MB, as three JSONL files that qwen-sft reads with format auto:
  glaive.jsonl   the glaive tool-call conversations (OpenAI messages + tools), as they are
  alpaca.jsonl   alpaca_en_demo + alpaca_zh_demo records
  medical.jsonl  medical_o1_reasoning as prompt/completion strings (the DeepSeek tutorial's template)

Then, timed end to end and repeated (best taken), what SFTTrainer does before training (TRL is not needed):
datasets.load_dataset of the files, datasets.map(num_proc = cores) to token ids and a trained mask, and BFD
packing into bins of max_length tokens:
  conversations   tokenizer.apply_chat_template(messages, tools, tokenize=True, return_assistant_tokens_mask=True)
                  with a {% generation %} training variant of the Qwen2.5 template (tests/interop)
  alpaca          converted to [user, assistant] messages first (TRL takes conversations, not alpaca)
  prompt/completion strings  ids of prompt + completion + EOS, the completion mask after the prompt's ids
Sequences are truncated to max_length as TRL does before packing. Records are read as text lines and parsed with
json.loads inside map: load_dataset("json") would merge the glaive tools' differing schemas into one Arrow struct
and render null fields. Tool-call arguments that are JSON text are decoded to their object, as qwen-sft does, so
that both sides produce the same tokens (the script prints the totals to compare with data_bench).

  python3 bench/data_baseline.py --make-input /tmp/qsft_data_bench
  build/bench/data_bench /tmp/qsft_data_bench ../shared/testdata/qwen2.5
"""
import argparse
import bisect
import itertools
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "..", "shared", "testdata")
MAX_LENGTH = 4096  # data_bench's too
MEDICAL_PROMPT = "诊断问题：{Question}\n详细分析：\n{Complex_CoT}\n### 答案：\n"


def make_input(out_dir, megabytes):
    sft = os.path.join(TESTDATA, "sft")

    def lines(records):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)

    with open(os.path.join(sft, "glaive_toolcall_en_openai.jsonl"), encoding="utf-8") as f:
        glaive = "".join(l for l in f if l.strip())
    alpaca = lines(r for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json")
                   for r in json.load(open(os.path.join(sft, name), encoding="utf-8")))
    medical = lines({"prompt": MEDICAL_PROMPT.format(**r), "completion": r["Response"]}
                    for r in json.load(open(os.path.join(sft, "medical_o1_reasoning_demo.json"), encoding="utf-8")))
    files = {"glaive.jsonl": glaive, "alpaca.jsonl": alpaca, "medical.jsonl": medical}
    one_copy = sum(len(t.encode()) for t in files.values())
    copies = -(-megabytes * 10**6 // one_copy)
    os.makedirs(out_dir, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            for _ in range(copies):
                f.write(text)


def decoded_arguments(messages):
    for m in messages:
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call)
            if isinstance(fn.get("arguments"), str):
                try:
                    args = json.loads(fn["arguments"])
                except ValueError:
                    continue
                if isinstance(args, dict):
                    fn["arguments"] = args
    return messages


class Preprocess:
    """The per-record work of SFTTrainer's dataset preparation (picklable for datasets' worker processes)."""

    def __init__(self, model_dir, template):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.template = template

    def conversation(self, messages, tools=None):
        out = self.tok.apply_chat_template(messages, tools=tools, chat_template=self.template, tokenize=True,
                                           return_dict=True, return_assistant_tokens_mask=True)
        return {"input_ids": out["input_ids"][:MAX_LENGTH], "mask": out["assistant_masks"][:MAX_LENGTH]}

    def __call__(self, row):
        r = json.loads(row["text"])
        if "messages" in r:
            return self.conversation(decoded_arguments(r["messages"]), r.get("tools") or None)
        if "instruction" in r:
            user = r["instruction"] + ("\n" + r["input"] if r.get("input") else "")
            return self.conversation([{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}])
        prompt_ids = self.tok(text=r["prompt"])["input_ids"]
        ids = self.tok(text=r["prompt"] + r["completion"] + self.tok.eos_token)["input_ids"]
        mask = [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))
        return {"input_ids": ids[:MAX_LENGTH], "mask": mask[:MAX_LENGTH]}


def best_fit_decreasing(lengths, capacity):
    """Bins of sequence indices: longest first, each into the fullest bin it fits in (the least room left)."""
    bins, rooms, bins_by_room = [], [], {}  # rooms: sorted distinct free space of open bins
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        k = bisect.bisect_left(rooms, n)
        if k < len(rooms):
            room = rooms[k]
            b = bins_by_room[room].pop()
            if not bins_by_room[room]:
                del bins_by_room[room], rooms[k]
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        left = room - n
        if left not in bins_by_room:
            bisect.insort(rooms, left)
            bins_by_room[left] = []
        bins_by_room[left].append(b)
    return bins


def pack(table, capacity):
    """The packed table: per bin, its sequences' ids and masks end to end and their lengths (TRL's seq_lengths)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    lengths = pc.list_value_length(table["input_ids"]).to_pylist()
    bins = best_fit_decreasing(lengths, capacity)
    order = pa.array([i for b in bins for i in b], type=pa.int64())
    taken = table.take(order)
    bin_tokens = [sum(lengths[i] for i in b) for b in bins]
    offsets = pa.array([0] + list(itertools.accumulate(bin_tokens)), type=pa.int32())

    def packed(column):
        return pa.ListArray.from_arrays(offsets, pc.list_flatten(taken[column]).combine_chunks())
    return pa.table({"input_ids": packed("input_ids"), "mask": packed("mask"),
                     "seq_lengths": [[lengths[i] for i in b] for b in bins]})


def run_once(files, preprocess, num_proc):
    import datasets
    cache = tempfile.mkdtemp(prefix="qsft_data_baseline_")
    try:
        start = time.perf_counter()
        parts = []
        for f in files:
            ds = datasets.load_dataset("text", data_files=f, split="train", cache_dir=cache)
            parts.append(ds.map(preprocess, remove_columns=["text"], num_proc=num_proc))
        ds = datasets.concatenate_datasets(parts)
        table = ds.with_format("arrow")[:]
        packed = pack(table, MAX_LENGTH)
        seconds = time.perf_counter() - start
        import pyarrow.compute as pc
        tokens = pc.sum(pc.list_value_length(table["input_ids"])).as_py()
        trained = pc.sum(pc.list_flatten(table["mask"])).as_py()
        return seconds, len(table), tokens, trained, len(packed)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-input", required=True, metavar="DIR")
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--model", default=os.path.join(TESTDATA, "qwen2.5"))
    ap.add_argument("--num-proc", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not os.path.isdir(args.make_input) or not os.listdir(args.make_input):
        make_input(args.make_input, args.mb)
    files = sorted(os.path.join(args.make_input, f) for f in os.listdir(args.make_input) if f.endswith(".jsonl"))
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    import datasets
    import transformers
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    from chat_parity_test import QWEN25_TRAINING
    datasets.disable_progress_bars()
    preprocess = Preprocess(args.model, QWEN25_TRAINING)
    print("input: %d files, %.1f MB; datasets %s, transformers %s; num_proc %d; max_length %d"
          % (len(files), mb, datasets.__version__, transformers.__version__, args.num_proc, MAX_LENGTH))
    best = None
    for r in range(args.runs):
        seconds, sequences, tokens, trained, bins = run_once(files, preprocess, args.num_proc)
        print("run %d: %.2f s  %7.2f MB/s  %11.0f tokens/s" % (r + 1, seconds, mb / seconds, tokens / seconds))
        best = seconds if best is None else min(best, seconds)
    print("sequences %d, tokens %d, trained %d, bins %d" % (sequences, tokens, trained, bins))
    print("TRL-style datasets.map, num_proc %d, best of %d: %.2f s  %7.2f MB/s  %11.0f tokens/s"
          % (args.num_proc, args.runs, best, mb / best, tokens / best))


if __name__ == "__main__":
    main()
