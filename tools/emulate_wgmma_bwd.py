#!/usr/bin/env python3
"""Host emulation of kernels/dev/attention/06_wgmma_bwd_sm90a.cu (no GPU needed): shared memory as bytes written
where cp_async_rows_sw128 and the dS^T stores write (Sw128::offset), every wgmma operand read back through the
descriptor the kernel builds and decoded by wgmma_cuda.h's model of the hardware (model::k_major_byte /
mn_major_byte; bench/gpu_wgmma_probe.cpp checks that model on the GPU), the masks with the kernel's warp-level fast
paths (asserted never to skip a masked element), the heavy-first block order, the step order over query tiles and GQA heads, dq_add's indexing,
bf16 rounding of P, dS and the outputs. 06a (fast mode) and 06b (deterministic) against a float64 attention backward
on packed causal sequences of odd lengths, GQA, head dims 32, 64, 80 (padded) and 128.
A transcription of the kernel's index arithmetic: change it with the kernel. Run: python3 tools/emulate_wgmma_bwd.py
"""
import numpy as np

LOG2E = 1.4426950408889634


def bf(x):
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)


def sw128_offset(R, r, c):
    return (c // 64) * R * 128 + r * 128 + (((c % 64) // 8) ^ (r % 8)) * 16 + (c % 8) * 2


def swz(a):
    return a ^ (((a >> 7) & 7) << 4)


def desc_k_major(R, base, row0, k0):
    return (base + (k0 // 64) * R * 128 + row0 * 128 + (k0 % 64) * 2, 16, 1024)


def desc_mn_major(R, base, k0, mn0):
    return (base + (mn0 // 64) * R * 128 + k0 * 128, R * 128, 1024)


class Smem:
    def __init__(self, nbytes):
        self.m = np.full(nbytes // 2, np.nan, dtype=np.float32)  # NaN: never written

    def load_rows(self, base, R, D, src, row0, T, head, dh):  # cp_async_rows_sw128<D, R>
        for r in range(R):
            for c in range(0, D, 8):
                ok = c < dh and row0 + r < T
                for e in range(8):
                    v = src[row0 + r, head * dh + c + e] if ok else 0.0
                    self.m[(base + sw128_offset(R, r, c + e)) // 2] = v

    def k_major(self, d, rows):  # operand [rows x 16]: element (i, k)
        start, lbo, sbo = d
        i = np.arange(rows)[:, None]
        k = np.arange(16)[None, :]
        return self.m[swz(start + (i // 8) * sbo + (i % 8) * 128 + 2 * k) // 2]

    def mn_major(self, d, cols):  # operand [16 x cols]: element (k, i)
        start, lbo, sbo = d
        k = np.arange(16)[:, None]
        i = np.arange(cols)[None, :]
        return self.m[swz(start + (k // 8) * sbo + (k % 8) * 128 + (i // 64) * lbo + 2 * (i % 64)) // 2]


def ss(sm, N, da, db, ta, tb):
    A = sm.mn_major(da, 64).T if ta else sm.k_major(da, 64)
    B = sm.mn_major(db, N) if tb else sm.k_major(db, N).T
    assert not np.isnan(A).any() and not np.isnan(B).any()
    return A.astype(np.float64) @ B.astype(np.float64)


def rs(sm, N, a, db):
    B = sm.mn_major(db, N)
    assert not np.isnan(B).any()
    return a.astype(np.float64) @ B.astype(np.float64)


def seq_of(cu, t):
    return np.searchsorted(cu, t, side="right") - 1


def heavy_first_order(w, nkv):
    """heavy_first_key_block for every launch index r: (key block of rank r / nkv, kv head r % nkv)."""
    blocks = len(w)
    order = []
    for r in range(blocks * nkv):
        rank = r // nkv
        kb = [b for b in range(blocks) if sum(w[c] > w[b] or (w[c] == w[b] and c < b) for c in range(blocks)) == rank]
        assert len(kb) == 1
        order.append((kb[0], r % nkv))
    assert sorted(order) == [(b, g) for b in range(blocks) for g in range(nkv)], "not a permutation"
    assert all(w[a[0]] >= w[b[0]] for a, b in zip(order, order[1:])), "not heavy first"
    return order


def dkdv(Dk, atomic, s, q, k, v, dout, lse, delta, dq_acc):
    T, n, nkv, dh, cu = s["T"], s["n"], s["nkv"], s["D"], s["cu"]
    kBc, kBq = 128, 64
    group = n // nkv
    scale = dh ** -0.5
    sl2 = scale * LOG2E
    kKey, kQ = kBc * Dk * 2, kBq * Dk * 2
    kK, kV, kQo = 0, kKey, 2 * kKey
    kDs = kQo + 4 * kQ
    kDqKeys, kDqRow, kDqCol = (128, 0, 64) if Dk == 128 else (64, 64, 0)
    dk = np.full((T, nkv * dh), np.nan)  # NaN: a key never written
    dv = np.full((T, nkv * dh), np.nan)
    end = lambda t: cu[seq_of(cu, t) + 1]
    blocks = (T + kBc - 1) // kBc
    w = [(end(min(b * kBc + kBc, T) - 1) - b * kBc + kBq - 1) // kBq for b in range(blocks)]
    for kb, g in heavy_first_order(w, nkv):
        k0 = kb * kBc
        sm = Smem(kDs + kBc * kBq * 2)
        sm.load_rows(kK, kBc, Dk, k, k0, T, g, dh)
        sm.load_rows(kV, kBc, Dk, v, k0, T, g, dh)
        q_end = end(min(k0 + kBc, T) - 1)
        q_tiles = (q_end - k0 + kBq - 1) // kBq
        dk_acc = [np.zeros((64, Dk)) for _ in range(2)]
        dv_acc = [np.zeros((64, Dk)) for _ in range(2)]
        for it in range(group * q_tiles):
            tile, h = it % q_tiles, g * group + it // q_tiles
            st = it & 1
            q0 = k0 + tile * kBq
            q_s = kQo + 2 * st * kQ
            do_s = q_s + kQ
            sm.load_rows(q_s, kBq, Dk, q, q0, T, h, dh)
            sm.load_rows(do_s, kBq, Dk, dout, q0, T, h, dh)
            cols = q0 + np.arange(kBq)
            lse_t = np.array([lse[h, i] if i < T else 0.0 for i in cols], dtype=np.float32)
            delta_t = np.array([delta[h, i] if i < T else 0.0 for i in cols], dtype=np.float32)
            pa, da = [None, None], [None, None]
            for w in range(2):
                pt = sum(ss(sm, 64, desc_k_major(128, kK, 64 * w, 16 * kk), desc_k_major(64, q_s, 0, 16 * kk), 0, 0)
                         for kk in range(Dk // 16))
                dpt = sum(ss(sm, 64, desc_k_major(128, kV, 64 * w, 16 * kk), desc_k_major(64, do_s, 0, 16 * kk), 0, 0)
                          for kk in range(Dk // 16))
                P = np.zeros((64, 64))
                for warp in range(4):
                    wk0 = k0 + 64 * w + 16 * warp
                    end_min = end(wk0) if wk0 + 15 < T else 0
                    unmasked = q0 >= wk0 + 15 and q0 + kBq <= end_min
                    for m in range(16 * warp, 16 * warp + 16):
                        key = k0 + 64 * w + m
                        e = end(key) if key < T else 0
                        for c in range(64):
                            i = q0 + c
                            seen = True if unmasked else (i >= key and i < e)
                            if unmasked:
                                assert key < T and key <= i < end(key), "fast path on a masked element"
                            P[m, c] = 2.0 ** (pt[m, c] * sl2 - lse_t[c] * LOG2E) if seen else 0.0
                dS = P * (dpt - delta_t[None, :])
                pa[w], da[w] = bf(P), bf(dS)
                if atomic:
                    for m in range(64):
                        for c in range(64):
                            sm.m[(kDs + sw128_offset(128, 64 * w + m, c)) // 2] = da[w][m, c]
                for kk in range(4):
                    dv_acc[w] += rs(sm, Dk, pa[w][:, 16 * kk:16 * kk + 16], desc_mn_major(64, do_s, 16 * kk, 0))
                    dk_acc[w] += rs(sm, Dk, da[w][:, 16 * kk:16 * kk + 16], desc_mn_major(64, q_s, 16 * kk, 0))
            if atomic:
                for w in range(2):
                    dqt = sum(ss(sm, 64, desc_mn_major(128, kDs, kDqRow * w + 16 * kk, 0),
                                 desc_mn_major(128, kK, kDqRow * w + 16 * kk, kDqCol * w), 1, 1)
                              for kk in range(kDqKeys // 16))
                    for m in range(64):
                        i = q0 + m
                        if i >= T:
                            continue
                        for c in range(64):
                            col = kDqCol * w + c
                            if (col // 8) * 8 < dh:
                                dq_acc[i, h * dh + col] += dqt[m, c]
        for w in range(2):
            for m in range(64):
                key = k0 + 64 * w + m
                if key >= T:
                    continue
                assert np.isnan(dk[key, g * dh]), "a key block written twice"
                dk[key, g * dh:(g + 1) * dh] = bf(dk_acc[w][m, :dh] * scale)
                dv[key, g * dh:(g + 1) * dh] = bf(dv_acc[w][m, :dh])
    return dk, dv


def dq_pass(Dk, s, q, k, v, dout, lse, delta):
    T, n, nkv, dh, cu = s["T"], s["n"], s["nkv"], s["D"], s["cu"]
    kBr, kBc = 128, 64
    scale = dh ** -0.5
    sl2 = scale * LOG2E
    kQB, kKv = kBr * Dk * 2, kBc * Dk * 2
    begin = lambda t: cu[seq_of(cu, t)]
    dq = np.zeros((T, n * dh))
    nb = (T + kBr - 1) // kBr
    for bx in range(nb):
        for h in range(n):
            q0 = (nb - 1 - bx) * kBr
            g = h // (n // nkv)
            sm = Smem(2 * kQB + 4 * kKv)
            sm.load_rows(0, kBr, Dk, q, q0, T, h, dh)
            sm.load_rows(kQB, kBr, Dk, dout, q0, T, h, dh)
            k_first, k_last = begin(q0), min(q0 + kBr, T) - 1
            tiles = (k_last - k_first) // kBc + 1
            acc = [np.zeros((64, Dk)) for _ in range(2)]
            for it in range(tiles):
                st = it & 1
                k0 = k_first + it * kBc
                k_s = 2 * kQB + 2 * st * kKv
                v_s = k_s + kKv
                sm.load_rows(k_s, kBc, Dk, k, k0, T, g, dh)
                sm.load_rows(v_s, kBc, Dk, v, k0, T, g, dh)
                for w in range(2):
                    S = sum(ss(sm, 64, desc_k_major(128, 0, 64 * w, 16 * kk), desc_k_major(64, k_s, 0, 16 * kk), 0, 0)
                            for kk in range(Dk // 16))
                    dP = sum(ss(sm, 64, desc_k_major(128, kQB, 64 * w, 16 * kk), desc_k_major(64, v_s, 0, 16 * kk), 0, 0)
                             for kk in range(Dk // 16))
                    dS = np.zeros((64, 64))
                    for warp in range(4):
                        wr0 = q0 + 64 * w + 16 * warp
                        begin_max = begin(wr0 + 15) if wr0 + 15 < T else T
                        unmasked = k0 >= begin_max and k0 + kBc - 1 <= wr0
                        for m in range(16 * warp, 16 * warp + 16):
                            i = wr0 + m - 16 * warp
                            valid = i < T
                            b = begin(i) if valid else 2 ** 62
                            l2 = np.float32(lse[h, i] * LOG2E) if valid else 0.0
                            dl = delta[h, i] if valid else 0.0
                            for c in range(64):
                                j = k0 + c
                                seen = True if unmasked else (j >= b and j <= i)
                                if unmasked:
                                    assert valid and begin(i) <= j <= i, "fast path on a masked element"
                                p = 2.0 ** (S[m, c] * sl2 - l2) if seen else 0.0
                                dS[m, c] = p * (dP[m, c] - dl)
                    a = bf(dS)
                    for kk in range(4):
                        acc[w] += rs(sm, Dk, a[:, 16 * kk:16 * kk + 16], desc_mn_major(64, k_s, 16 * kk, 0))
            for w in range(2):
                for m in range(64):
                    i = q0 + 64 * w + m
                    if i < T:
                        dq[i, h * dh:(h + 1) * dh] = bf(acc[w][m, :dh] * scale)
    return dq


def reference(s, q, k, v, dout):
    T, n, nkv, dh, cu = s["T"], s["n"], s["nkv"], s["D"], s["cu"]
    q, k, v, dout = (x.astype(np.float64) for x in (q, k, v, dout))
    scale = dh ** -0.5
    dq, dk, dv = np.zeros((T, n * dh)), np.zeros((T, nkv * dh)), np.zeros((T, nkv * dh))
    lse, delta = np.zeros((n, T)), np.zeros((n, T))
    sid = seq_of(cu, np.arange(T))
    mask = (sid[:, None] == sid[None, :]) & (np.arange(T)[None, :] <= np.arange(T)[:, None])
    for h in range(n):
        g = h // (n // nkv)
        Q, K, V, dO = (x[:, c * dh:(c + 1) * dh] for x, c in ((q, h), (k, g), (v, g), (dout, h)))
        S = np.where(mask, Q @ K.T * scale, -np.inf)
        m = S.max(1, keepdims=True)
        P = np.exp(S - m)
        l = P.sum(1, keepdims=True)
        P /= l
        O = P @ V
        lse[h] = (m + np.log(l))[:, 0]
        delta[h] = (dO * O).sum(1)
        dP = dO @ V.T
        dS = P * (dP - delta[h][:, None])
        dq[:, h * dh:(h + 1) * dh] = dS @ K * scale
        dk[:, g * dh:(g + 1) * dh] += dS.T @ Q * scale
        dv[:, g * dh:(g + 1) * dh] += P.T @ dO
    return dq, dk, dv, lse.astype(np.float32), delta.astype(np.float32)


def run(lengths, n, nkv, dh, seed=7):
    rng = np.random.default_rng(seed)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    T = int(cu[-1])
    s = dict(T=T, n=n, nkv=nkv, D=dh, cu=cu)
    q = bf(rng.uniform(-2, 2, (T, n * dh)))
    k = bf(rng.uniform(-2, 2, (T, nkv * dh)))
    v = bf(rng.uniform(-1, 1, (T, nkv * dh)))
    dout = bf(rng.uniform(-1, 1, (T, n * dh)))
    rdq, rdk, rdv, lse, delta = reference(s, q, k, v, dout)
    Dk = 64 if dh <= 64 else 128
    dq_acc = np.zeros((T, n * dh))
    dk, dv = dkdv(Dk, True, s, q, k, v, dout, lse, delta, dq_acc)
    dq_a = bf(dq_acc * dh ** -0.5)
    dk_b, dv_b = dkdv(Dk, False, s, q, k, v, dout, lse, delta, None)
    dq_b = dq_pass(Dk, s, q, k, v, dout, lse, delta)
    rel = lambda a, r: np.abs(a - r).max() / np.abs(r).max()
    print(f"lengths {lengths} heads {n}/{nkv} D {dh} (kernel D {Dk}): 06a dq {rel(dq_a, rdq):.2e} dk {rel(dk, rdk):.2e} "
          f"dv {rel(dv, rdv):.2e}; 06b dq {rel(dq_b, rdq):.2e} dk {rel(dk_b, rdk):.2e} dv {rel(dv_b, rdv):.2e}")
    assert np.array_equal(dk, dk_b) and np.array_equal(dv, dv_b)
    for e in (rel(dq_a, rdq), rel(dk, rdk), rel(dv, rdv), rel(dq_b, rdq)):
        assert e < 2e-2, e


if __name__ == "__main__":
    run([1, 77, 130, 63], 4, 2, 64)
    run([200, 57], 2, 1, 128)
    run([1, 77, 150], 4, 2, 80)
    run([129, 7], 2, 2, 32)
    run([300, 520, 129], 2, 1, 64)  # 8 key blocks: the heavy-first launch order
