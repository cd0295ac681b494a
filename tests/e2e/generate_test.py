#!/usr/bin/env python3
"""`qwen-sft generate` and `qwen-sft chat` end to end on the tiny model: JSONL prompts in every accepted shape,
completions written atomically with --out, --compare against an adapter from a short training run (given as the
run folder), --merge equal to unmerged under greedy decoding, a fixed seed repeating its samples, bad lines
refused with exit 2 naming file, line and field, a chat session with /system and /reset, and training's
generation_prompts answered at each eval into samples.jsonl and TensorBoard text without changing the training."""
import json
import os

from e2e_common import expect, parse_args, run, tiny_model, work_dir, write_config

PROMPTS = [
    '"What is the capital of France?"',
    '[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]',
    '{"messages": [{"role": "user", "content": "Count to five"}]}',
    "",
    '{"prompt": "Tell me a joke"}',
]


def write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def jsonl(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def fields(buf):
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    out, i = [], 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v
    while i < len(buf):
        key = varint()
        wire = key & 7
        if wire == 0:
            out.append((key >> 3, varint()))
        elif wire == 1:
            out.append((key >> 3, buf[i:i + 8]))
            i += 8
        else:
            n = varint()
            out.append((key >> 3, buf[i:i + n]))
            i += n
    return out


def tensorboard_texts(folder):
    """(step, tag, text) of every text summary in the event files of folder (TFRecord framing, Event protos)."""
    texts = []
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), "rb").read()
        i = 0
        while i < len(data):
            n = int.from_bytes(data[i:i + 8], "little")
            event = dict(fields(data[i + 12:i + 12 + n]))
            i += 16 + n
            if 5 not in event:
                continue
            value = dict(fields(dict(fields(event[5]))[1]))
            plugin = dict(fields(dict(fields(value[9]))[1]))[1]
            tensor = dict(fields(value[8]))
            expect(plugin == b"text" and tensor[1] == 7, f"not a text summary: {value}")
            texts.append((event[2], value[1].decode(), tensor[8].decode()))
    return texts


def main():
    a = parse_args()
    d = work_dir("generate")
    model = tiny_model(a.bin, os.path.join(d, "model"))
    prompts = write(os.path.join(d, "prompts.jsonl"), PROMPTS)
    base = ["generate", "--model", model, "--prompts", prompts, "--max-new-tokens", "8", "--device", "cpu"]

    lines = jsonl(run(a.bin, *base).stdout)
    expect([l["index"] for l in lines] == [0, 1, 2, 3], f"one line per prompt: {lines}")
    expect(all(l["finish_reason"] in ("stop", "length") and 1 <= l["tokens"] <= 8 for l in lines), f"{lines}")
    expect("You are terse." in lines[1]["prompt"] and lines[0]["prompt"].endswith("assistant\n"),
           "the chat template with the generation prompt")

    out = os.path.join(d, "out.jsonl")
    p = run(a.bin, *base, "--out", out)
    expect(jsonl(open(out).read()) == lines, "--out holds the same completions")
    expect(sorted(os.listdir(d)) == ["model", "out.jsonl", "prompts.jsonl"], f"a temporary left: {os.listdir(d)}")
    expect("=== prompt 1" in p.stdout, "the answers are shown")

    sampled = base + ["--sample", "--temperature", "1.3", "--top-k", "30", "--seed", "5"]
    first = run(a.bin, *sampled).stdout
    expect(run(a.bin, *sampled).stdout == first, "a fixed seed repeats its samples")
    expect(run(a.bin, *sampled[:-1], "6").stdout != first, "another seed samples otherwise")

    # generation_prompts: answered at each eval (steps 2 and 3) into samples.jsonl; the training is unchanged.
    run_dir, plain_dir = os.path.join(d, "run"), os.path.join(d, "plain")
    top = {"save_steps": 3, "eval_steps": 2, "generation_prompts": prompts}
    run(a.bin, "train", write_config(os.path.join(d, "cfg.json"), model, run_dir, top=top, max_steps=3), "--quiet")
    planned = run(a.bin, "plan", os.path.join(d, "cfg.json"), "--device-memory", "64").stdout
    expect("generation_prompts' generator" in planned, f"the plan counts the samples' generator:\n{planned}")
    del top["generation_prompts"]
    run(a.bin, "train", write_config(os.path.join(d, "plain.json"), model, plain_dir, top=top, max_steps=3), "--quiet")
    planned_plain = run(a.bin, "plan", os.path.join(d, "plain.json"), "--device-memory", "64").stdout
    expect("generation_prompts' generator" not in planned_plain, "no generator line without generation_prompts")
    samples = jsonl(open(os.path.join(run_dir, "samples.jsonl")).read())
    expect([(l["step"], l["index"]) for l in samples] == [(s, i) for s in (2, 3) for i in range(4)],
           f"samples.jsonl lines: {[(l['step'], l['index']) for l in samples]}")
    expect(samples[0]["prompt"] == lines[0]["prompt"], "samples.jsonl's prompts")
    texts = tensorboard_texts(os.path.join(run_dir, "samples"))
    expect([(st, tag) for st, tag, _ in texts] == [(l["step"], f"samples/prompt_{l['index']}") for l in samples],
           f"TensorBoard texts: {[(st, tag) for st, tag, _ in texts]}")
    expect(all(l["completion"] in t for (_, _, t), l in zip(texts, samples)), "TensorBoard texts hold the answers")
    metrics = [open(os.path.join(r, "metrics.jsonl")).read().splitlines() for r in (run_dir, plain_dir)]
    strip = [[{k: v for k, v in json.loads(l).items() if k != "tokens_per_second"} for l in m] for m in metrics]
    expect(strip[0] == strip[1], "generation_prompts changed the training's metrics")
    ckpt = lambda r: open(os.path.join(r, "checkpoint-3", "adapter_model.safetensors"), "rb").read()
    expect(ckpt(run_dir) == ckpt(plain_dir), "generation_prompts changed the trained adapter")
    both = jsonl(run(a.bin, *base, "--adapter", run_dir, "--compare").stdout)
    expect(all(set(l) == {"index", "prompt", "base", "adapter"} for l in both), f"--compare lines: {both[0]}")
    expect([l["base"] for l in both] == [{k: l[k] for k in ("completion", "finish_reason", "tokens", "ids")} for l in lines],
           "--compare's base answers are the base model's")
    tuned = jsonl(run(a.bin, *base, "--adapter", run_dir).stdout)
    merged = jsonl(run(a.bin, *base, "--adapter", run_dir, "--merge").stdout)
    expect([l["completion"] for l in tuned] == [l["adapter"]["completion"] for l in both], "adapter answers agree")
    expect([l["completion"] for l in merged] == [l["completion"] for l in tuned], "--merge answers as unmerged")

    for bad, where in [('{"messages": [{"role": "robot", "content": "x"}]}', "line 2"), ("[1, 2", "line 2"),
                       ('{"text": "x"}', "line 2")]:
        bad_file = write(os.path.join(d, "bad.jsonl"), ['"ok"', bad])
        p = run(a.bin, *base[:3], "--prompts", bad_file, "--device", "cpu", check=False)
        expect(p.returncode == 2 and f"bad.jsonl {where}" in p.stderr, f"bad line {bad!r}: {p.returncode} {p.stderr}")
    p = run(a.bin, *base, "--max-length", "20", check=False)
    expect(p.returncode == 2 and "prompts.jsonl: prompt 1 has" in p.stderr and "--max-length" in p.stderr,
           f"a prompt longer than --max-length: {p.returncode} {p.stderr}")
    p = run(a.bin, *base, "--temperature", "0", "--sample", check=False)
    expect(p.returncode == 2 and "temperature" in p.stderr, f"temperature 0: {p.stderr}")

    chat = run(a.bin, "chat", "--model", model, "--max-new-tokens", "6", "--device", "cpu",
               input="hello\n/system Be brief.\nhi there\n/reset\nbye\n/quit\n")
    expect(chat.stdout.count("\n") == 3, f"three answers: {chat.stdout!r}")
    expect(chat.stderr.count("(new conversation") == 2, f"/system and /reset: {chat.stderr}")
    print(f"ok: {len(lines)} completions, compare/merge/seed/bad input/chat")


if __name__ == "__main__":
    main()
