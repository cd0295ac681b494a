#!/usr/bin/env python3
"""Tokenizer parity: `qwen-sft tokenize` must give the ids of the Hugging Face `tokenizers` package, and decode
must give back the normalised text, on the shared vectors, every string in the shared SFT data, a generated set of
edge cases and a sweep over the code points of the Unicode planes in use.

Usage: tokenizer_parity_test.py --bin build/qwen-sft [--build DIR]. Exit 0 pass, 77 skipped, 1 mismatch."""
import json
import os
import random
import sys
import tempfile

from parity_common import TESTDATA, parse_args, run_tokenize, sft_strings, skip


def vector_strings():
    vec = os.path.join(TESTDATA, "vectors")
    inp = open(os.path.join(vec, "qwen2-llamacpp.inp"), encoding="utf-8").read()
    strings = inp.split("\n__ggml_vocab_test__\n")
    strings += [c["text"] for c in json.load(open(os.path.join(vec, "qwen2-transformers-integration.json")))["cases"]]
    strings += [c["text"] for c in json.load(open(os.path.join(vec, "qwen2.5-chat-template.json")))["cases"]]
    return strings


POOLS = {
    "space": [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\n\r\n", " \n", "\n ", "\u00a0",
              "\u3000", "\u2009", "\u2028", "\x0b", "\x0c", "\x85", "\u200b", "\ufeff"],
    "digit": ["0", "7", "42", "2024", "3.14159", "1,000,000", "٣٤٥", "१२३", "½", "²", "Ⅻ", "①", "0x1F"],
    "word": ["Hello", "world", "Don't", "it's", "I'M", "we'LL", "they'Re", "you've", "'d", "'s", "ſ", "'ſ", "ǅ",
             "naïve", "Straße", "ΣΊΣΥΦΟΣ", "привет", "İstanbul", "ﬁ", "camelCase", "snake_case", "x"],
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇺🇸", "🧑🏿‍🚀", "✋🏻", "🫠", "©", "™"],
    "combining": ["e\u0301", "a\u0308", "A\u030a", "n\u0303", "\u1e0b\u0323", "o\u0328\u0304", "\u212b", "\u2126",
                  "\u1100\u1161\u11a8", "\uf900", "\u0301", "\u0301\u0301", "q\u0307\u0323", "\u00e9\u0301",
                  "=\u0338", "\u0915\u093c", "\u0e01\u0e34\u0e4d", "\u05d0\u05b7"],
    "script": ["你好世界", "日本語のテキスト", "한국어", "مرحبا بالعالم", "שלום עולם", "สวัสดีครับ",
               "नमस्ते दुनिया", "Ελληνικά", "ქართული", "ᠮᠣᠩᠭᠣᠯ", "𠀀𠀁", "ꦗꦮ"],
    "control": ["\x00", "\x01", "\x1b[0m", "\x7f", "\u200d", "\u2060", "\u00ad", "\ue000", "\U000f0000"],
    "special": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                "<|im_start", "|>", "<|im_end|><|im_end|>", "<think>", "</think>", "<|file_sep|>", "<|box_start|>",
                "<｜User｜>", "<<|im_end|>>"],
    "punct": ["!!!", "...", "?!", "—", "«»", "“quoted”", "'", '"', "```", '{"a": 1}', "a-b", "(x)", "#", "@user",
              "http://example.com/a?b=c", "$$", "-->", "::", "\\n"],
}


def edge_cases(n, seed=20240611):
    rng = random.Random(seed)
    kinds = sorted(POOLS)
    cases = []
    for _ in range(n):
        parts = [rng.choice(POOLS[rng.choice(kinds)]) for _ in range(rng.randint(1, 12))]
        cases.append("".join(parts) if rng.random() < 0.5 else rng.choice(["", " ", "\n"]).join(parts))
    cases += [" " * 3000, "\n" * 500, "\t \t \n" * 200, "9" * 2000, "a" * 3000, "ab" * 1500 + " x",
              "😀" * 500, "<|im_end|>" * 100, "e\u0301" * 300, "", " ", "\n", "  \n  ", "x  ", "x \n"]
    return cases


def code_point_sweep():
    """Every code point in the planes in use, each in contexts that exercise the pre-tokenizer's classes."""
    ranges = [(0, 0x32400), (0xE0000, 0xE0200), (0xF0000, 0xF0100), (0x10FF00, 0x110000)]
    cps = [c for lo, hi in ranges for c in range(lo, hi) if not 0xD800 <= c < 0xE000]
    out = []
    for i in range(0, len(cps), 128):
        out.append("".join("a%sb %s1%s%s\t%s\n'%s" % ((chr(c),) * 6) for c in cps[i:i + 128]))
    return out


def compare(label, strings, ours, theirs):
    bad = [i for i in range(len(strings)) if ours[i] != theirs[i]]
    print("%-44s %7d cases, %d mismatches" % (label, len(strings), len(bad)))
    for i in bad[:5]:
        print("  input %r\n    qwen-sft   %s\n    tokenizers %s" % (strings[i][:200], str(ours[i])[:300], str(theirs[i])[:300]))
    return len(bad)


def main():
    args = parse_args()
    try:
        import tokenizers
    except ImportError:
        skip("tokenizers not installed")
    if not os.path.isdir(TESTDATA):
        skip("shared test data not found at " + TESTDATA)
    qwen = os.path.join(TESTDATA, "qwen2.5")
    ref = tokenizers.Tokenizer.from_file(os.path.join(qwen, "tokenizer.json"))

    groups = [("vectors", vector_strings()), ("sft string fields", sft_strings()),
              ("generated edge cases", edge_cases(3000)), ("code point sweep", code_point_sweep())]
    mismatches = 0
    for label, strings in groups:
        records = [{"text": s} for s in strings]
        ids = [r["ids"] for r in run_tokenize(args.bin, qwen, records)]
        mismatches += compare("encode, " + label, strings, ids, [e.ids for e in ref.encode_batch(strings)])
        texts = [r["text"] for r in run_tokenize(args.bin, qwen, [{"ids": i} for i in ids], "--decode")]
        mismatches += compare("decode(encode(s)) == NFC(s), " + label, strings, texts,
                              [ref.normalizer.normalize_str(s) for s in strings])

    all_strings = [s for _, g in groups[:3] for s in g]
    with tempfile.TemporaryDirectory() as tmp:
        # vocab.json + merges.txt, with and without the '#version' header line.
        for header in ("", "#version: 0.2\n"):
            d = os.path.join(tmp, "vm" + str(len(header)))
            os.mkdir(d)
            os.symlink(os.path.join(qwen, "vocab.json"), os.path.join(d, "vocab.json"))
            os.symlink(os.path.join(qwen, "tokenizer_config.json"), os.path.join(d, "tokenizer_config.json"))
            with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
                f.write(header + open(os.path.join(qwen, "merges.txt"), encoding="utf-8").read())
            ids = [r["ids"] for r in run_tokenize(args.bin, d, [{"text": s} for s in all_strings])]
            mismatches += compare("vocab.json+merges.txt%s" % (" #version" if header else ""), all_strings, ids,
                                  [e.ids for e in ref.encode_batch(all_strings)])
        # Key order in tokenizer.json must not matter: every object's keys reversed.
        def reverse_keys(v):
            if isinstance(v, dict):
                return {k: reverse_keys(v[k]) for k in reversed(list(v))}
            return [reverse_keys(x) for x in v] if isinstance(v, list) else v
        d = os.path.join(tmp, "reversed")
        os.mkdir(d)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(reverse_keys(json.load(open(os.path.join(qwen, "tokenizer.json"), encoding="utf-8"))), f,
                      ensure_ascii=False)
        ids = [r["ids"] for r in run_tokenize(args.bin, d, [{"text": s} for s in all_strings])]
        mismatches += compare("tokenizer.json with keys reversed", all_strings, ids,
                              [e.ids for e in ref.encode_batch(all_strings)])
    # Other tokenizer.json files: DeepSeek-R1-Distill (BOS post-processor, renamed added tokens) and Qwen3.
    for name in ("deepseek-r1-distill-qwen", "qwen3"):
        other = tokenizers.Tokenizer.from_file(os.path.join(TESTDATA, name, "tokenizer.json"))
        ids = [r["ids"] for r in run_tokenize(args.bin, os.path.join(TESTDATA, name), [{"text": s} for s in all_strings])]
        mismatches += compare(name + " (add_special_tokens)", all_strings, ids,
                              [e.ids for e in other.encode_batch(all_strings)])

    print("tokenizer parity: %d mismatches" % mismatches)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
