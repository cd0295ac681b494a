#!/usr/bin/env python3
"""Jinja engine parity: qwen-sft's chat-template engine (tokenizer/jinja_template.h, run through the test helper
build/tests/jinja_render) must render byte-identical text to jinja2 in transformers' chat-template environment
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, tojson as json.dumps(ensure_ascii=False,
indent, separators, sort_keys), raise_exception, strftime_now, {% generation %}), and the same {% generation %}
spans, for every chat template in the shared test data and a template exercising the engine's features, over every
shared SFT conversation (converted to messages as chat_parity_test.py does) with tools, tool calls, reasoning
content, add_generation_prompt and enable_thinking variants. A render that raises must raise in both.
Prints the number of renders compared, mismatches (the test fails on any) and render speed of both.

Usage: jinja_parity_test.py --bin build/qwen-sft --build build. Exit 0 pass, 77 skipped, 1 mismatch.
QSFT_JINJA_TEMPLATES=FOLDER adds the chat templates (*.jinja) in FOLDER, e.g. public models' templates kept outside
the repository."""
import json
import os
import subprocess
import sys
import tempfile
import time

import chat_parity_test
from chat_parity_test import DEEPSEEK_BOS, DEEPSEEK_TRAINING, QWEN25_TRAINING, load_conversations
from parity_common import TESTDATA, parse_args, skip

# Features the shared templates do not use, each compared with jinja2 on every conversation.
FEATURES = r"""
{#- a comment -#}
{%- macro show(m, sep=': ') -%}
    {{ m.role | title }}{{ sep }}{{ caller() if caller is defined else (m.content | default('', true) | trim)[:40] }}
{%- endmacro -%}
{%- set ns = namespace(users=0, chars=0, last=none) -%}
{%- for m in messages if m.role != 'system' -%}
    {%- if m.role == 'user' %}{% set ns.users = ns.users + 1 %}{% endif -%}
    {%- set ns.chars = ns.chars + (m.content or '') | length -%}
    [{{ loop.index }}/{{ loop.length }}{{ '*' if loop.first }}{{ '$' if loop.last }} {{ loop.cycle('a', 'b') }}
    {{- ' prev=' ~ loop.previtem.role if loop.previtem is defined }}{{ ' next=' ~ loop.nextitem.role if loop.nextitem }}]
    {% if m.role == 'assistant' -%}
        {%- generation %}{{ show(m) }}{% endgeneration %}
    {%- elif m.role == 'tool' -%}
        {% call show(m, ' <- ') %}{{ m.content | replace('\n', ' ') }}{% endcall %}
    {%- else -%}
        {{ show(m) }}
    {%- endif %}
    {% if loop.index is divisibleby 3 %}{% continue %}{% endif %}
    {%- if loop.index0 > 40 %}{% break %}{% endif %}
    {%- set words = (m.content or '').split() -%}
    {{ words | length }} {{ (words[:3] | join('_')) | lower }} {{ (m.content or '').startswith(('<', 'A')) }}
    {{- (m.content or '').endswith('.') }} {{ 'think' in (m.content or '') }} {{ (m.content or '').strip()[-5:] | upper }}
    {{- ' ' ~ (m.content or '').lstrip('<').rstrip('>.')[:8] }} {{ (m.content or '').rsplit(' ', 1)[-1][:10] }}
    {%- for call in m.tool_calls or [] %}
        {{ call.function.name }}({{ call.function.arguments | tojson(sort_keys=true) }})
        {{- call.function.arguments | tojson(indent=2) | indent(4) }}
        {{- call.function.arguments | tojson(separators=(',', ':')) }}
        {%- if call.function.arguments is mapping %}{% for k, v in call.function.arguments | items %}{{ k }}={{ v }};{% endfor %}{% endif %}
    {%- else %} no calls
    {%- endfor %}
{% else %}no messages
{%- endfor %}
{%- set roles = messages | map(attribute='role') | list %}
{{ ns.users }} users, {{ ns.chars }} chars, roles {{ roles | unique | list | sort | join(',') }}: {{ roles | first }}..{{ roles | last }}
{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('content') | list | length }}
{{- ' ' ~ messages | selectattr('tool_calls', 'defined') | list | length }} {{ roles | select('in', ['user', 'tool']) | list | count }}
{% filter upper %}{{ roles[-1] }} and {{ roles[:2] }}{% endfilter %} {{ roles[::-1] | string | length }}
{% set summary %}{{ messages | length }} messages{% endset %}{{ summary | capitalize }} {{ '%s/%d' % (summary, 7) }}
{{ '{}-{x}'.format(1, x=roles | length) }} {{ (7 // 2, -7 // 2, 7 % -3, 2 ** 10, 1 / 4, 10 * 0.1) }} {{ 3 is odd }}
{{ tools | length if tools is not none else 'no tools' }} {{ tools | tojson(sort_keys=true) if tools else '' }}
{%- if tools %}{% for t in tools %}{{ t.function.name | default(t.type) }} {{ t.function.parameters.properties | dictsort | length if t.function is defined and t.function.parameters is defined }}{% endfor %}{% endif %}
{{ {'a': [1, 2.5, none, true], 'b': 'x\'y"z'} }} {{ [1, 2] + [3] }} {{ 'ab' * 2 }} {{ none is none }} {{ undefined_name is defined }}
{%- with n = messages | length %} {{ n > 2 and n < 100 }} {{ range(n) | sum }} {{ [n, 3] | max }}{% endwith %}
{%- raw %} {{ raw }} {% endraw %}
{%- if add_generation_prompt %}<generate>{% endif %}
"""

# Templates written for this test in the styles other model families use (not any model's exact template): a
# system message folded into the first user turn with alternation checked by raise_exception, turns by
# loop.index0 parity, a dated system header with strftime_now, tool calls as JSON with custom separators and
# tool results as ipython turns, and the text of typed content parts.
STYLE_TEMPLATES = [
    ("style: folded system + alternation", r"""
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim + '\n\n' %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = '' %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {{- '[INST] ' + (system_message if loop.first else '') + message['content'] | trim + ' [/INST]' }}
    {%- elif message['role'] == 'assistant' %}
        {%- generation %}{{- ' ' + message['content'] | trim + eos_token }}{% endgeneration %}
    {%- endif %}
{%- endfor %}
"""),
    ("style: dated header + ipython tools", r"""
{%- set date_string = strftime_now("%Y") %}
{%- if messages[0].role == 'system' %}{% set system = messages[0].content %}{% set rest = messages[1:] %}
{%- else %}{% set system = 'You are a helpful assistant.' %}{% set rest = messages %}{% endif %}
{{- bos_token + '<|start_header_id|>system<|end_header_id|>\n\n' }}
{{- 'Year: ' + date_string + '\n' }}
{%- if tools is not none %}
    {{- 'Tools:\n' }}
    {%- for t in tools %}{{ t | tojson(indent=4) }}{{ '\n\n' }}{% endfor %}
{%- endif %}
{{- system + '<|eot_id|>' }}
{%- for message in rest %}
    {%- if message.role in ['user', 'system'] %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content | trim + '<|eot_id|>' }}
    {%- elif message.tool_calls %}
        {%- if message.tool_calls | length != 1 %}{{ raise_exception('one tool call per turn') }}{% endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {{- '{"name": "' + call.name + '", "parameters": ' + call.arguments | tojson(separators=(',', ':')) + '}<|eot_id|>' }}
    {%- elif message.role == 'tool' %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' }}
        {%- if message.content is mapping or message.content is iterable and message.content is not string %}{{ message.content | tojson }}
        {%- else %}{{ message.content }}{% endif %}
        {{- '<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' + message.content | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
"""),
    ("style: turns by parity + content parts", r"""
{%- for message in messages %}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}
    {{- '<start_of_turn>' + role + '\n' }}
    {%- if message['content'] is string %}{{ message['content'] | trim }}
    {%- elif message['content'] is none %}{{ message.tool_calls | map(attribute='function.name') | join(', ') }}
    {%- else %}{% for part in message['content'] if part.type == 'text' %}{{ part.text | trim }}{% endfor %}{% endif %}
    {{- '<end_of_turn>\n' }}
    {%- if loop.index0 is even and role == 'model' %}{{ '<!-- even -->' }}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}
"""),
]

# Expressions over the messages: Python's printing of values (repr of strings with quotes, newlines and any
# Unicode), str methods, slicing, filters and tests, each rendered on every fifth conversation.
SNIPPETS = [
    "{{ messages[0] }}|{{ tools }}",
    "{{ messages[0].content.split()[:4] }} {{ messages[0].content.split(' ', 2)[:2] }} {{ messages[0].content.rsplit(none, 2)[-2:] }}",
    "{{ messages[-1].content.splitlines()[:3] }} {{ messages[0].content.split('\n') | length }}",
    "{{ messages | map(attribute='content') | map('length') | list }} {{ messages | map(attribute='role') | unique | list }}",
    "{{ messages | map(attribute='role') | list | sort(reverse=true) }} {{ messages[0] | dictsort }}",
    "{{ messages[-1].content[:40] | tojson(ensure_ascii=true) }} {{ tools | tojson(indent=4, sort_keys=true) if tools }}",
    "{{ messages[0].content | replace(' ', '_', 3) }} {{ messages[0].content.find('a') }} {{ messages[0].content.count('e') }}",
    "{{ messages[0].content.title()[:30] }} {{ messages[0].content | title }} {{ messages[-1].content | capitalize }}",
    "{{ messages[0].content | indent(2, first=true, blank=true) }}|{{ messages[-1].content | indent(3) }}",
    "{{ messages[0].content.upper()[:30] }} {{ messages[0].content.lower()[-30:] }} {{ messages[0].content[::-3][:9] }}",
    "{{ messages | selectattr('content', 'string') | list | length }} {{ messages | rejectattr('role', 'in', ['user']) | map(attribute='role') | join(',') }}",
    "{{ range(messages | length) | map('string') | join }} {{ messages[1:-1] | length }} {{ messages[::2] | map(attribute='role') | list }}",
    "{{ (messages | last).content.rstrip()[-1:] }} {{ messages[0].content.strip('.!?').lstrip()[:5] }} {{ messages[0].content.strip() == messages[0].content | trim }}",
    "{{ '%s: %s' % (messages[0].role, messages[0].content[:10]) }} {{ '{0}/{1}'.format(messages | length, messages[0].role) }}",
    "{{ messages[0].content.startswith(messages[0].content[:3]) }} {{ messages[0].content.endswith(('.', '?')) }} {{ 'a' in messages[0].content }}",
    "{% for m in messages %}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.depth }}{{ loop.index is odd }}{% endfor %}",
    "{{ messages[0].content | int }} {{ messages[0].content | float }} {{ (messages | length) / 3 }} {{ (messages | length * 1.5) | round }} {{ -(messages | length) | abs }}",
    "{{ messages[0] is mapping }} {{ messages is sequence }} {{ messages[0].content is lower }} {{ messages | length is even }}",
    "{{ messages | map(attribute='tool_calls') | select | list | length }} {{ messages | map(attribute='name', default='-') | list }}",
    "{{ messages | selectattr('role', 'equalto', 'assistant') | map(attribute='content') | map('trim') | map('lower') | first | default('none') }}",
    "{{ messages[0].content | truncate(30) }}|{{ messages[-1].content | truncate(20, true, '..', 0) }}|{{ messages[0].role | center(15) }}|{{ messages[0].role | center(10) }}|{{ messages[0].content | wordcount }}",
    "{{ '%s has %d messages' | format(messages[0].role, messages | length) }} {{ messages[0] | attr('role') }} {{ messages[0] | attr('items') is defined }}",
    "{{ strftime_now('%Y') }} {{ strftime_now('%Y') | length }}",
    # Constructs real chat templates use (found rendering public templates), each wrong or missing once:
    "{{ messages[0].content.items is defined }} {{ messages[0].content.get is defined }} {{ messages[0].keys is defined }}",
    "{{ '%-12s|%6.2f|%03d|%x|%+.1e|%.3s|%5s' % (messages[0].role, (messages | length) / 3, messages | length, 255, 12345.678, messages[0].content, 'ab') }}"
    " {{ '%(role)s: %(content).10r' % messages[0] }} {{ '%.2f%%' | format(messages | length) }} {{ '%-6d|' % -(messages | length) }}",
    "{{ 'ff' | int(base=16) }} {{ '0x1A' | int }} {{ '0x10' | float }} {{ '0b11' | int(0, 2) }} {{ messages | length | string | int(base=8) }}",
    "a {%- raw -%}  {{ messages }}  {%- endraw -%}  b {% raw -%} \n c {% endraw %}",
    "{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(messages[0].role, messages | length, k=1) }} {{ m(1) }}",
    "{{ messages[0].content.startswith(messages[0].content[2:5], 2) }} {{ messages[0].content.endswith('.', 0, 10) }} {{ messages[-1].content.splitlines(true)[:3] }}",
    "{% for m in messages %}{{ loop.changed(m.role) }}{{ loop.changed(m.role) }}{{ loop.changed(m.role == 'user', 1) }} {% endfor %}",
    "{{ messages | sum(attribute='role', start='') }}",
    "{{ (messages | length * 0.535) | round(2) }} {{ 2.675 | round(2) }} {{ 1.005 | round(2) }} {{ 0.125 | round(2) }} {{ -2.675 | round(2) }}",
    "{{ messages | from_json if messages is none else messages | length }}{% if messages | length > 99 %}{{ messages | tojson | from_json }}"
    "{% elif false and messages is nothing %}{% endif %}",
    "{{ messages[0].content[5:2] }}{{ messages[0].content[-3:-1] }}{{ messages[0].content[100:] | length }}{{ messages[0].content.isdigit() }}{{ messages[0].content[:1].isupper() }}",
    # Generators (map, select*, reject*, unique, items; reverse of a list): true even when empty, indexing gives
    # undefined, not sequences; map/select of None are empty; no slices, len, JSON or last (each its own snippet:
    # they raise).
    "{% if messages | selectattr('role', 'equalto', 'nobody') %}true{% endif %} {{ (messages | map(attribute='role'))[0] }}|"
    "{{ messages | map(attribute='role') is sequence }} {{ messages | reverse is iterable }}"
    " {{ messages | map(attribute='role') | first }} {{ messages | reverse | map(attribute='role') | list }}",
    "{{ none | selectattr('type', 'equalto', 'x') | list }} {{ none | map(attribute='x') | list }} {{ '' | map('upper') | list }}"
    " {{ tools | rejectattr('type', 'equalto', 'code') | list | length }} {{ messages[0] | items | list }}"
    " {% set g = messages | select %}{{ g is sameas g }} {{ g == g }} {{ (messages | select) == (messages | select) }}"
    " {{ messages | map(attribute='role') | unique | list }} {{ (messages | map(attribute='role') | reverse)[0] }}",
    "{{ messages | map(attribute='role') | tojson }}",
    "{{ messages | selectattr('role') | length }}",
    "{{ messages | map(attribute='role') | last }}",
    "{{ (messages | select)[1:] }}",
    # Markup (safe, escape): a str added to one is HTML-escaped; ~ and join give plain str.
    "{{ '<b>' | safe + messages[0].role + '\"&' }} {{ messages[0].content[:30] | e }} {{ (messages[0].content[:9] | e) | e }}"
    " {{ '<' ~ ('x' | safe) + '>' }} {{ messages[0].role + ('<i>' | safe) }} {{ ('a' | safe) * 2 + '<' }}"
    " {{ ('<' | safe | string) + '>' }} {{ \"<&>'\" | forceescape }} {{ (messages | length) | e + '&' }} {{ none | safe + '<' }}",
    # batch and slice (generators of lists); the escaped, filter and test tests; a jinja2 filter the engine lacks
    # (wordwrap) in a branch not taken loads and renders.
    "{{ messages | map(attribute='role') | batch(3) | list }} {{ messages | map(attribute='role') | batch(2, 'x') | list }}"
    " {{ messages | map(attribute='role') | slice(3) | list }} {{ messages | map(attribute='role') | slice(2, '-') | list }}"
    " {{ ('a' | safe) is escaped }} {{ 'a' is escaped }} {{ 'upper' is filter }} {{ 'groupby' is filter }}"
    " {{ 'nofilter' is filter }} {{ 'odd' is test }} {{ messages | batch(2) is sequence }}"
    "{% if messages | length > 999 %}{{ messages[0].content | wordwrap(5) }}{% endif %}",
    # str.format's format specs, conversions and field accessors.
    "{{ '{:>8.3f}|{:+d}|{: d}|{:,}|{:_}|{:#x}|{:#o}|{:#b}|{:08.2f}|{:<6}|{:^7}|{:=+8d}'.format((messages | length) / 7,"
    " messages | length, messages | length, 1234567 * (messages | length), 1234567, 255, 8, 5, -3.5, messages[0].role,"
    " 'mid', -42) }}",
    "{{ '{:e}|{:E}|{:g}|{:G}|{:%}|{:.1%}|{:.0f}|{:.3}|{}|{:.2}|{:n}'.format(12345.678, 0.000123, 1e-7, 1e20, 0.256,"
    " (messages | length) / 3, 2.5, 3.0, 1e16, 1234.5, 1e6) }} {{ '{:.0e}|{:#.0f}|{:g}|{:.3g}|{:#g}|{:,.2f}|{:_.1f}'"
    ".format(5.5, 3.0, 100000.0, 0.0001234, 1.5, 1234567.891, 9876.5) }}",
    "{{ '{0!r}|{0!s:>12}|{0[role]}|{1[0]}|{x}|{0[role]:*^12}|{2:.3}|{3}|{3:d}|{4:>5}'.format(messages[0], [7],"
    " messages[0].content, true, false, x=none) }} {{ '{0.role}|{1:*^9}|{2:05}|{3:<05}|{4:x<4}|{5:c}'.format("
    "messages[0], messages[0].role[:2], 42, 7, 'b', 65) }}",
    "{{ '{}{0}'.format(messages | length) }}",
    "{{ '{}|{0[role]}|{0.role}'.format(messages[0]) }}",
    # A generator is used up by what iterates it (in: up to its match; first: one item); unique(attribute=).
    "{% set g = messages | map(attribute='role') %}{{ 'user' in g }}{{ 'user' in g }} {{ g | list }}"
    "{% set h = messages | map(attribute='role') %}{{ h | first }}|{{ h | join(',') }}|{{ h | list }}"
    "{% set r = messages | reverse %}{% for m in r %}{{ m.role[0] }}{% endfor %}{% for m in r %}x{% else %}empty{% endfor %}"
    " {{ messages | unique(attribute='role') | map(attribute='role') | list }} {{ '==' is test }} {{ 'x' is test }}",
    "{{ messages | unique | list }}",
    # groupby: (grouper, list) tuples, unpacked or by attribute; default= for a missing attribute.
    "{% for role, ms in messages | groupby('role') %}{{ role }}:{{ ms | length }};{% endfor %} {% for g in messages |"
    " groupby('role') %}{{ g.grouper }}={{ g.list | map(attribute='role') | list }}{% endfor %} {{ messages |"
    " groupby('role') | map(attribute='grouper') | list }} {{ messages | groupby('name', default='-') | length }}"
    " {{ (messages | groupby('role'))[0][0] }} {{ (messages | groupby('role'))[-1] | length }}",
    # A recursive loop: loop(items) renders the body again one level deeper; the loop filter applies at each level.
    "{% set tree = [{'n': messages[0].role, 'c': [{'n': 'a', 'c': [{'n': 'b', 'c': []}]}, {'n': 'skip', 'c': []}]},"
    " {'n': 'z', 'c': []}] %}{% for x in tree if x.n != 'skip' recursive %}{{ loop.depth }}{{ loop.depth0 }}"
    "{{ x.n }}{{ loop.index }}/{{ loop.length }}{% if x.c %}[{{ loop(x.c) }}]{% endif %}{% else %}none{% endfor %}",
    "{% for x in messages %}{{ loop(x) }}{% endfor %}",
    # Markup through filters, methods, indexing, slicing, % and format: what meets it is escaped, results stay Markup.
    "{% set s = messages[0].content[:12] ~ '<&>' %}{% set m = s | safe %}{{ m | trim + '<|x|>' }} {{ m.strip() + '<' }}"
    " {{ m[0:] + '<' }} {{ m[0] + '<' }} {{ (m | upper) + '<' }} {{ m.upper() is escaped }} {{ m.split()[0] + '<' }}"
    " {{ m.replace('<', '\"') }} {{ (m | truncate(5, true, '<')) + '<' }} {{ ('<b>%s</b>' | safe) % s }}"
    " {{ ('<b>%s</b>' | safe) | format(s) }} {{ ('%s-%s' | safe) % (s, m) }} {{ ('%(a)s' | safe) % {'a': s} }}"
    " {{ ('{}' | safe).format(s) }} {{ ('|' | safe).join([s, m]) }} {{ m.partition(' ') }} {{ (m | reverse) + '<' }}"
    " {{ (m | center(40)) + '<' }} {{ (m | lower | capitalize) + '&' }} {{ (m | indent(2)) + '&' }}",
    # str methods: ranges of find/count, justification, partition, affixes, numeric tests.
    "{{ messages[0].content.find('e', -5) }} {{ messages[0].content.rfind('a', 0, 9) }} {{ 'abc'.find('', 3) }}"
    " {{ 'abc'.find('', 4) }} {{ messages[0].content.count('e', 2, -2) }} {{ 'abc'.count('', 2, 1) }}"
    " {{ messages[0].content.rindex(messages[0].content[-1:]) }} {{ 'ab'.zfill(1) }} {{ '-5'.zfill(4) }}"
    " {{ messages[0].role.center(11) }}|{{ messages[0].role.center(10, '*') }}|{{ messages[0].role.ljust(9, 'é') }}"
    "|{{ messages[0].role.rjust(9) }} {{ messages[0].content.partition(' ') }} {{ messages[0].content.rpartition('x') }}"
    " {{ messages[0].content.removeprefix(messages[0].content[:3]) | length }} {{ messages[0].role.removesuffix('er') }}"
    " {{ messages[0].content[:1].isdecimal() }} {{ '12'.isnumeric() }}",
    # joiner and cycler; integer literals and powers.
    "{% set c = cycler('odd', 'even') %}{% set j = joiner(' | ') %}{% for m in messages %}{{ j() }}{{ c.next() }}"
    "{{ c.current }}{% endfor %}{{ c.reset() }}{{ c.current }} {{ 9223372036854775807 }} {{ 1_000 }}"
    " {{ 2 ** 62 }} {{ (-1) ** 99999999999 }} {{ 0 ** 0 }} {{ (messages | length) ** 2 }}",
]


class Jinja(chat_parity_test.Jinja):
    """chat_parity_test's jinja2 (transformers' environment with {% generation %} spans) completed as transformers'
    _compile_jinja_template sets it up: the loopcontrols extension and strftime_now."""

    def __init__(self):
        import jinja2.ext
        from datetime import datetime

        super().__init__()
        self.env.add_extension(jinja2.ext.loopcontrols)
        self.env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.seconds = 0.0

    def render_bytes(self, template, ctx):
        """{"text", "gen"} with byte offsets, or {"error"}."""
        start = time.perf_counter()
        try:
            text, spans = self.render(template, **ctx)
        except Exception as e:  # noqa: BLE001 - any jinja2 failure must be a failure of ours too
            return {"error": "%s: %s" % (type(e).__name__, e)}
        finally:
            self.seconds += time.perf_counter() - start
        to_bytes = lambda k: len(text[:k].encode())
        return {"text": text, "gen": [[to_bytes(b), to_bytes(e)] for b, e in spans if e > b]}


def reasoning_variants(convs):
    """Conversations whose assistant turns carry reasoning_content (split off "<think>...</think>" answers), and
    multi-turn ones where earlier turns have reasoning too."""
    out = []
    for c in convs:
        msgs = c["messages"]
        if not any(m["role"] == "assistant" and "</think>" in (m.get("content") or "") for m in msgs):
            continue
        split = []
        for m in msgs:
            if m["role"] == "assistant" and "</think>" in (m.get("content") or ""):
                think, answer = m["content"].split("</think>", 1)
                m = dict(m, content=answer.strip("\n"), reasoning_content=think.replace("<think>", "").strip("\n"))
            split.append(m)
        out.append(dict(c, messages=split))
        out.append(dict(c, messages=split + [{"role": "user", "content": "and then?"},
                                              {"role": "assistant", "content": "<think>\nmore\n</think>\n\nDone."}]))
    return out


def templates():
    """(label, template text, extra variables, variants of extra keyword arguments)."""
    qwen = os.path.join(TESTDATA, "qwen2.5")
    deepseek = os.path.join(TESTDATA, "deepseek-r1-distill-qwen")
    qwen3 = json.load(open(os.path.join(TESTDATA, "qwen3", "tokenizer_config.json"), encoding="utf-8"))
    qwen25_config = json.load(open(os.path.join(qwen, "tokenizer_config.json"), encoding="utf-8"))
    read = lambda p: open(p, encoding="utf-8").read()
    return [
        ("qwen2.5 chat_template.jinja", read(os.path.join(qwen, "chat_template.jinja")), {}, [{}]),
        ("qwen2.5 tokenizer_config", qwen25_config["chat_template"], {}, [{}]),
        ("deepseek-r1-distill", read(os.path.join(deepseek, "chat_template.jinja")), {"bos_token": DEEPSEEK_BOS}, [{}]),
        ("qwen3 tokenizer_config", qwen3["chat_template"], {"eos_token": qwen3["eos_token"]},
         [{}, {"enable_thinking": False}, {"enable_thinking": True}]),
        ("qwen2.5 training ({% generation %})", QWEN25_TRAINING, {}, [{}]),
        ("deepseek training ({% generation %})", DEEPSEEK_TRAINING, {"bos_token": DEEPSEEK_BOS}, [{}]),
        ("features", FEATURES, {}, [{}]),
    ] + [(label, text, {"bos_token": "<s>", "eos_token": "</s>"}, [{}]) for label, text in STYLE_TEMPLATES] \
      + [("snippet %d" % k, s, {}, [{}]) for k, s in enumerate(SNIPPETS)] + outside_templates()


def outside_templates():
    """The *.jinja files of the folder QSFT_JINJA_TEMPLATES names (public models' chat templates, kept outside the
    repository), with and without enable_thinking; those jinja2 cannot compile (other engines' filters) are left out."""
    folder = os.environ.get("QSFT_JINJA_TEMPLATES")
    jinja, out = Jinja(), []
    for name in sorted(os.listdir(folder)) if folder else []:
        if not name.endswith(".jinja"):
            continue
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        try:
            jinja.env.from_string(text)
        except Exception as e:  # noqa: BLE001 - reported, not compared
            print("%-38s left out: jinja2 cannot compile it (%s)" % (name, e))
            continue
        out.append((name, text, {"bos_token": "<s>", "eos_token": "</s>"},
                    [{}, {"enable_thinking": False}, {"enable_thinking": True}]))
    return out


def run_engine(binary, template_paths, requests):
    stdin = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    p = subprocess.run([binary, *template_paths], input=stdin.encode(), capture_output=True)
    if p.returncode != 0:
        sys.exit("jinja_render failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")[:2000]))
    out = [json.loads(line) for line in p.stdout.decode().split("\n") if line]
    assert len(out) == len(requests), (len(out), len(requests))
    seconds = float(p.stderr.decode().split("render_seconds")[-1])
    return out, seconds


def main():
    args = parse_args()
    try:
        import jinja2  # noqa: F401
    except ImportError:
        skip("jinja2 not installed")
    if not os.path.isdir(TESTDATA):
        skip("shared test data not found at " + TESTDATA)
    binary = os.path.join(args.build or "build", "tests", "jinja_render")
    if not os.path.exists(binary):
        sys.exit("test helper not built: " + binary)
    jinja = Jinja()
    convs = load_conversations()
    convs += reasoning_variants(convs)
    tmpls = templates()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, (_, text, _, _) in enumerate(tmpls):
            paths.append(os.path.join(tmp, "t%d.jinja" % k))
            with open(paths[-1], "w", encoding="utf-8") as f:
                f.write(text)
        for k, (label, text, extra, variants) in enumerate(tmpls):
            requests, want = [], []
            jinja.seconds = 0.0
            for conv in convs if not label.startswith("snippet") else convs[::5]:
                for kwargs in variants:
                    for gen in (False, True):
                        ctx = dict(extra, messages=conv["messages"], tools=conv.get("tools") or None,
                                   add_generation_prompt=gen, **kwargs)
                        requests.append({"t": k, "ctx": ctx})
                        want.append(jinja.render_bytes(text, ctx))
            got, seconds = run_engine(binary, paths, requests)
            bad = errors = 0
            for req, w, g in zip(requests, want, got):
                errors += "error" in w
                if "error" in w or "error" in g:  # both raise; raise_exception's message must be ours too
                    raised = w.get("error", "").startswith("TemplateError: ")
                    same = "error" in w and "error" in g and (
                        not raised or g["error"].endswith(": " + w["error"][len("TemplateError: "):]))
                else:
                    same = w == g
                if not same:
                    bad += 1
                    if bad <= 3:
                        print("  mismatch (%s):\n    messages %s\n    qwen-sft %r\n    jinja2   %r"
                              % (label, json.dumps(req["ctx"]["messages"], ensure_ascii=False)[:400],
                                 json.dumps(g, ensure_ascii=False)[:1500], json.dumps(w, ensure_ascii=False)[:1500]))
            failures += bad
            print("%-38s %6d renders (%d raise in jinja2), mismatches %d; renders/s: qwen-sft %.0f, jinja2 %.0f"
                  % (label, len(requests), errors, bad, len(requests) / max(seconds, 1e-9),
                     len(requests) / max(jinja.seconds, 1e-9)))
    print("jinja parity: %d conversations, %d mismatches" % (len(convs), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
