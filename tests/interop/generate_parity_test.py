#!/usr/bin/env python3
"""Greedy generation: `qwen-sft generate --greedy` (batched, KV cache) against transformers' generate(do_sample=False)
(each prompt alone) on the same model and 8 chat prompts through the chat template. Agreement = tokens of the common
prefix of the two answers / tokens of the longer one, over all prompts (after the first difference the contexts
differ, so later positions are not compared).
  CI (default): --preset tiny --device cpu, fp32 on both sides: must agree on every token.
  GPU (tools/gpu-check.sh stage generate-0.5b): --preset qwen2.5-0.5b --device cuda --new-tokens 64
  --min-agreement 0.95, bf16 on both sides (near-ties of bf16 logits may flip a token).
Exit 0 = pass, 77 = skipped (no transformers, or no GPU for --device cuda), other = fail."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTDATA = os.environ.get("QSFT_SHARED_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))
TOPICS = ["the moon", "rivers", "a good breakfast", "prime numbers", "the color blue", "trains", "winter", "chess"]


def skip(why):
    print("skipped: " + why)
    sys.exit(77)


def make_model(a, d):
    model = os.path.join(d, "model")
    subprocess.run([a.bin, "init-model", "--preset", a.preset, "--out", model], check=True, stdout=subprocess.DEVNULL)
    if a.preset != "tiny":  # real-size presets have no tokenizer: the real Qwen2.5 one
        tok = os.path.join(a.kit, "tok") if a.kit and os.path.isdir(os.path.join(a.kit, "tok")) else \
            os.path.join(TESTDATA, "qwen2.5")
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
            if os.path.exists(os.path.join(tok, f)):
                shutil.copy(os.path.join(tok, f), model)
    return model


def ours(a, model, prompts, d):
    path = os.path.join(d, "prompts.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(p) + "\n" for p in prompts))
    p = subprocess.run([a.bin, "generate", "--model", model, "--prompts", path, "--greedy", "--max-new-tokens",
                        str(a.new_tokens), "--device", a.device, "--batch-size", str(len(prompts))],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: qwen-sft generate exited {p.returncode}\n{p.stderr}")
    print(p.stderr.strip())
    return [json.loads(l) for l in p.stdout.splitlines()]


def theirs(a, model, prompts):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if a.device == "cuda" else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tok = AutoTokenizer.from_pretrained(model)
    m = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
    # qwen-sft stops on generation_config's eos ids and the tokenizer's eos: the same set here.
    eos = m.generation_config.eos_token_id
    eos = ([] if eos is None else [eos] if isinstance(eos, int) else list(eos)) + [tok.eos_token_id]
    out = []
    for msgs in prompts:
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        with torch.no_grad():
            g = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=a.new_tokens, eos_token_id=sorted(set(eos)), pad_token_id=eos[0])
        out.append({"prompt": text, "ids": g[0, ids.shape[1]:].tolist()})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--build")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--min-agreement", type=float, default=1.0)
    ap.add_argument("--kit", default="", help="tools/gpu-kit.sh's folder (its tok/ has the Qwen2.5 tokenizer)")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        skip(f"no {e.name}")
    import torch
    if a.device == "cuda" and not torch.cuda.is_available():
        skip("no GPU for torch")
    d = tempfile.mkdtemp(prefix="qsft_generate_parity_")
    try:
        model = make_model(a, d)
        prompts = [[{"role": "user", "content": f"Write two sentences about {t}."}] for t in TOPICS]
        mine, ref = ours(a, model, prompts, d), theirs(a, model, prompts)
        same = total = positional = 0
        for i, (x, y) in enumerate(zip(mine, ref)):
            if x["prompt"] != y["prompt"]:
                sys.exit(f"FAIL: prompt {i} renders differently:\n{x['prompt']!r}\n{y['prompt']!r}")
            prefix = next((k for k, (p, q) in enumerate(zip(x["ids"], y["ids"])) if p != q),
                          min(len(x["ids"]), len(y["ids"])))
            same += prefix
            positional += sum(p == q for p, q in zip(x["ids"], y["ids"]))
            total += max(len(x["ids"]), len(y["ids"]))
            print(f"prompt {i}: {prefix}/{max(len(x['ids']), len(y['ids']))} tokens agree")
        agreement = same / total
        print(f"greedy agreement {a.preset} {a.device}: {agreement:.4f} (min {a.min_agreement}); same token at the "
              f"same position (not checked): {positional / total:.4f}")
        return 0 if agreement >= a.min_agreement else 1
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
