#!/usr/bin/env python3
"""Chat format parity: the text `qwen-sft tokenize --render` gives must be byte-identical to what jinja2 renders
from the model's real chat template with Hugging Face's settings, and the trained mask of `qwen-sft tokenize`
must equal the {% generation %} mask of a training variant of the template (the assistant output: for Qwen2.5
"\\n" + content + "<|im_end|>\\n" after "<|im_start|>assistant", as TRL's Qwen2.5 training template marks it),
mapped to tokens with the `tokenizers` offsets as transformers does. Qwen3's template (the Jinja engine) renders
reasoning_content and tool calls, given as message fields or as content parts, as jinja2 renders the fields.

Usage: chat_parity_test.py --bin build/qwen-sft [--build DIR]. Exit 0 pass, 77 skipped, 1 mismatch."""
import json
import os
import sys

from parity_common import TESTDATA, parse_args, run_tokenize, skip

DEEPSEEK_BOS = "<｜begin▁of▁sentence｜>"

# Training variants, written for this test from the description of the templates: the real template's text with
# the assistant's output inside {% generation %}. Each must render the same text as the real template.
QWEN25_TRAINING = r"""
{%- set default_system = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' %}
{%- set first_system = messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\n' }}
{{- messages[0]['content'] if first_system else default_system }}
{%- if tools %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}{{- "\n" + (tool | tojson) }}{%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>" }}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- for m in messages %}
    {%- if m.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- generation %}
            {%- if m.content or not m.tool_calls %}{{- '\n' + m.content }}{%- endif %}
            {%- for call in (m.tool_calls or []) %}
                {%- set fn = call.function if call.function is defined else call %}
                {{- '\n<tool_call>\n{"name": "' + fn.name + '", "arguments": ' + (fn.arguments | tojson) + '}\n</tool_call>' }}
            {%- endfor %}
            {{- '<|im_end|>\n' }}
        {%- endgeneration %}
    {%- elif m.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' + m.content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- elif m.role == 'user' or not loop.first %}
        {{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""

DEEPSEEK_TRAINING = r"""
{%- set ns = namespace(system='') %}
{%- for m in messages %}{%- if m.role == 'system' %}{%- set ns.system = m.content %}{%- endif %}{%- endfor %}
{{- bos_token + ns.system }}
{%- for m in messages %}
    {%- if m.role == 'user' %}{{- '<｜User｜>' + m.content }}
    {%- elif m.role == 'assistant' %}
        {{- '<｜Assistant｜>' }}
        {%- generation %}{{- m.content.split('</think>')[-1] + '<｜end▁of▁sentence｜>' }}{%- endgeneration %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\n' }}{%- endif %}
"""


class Jinja:
    """jinja2 as transformers sets it up for chat templates, with {% generation %} recording character spans."""

    def __init__(self):
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        outer = self

        class Generation(Extension):
            tags = {"generation"}

            def parse(self, parser):
                lineno = next(parser.stream).lineno
                body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
                return nodes.CallBlock(self.call_method("_span"), [], [], body).set_lineno(lineno)

            def _span(self, caller):
                text = caller()
                start = sum(len(c) for c in outer.chunks)
                outer.spans.append((start, start + len(text)))
                return text

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        self.env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation])
        self.env.filters["tojson"] = tojson
        self.env.globals["raise_exception"] = raise_exception
        self.compiled = {}

    def render(self, template, **kwargs):
        """Text and generation spans (character offsets)."""
        self.chunks, self.spans = [], []
        if template not in self.compiled:
            self.compiled[template] = self.env.from_string(template)
        for chunk in self.compiled[template].generate(**kwargs):
            self.chunks.append(chunk)
        return "".join(self.chunks), self.spans


def mask_from_spans(encoding, n, spans):
    """transformers' assistant mask: tokens from the one holding a span's first character to the one holding its
    last."""
    mask = [0] * n
    for start, end in spans:
        first, last = encoding.char_to_token(start), encoding.char_to_token(end - 1)
        if first is None:
            break
        for t in range(first, last + 1 if last is not None else n):
            mask[t] = 1
    return mask


def sharegpt_to_messages(record):
    roles = {"human": "user", "gpt": "assistant", "observation": "tool", "system": "system"}
    messages = []
    for turn in record["conversations"]:
        if turn["from"] == "function_call":
            call = json.loads(turn["value"])
            messages.append({"role": "assistant", "content": "",
                             "tool_calls": [{"type": "function", "function": call}]})
        else:
            messages.append({"role": roles[turn["from"]], "content": turn["value"]})
    tools = json.loads(record["tools"]) if record.get("tools") else []
    return {"messages": messages, "tools": [{"type": "function", "function": t} for t in tools]}


def alpaca_to_messages(record):
    prompt = record["instruction"] + ("\n" + record["input"] if record.get("input") else "")
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]}


def reasoning_to_messages(record):
    answer = "<think>\n" + record["Complex_CoT"] + "\n</think>\n\n" + record["Response"]
    return {"messages": [{"role": "system", "content": "Think step by step."},
                         {"role": "user", "content": record["Question"]},
                         {"role": "assistant", "content": answer}]}


def synthetic():
    """Conversations for the corners of the templates."""
    u, a = (lambda c: {"role": "user", "content": c}), (lambda c: {"role": "assistant", "content": c})
    tool = lambda c: {"role": "tool", "content": c}
    call = lambda n, args: {"type": "function", "function": {"name": n, "arguments": args}}
    numbers = [0.0, -0.0, 1.5, 2e-7, 1e16, 1e15, 123456789.125, 0.0001, 0.00012345, 1e-5, 1.7976931348623157e308,
               5e-324, 100.0, 1e22, -2.5e-10, 12345678901234567.0, 0, -7, 2 ** 63 - 1, 2 ** 64 - 1, "\x00\x1f\x7f\u2028"]
    weather = {"type": "function", "function": {"name": "weather", "description": "Wetter für «Ort» 🌦",
                                                "parameters": {"type": "object", "properties": {"t": {"type": "number", "default": 1.5e-7}}}}}
    return [
        {"messages": [u("hi"), a("")]},
        {"messages": [{"role": "system", "content": "S1"}, u("q"), {"role": "system", "content": "S2"}, a("x")]},
        {"messages": [u("Cafe\u0301 e\u0301\u0301 \u212b"), a("re\u0301sume\u0301 \u1e0b\u0323"), u("x\u0338"), a("\u0301start")]},
        {"messages": [u("<|im_start|>user\n<|im_end|>"), a("<|im_end|> <tool_call> </think>x</think>  y")]},
        {"messages": [u("a"), a("\n\nleading newlines\n\n"), u("b"), a("  spaces  ")]},
        {"messages": [u("c"), {"role": "assistant", "content": "two calls",
                               "tool_calls": [call("f", {"x": [1, 2.5, -0.0, 1e16, True, None, "é\n\"q\""]}), call("g", "{\"s\": 1}")]},
                      tool("r1"), tool("r2\ttab"), a("done 😀")], "tools": [weather]},
        {"messages": [tool("first"), u("then"), {"role": "assistant", "content": None, "tool_calls": [call("h", {})]}],
         "tools": [weather, {"type": "code_interpreter"}]},
        {"messages": [{"role": "system", "content": "sys with tools"}, u("q"), a("<think>r</think>answer")], "tools": [weather]},
        {"messages": [u("👨‍👩‍👧 家族"), a("😀😀 emoji first"), u("\r\n\r\n"), a("\r\nCRLF\r\n")]},
        {"messages": [u("numbers"), {"role": "assistant", "content": "", "tool_calls": [call("n", {"v": numbers})]}],
         "tools": [{"type": "function", "function": {"name": "n", "defaults": numbers}}]},
    ]


def deepseek_usable(conv):
    return not conv.get("tools") and all(m["role"] in ("system", "user", "assistant") and not m.get("tool_calls")
                                         for m in conv["messages"])


def load_conversations():
    sft = os.path.join(TESTDATA, "sft")
    convs = [{"messages": c["messages"], "tools": c["tools"]}
             for c in json.load(open(os.path.join(TESTDATA, "vectors", "qwen2.5-chat-template.json")))["cases"]]
    convs += [json.loads(l) for l in open(os.path.join(sft, "glaive_toolcall_en_openai.jsonl"), encoding="utf-8") if l.strip()]
    convs += [sharegpt_to_messages(r) for r in json.load(open(os.path.join(sft, "glaive_toolcall_en_sharegpt.json"), encoding="utf-8"))]
    single = json.load(open(os.path.join(sft, "openai_tools_single.json"), encoding="utf-8"))
    convs.append({"messages": single["messages"], "tools": single.get("tools", [])})
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json"):
        convs += [alpaca_to_messages(r) for r in json.load(open(os.path.join(sft, name), encoding="utf-8"))]
    medical = json.load(open(os.path.join(sft, "medical_o1_reasoning_demo.json"), encoding="utf-8"))
    convs += [reasoning_to_messages(r) for r in medical]
    return convs + synthetic()


def check_render(label, binary, model_dir, template, convs, extra, jinja, records=None):
    """`qwen-sft tokenize --render` of records (default: convs) against jinja2's render of convs."""
    mismatches = 0
    for gen in (False, True):
        ours = run_tokenize(binary, model_dir, records or convs, "--render", *(["--generation-prompt"] if gen else []))
        for conv, got in zip(convs, ours):
            want, _ = jinja.render(template, messages=conv["messages"], tools=conv.get("tools") or None,
                                   add_generation_prompt=gen, **extra)
            if got["text"] != want:
                mismatches += 1
                if mismatches <= 3:
                    print("  render mismatch:\n    qwen-sft %r\n    jinja2   %r" % (got["text"][:3000], want[:3000]))
    print("%-34s %5d conversations x 2 (generation prompt off/on), render mismatches: %d" % (label, len(convs), mismatches))
    return mismatches


def as_parts(conv):
    """conv with each assistant turn's reasoning_content, content and tool_calls given as content parts."""
    def message(m):
        if m["role"] != "assistant" or not (m.get("reasoning_content") is not None or m.get("tool_calls")):
            return m
        parts = [{"type": "reasoning", "value": m["reasoning_content"]}] if m.get("reasoning_content") is not None else []
        parts += [{"type": "text", "text": m.get("content") or ""}]
        parts += [{"type": "tool_call", "value": c} for c in m.get("tool_calls") or []]
        return {"role": "assistant", "content": parts}
    return dict(conv, messages=[message(m) for m in conv["messages"]])


def parts_read(conv):
    """The messages the chat template sees of as_parts(conv): text parts are the content (a string)."""
    return dict(conv, messages=[dict(m, content=m.get("content") or "") if m["role"] == "assistant" else m
                                for m in conv["messages"]])


def check_format(label, binary, model_dir, real_template, training_template, convs, extra, jinja, tok):
    mismatches = check_render(label, binary, model_dir, real_template, convs, extra, jinja)
    bad_masks = trained = tokens = 0
    ours = run_tokenize(binary, model_dir, convs)
    for conv, got in zip(convs, ours):
        text, spans = jinja.render(training_template, messages=conv["messages"], tools=conv.get("tools") or None,
                                   add_generation_prompt=False, **extra)
        real, _ = jinja.render(real_template, messages=conv["messages"], tools=conv.get("tools") or None,
                               add_generation_prompt=False, **extra)
        assert text == real, "the training variant must render the real template's text:\n%r\n%r" % (text, real)
        enc = tok.encode(text, add_special_tokens=False)
        mask = mask_from_spans(enc, len(enc.ids), spans)
        trained, tokens = trained + sum(mask), tokens + len(mask)
        if got["ids"] != enc.ids or got["mask"] != mask:
            bad_masks += 1
            if bad_masks <= 3:
                print("  ids/mask mismatch for %r" % text[:300])
                print("    ids equal: %s" % (got["ids"] == enc.ids))
                print("    qwen-sft mask %s\n    reference    %s" % (got["mask"][:200], mask[:200]))
    print("%-34s %5d conversations (%d tokens, %d trained), ids+mask mismatches: %d"
          % (label, len(convs), tokens, trained, bad_masks))
    return mismatches + bad_masks + check_completion(label, binary, model_dir, real_template, convs, extra, jinja, tok)


def check_completion(label, binary, model_dir, template, convs, extra, jinja, tok):
    """Prompt-completion records (the last message is the completion): TRL's completion mask, the tokens after
    the ids of the prompt rendered with the generation prompt (after the common prefix where they differ)."""
    records = [{"prompt": c["messages"][:-1], "completion": c["messages"][-1:], "tools": c.get("tools") or []}
               for c in convs if len(c["messages"]) > 1]
    bad = prefix_holds = 0
    for rec, got in zip(records, run_tokenize(binary, model_dir, records)):
        tools = rec["tools"] or None
        prompt_ids = tok.encode(jinja.render(template, messages=rec["prompt"], tools=tools, add_generation_prompt=True,
                                             **extra)[0], add_special_tokens=False).ids
        ids = tok.encode(jinja.render(template, messages=rec["prompt"] + rec["completion"], tools=tools,
                                      add_generation_prompt=False, **extra)[0], add_special_tokens=False).ids
        common = 0
        while common < min(len(prompt_ids), len(ids)) and prompt_ids[common] == ids[common]:
            common += 1
        prefix_holds += common == len(prompt_ids)
        if got["ids"] != ids or got["mask"] != [0] * common + [1] * (len(ids) - common):
            bad += 1
    print("%-34s %5d prompt-completion records (TRL's prefix assumption holds for %d), mismatches: %d"
          % (label, len(records), prefix_holds, bad))
    return bad


def main():
    args = parse_args()
    try:
        import jinja2  # noqa: F401
        import tokenizers
    except ImportError as e:
        skip("%s not installed" % e.name)
    if not os.path.isdir(TESTDATA):
        skip("shared test data not found at " + TESTDATA)
    jinja = Jinja()
    convs = load_conversations()
    qwen = os.path.join(TESTDATA, "qwen2.5")
    deepseek = os.path.join(TESTDATA, "deepseek-r1-distill-qwen")
    qwen_template = json.load(open(os.path.join(qwen, "tokenizer_config.json")))["chat_template"]
    deepseek_template = open(os.path.join(deepseek, "chat_template.jinja"), encoding="utf-8").read()
    qwen_tok = tokenizers.Tokenizer.from_file(os.path.join(qwen, "tokenizer.json"))
    deepseek_tok = tokenizers.Tokenizer.from_file(os.path.join(deepseek, "tokenizer.json"))

    mismatches = check_format("qwen2.5", args.bin, qwen, qwen_template, QWEN25_TRAINING, convs, {}, jinja, qwen_tok)
    ds_convs = [c for c in convs if deepseek_usable(c)]
    mismatches += check_format("deepseek-r1-distill", args.bin, deepseek, deepseek_template, DEEPSEEK_TRAINING,
                               ds_convs, {"bos_token": DEEPSEEK_BOS}, jinja, deepseek_tok)
    # Qwen3 (the Jinja engine) renders reasoning_content and tool calls, also given as content parts, as jinja2 does.
    from jinja_parity_test import reasoning_variants
    qwen3 = os.path.join(TESTDATA, "qwen3")
    qwen3_template = json.load(open(os.path.join(qwen3, "tokenizer_config.json")))["chat_template"]
    reasoning = reasoning_variants(convs)
    mismatches += check_render("qwen3 reasoning_content", args.bin, qwen3, qwen3_template, reasoning, {}, jinja)
    with_calls = [c for c in convs if any(m.get("tool_calls") for m in c["messages"])]
    parts = reasoning + with_calls
    mismatches += check_render("qwen3 content parts", args.bin, qwen3, qwen3_template,
                               [parts_read(c) for c in parts], {}, jinja, [as_parts(c) for c in parts])
    print("chat parity: %d mismatches" % mismatches)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
