#!/usr/bin/env python3
"""Golden fixtures for qwen-sft from Hugging Face transformers + PEFT.

Writes tests/data/fixtures/{tied,untied,qwen3}/ (format: tests/data/fixtures/README.md):
  model/     tiny random Qwen2ForCausalLM (qwen3: Qwen3ForCausalLM, head_dim != hidden/heads, q/k norms, no bias),
             save_pretrained, float32 safetensors (untied: sharded + index.json)
  adapter/   initial PEFT LoRA adapter (non-zero B), PeftModel.save_pretrained
  golden.json, golden.safetensors   packed batch, logits, loss, LoRA gradients, 5 AdamW steps
  full_ft.json, full_ft.safetensors full fine-tuning of the same base model on the same batch: loss, every weight's
             gradient (grad.<HF name>), 5 AdamW steps (step_losses, after5.<HF name>)
  generate.json   greedy tokens of generate(do_sample=False) for 3 prompts, base model and with the adapter

Usage:  python3 tools/make_fixtures.py            regenerate tests/data/fixtures
        python3 tools/make_fixtures.py --check    regenerate into a temp dir and compare (exit 1 on a difference
                                                  beyond the last bits of a float)
        python3 tools/make_fixtures.py --out DIR  write elsewhere

The reference is computed in float64 (model.double()) from the float32 weights as stored, with
attn_implementation="eager", each packed sequence run on its own (batch 1, position_ids 0..L-1) and the rows
concatenated: exactly the block-diagonal causal packed batch. Two places in the Hugging Face code compute in
float32 whatever the model dtype (Qwen2RMSNorm: x.to(float32) before rsqrt; eager attention: softmax(dtype=float32));
while the reference runs (float64_exact below) they are made to compute in float64 when their input is float64.
That changes nothing mathematically (for fp32/bf16 inputs HF does the same operations), it only removes ~1e-7
rounding noise from the reference (measured: logits 1.7e-7, gradients 4.8e-7 norm-wise, step losses 1e-8 rel.
against the unmodified double model). RoPE is left as HF computes it: inv_freq = 1/theta^(arange(0,d,2)/d) in fp32,
freqs = pos * inv_freq in fp32, cos/sin of cat(freqs, freqs) in fp32, then cast to float64 - the same tables an
fp32 engine builds. The loss is our own float64 cross-entropy over the logits. Results are stored as F32.

PEFT conventions (peft 0.21, tuners/lora/layer.py Linear.forward; utils/save_and_load.py) the C++ side matches:
  * y = base(x) + lora_B(lora_A(dropout(x))) * scaling, base(x) = x W^T + b. Dropout acts on the LoRA branch
    only: lora_A gets dropout(x), base gets the undropped x (lora_dropout=0 here, so dropout is the identity).
    No LoRA bias (bias="none"). PEFT casts x to the LoRA weights' dtype for the LoRA branch and casts the sum
    back to the base output dtype (relevant for bf16 base + fp32 LoRA; all float64 here).
  * scaling = lora_alpha / r; with use_rslora=True scaling = lora_alpha / sqrt(r).
  * lora_A.weight is [r, in_features], lora_B.weight is [out_features, r] (nn.Linear layout, no bias),
    fan_in_fan_out=False. PEFT init: A kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0. These
    fixtures overwrite both: A ~ U(-1/sqrt(in), 1/sqrt(in)) and B ~ 0.05 * N(0, 1) so every gradient is non-zero.
  * adapter_model.safetensors keys drop the adapter name ("default"):
      base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
      base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight
    (in memory the parameter is ...q_proj.lora_A.default.weight). Stored F32, metadata {"format": "pt"}.
  * target_modules here: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj ("all-linear" minus lm_head).

Batch and loss: T tokens packed from sequences cu_seqlens; positions restart at 0 per sequence. trained_mask[t]=1
marks tokens that are loss targets. targets[t] = input_ids[t+1] if t+1 is in the same sequence and
trained_mask[t+1]==1, else -100 (so the last token of every sequence has -100).
loss = sum_{t: targets[t] >= 0} CE(logits[t], targets[t]) / num_targets.

AdamW (torch.optim.AdamW, defaults foreach/fused not forced, amsgrad=False, maximize=False), step k = 1..5 on the
LoRA parameters only, same batch every step, gradient of the loss above:
  p <- p * (1 - lr * weight_decay)
  m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
  p <- p - (lr / (1 - beta1^k)) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps)
Weight decay applies to every LoRA tensor (A and B; one parameter group). step_losses[k] is the loss before the
(k+1)-th update (step_losses[0] == loss); after5.* are the parameters after the 5th update.

Full fine-tuning (full_ft.*): the base model alone (no adapter), every parameter trainable, float64 as above; the
tied lm_head is the embedding (one parameter, its gradient the sum of both uses). AdamW as above with transformers'
Trainer parameter groups (Trainer.get_decay_parameter_names): weight decay on every weight but the biases and the
norm weights, which get 0.

Determinism: every weight is drawn from explicitly seeded torch.Generator objects (CPU), the global seed is
fixed too (torch.manual_seed), and the files written are byte-stable run to run on one machine. On another CPU
torch's kernels may change the last bits of the fp64 values: --check accepts floats within CROSS_CPU_REL of their
scale, everything else exactly.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
from transformers.models.qwen2 import modeling_qwen2
from transformers.models.qwen3 import modeling_qwen3

ARCHS = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SEQ_LENS = [7, 13, 20]
PROMPT_LENS = [2, 4, 5]  # first tokens of each sequence never trained (like a prompt)
RANDOM_UNTRAINED_P = 0.25  # other tokens untrained with this probability
WEIGHT_STD = 0.1  # std of every base linear / embedding weight (attention far from uniform)
NORM_STD = 0.1  # RMSNorm weight = 1 + NORM_STD * N(0,1)
BIAS_STD = 0.1  # q/k/v bias = BIAS_STD * N(0,1)
LORA_B_STD = 0.05  # LoRA B = LORA_B_STD * N(0,1): visible (~15-40% of each base output), not dominant
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
NUM_STEPS = 5
GEN_PROMPT_LENS = [3, 8, 17]  # greedy generation golden: prompts of these lengths, each generated alone
GEN_NEW_TOKENS = 24

CASES = [
    {
        "name": "tied",
        "seed": 1234,
        "config": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1000,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            max_position_embeddings=512,
        ),
        "lora": dict(r=8, lora_alpha=16, use_rslora=False),
        "max_shard_size": None,  # one model.safetensors
    },
    {
        "name": "untied",
        "seed": 5678,
        "config": dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=8,
            num_key_value_heads=2,
            vocab_size=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 1e4},
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            max_position_embeddings=512,
        ),
        "lora": dict(r=4, lora_alpha=8, use_rslora=True),
        "max_shard_size": "300KB",  # forces 3 shards + model.safetensors.index.json
    },
    {
        "name": "qwen3",
        "arch": "qwen3",
        "seed": 9012,
        "config": dict(
            hidden_size=64,
            intermediate_size=112,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=24,  # n * D = 96 != hidden: the projections are not square
            vocab_size=1000,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            attention_bias=False,
            max_position_embeddings=512,
        ),
        "lora": dict(r=8, lora_alpha=16, use_rslora=False),
        "max_shard_size": None,
    },
]


@contextlib.contextmanager
def float64_exact():
    """Inside: Qwen2/Qwen3RMSNorm and the eager-attention softmax compute in float64 when given float64 inputs."""
    orig_rms = modeling_qwen2.Qwen2RMSNorm.forward
    orig_rms3 = modeling_qwen3.Qwen3RMSNorm.forward
    orig_softmax = torch.nn.functional.softmax

    def rms_forward(self, x):
        if x.dtype != torch.float64:
            return orig_rms(self, x)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def softmax(x, dim=None, _stacklevel=3, dtype=None):
        if x.dtype == torch.float64:
            dtype = torch.float64
        return orig_softmax(x, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    modeling_qwen2.Qwen2RMSNorm.forward = rms_forward
    modeling_qwen3.Qwen3RMSNorm.forward = rms_forward  # the same math (orig_rms is Qwen2's: equal for non-f64)
    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        modeling_qwen2.Qwen2RMSNorm.forward = orig_rms
        modeling_qwen3.Qwen3RMSNorm.forward = orig_rms3
        torch.nn.functional.softmax = orig_softmax


def peft_key(param_name):
    """In-memory PEFT parameter name -> key in adapter_model.safetensors (adapter name removed)."""
    return param_name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def lora_params(model):
    """Sorted list of (saved key, parameter) for every LoRA tensor of a PeftModel."""
    out = [(peft_key(n), p) for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n]
    return sorted(out, key=lambda kv: kv[0])


def build_base_model(case, gen):
    config_cls, model_cls = ARCHS[case.get("arch", "qwen2")]
    config = config_cls(**case["config"])
    config._attn_implementation = "eager"
    torch.manual_seed(case["seed"])
    model = model_cls(config).float()
    with torch.no_grad():
        # Explicit init of every tensor, in sorted name order, independent of transformers' own init.
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape, generator=gen))
            elif name.endswith("_proj.bias"):
                p.copy_(BIAS_STD * torch.randn(p.shape, generator=gen))
            elif name.endswith(".weight"):
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=gen))
            else:
                raise RuntimeError(f"unexpected parameter {name}")
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "weights not tied"
    else:
        assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    return model


def lora_config(case):
    lc = case["lora"]
    return LoraConfig(
        r=lc["r"],
        lora_alpha=lc["lora_alpha"],
        use_rslora=lc["use_rslora"],
        target_modules=list(TARGET_MODULES),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def make_batch(vocab, gen):
    ids, positions, mask = [], [], []
    cu = [0]
    for L, P in zip(SEQ_LENS, PROMPT_LENS):
        ids += torch.randint(0, vocab, (L,), generator=gen).tolist()
        positions += list(range(L))
        r = torch.rand(L, generator=gen).tolist()
        mask += [0 if (i < P or r[i] < RANDOM_UNTRAINED_P) else 1 for i in range(L)]
        cu.append(cu[-1] + L)
    T = cu[-1]
    targets = [-100] * T
    for s in range(len(SEQ_LENS)):
        for t in range(cu[s], cu[s + 1] - 1):
            if mask[t + 1]:
                targets[t] = ids[t + 1]
    return ids, positions, mask, cu, targets


def forward_packed(model, ids, cu):
    """Logits [T, V] of the packed batch: each sequence alone (batch 1, positions 0..L-1), concatenated."""
    rows = []
    for s in range(len(cu) - 1):
        x = torch.tensor(ids[cu[s] : cu[s + 1]], dtype=torch.long)[None]
        pos = torch.arange(x.shape[1], dtype=torch.long)[None]
        rows.append(model(input_ids=x, position_ids=pos, use_cache=False).logits[0])
    return torch.cat(rows, 0)


def masked_ce(logits, targets):
    t = torch.tensor(targets, dtype=torch.long)
    valid = t >= 0
    n = int(valid.sum())
    return F.cross_entropy(logits[valid], t[valid], reduction="sum") / n


def check_packed_equivalences(model, ids, positions, mask, cu, targets, logits, loss):
    """Cross-checks of the per-sequence reference against transformers' own packed paths."""
    T = len(ids)
    x = torch.tensor(ids, dtype=torch.long)[None]
    pos = torch.tensor(positions, dtype=torch.long)[None]
    with torch.no_grad():
        # (1) one row, explicit block-diagonal causal 4D additive mask (used as-is by transformers).
        seg = torch.zeros(T, dtype=torch.long)
        for s in range(len(cu) - 1):
            seg[cu[s] : cu[s + 1]] = s
        allowed = (seg[:, None] == seg[None, :]) & torch.tril(torch.ones(T, T, dtype=torch.bool))
        add = torch.zeros(T, T, dtype=torch.float64).masked_fill(~allowed, torch.finfo(torch.float64).min)
        l4 = model(input_ids=x, position_ids=pos, attention_mask=add[None, None], use_cache=False).logits[0]
        err = ((l4 - logits).abs().max() / logits.abs().max()).item()
        assert err < 1e-12, f"4D block-diagonal mask logits differ: {err}"
        errs = [err]
        loss4 = masked_ce(l4, targets)
        assert abs(loss4.item() - loss.item()) <= 1e-12 * abs(loss.item()), (loss4.item(), loss.item())
        # (2) one row, no mask: transformers detects packing from position_ids restarts; its own loss with
        #     labels[t] = ids[t] if trained and not a sequence start (its loss casts logits to float32, so only
        #     ~1e-7 agreement is possible).
        lp = model(input_ids=x, position_ids=pos, use_cache=False).logits[0]
        err = ((lp - logits).abs().max() / logits.abs().max()).item()
        assert err < 1e-12, f"packed position_ids logits differ: {err}"
        errs.append(err)
        labels = [ids[t] if (mask[t] and positions[t] != 0) else -100 for t in range(T)]
        hf_loss = model(input_ids=x, position_ids=pos, labels=torch.tensor(labels)[None], use_cache=False).loss
        assert abs(hf_loss.item() - loss.item()) <= 1e-6 * abs(loss.item()), (hf_loss.item(), loss.item())
        errs.append(abs(hf_loss.item() - loss.item()) / abs(loss.item()))
    print("  cross-checks (max rel.): 4D-mask logits %.2e, packed-position_ids logits %.2e, HF loss %.2e" % tuple(errs))


def greedy_golden(model, case, case_dir):
    """generate.json: transformers' generate(do_sample=False) on random prompts (batch 1 each, no eos: always
    GEN_NEW_TOKENS tokens), for the base model (adapter disabled) and with the adapter; min_margin is the smallest
    gap between the chosen and the next-best logit along the path (how far from a tie fp32 engines are)."""
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    vocab = case["config"]["vocab_size"]
    prompts = [torch.randint(0, vocab, (L,), generator=gen).tolist() for L in GEN_PROMPT_LENS]
    cfg = transformers.GenerationConfig(do_sample=False, max_new_tokens=GEN_NEW_TOKENS, eos_token_id=None,
                                        pad_token_id=0)
    result = {"prompts": prompts, "max_new_tokens": GEN_NEW_TOKENS}

    def run(tag):
        tokens, margin = [], math.inf
        for p in prompts:
            x = torch.tensor(p, dtype=torch.long)[None]
            with torch.no_grad():
                out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=cfg)
                new = out[0, len(p) :].tolist()
                logits = model(input_ids=out, use_cache=False).logits[0, len(p) - 1 : -1]
            top2 = logits.topk(2, dim=-1).values
            assert logits.argmax(-1).tolist() == new, f"{tag}: generate differs from the argmax of the full forward"
            margin = min(margin, float((top2[:, 0] - top2[:, 1]).min()))
            tokens.append(new)
        result["greedy_" + tag] = tokens
        result["min_margin_" + tag] = margin

    with model.disable_adapter():
        run("base")
    run("adapter")
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}\n"
    with open(os.path.join(case_dir, "generate.json"), "w") as f:
        f.write(text)
    print(f"[{case['name']}] greedy min margin base {result['min_margin_base']:.3g}, adapter "
          f"{result['min_margin_adapter']:.3g}")


def run_case(case, out_dir):
    with float64_exact():
        return _run_case(case, out_dir)


def _run_case(case, out_dir):
    name = case["name"]
    case_dir = os.path.join(out_dir, name)
    model_dir = os.path.join(case_dir, "model")
    adapter_dir = os.path.join(case_dir, "adapter")
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)

    gen = torch.Generator().manual_seed(case["seed"])

    # ---- float32 base model + initial adapter, saved ----
    base = build_base_model(case, gen)
    if case["max_shard_size"]:
        base.save_pretrained(model_dir, max_shard_size=case["max_shard_size"])
    else:
        base.save_pretrained(model_dir)
    pm = get_peft_model(base, lora_config(case))
    with torch.no_grad():
        for key, p in lora_params(pm):
            if ".lora_A." in key:
                bound = 1.0 / math.sqrt(p.shape[1])
                p.copy_((torch.rand(p.shape, generator=gen) * 2.0 - 1.0) * bound)
            else:
                p.copy_(LORA_B_STD * torch.randn(p.shape, generator=gen))
    pm.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")  # PEFT's model card: not part of the fixture
    if os.path.exists(readme):
        os.remove(readme)
    # PEFT keeps target_modules as a Python set and writes it in hash order (differs run to run): sort it,
    # keeping PEFT's own formatting (indent 2, sorted keys, no final newline).
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    with open(cfg_path) as f:
        adapter_cfg = json.load(f)
    assert set(adapter_cfg["target_modules"]) == set(TARGET_MODULES), adapter_cfg["target_modules"]
    adapter_cfg["target_modules"] = sorted(adapter_cfg["target_modules"])
    with open(cfg_path, "w") as f:
        f.write(json.dumps(adapter_cfg, indent=2, sort_keys=True))
    vocab = case["config"]["vocab_size"]
    ids, positions, mask, cu, targets = make_batch(vocab, gen)
    del pm, base

    # ---- reference: reload the saved files, float64 ----
    model_cls = ARCHS[case.get("arch", "qwen2")][1]
    base = model_cls.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    model = model.double()
    model.eval()  # dropout is 0 anyway; eval keeps every module deterministic
    greedy_golden(model, case, case_dir)
    params = lora_params(model)
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    assert sorted(saved) == [k for k, _ in params], "PEFT key mapping mismatch"
    for k, p in params:
        assert p.requires_grad and p.dtype == torch.float64
        assert torch.equal(p.detach().float(), saved[k]), k
    for n, p in model.named_parameters():
        assert p.requires_grad == (".lora_" in n), n
    lc = case["lora"]
    expect_scaling = lc["lora_alpha"] / (math.sqrt(lc["r"]) if lc["use_rslora"] else lc["r"])
    for mod in model.modules():
        if hasattr(mod, "scaling") and isinstance(mod.scaling, dict) and "default" in mod.scaling:
            assert mod.scaling["default"] == expect_scaling, (mod.scaling, expect_scaling)

    num_targets = sum(1 for t in targets if t >= 0)
    logits = forward_packed(model, ids, cu)
    loss = masked_ce(logits, targets)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params}
    for k, g in grads.items():
        assert float(g.abs().max()) > 0.0, f"zero gradient {k}"
    check_packed_equivalences(model, ids, positions, mask, cu, targets, logits.detach(), loss.detach())

    # ---- 5 AdamW steps on the LoRA parameters, same batch ----
    opt = torch.optim.AdamW(
        [p for _, p in params],
        lr=ADAMW["lr"],
        betas=(ADAMW["beta1"], ADAMW["beta2"]),
        eps=ADAMW["eps"],
        weight_decay=ADAMW["weight_decay"],
    )
    step_losses = []
    for k in range(NUM_STEPS):
        opt.zero_grad(set_to_none=True)
        l = masked_ce(forward_packed(model, ids, cu), targets)
        l.backward()
        if k == 0:
            assert l.item() == loss.item()
            for kk, p in params:
                assert torch.equal(p.grad, grads[kk])
        step_losses.append(l.item())
        opt.step()
    after = {k: p.detach().clone() for k, p in params}

    # ---- write golden.json / golden.safetensors ----
    tensors = {"logits": logits.detach().float().contiguous()}
    for k in sorted(grads):
        tensors["grad." + k] = grads[k].float().contiguous()
    for k in sorted(after):
        tensors["after5." + k] = after[k].float().contiguous()
    save_file(tensors, os.path.join(case_dir, "golden.safetensors"), metadata={"format": "pt"})

    golden = {
        "case": name,
        "input_ids": ids,
        "positions": positions,
        "cu_seqlens": cu,
        "trained_mask": mask,
        "targets": targets,
        "num_targets": num_targets,
        "loss": loss.item(),
        "step_losses": step_losses,
        "lora": {
            "r": lc["r"],
            "lora_alpha": lc["lora_alpha"],
            "use_rslora": lc["use_rslora"],
            "target_modules": list(TARGET_MODULES),
        },
        "adamw": dict(ADAMW),
        "dtype": "float64 reference from float32 weights",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    write_golden_json(os.path.join(case_dir, "golden.json"), golden)
    print(f"[{name}] T={len(ids)} num_targets={num_targets} loss={loss.item()!r}")
    print(f"[{name}] step_losses={step_losses}")
    write_full_ft(case, model_dir, case_dir, ids, cu, targets)
    return golden


def write_golden_json(path, obj):
    """One top-level key per line, values compact; Python floats written with repr (round-trip precision)."""
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) + "\n}\n"
    assert json.loads(text) == obj
    with open(path, "w") as f:
        f.write(text)


def write_full_ft(case, model_dir, case_dir, ids, cu, targets):
    """full_ft.json / full_ft.safetensors: every weight trained (see the module docstring)."""
    model_cls = ARCHS[case.get("arch", "qwen2")][1]
    model = model_cls.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).double()
    model.eval()
    params = sorted(model.named_parameters(), key=lambda kv: kv[0])  # a tied lm_head is not listed again
    decay_names = set(transformers.Trainer.get_decay_parameter_names(None, model))
    no_decay = [n for n, _ in params if n not in decay_names]
    opt = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if n in decay_names], "weight_decay": ADAMW["weight_decay"]},
            {"params": [p for n, p in params if n not in decay_names], "weight_decay": 0.0},
        ],
        lr=ADAMW["lr"],
        betas=(ADAMW["beta1"], ADAMW["beta2"]),
        eps=ADAMW["eps"],
    )
    tensors, step_losses = {}, []
    for k in range(NUM_STEPS):
        opt.zero_grad(set_to_none=True)
        l = masked_ce(forward_packed(model, ids, cu), targets)
        l.backward()
        if k == 0:
            for n, p in params:
                assert float(p.grad.abs().max()) > 0.0, f"zero gradient {n}"
                tensors["grad." + n] = p.grad.detach().float().contiguous()
        step_losses.append(l.item())
        opt.step()
    for n, p in params:
        tensors["after5." + n] = p.detach().float().contiguous()
    save_file(tensors, os.path.join(case_dir, "full_ft.safetensors"), metadata={"format": "pt"})
    full = {"loss": step_losses[0], "step_losses": step_losses, "adamw": dict(ADAMW), "no_weight_decay": no_decay}
    write_golden_json(os.path.join(case_dir, "full_ft.json"), full)
    print(f"[{case['name']}] full fine-tuning step_losses={step_losses}")


# ---------------------------------------------------------------------------------------------- --check

VERSION_KEYS = {"transformers_version", "peft_version", "versions"}


def _strip_versions(obj):
    if isinstance(obj, dict):
        return {k: _strip_versions(v) for k, v in obj.items() if k not in VERSION_KEYS}
    if isinstance(obj, list):
        return [_strip_versions(v) for v in obj]
    return obj


# Regenerated on another CPU, torch's kernels (another vector width, another summation order) may change the last
# bits of the fp64 reference: values agree when within this fraction of their scale (a float's, a tensor's largest).
CROSS_CPU_REL = 1e-9


def _close_json(a, b):
    """Equal JSON, but floats within CROSS_CPU_REL of each other (ints, strings and shapes exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close_json(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= CROSS_CPU_REL * max(abs(a), abs(b))
    return type(a) is type(b) and a == b


def _close_tensors(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    scale = b.double().abs().max().item() if b.numel() else 0.0
    return b.numel() == 0 or (a.double() - b.double()).abs().max().item() <= CROSS_CPU_REL * scale


def _list_files(root):
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def compare_dirs(new_root, ref_root, names):
    problems, notes = [], []
    for name in names:
        a_dir, b_dir = os.path.join(new_root, name), os.path.join(ref_root, name)
        if not os.path.isdir(b_dir):
            problems.append(f"{name}: missing in {ref_root}")
            continue
        fa, fb = _list_files(a_dir), _list_files(b_dir)
        for f in sorted(fa ^ fb):
            problems.append(f"{name}/{f}: present in only one of the trees")
        for f in sorted(fa & fb):
            pa, pb = os.path.join(a_dir, f), os.path.join(b_dir, f)
            with open(pa, "rb") as x, open(pb, "rb") as y:
                if x.read() == y.read():
                    continue
            if f.endswith(".json"):
                ja, jb = json.load(open(pa)), json.load(open(pb))
                if _strip_versions(ja) == _strip_versions(jb):
                    notes.append(f"{name}/{f}: only version fields differ")
                elif _close_json(_strip_versions(ja), _strip_versions(jb)):
                    notes.append(f"{name}/{f}: floats differ in their last bits only (within {CROSS_CPU_REL:g})")
                else:
                    problems.append(f"{name}/{f}: JSON differs")
            elif f.endswith(".safetensors"):
                ta, tb = load_file(pa), load_file(pb)
                if sorted(ta) != sorted(tb):
                    problems.append(f"{name}/{f}: tensor names differ")
                    continue
                bad = [k for k in ta if not _close_tensors(ta[k], tb[k])]
                if bad:
                    problems.append(f"{name}/{f}: {len(bad)} tensors differ, e.g. {bad[0]}")
                else:
                    notes.append(f"{name}/{f}: bytes differ but all tensors agree (within {CROSS_CPU_REL:g})")
            else:
                problems.append(f"{name}/{f}: bytes differ")
    return problems, notes


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default_out = os.path.join(repo, "tests", "data", "fixtures")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=default_out, help="output folder (default tests/data/fixtures)")
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with --out")
    args = ap.parse_args()

    torch.set_num_threads(1)  # light, and no thread-count dependence in reductions
    torch.use_deterministic_algorithms(True)
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation chatter between peft and transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    names = [c["name"] for c in CASES]
    if args.check:
        with tempfile.TemporaryDirectory(prefix="qwen-sft-fixtures-") as tmp:
            for case in CASES:
                run_case(case, tmp)
            problems, notes = compare_dirs(tmp, args.out, names)
        for n in notes:
            print("note:", n)
        if problems:
            for p in problems:
                print("DIFFERENCE:", p)
            print(f"--check FAILED: {len(problems)} difference(s) against {args.out}")
            sys.exit(1)
        print(f"--check OK: regenerated fixtures equal {args.out}")
        return
    os.makedirs(args.out, exist_ok=True)
    for case in CASES:
        run_case(case, args.out)
    print(f"wrote {', '.join(names)} under {args.out}")


if __name__ == "__main__":
    main()
