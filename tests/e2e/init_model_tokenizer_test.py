#!/usr/bin/env python3
"""`qwen-sft init-model --preset qwen2.5-0.5b --tokenizer DIR` writes a model folder that trains as it is: the
weights plus the tokenizer files of DIR, byte for byte, tokenizing as DIR does; without --tokenizer stderr says that
the folder has no tokenizer. A folder without tokenizer.json, and --tokenizer with the tiny preset (which writes its
own), are refused (exit 2) before anything is written. Uses ../shared/testdata/qwen2.5 (skipped when absent)."""
import filecmp
import json
import os
import shutil
import sys

from e2e_common import REPO, expect, parse_args, run, work_dir

QWEN = os.path.join(REPO, "..", "shared", "testdata", "qwen2.5")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.jinja",
                   "special_tokens_map.json", "added_tokens.json", "generation_config.json"]


def token_ids(bin_path, model, text):
    p = run(bin_path, "tokenize", "--model", model, input=json.dumps({"text": text}) + "\n")
    return json.loads(p.stdout)["ids"]


def main():
    a = parse_args()
    if not os.path.isfile(os.path.join(QWEN, "tokenizer.json")):
        print("skipped: no Qwen2.5 tokenizer at " + QWEN)
        sys.exit(77)
    d = work_dir("init_model_tokenizer")

    out = os.path.join(d, "with")
    p = run(a.bin, "init-model", "--preset", "qwen2.5-0.5b", "--tokenizer", QWEN, "--out", out)
    expect("no tokenizer" not in p.stderr, "a note about a missing tokenizer although one was given: " + p.stderr)
    present = [f for f in TOKENIZER_FILES if os.path.exists(os.path.join(QWEN, f))]
    for f in present:
        expect(filecmp.cmp(os.path.join(QWEN, f), os.path.join(out, f), shallow=False), f"{f} not copied as it is")
    for f in set(TOKENIZER_FILES) - set(present):
        expect(not os.path.exists(os.path.join(out, f)), f"{f} written although {QWEN} has none")
    text = "Hello, world! <|im_start|>user\nÜbergrößen 123<|im_end|>"
    expect(token_ids(a.bin, out, text) == token_ids(a.bin, QWEN, text), "the copied tokenizer encodes differently")
    shutil.rmtree(out)

    bare = os.path.join(d, "bare")
    p = run(a.bin, "init-model", "--preset", "qwen2.5-0.5b", "--out", bare)
    expect("has weights but no tokenizer" in p.stderr and "--tokenizer" in p.stderr,
           "no note that the model has no tokenizer: " + p.stderr)
    shutil.rmtree(bare)

    empty = os.path.join(d, "empty")
    os.makedirs(empty)
    refused = os.path.join(d, "refused")
    p = run(a.bin, "init-model", "--preset", "qwen2.5-0.5b", "--tokenizer", empty, "--out", refused, check=False)
    expect(p.returncode == 2 and empty in p.stderr and "tokenizer.json" in p.stderr,
           f"a folder without tokenizer.json: exit {p.returncode}: {p.stderr}")
    expect(not os.path.exists(refused), "the refused run wrote " + refused)
    p = run(a.bin, "init-model", "--preset", "tiny", "--tokenizer", QWEN, "--out", refused, check=False)
    expect(p.returncode == 2 and "writes its own tokenizer" in p.stderr, f"tiny + --tokenizer: {p.stderr}")
    expect(not os.path.exists(refused), "the refused tiny run wrote " + refused)
    shutil.rmtree(d)
    print(f"ok: init-model --tokenizer copies {', '.join(present)}; the refusals write nothing")


if __name__ == "__main__":
    main()
