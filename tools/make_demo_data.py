#!/usr/bin/env python3
"""Writes configs/data/demo_chat.jsonl: the demo's small chat dataset (OpenAI messages), written for the project.

Short, regular conversations (unit conversions, arithmetic, capitals, colours of things, word reversal) so that a
tiny random model trained with LoRA visibly learns them within a couple of minutes on two CPU cores.
Deterministic: the same file every run.  Usage: python3 tools/make_demo_data.py
"""
import json
import os
import random

rng = random.Random(1234)
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Egypt", "Cairo"),
            ("Canada", "Ottawa"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"), ("Chile", "Santiago")]
COLOURS = [("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("a banana", "yellow"), ("coal", "black"),
           ("a tomato", "red"), ("an orange", "orange"), ("a plum", "purple")]
WORDS = ["engine", "token", "matrix", "kernel", "lora", "qwen", "packing", "gradient", "adapter", "tensor"]


def conversation():
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(2, 50), rng.randrange(2, 50)
        q, ans = f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    elif kind == 1:
        country, city = rng.choice(CAPITALS)
        q, ans = f"What is the capital of {country}?", f"The capital of {country} is {city}."
    elif kind == 2:
        thing, colour = rng.choice(COLOURS)
        q, ans = f"What colour is {thing}?", f"{thing[0].upper() + thing[1:]} is {colour}."
    elif kind == 3:
        w = rng.choice(WORDS)
        q, ans = f"Reverse the word \"{w}\".", f"\"{w}\" reversed is \"{w[::-1]}\"."
    else:
        km = rng.randrange(1, 20)
        q, ans = f"How many metres are in {km} kilometres?", f"{km} kilometres are {km * 1000} metres."
    messages = [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]
    if rng.random() < 0.3:
        messages.insert(0, {"role": "system", "content": "You answer in one short sentence."})
    return {"messages": messages}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "data", "demo_chat.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for _ in range(400):
            f.write(json.dumps(conversation(), ensure_ascii=False) + "\n")
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()
