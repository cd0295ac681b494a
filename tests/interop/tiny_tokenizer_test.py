#!/usr/bin/env python3
"""The built-in tiny tokenizer (engine/io/tiny_tokenizer.cpp) must load in Hugging Face tokenizers (and
transformers, when installed), round-trip text and map its special tokens to their ids.

The files come from `qwen-sft init-model --preset tiny --out DIR`.
Exit 0 = pass, 77 = skipped (a reference package is absent), other = fail."""
import argparse
import os
import subprocess
import sys
import tempfile

BPE_TOKENS = 700
SPECIAL_IDS = {"<|endoftext|>": 700, "<|im_start|>": 701, "<|im_end|>": 702, "<tool_call>": 703, "</tool_call>": 704}
TEXTS = [
    "Hello world! The model is learning.",
    "def add(a, b):\n    return a + b\n\n\nprint(add(2, 40))\n",
    "我们今天学习如何训练一个小的语言模型。",
    "Accents café naïve, emoji 🙂🚀, tabs\tand  double  spaces, trailing space ",
    "Words it never saw: zyzzyva, Quetzalcoatl, 0x7fffffff, e=mc^2",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\"}\n</tool_call><|im_end|>\n",
]


def write_tokenizer(binary, out_dir):
    subprocess.run([binary, "init-model", "--preset", "tiny", "--out", out_dir], check=True, stdout=subprocess.DEVNULL)


def check_tokenizers(path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    assert tok.get_vocab_size(with_added_tokens=True) == BPE_TOKENS + len(SPECIAL_IDS), tok.get_vocab_size()
    for content, token_id in SPECIAL_IDS.items():
        assert tok.token_to_id(content) == token_id, (content, tok.token_to_id(content))
    for text in TEXTS:
        ids = tok.encode(text).ids
        assert all(0 <= i < BPE_TOKENS + len(SPECIAL_IDS) for i in ids), ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        assert decoded == text, (text, decoded)
    ids = tok.encode(TEXTS[-1]).ids
    assert ids[0] == SPECIAL_IDS["<|im_start|>"] and ids.count(SPECIAL_IDS["<|im_end|>"]) == 2, ids
    assert SPECIAL_IDS["<tool_call>"] in ids and SPECIAL_IDS["</tool_call>"] in ids, ids
    # Merges make common text shorter than its bytes.
    english = TEXTS[0]
    assert len(tok.encode(english).ids) < len(english.encode()) / 2, tok.encode(english).tokens


def check_transformers(out_dir):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("note: transformers not installed; AutoTokenizer check skipped")
        return
    tok = AutoTokenizer.from_pretrained(out_dir)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == SPECIAL_IDS["<|im_end|>"], tok.eos_token
    assert tok.pad_token_id == SPECIAL_IDS["<|endoftext|>"] and tok.bos_token is None
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello!"}], tokenize=False)
    expected = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                "<|im_start|>assistant\nHello!<|im_end|>\n")
    assert rendered == expected, repr(rendered)
    assert tok.decode(tok(rendered)["input_ids"]) == rendered


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="the qwen-sft binary")
    parser.add_argument("--build", help="the CMake build folder (unused)")
    args = parser.parse_args()
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("skipped: tokenizers not installed")
        return 77
    with tempfile.TemporaryDirectory() as out_dir:
        write_tokenizer(args.bin, out_dir)
        check_tokenizers(os.path.join(out_dir, "tokenizer.json"))
        check_transformers(out_dir)
    print("ok: tiny tokenizer loads in Hugging Face tokenizers and round-trips text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
