"""The PTX ISA's model of Hopper warpgroup MMA (wgmma) as tools/emulate_wgmma.py uses it, written from the ISA's
"Asynchronous Warpgroup Level Matrix" sections (Matrix Descriptor Format; Shared Memory Matrix Layout: the canonical
K-major / MN-major layouts with 128-byte swizzle; Register Fragments of m64nNk16), not from attention_wgmma_cuda.h: the
emulation is only as good as this model. Plus an emulated thread block: shared memory as bf16 values where the
kernel's threads put them, and each warpgroup's wgmma groups with the ISA's asynchrony rules checked.
"""
import itertools

import numpy as np

F32 = np.float32
_clock = itertools.count()  # orders register writes and wgmma.fence


def bf(x):
    """fp32 -> bf16 (round to nearest even), kept as float32."""
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)


def exp2_sfu(x):
    """ex2.approx.ftz.f32: results below 2^-126 flush to 0."""
    y = np.exp2(np.asarray(x, dtype=np.float32))
    return np.where(y < F32(2.0 ** -126), F32(0), y).astype(np.float32)


def desc_fields(desc):
    """Matrix Descriptor Format: bits 0-13 start >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base offset, 62-63
    swizzle mode (1 = 128-byte). The kernels use 128-byte swizzle with 1024-aligned atoms (base offset 0)."""
    assert (desc >> 62) & 3 == 1 and (desc >> 49) & 7 == 0, hex(desc)
    return (desc & 0x3FFF) << 4, ((desc >> 16) & 0x3FFF) << 4, ((desc >> 32) & 0x3FFF) << 4


def swizzle128(addr):
    """128-byte swizzle (Swizzle<3,4,3> on byte addresses): address bits [4:6] ^= bits [7:9]."""
    return addr ^ (((addr >> 7) & 7) << 4)


def k_major_addrs(desc, rows):
    """Byte addresses of a K-major operand [rows x 16 K] (bf16, T = 8): ((8,m),(T,2k)):((8T,SBO),(1,T))."""
    start, _, sbo = desc_fields(desc)
    i, k = np.arange(rows)[:, None], np.arange(16)[None, :]
    return swizzle128(start + 2 * (8 * 8 * (i % 8) + k) + (i // 8) * sbo)


def mn_major_addrs(desc, cols):
    """Byte addresses of an MN-major operand [16 K x cols]: ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))."""
    start, lbo, sbo = desc_fields(desc)
    k, i = np.arange(16)[:, None], np.arange(cols)[None, :]
    return swizzle128(start + 2 * (i % 8 + 8 * (i // 8 % 8) + 8 * 8 * (k % 8)) + (i // 64) * lbo + (k // 8) * sbo)


# Register fragments of m64nNk16, per (warp w of the warpgroup, grp = lane / 4, tig = lane % 4):
#   D f32 [64 x N]: register 4 j + e holds (row 16 w + grp + 8 (e / 2), column 8 j + 2 tig + e % 2)
#   A bf16 [64 x 16]: register q holds elements a(2q), a(2q+1): (row 16 w + grp + 8 (q % 2), columns 2 tig + 8 (q / 2)
#   + {0, 1})
def acc_rc(N):
    w, g, t, j, e = np.ix_(range(4), range(8), range(4), range(N // 8), range(4))
    return 16 * w + g + 8 * (e // 2), 8 * j + 2 * t + e % 2


def frag_of(M):
    r, c = acc_rc(M.shape[1])
    return M[r, c]


def matrix_of(F):
    M = np.full((64, 8 * F.shape[3]), np.nan)
    r, c = acc_rc(M.shape[1])
    M[r, c] = F
    return M


def a_matrix(A):
    M = np.full((64, 16), np.nan)
    w, g, t, q, h = np.ix_(range(4), range(8), range(4), range(4), range(2))
    M[16 * w + g + 8 * (q % 2), 2 * t + 8 * (q // 2) + h] = A
    assert not np.isnan(M).any()
    return M


class Acc:
    """A warpgroup's fp32 accumulator registers [4, 8, 4, N / 8, 4] (zeroed); `pending`: the value a wgmma in flight
    will leave in them; `written`: when threads last wrote them."""

    def __init__(self, N):
        self.F = np.zeros((4, 8, 4, N // 8, 4), np.float32)
        self.pending, self.written = None, next(_clock)

    def get(self):
        assert self.pending is None, "accumulator read while a wgmma into it is in flight"
        return self.F

    def set(self, F):
        assert self.pending is None, "accumulator written while a wgmma into it is in flight"
        self.F, self.written = np.asarray(F, dtype=np.float32), next(_clock)


class Regs:
    """RS A operand registers [4, 8, 4, 4 registers, 2 halves] as threads wrote them."""

    def __init__(self, A):
        self.A, self.written = A, next(_clock)


class Block:
    """One thread block: shared memory (bf16 values, NaN = never written) and each warpgroup's wgmma groups."""

    def __init__(self, nbytes):
        n = nbytes // 2
        self.m = np.full(n, np.nan, np.float32)
        self.pend_cp, self.pend_st = np.zeros(n, bool), np.zeros(n, bool)
        self.pval = np.zeros(n, np.float32)
        self.busy = np.zeros(n, np.int32)  # reads by wgmmas in flight
        self.open, self.groups = [[], []], [[], []]
        self.fenced = [-1, -1]  # each warpgroup's last wgmma.fence

    def write(self, idx, vals, cp_async):
        """cp.async (cp_async) or st.shared of bf16 elements idx by the block's threads."""
        assert not self.busy[idx].any(), "shared memory written while a wgmma in flight reads it"
        (self.pend_cp if cp_async else self.pend_st)[idx] = True
        self.pval[idx] = vals

    def barrier(self, cp_wait=True):
        """(cp.async.wait_group 0 when cp_wait) + fence.proxy.async + barrier by every thread: the writes become
        visible to the async proxy."""
        done = self.pend_st | (self.pend_cp if cp_wait else False)
        self.m[done] = self.pval[done]
        self.pend_st[:] = False
        if cp_wait:
            self.pend_cp[:] = False

    def read(self, addrs):
        assert (addrs % 2 == 0).all()
        idx = addrs // 2
        assert not (self.pend_cp[idx] | self.pend_st[idx]).any(), "wgmma reads data not yet made visible to it"
        v = self.m[idx]
        assert not np.isnan(v).any(), "wgmma reads shared memory nobody wrote"
        return v.astype(np.float64), idx

    def fence(self, wg):
        """wgmma.fence: orders the warpgroup's register writes before the wgmmas that follow."""
        self.fenced[wg] = next(_clock)

    def _issue(self, wg, acc, A, B, scale_d, idx, regs=None):
        assert max(acc.written, regs.written if regs else -1) < self.fenced[wg], "no wgmma.fence after a register write"
        D = A @ B
        if scale_d:
            D = D + matrix_of(acc.pending if acc.pending is not None else acc.F)
        acc.pending = frag_of(D).astype(np.float32)
        for i in idx:
            np.add.at(self.busy, i.ravel(), 1)
        self.open[wg].append((acc, idx))

    def ss(self, wg, acc, N, da, db, trans_a, trans_b, scale_d):
        A, ia = self.read(mn_major_addrs(da, 64).T if trans_a else k_major_addrs(da, 64))
        B, ib = self.read(mn_major_addrs(db, N) if trans_b else k_major_addrs(db, N).T)
        self._issue(wg, acc, A, B, scale_d, (ia, ib))

    def rs(self, wg, acc, N, A, db, scale_d):  # B MN-major (imm-trans-b 1), as every RS product here
        B, ib = self.read(mn_major_addrs(db, N))
        self._issue(wg, acc, a_matrix(A.A), B, scale_d, (ib,), A)

    def commit(self, wg):
        self.groups[wg].append(self.open[wg])
        self.open[wg] = []

    def wait(self, wg, in_flight):
        while len(self.groups[wg]) > in_flight:
            for acc, idx in self.groups[wg].pop(0):
                if acc.pending is not None:
                    acc.F, acc.pending = acc.pending, None
                for i in idx:
                    np.add.at(self.busy, i.ravel(), -1)
