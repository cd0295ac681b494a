#!/usr/bin/env python3
"""Bad input and faults through `qwen-sft train`: each gets one clear error naming the file and the tensor or key,
and a non-zero exit (2), and nothing already written is lost.
Model files: truncated or corrupt safetensors, a missing tensor, a shape mismatch, an unsupported dtype, a config
missing a key, fewer layers than the weights hold, sizes past any real model, a token id out of range. Data files:
a comma between records, UTF-16, empty or all bad (also through `qwen-sft data`), unknown content parts (also
through `qwen-sft tokenize --chat`); a UTF-8 byte order mark is read. Faults: a missing model directory, unreadable data, an output_dir that is a file, a
dangling symbolic link or the model folder (whose config.json the run would overwrite), a full disk while a
checkpoint is written (simulated with RLIMIT_FSIZE), which must leave the previous checkpoint intact; resuming a
run with a changed config."""
import json
import os
import resource
import shutil
import signal
import struct

from e2e_common import DEMO_DATA, expect, parse_args, run, tiny_model, work_dir, write_config


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def broken_model(base, d, name, edit):
    """A copy of the tiny model with edit(dir) applied."""
    m = os.path.join(d, name)
    shutil.copytree(base, m)
    edit(m)
    return m


def expect_error(bin_path, cfg, *needles, env=None, preexec_fn=None, command=("train", "--quiet")):
    # The timeout catches a hang (a data file once sent the record scanner into an endless loop).
    p = run(bin_path, command[0], cfg, *command[1:], check=False, env=env, preexec_fn=preexec_fn, timeout=300)
    expect(p.returncode == 2, f"{cfg}: exit {p.returncode}, want 2\n{p.stderr}")
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    expect(len(lines) == 1, f"want one error line, got:\n{p.stderr}")
    for n in needles:
        expect(n in p.stderr, f"error does not name {n!r}: {p.stderr}")
    print("ok:", p.stderr.strip()[:160])


def with_data(cfg, **data):
    """cfg (a config file) with data keys set."""
    c = json.load(open(cfg))
    c["data"].update(data)
    json.dump(c, open(cfg, "w"))
    return cfg


def tokenize_chat_cases(bin_path, d, model, cfg):
    """qwen-sft tokenize --chat: one {ids, mask} line per record (the config's max_length), errors naming the line."""
    records = open(DEMO_DATA, encoding="utf-8").read().splitlines()[:5]
    for args in (("--model", model), ("--config", cfg)):
        p = run(bin_path, "tokenize", "--chat", *args, input="\n".join(records) + "\n", timeout=300)
        out = [json.loads(l) for l in p.stdout.splitlines()]
        expect(len(out) == len(records), f"tokenize --chat {args}: {len(out)} lines for {len(records)} records")
        for o in out:  # --model: the defaults (the whole record, trained answers); --config: max_length 24
            expect(len(o["ids"]) == len(o["mask"]), f"tokenize --chat {args}: {o}")
            expect(1 in o["mask"] if args[0] == "--model" else len(o["ids"]) <= 24, f"tokenize --chat {args}: {o}")
    bad = records[0] + "\n" + '{"messages": [{"role": "user", "content": [{"type": "audio"}]}]}\n'
    p = run(bin_path, "tokenize", "--chat", "--model", model, input=bad, check=False, timeout=300)
    expect(p.returncode == 2, f"tokenize --chat on a bad record: exit {p.returncode}\n{p.stderr}")
    for n in ("stdin line 2", "messages[0].content[0].type", "unknown part type 'audio'"):
        expect(n in p.stderr, f"tokenize --chat error does not name {n!r}: {p.stderr}")
    expect(len(p.stdout.splitlines()) == 1, "tokenize --chat: the good line before the bad one is printed")
    print("ok: tokenize --chat;", p.stderr.strip()[:120])


def bad_data_cases(bin_path, d, good):
    """Hostile data and tokenizer files (issue 12): each an error naming the file and what is wrong."""
    good_record = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'

    def data_file(name, content):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def cfg_for(name, data, model=good, **keys):
        return with_data(write_config(os.path.join(d, name + ".json"), model, os.path.join(d, "o_" + name),
                                      data=data), **keys)

    line = good_record.encode() + b"\n"
    comma = data_file("comma.json", line + b",\n" + line)
    for mode in ("skip", "error"):
        expect_error(bin_path, cfg_for("comma_" + mode, comma, on_bad_record=mode), "comma.json line 2",
                     "',' where record 1 should start")
    utf16 = data_file("utf16.jsonl", (line * 2).decode().encode("utf-16"))
    expect_error(bin_path, cfg_for("utf16", utf16), "utf16.jsonl", "UTF-16 (little-endian)", "save it as UTF-8")
    empty = data_file("empty.jsonl", b"")
    expect_error(bin_path, cfg_for("empty", empty), "empty.jsonl", "nothing to train on", "no records",
                 command=("data",))
    expect_error(bin_path, cfg_for("empty_train", empty), "empty.jsonl", "nothing to train on")
    all_bad = data_file("all_bad.jsonl", b'{"messages": []}\n' * 3)
    expect_error(bin_path, cfg_for("all_bad", all_bad, on_bad_record="skip"), "all_bad.jsonl",
                 "nothing to train on", "3 bad", command=("data",))
    parts = data_file("parts.jsonl", b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", '
                                     b'"content": [{"type": "image_url", "value": "x.png"}]}]}\n')
    expect_error(bin_path, cfg_for("parts", parts), "parts.jsonl line 1", "messages[1].content[0].type",
                 "unknown part type 'image_url'", "supported: text", "reasoning", "tool_call")
    tokenize_chat_cases(bin_path, d, good, cfg_for("tokenize", DEMO_DATA, max_length=24))
    # A UTF-8 byte order mark is skipped: the first record is read, not skipped as bad.
    bom = data_file("bom.jsonl", b"\xef\xbb\xbf" + line * 2)
    p = run(bin_path, "data", cfg_for("bom", bom, on_bad_record="skip"), timeout=300)
    expect("2 read, 0 bad" in p.stdout, "a BOM file: " + p.stdout)
    print("ok: BOM skipped")

    def huge_id(m):
        path = os.path.join(m, "tokenizer.json")
        t = json.load(open(path))
        t["model"]["vocab"]["!"] = 2147483647  # id + 1 once overflowed and wrote out of bounds
        json.dump(t, open(path, "w"))

    m = broken_model(good, d, "huge_id", huge_id)
    expect_error(bin_path, cfg_for("huge_id", DEMO_DATA, model=m), "tokenizer.json", "model.vocab",
                 "token '!' has id 2147483647")


def main():
    a = parse_args()
    d = work_dir("bad_input")
    good = tiny_model(a.bin, os.path.join(d, "good"))
    st = lambda m: os.path.join(m, "model.safetensors")
    W = "model.layers.1.mlp.up_proj.weight"

    def truncate(m):
        with open(st(m), "r+b") as f:
            f.truncate(os.path.getsize(st(m)) // 2)

    def corrupt_header(m):
        with open(st(m), "r+b") as f:
            f.seek(8)
            f.write(b"{not json")

    def drop_tensor(m):
        h, data = read_st(st(m))
        del h[W]
        write_st(st(m), h, data)

    def reshape(m):
        h, data = read_st(st(m))
        s = h[W]["shape"]
        h[W]["shape"] = [s[1], s[0]]
        write_st(st(m), h, data)

    def f64(m):
        h, data = read_st(st(m))
        h[W]["dtype"] = "F64"
        h[W]["shape"] = [h[W]["shape"][0], h[W]["shape"][1] // 2]
        write_st(st(m), h, data)

    def drop_key(m):
        c = json.load(open(os.path.join(m, "config.json")))
        del c["num_key_value_heads"]
        json.dump(c, open(os.path.join(m, "config.json"), "w"))

    def config_value(key, value):
        def edit(m):
            c = json.load(open(os.path.join(m, "config.json")))
            c[key] = value(c[key])
            json.dump(c, open(os.path.join(m, "config.json"), "w"))
        return edit

    layers = json.load(open(os.path.join(good, "config.json")))["num_hidden_layers"]
    cases = [("truncated", truncate, ["model.safetensors"]),
             ("corrupt", corrupt_header, ["model.safetensors", "header"]),
             ("missing_tensor", drop_tensor, ["missing tensor " + W]),
             ("shape", reshape, ["model.safetensors", W, "shape"]),
             ("dtype", f64, ["model.safetensors", W, "unsupported dtype F64"]),
             ("config_key", drop_key, ["config.json", "num_key_value_heads"]),
             ("fewer_layers", config_value("num_hidden_layers", lambda n: n - 1),
              ["config.json", "num_hidden_layers", f"model.layers.{layers - 1}."]),
             ("huge_hidden", config_value("hidden_size", lambda n: 2 ** 62), ["config.json", "hidden_size"]),
             ("huge_vocab", config_value("vocab_size", lambda n: 4 * 10 ** 12), ["config.json", "vocab_size"])]
    for name, edit, needles in cases:
        m = broken_model(good, d, name, edit)
        expect_error(a.bin, write_config(os.path.join(d, name + ".json"), m, os.path.join(d, "out_" + name)), *needles)

    # Faults
    expect_error(a.bin, write_config(os.path.join(d, "nomodel.json"), os.path.join(d, "absent"), os.path.join(d, "o1")),
                 "absent", "not found")
    expect_error(a.bin, write_config(os.path.join(d, "nodata.json"), good, os.path.join(d, "o2"),
                                     data=os.path.join(d, "absent.jsonl")), "absent.jsonl")
    junk = os.path.join(d, "junk.jsonl")
    with open(junk, "w") as f:
        f.write('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    expect_error(a.bin, write_config(os.path.join(d, "junk.json"), good, os.path.join(d, "o3"), data=junk),
                 "junk.jsonl", "line 2")
    bad_data_cases(a.bin, d, good)
    a_file = os.path.join(d, "a_file")
    open(a_file, "w").close()
    expect_error(a.bin, write_config(os.path.join(d, "outfile.json"), good, a_file), "a_file", "not a directory")
    dangling = os.path.join(d, "dangling")
    os.symlink(os.path.join(d, "nowhere"), dangling)
    expect_error(a.bin, write_config(os.path.join(d, "dangling.json"), good, dangling), dangling, "output_dir")
    # output_dir = the model folder (spelled differently): the run's config.json would replace the model's.
    model_config = open(os.path.join(good, "config.json"), "rb").read()
    expect_error(a.bin, write_config(os.path.join(d, "into_model.json"), good, os.path.join(d, ".", "good", "")),
                 "output_dir", "model folder")
    expect(open(os.path.join(good, "config.json"), "rb").read() == model_config, "the model's config.json changed")

    # A full disk while checkpoint-4 is written: the error says so, checkpoint-2 is untouched and still loads.
    out = os.path.join(d, "full")
    cfg = write_config(os.path.join(d, "full.json"), good, out, max_steps=2, top={"save_steps": 2})
    run(a.bin, "train", cfg, "--quiet")
    ck2 = os.path.join(out, "checkpoint-2", "adapter_model.safetensors")
    before = open(ck2, "rb").read()

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    expect_error(a.bin, write_config(os.path.join(d, "full.json"), good, out, max_steps=4, top={"save_steps": 2}),
                 "checkpoint-4", "previous one is intact", preexec_fn=small_disk)
    expect(open(ck2, "rb").read() == before, "checkpoint-2 changed")
    expect(not os.path.exists(os.path.join(out, "checkpoint-4")), "a partial checkpoint-4 was left")
    run(a.bin, "export", os.path.join(out, "checkpoint-2"), "--out", os.path.join(d, "exported"))
    print("ok: checkpoint-2 intact and exportable after the failed write")

    # Resuming that run with another learning rate would silently continue a different run: refused.
    expect_error(a.bin, write_config(os.path.join(d, "full.json"), good, out, max_steps=4, learning_rate=1e-2,
                                     top={"save_steps": 2}), "training.learning_rate", "another config")
    expect(open(ck2, "rb").read() == before, "checkpoint-2 changed")


if __name__ == "__main__":
    main()
