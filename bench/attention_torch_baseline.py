#!/usr/bin/env python3
"""torch's scaled_dot_product_attention (flash backend) at gpu_attention_bench's shapes, timed the same way.

4 causal sequences of 4096 tokens as a batch of 4 (the same FLOPs as 4 packed sequences), bf16, GQA by
expanding K/V to the query heads before timing (the flash backend's own layout). Median of CUDA-event times over
the repeats; FLOPs: forward 4 * sum_s(L_s^2 / 2) * n * D, backward 2.5x that (bench/gpu_attention_bench.cpp).
The backward is timed alone (autograd.grad on a retained graph), as the C++ bench times attention_bwd.
    python3 bench/attention_torch_baseline.py [reps]
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [("7B", 28, 4, 128), ("0.5B", 14, 2, 64)]
SEQS, SEQ_LEN = 4, 4096


def median_ms(fn, reps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def bench(name, n, nkv, d, reps):
    gen = torch.Generator(device="cuda").manual_seed(7)

    def rand(*shape, lo=-1.0, hi=1.0):
        return (torch.rand(*shape, device="cuda", generator=gen) * (hi - lo) + lo).to(torch.bfloat16)

    q = rand(SEQS, n, SEQ_LEN, d, lo=-2.0, hi=2.0).requires_grad_()
    k = rand(SEQS, nkv, SEQ_LEN, d, lo=-2.0, hi=2.0).repeat_interleave(n // nkv, dim=1).requires_grad_()
    v = rand(SEQS, nkv, SEQ_LEN, d).repeat_interleave(n // nkv, dim=1).requires_grad_()
    dout = rand(SEQS, n, SEQ_LEN, d)
    fwd_flops = 4.0 * SEQS * (SEQ_LEN * SEQ_LEN / 2.0) * n * d
    bwd_flops = 2.5 * fwd_flops
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fwd_ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), reps)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        bwd_ms = median_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), reps)
    print(f"  {name:6s} torch sdpa flash  fwd {fwd_ms:8.3f} ms {fwd_flops / fwd_ms * 1e-9:7.1f} TF/s   "
          f"bwd {bwd_ms:8.3f} ms {bwd_flops / bwd_ms * 1e-9:7.1f} TF/s")


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, {SEQS} x {SEQ_LEN} causal, median of {reps}")
    for shape in SHAPES:
        bench(*shape, reps)


if __name__ == "__main__":
    main()
