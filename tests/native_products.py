"""The products of fastrnn._native (mm, pack, gemm, product) against NumPy, for the ISA this process selected.

Run as a script by tests/test_native.py, once per ISA (FASTRNN_ISA picks one at import), so every
compiled version is checked on one machine. Prints the ISA and the number of products checked; any
mismatch raises. Importable too: ``check_all()``.
"""

import ctypes
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from fastrnn import _native
from fastrnn._tolerances import excess

_P, _I, _INT = ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int
_SYMBOLS = _native.symbols()


def _fn(name, restype, *argtypes):
    return ctypes.CFUNCTYPE(restype, *argtypes)(_SYMBOLS[name])


_SFX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
MM = {dt: _fn(f"fr_mm_{c}", None, _I, _I, _P, _I, _P, _I, _I, _I, _I, _P, _I, _INT, _INT, _I) for dt, c in _SFX.items()}
MM_PART = {dt: _fn(f"fr_mm_part_{c}", None, _I, _I, _I, _I, _P, _I, _P, _I, _I, _I, _I, _P, _I, _INT, _INT)
           for dt, c in _SFX.items()}
PACK = {dt: _fn(f"fr_pack_{c}", None, _I, _I, _I, _P, _I, _INT, _P, _I, _I) for dt, c in _SFX.items()}
GEMM = {dt: _fn(f"fr_gemm_{c}", _INT, _I, _I, _P, _I, _INT, _P, _I, _INT, _I, _I, _I, _I, _P, _I, _INT, _P,
                ctypes.c_size_t) for dt, c in _SFX.items()}
GEMM_PREV = {dt: _fn(f"fr_gemm_prev_{c}", _INT, _I, _I, _P, _P, _I, _I, _P, _I, _I, _I, _I, _I, _P, _I, _INT, _P,
                     ctypes.c_size_t) for dt, c in _SFX.items()}
GEMM_WORK = {dt: _fn(f"fr_gemm_work_{c}", ctypes.c_size_t, _I, _I, _I, _I) for dt, c in _SFX.items()}
PRODUCT = {dt: _fn(f"fr_product_{c}", _INT, _I, _I, _I, _P, _I, _INT, _P, _I, _INT, _P, _I, _INT)
           for dt, c in _SFX.items()}
RESIDENT = {dt: _fn(f"fr_resident_product_{c}", _INT, _I, _I, _I, _P, _I, _INT, _P, _I, _INT, _P, _I, _INT, _P)
            for dt, c in _SFX.items()}


def _ptr(a):
    return a.ctypes.data


def _gate_columns(H, gates, u0, u1):
    cols = np.zeros(gates * H, bool)
    for g in range(gates):
        cols[g * H + u0 : g * H + u1] = True
    return cols


def check_mm(rng, dtype, M, H, gates, trans, ub0=None, ub1=None):
    """pack + mm of a recurrent weight matrix (trans: Wh^T as BPTT packs it), on unit blocks [ub0, ub1)."""
    dtype = np.dtype(dtype)
    nr = _native.layout()["nr_" + dtype.name]
    nb = -(-H // nr)
    ub0 = 0 if ub0 is None else ub0
    ub1 = nb if ub1 is None else ub1
    if trans:  # Wh (H, gates*H) packed as Wh^T: K = gates*H rows, H columns, one block of columns
        K, g = gates * H, 1
        B = rng.standard_normal((H, K)).astype(dtype)
        dense = B.T
    else:
        K, g = H, gates
        B = rng.standard_normal((K, gates * H)).astype(dtype)
        dense = B
    packed = np.full(nb * g * K * nr, np.nan, dtype)  # unused panels stay NaN: they must not be read
    PACK[dtype](K, H, g, _ptr(B), B.shape[1], int(trans), _ptr(packed), ub0, ub1)
    A = rng.standard_normal((M, K + 3)).astype(dtype)[:, 2 : 2 + K]  # a row stride that is not K
    cols = _gate_columns(H, g, ub0 * nr, min(H, ub1 * nr))
    # both walks of the blocks (reverse: last to first); with trans, K = gates*H is wider than the
    # call's columns, which mm walks by block rows when A is also large enough, else panel by panel;
    # then the part of the product over rows [k_lo, k_hi) of the panels (mm_part: a step's product split
    # around the barrier), a range inside the first KC block, one across several, one that ends at K
    parts = [(None, None)] + [(lo, hi) for lo, hi in [(1, 2), (K // 3, K - 1), (K - K // 4 - 1, K)] if 0 <= lo < hi <= K]
    n = 0
    for k_lo, k_hi in parts:
        for beta, reverse in [(0, 0), (1, 0), (0, 1), (1, 1)]:
            C = rng.standard_normal((M, g * H + 5)).astype(dtype)
            before = C.copy()
            lda = A.strides[0] // dtype.itemsize
            if k_lo is None:  # next_ub, the hint of the caller's next call (a prefetch only): a neighbour, or none
                next_ub = (ub1 if ub1 < nb else -1) if reverse == 0 else ub0 - 1
                MM[dtype](M, K, _ptr(A), lda, _ptr(packed), H, g, ub0, ub1, _ptr(C), C.shape[1], beta, reverse,
                          next_ub)
                lo, hi = 0, K
            else:
                MM_PART[dtype](M, K, k_lo, k_hi, _ptr(A), lda, _ptr(packed), H, g, ub0, ub1, _ptr(C), C.shape[1],
                               beta, reverse)
                lo, hi = k_lo, k_hi
            expected = (A[:, lo:hi].astype(np.float64) @ dense[lo:hi].astype(np.float64)
                        + (before[:, : g * H] if beta else 0))
            got = C[:, : g * H]
            worst = excess(got[:, cols], expected[:, cols].astype(dtype), dtype)
            if worst > 1 or not np.array_equal(C[:, : g * H][:, ~cols], before[:, : g * H][:, ~cols]) \
                    or not np.array_equal(C[:, g * H :], before[:, g * H :]):
                raise AssertionError(f"mm {dtype} M={M} H={H} gates={gates} trans={trans} blocks [{ub0},{ub1}) "
                                     f"rows [{lo},{hi}) beta={beta} reverse={reverse}: {worst:.3g} x the "
                                     f"tolerance, or columns outside written")
            n += 1
    return n


def check_gemm(rng, dtype, M, K, H, gates, u0, u1, at, bt, lda_bytes=None):
    """gemm on the columns g*H + [u0, u1), op(A) = A or A^T, op(B) = B or B^T, beta 0 and 1 (the second
    with a work buffer declared too small, which gemm must replace rather than overrun).  lda_bytes: A's
    rows that many bytes apart (A a view of a wider array), else contiguous."""
    dtype = np.dtype(dtype)
    N = gates * H
    rows, cols = (K, M) if at else (M, K)
    wide = rng.standard_normal((rows, lda_bytes // dtype.itemsize if lda_bytes else cols)).astype(dtype)
    A = wide[:, :cols]
    B = rng.standard_normal((N, K) if bt else (K, N)).astype(dtype)
    work = np.empty(GEMM_WORK[dtype](M, gates * (u1 - u0), K, gates), np.uint8)
    cols = _gate_columns(H, gates, u0, u1)
    for beta in (0, 1):
        C = rng.standard_normal((M, N + 3)).astype(dtype)
        before = C.copy()
        status = GEMM[dtype](M, K, _ptr(A), wide.shape[1], at, _ptr(B), B.shape[1], bt, H, gates, u0, u1, _ptr(C),
                             N + 3, beta, _ptr(work), work.size if beta == 0 else 0)  # beta 1: too small a buffer
        assert status == 0
        opA, opB = (A.T if at else A), (B.T if bt else B)
        expected = opA.astype(np.float64) @ opB.astype(np.float64) + (before[:, :N] if beta else 0)
        worst = excess(C[:, :N][:, cols], expected[:, cols].astype(dtype), dtype)
        untouched = np.concatenate([~cols, np.ones(3, bool)])
        if worst > 1 or not np.array_equal(C[:, untouched], before[:, untouched]):
            raise AssertionError(f"gemm {dtype} M={M} K={K} H={H} gates={gates} cols [{u0},{u1}) at={at} bt={bt} "
                                 f"lda_bytes={lda_bytes} beta={beta}: {worst:.3g} x the tolerance, "
                                 "or columns outside written")
    return 2


def check_gemm_prev(rng, dtype, N, T, H, gates, u0, u1):
    """gemm_prev: Hprev^T dA on the columns g*H + [u0, u1) with Hprev (N*T, H) read from h0 (N, H) and a
    batch-major h (N, T, H) where they lie (row n*T of Hprev is h0[n], row n*T + t is h[n, t - 1]), both
    with a row stride wider than H; beta 0 and 1."""
    dtype = np.dtype(dtype)
    G = gates * H
    h = rng.standard_normal((N, T, H + 2)).astype(dtype)[:, :, :H]
    h0 = rng.standard_normal((N, H + 2)).astype(dtype)[:, :H]
    h0 = np.lib.stride_tricks.as_strided(h0, strides=(h.strides[1], h0.strides[1]))  # one row stride for both
    dA = rng.standard_normal((N * T, G)).astype(dtype)
    hprev = np.concatenate([h0[:, None], h[:, :-1]], axis=1).reshape(N * T, H)
    work = np.empty(GEMM_WORK[dtype](H, gates * (u1 - u0), N * T, gates), np.uint8)
    cols = _gate_columns(H, gates, u0, u1)
    for beta in (0, 1):
        C = rng.standard_normal((H, G + 3)).astype(dtype)
        before = C.copy()
        status = GEMM_PREV[dtype](H, N * T, _ptr(h), _ptr(h0), h.strides[1] // dtype.itemsize, T, _ptr(dA), G, H,
                                  gates, u0, u1, _ptr(C), G + 3, beta, _ptr(work), work.size)
        assert status == 0
        expected = hprev.T.astype(np.float64) @ dA.astype(np.float64) + (before[:, :G] if beta else 0)
        worst = excess(C[:, :G][:, cols], expected[:, cols].astype(dtype), dtype)
        untouched = np.concatenate([~cols, np.ones(3, bool)])
        if worst > 1 or not np.array_equal(C[:, untouched], before[:, untouched]):
            raise AssertionError(f"gemm_prev {dtype} N={N} T={T} H={H} gates={gates} cols [{u0},{u1}) beta={beta}: "
                                 f"{worst:.3g} x the tolerance, or columns outside written")
    return 2


def check_product(rng, dtype, M, N, K, at, bt):
    """product (a team job of gemm shares: columns when M <= N, else rows; by B^T with few rows, computed
    transposed), beta 0 and 1, into a C with a row stride wider than N whose extra columns must stay
    untouched; with BLAS on one thread every product runs on the caller but the float64 ones by op(A) = A^T
    of more than FR_DIRECT_M = 32 rows of A into a C of more than FR_PRODUCT_BLAS_C_BYTES = 8 MiB, which are
    left to BLAS, C untouched."""
    dtype = np.dtype(dtype)
    A = rng.standard_normal((K, M) if at else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if bt else (K, N)).astype(dtype)
    opA, opB = (A.T if at else A), (B.T if bt else B)
    alone = not (dtype == np.float64 and at and K > 32 and M * N * 8 > 8 * 1024 * 1024)
    n = 0
    for threads in (1, 2):
        for beta in (0, 1):
            C = rng.standard_normal((M, N + 5)).astype(dtype)
            before = C.copy()
            with threadpool_limits(threads):
                status = PRODUCT[dtype](M, N, K, _ptr(A), A.shape[1], at, _ptr(B), B.shape[1], bt, _ptr(C), N + 5, beta)
            if threads == 1 and not alone:
                assert status == -1 and np.array_equal(C, before), f"product M={M} N={N} on one thread: not left to BLAS"
                continue
            assert status == 0
            expected = opA.astype(np.float64) @ opB.astype(np.float64) + (before[:, :N] if beta else 0)
            worst = excess(C[:, :N], expected.astype(dtype), dtype)
            if worst > 1 or not np.array_equal(C[:, N:], before[:, N:]):
                raise AssertionError(f"product {dtype} M={M} N={N} K={K} at={at} bt={bt} beta={beta} threads={threads}: "
                                     f"{worst:.3g} x the tolerance, or columns outside written")
            n += 1
    return n


def check_resident(rng, dtype, M, N, K):
    """Products by a resident B (fastrnn._native.resident: packed once), B a view with a row stride wider than
    N: fr_resident_product with beta 0, 1 and a bias, on one and two threads, and fr_product (which tries
    it first: on one thread too, whatever M); outside the block, or transposed, it says "not resident" and
    leaves C untouched."""
    dtype = np.dtype(dtype)
    B = rng.standard_normal((K, N + 3)).astype(dtype)[:, 1 : N + 1]
    A = rng.standard_normal((M, K + 2)).astype(dtype)[:, :K]
    bias = rng.standard_normal(N).astype(dtype)
    ldb, lda = B.strides[0] // dtype.itemsize, K + 2
    exact = A.astype(np.float64) @ B.astype(np.float64)
    n = 0

    def call(fn, C, beta, *extra, at=0, bt=0):
        return fn(M, N, K, _ptr(A), lda, at, _ptr(B), ldb, bt, _ptr(C), N + 5, beta, *extra)

    def check(C, before, expected, what):
        worst = excess(C[:, :N], expected.astype(dtype), dtype)
        if worst > 1 or not np.array_equal(C[:, N:], before[:, N:]):
            raise AssertionError(f"resident {what} {dtype} M={M} N={N} K={K}: {worst:.3g} x the tolerance, "
                                 f"or columns outside written")

    with _native.resident(B):
        assert _native.resident_stats()["held_here"] == 1
        for threads in (1, 2):
            with threadpool_limits(threads):
                for beta, with_bias in ((0, False), (1, False), (0, True), (1, True)):
                    C = rng.standard_normal((M, N + 5)).astype(dtype)
                    before = C.copy()
                    assert call(RESIDENT[dtype], C, beta, _ptr(bias) if with_bias else None) == 0
                    added = bias if with_bias else (before[:, :N] if beta else 0)  # a bias replaces beta
                    check(C, before, exact + added, f"beta={beta} bias={with_bias} threads={threads}")
                    n += 1
                for beta in (0, 1):
                    C = rng.standard_normal((M, N + 5)).astype(dtype)
                    before = C.copy()
                    assert call(PRODUCT[dtype], C, beta) == 0
                    check(C, before, exact + (before[:, :N] if beta else 0), f"fr_product beta={beta} threads={threads}")
                    n += 1
        C = rng.standard_normal((M, N + 5)).astype(dtype)
        before = C.copy()
        assert call(RESIDENT[dtype], C, 0, None, bt=1) == -1 and call(RESIDENT[dtype], C, 0, None, at=1) == -1
        assert np.array_equal(C, before), "a transposed product by a resident B wrote C"
    assert _native.resident_stats()["held_here"] == 0
    C = rng.standard_normal((M, N + 5)).astype(dtype)
    before = C.copy()
    assert call(RESIDENT[dtype], C, 0, None) == -1 and np.array_equal(C, before), "B still resident after the block"
    return n


def check_all(seed=0):
    rng = np.random.default_rng(seed)
    n = 0
    for dtype in (np.float32, np.float64):
        nr = _native.layout()["nr_" + np.dtype(dtype).name]
        # (50, 1100, 1), (64, 600, 4): A of FR_KC_L2_M rows or more, walked panel by panel in blocks of
        # FR_KC_ROWS_BYTES (several, the last one short)
        for M, H, gates in [(1, 1, 1), (25, 512, 4), (7, 40, 4), (3, 100, 3), (10, 13, 1), (6, 2 * nr + 1, 4),
                            (13, nr, 1), (100, 64, 4), (50, 1100, 1), (64, 600, 4)]:
            for trans in (False, True):
                n += check_mm(rng, dtype, M, H, gates, trans)
        nb = -(-(2 * nr + 3) // nr)  # 3 unit blocks, the last partial: every slab of a 2-thread split
        for ub0, ub1 in [(0, 1), (1, nb), (nb - 1, nb)]:
            n += check_mm(rng, dtype, 9, 2 * nr + 3, 4, False, ub0, ub1)
            n += check_mm(rng, dtype, 9, 2 * nr + 3, 3, True, ub0, ub1)
        # slabs of packed weights above FR_PREFETCH_MIN_BYTES (1 MiB; above 2 MiB in both dtypes here), where mm also
        # prefetches the panel block it reads next and, above FR_PREFETCH_NEXT_MIN_BYTES (2 MiB), the first block of
        # the caller's next call (next_ub: unit block 2 after [0, 2), 7 before [8, 9)): the same results on that path
        H = 8 * nr + 3
        for ub0, ub1 in [(0, 2), (3, 9), (8, 9)]:
            n += check_mm(rng, dtype, 9, H, 4, False, ub0, ub1)
            n += check_mm(rng, dtype, 9, H, 4, True, ub0, ub1)
        # the backward's step product at its larger sizes: dA_t wider (K) than the columns and of 512 KiB or
        # more (FR_BY_ROWS_MIN_BYTES), which mm walks by block rows in blocks of FR_KC_ROWS_BYTES (128 KiB:
        # K = 4120 is several blocks and a short last one with every ISA's panel width)
        for ub0, ub1 in [(None, None), (1, 3)]:
            n += check_mm(rng, dtype, 40, 1030, 4, True, ub0, ub1)
        for M, K, H, gates, u0, u1 in [(1, 1, 1, 1, 0, 1), (7, 3, 5, 1, 0, 5), (25, 300, 100, 1, 0, 100),
                                       (13, 129, 64, 1, 0, 64), (400, 256, 70, 1, 0, 70), (6, 600, 128, 1, 0, 128),
                                       (9, 17, 40, 4, 0, 40), (33, 70, 100, 4, 37, 90), (20, 300, 130, 3, 65, 130),
                                       (5, 8, 512, 4, 256, 512), (700, 40, 30, 2, 0, 30),
                                       (32, 300, 128, 1, 0, 128), (33, 300, 128, 1, 0, 128),  # op(B) in place / packed
                                       (20, 70, 600, 4, 0, 600), (5, 70, 600, 4, 100, 400),  # rows > 8 KiB apart
                                       (40, 1100, 70, 1, 0, 70),  # K in blocks with a short last one
                                       # few rows, K past FR_LAZY_KC (128): rows of op(B) 4 or 8 KiB apart (blocks
                                       # of 128 rows), or 6-35 KiB apart (blocks of 256-512 rows)
                                       (100, 300, 256, 4, 0, 256), (20, 300, 256, 4, 40, 230), (20, 300, 384, 4, 0, 384),
                                       (20, 300, 1100, 4, 0, 1100),
                                       # few rows, panels packed in groups (FR_LAZY_GROUP_BYTES) with a short last
                                       # group on every ISA's panel width, one K block or two
                                       (64, 200, 500, 3, 0, 500), (64, 600, 330, 3, 0, 330),
                                       # op(B) of at most NR/2 columns (tile_n, 2 MR rows a block): every ISA's NR/2
                                       (40, 300, 20, 1, 0, 20), (30, 50, 12, 1, 0, 12), (27, 40, 3, 1, 0, 3)]:
            for at in (0, 1):
                for bt in (0, 1):
                    n += check_gemm(rng, dtype, M, K, H, gates, u0, u1, at, bt)
        # rows of A 16 KiB apart (FR_COPY_A_STRIDE), which gemm copies block by block when op(A) = A and more
        # than FR_COPY_A_PANELS (8) panels of op(B) read each block (the last four here, on every ISA: NR <= 64),
        # and reads in place with fewer (the first four where NR is 64, float32 on AVX-512): one K block, two
        # or more (the last short: K blocks span FR_GEMM_KC_ROW_BYTES of A's rows then), several row blocks of
        # op(A) (gemm_mc)
        for M, K, H, gates, u0, u1 in [(40, 50, 70, 1, 0, 70), (100, 300, 130, 4, 20, 130), (60, 1100, 70, 1, 0, 70),
                                       (1100, 40, 30, 2, 0, 30),
                                       (40, 50, 600, 1, 0, 600), (100, 300, 300, 4, 20, 300),
                                       (60, 1100, 600, 1, 0, 600), (700, 40, 300, 2, 0, 300)]:
            for at in (0, 1):
                n += check_gemm(rng, dtype, M, K, H, gates, u0, u1, at, 1 - at, lda_bytes=16384)
        # a C of FR_ROWWISE_MIN_BYTES (4 MiB) or more from at most FR_ROWWISE_MAX_K (128) rows of op(B): C walked
        # row block by row block over chunks of panels (several row blocks of op(A), partial panels, slabs of
        # gate blocks, rows of A 16 KiB apart); K = 129 just past it
        for M, K, H, gates, u0, u1, lda_bytes in [(1030, 100, 1030, 1, 0, 1030, None), (600, 64, 700, 4, 50, 650, None),
                                                  (1100, 40, 1000, 1, 0, 1000, 16384), (700, 128, 1600, 1, 0, 1600, None),
                                                  (700, 129, 1600, 1, 0, 1600, None)]:
            for at in (0, 1):
                for bt in (0, 1):
                    if lda_bytes is None or bt == 1 - at:
                        n += check_gemm(rng, dtype, M, K, H, gates, u0, u1, at, bt, lda_bytes=lda_bytes)
        # dWh of the Numba backend's batch-major h: one step, one sequence, K blocks that end mid-sequence
        for N, T, H, gates, u0, u1 in [(1, 1, 1, 1, 0, 1), (3, 1, 5, 1, 0, 5), (1, 7, 9, 4, 0, 9),
                                       (10, 13, 40, 4, 8, 40), (25, 16, 70, 3, 0, 35), (7, 300, 33, 1, 0, 33)]:
            n += check_gemm_prev(rng, dtype, N, T, H, gates, u0, u1)
        # one thread (small), two by op(B)'s bytes (few rows), two by flops, split by columns or rows; the last:
        # with BLAS on one thread, float64's A^T B of C > 8 MiB left to BLAS
        for M, N, K in [(1, 7, 3), (1, 1004, 512), (25, 2048, 256), (300, 70, 400), (100, 512, 2048),
                        (64, 1024, 300), (40, 30, 50), (1030, 1030, 40)]:
            for at in (0, 1):
                for bt in (0, 1):
                    n += check_product(rng, dtype, M, N, K, at, bt)
        # one row, one column, partial panels, the sampling loop's shapes (x Wx, h Wh, h W_vocab at N = 100)
        for M, N, K in [(1, 1, 1), (1, 7, 3), (5, 2 * nr + 3, 40), (40, 30, 50), (100, 2048, 256), (100, 1004, 512),
                        (3, 3 * nr, 600)]:
            n += check_resident(rng, dtype, M, N, K)
    return n


if __name__ == "__main__":
    checked = check_all(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(_native.layout()["isa"], checked)
