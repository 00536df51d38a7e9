/* One instantiation of the packed-panel GEMM: packed.h includes this file once per (ISA, float type)
 * with these macros defined:
 *   FR_NAME(x)   name of a function of this instantiation (e.g. fr_avx512_f_x)
 *   REAL         float or double
 *   VEC          the vector type (or REAL for the portable scalar version)
 *   VLEN         REALs per VEC
 *   NV           VECs per row of a micro-tile: NR = NV * VLEN columns
 *   MR           rows of the largest micro-tile
 *   KUNROLL      (optional) unroll factor of the micro-kernel's loop over k
 *   V_LOAD(p), V_STORE(p, v), V_SET1(x), V_ZERO(), V_FMA(a, b, c) = a * b + c
 * No include guard on purpose.
 *
 * Layout of a packed matrix ("panels"): the columns of B (K rows) are cut into blocks of NR columns
 * per gate, ordered by unit block ub, then gate g: panel (ub, g) holds B[0:K, g*H + ub*NR + (0:NR)]
 * as K rows of NR contiguous REALs (columns past H are zeros), at P + (ub*gates + g) * K * NR.
 */

#define FR_NR (NV * VLEN)

/* The micro-kernel: C[0:m, 0:NVR*VLEN] (+)= op(A)[0:m, 0:kc] B[0:kc, 0:NVR*VLEN] with m = ROWS, the whole
 * tile in registers: NVR = NV (a panel's NR columns) and ROWS <= MR, or the narrow form (tile_n)
 * NVR = NV / 2 and ROWS <= 2 MR in as many registers, row r's vectors in those of row r % MR.
 * op(A) = A row-major (row stride lda) when AT = 0, A^T when AT = 1 (A stored kc x m, row stride lda: the
 * weight gradients X^T dA read X this way); B a packed panel (kc rows of NR), C row-major (row stride
 * ldc).  load != 0: C is accumulated into; load == 0: C is overwritten.
 * The product is summed from zero and C added at the end, with C's lines prefetched first: in a layer C
 * is often cold (the gate buffer the input projection wrote long before), and loading it up front
 * stalled the whole tile on those misses (measured: lstm (100, 16, 256, 512) float32 fwd+bwd 3-5 %
 * faster on both backends, 1 and 2 threads).
 * pf, pfmask, pfn: software prefetch into L2 of pfn cache lines from pf on, one at each k with
 * k & pfmask == 0 (pfn = 0: none); mm passes the panel block it reads next (see rows). */
static inline __attribute__((always_inline)) void FR_NAME(tile)(const int ROWS, const int NVR, const int AT,
                                                               ptrdiff_t kc, const REAL *A, ptrdiff_t lda,
                                                               const REAL *B, ptrdiff_t ldb, REAL *C,
                                                               ptrdiff_t ldc, int load, const char *pf,
                                                               ptrdiff_t pfmask, ptrdiff_t pfn)
{
    VEC c[MR][NV];
#define FR_ACC(r, v) c[(r) % MR][(r) / MR * NVR + (v)] /* the accumulator of row r, vector v */
#pragma GCC unroll 16
    for (int r = 0; r < 2 * MR; r++) {
        if (r < ROWS && load) {
#pragma GCC unroll 16
            for (int v = 0; v < NVR; v++)
                __builtin_prefetch(C + r * ldc + v * VLEN, 1, 3);
            __builtin_prefetch(C + r * ldc + NVR * VLEN - 1, 1, 3);
        }
#pragma GCC unroll 16
        for (int v = 0; v < NVR; v++)
            if (r < ROWS)
                FR_ACC(r, v) = V_ZERO();
    }
#ifdef KUNROLL
    FR_PRAGMA(GCC unroll KUNROLL)
#endif
    for (ptrdiff_t k = 0; k < kc; k++) {
        if (pfn > 0 && !(k & pfmask)) {
            __builtin_prefetch(pf, 0, 2);
            pf += 64;
            pfn--;
        }
        VEC b[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NVR; v++)
            b[v] = V_LOAD(B + v * VLEN);
        B += ldb;
#pragma GCC unroll 16
        for (int r = 0; r < 2 * MR; r++) {
            if (r < ROWS) {
                VEC a = V_SET1(AT ? A[k * lda + r] : A[r * lda + k]);
#pragma GCC unroll 16
                for (int v = 0; v < NVR; v++)
                    FR_ACC(r, v) = V_FMA(a, b[v], FR_ACC(r, v));
            }
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < 2 * MR; r++)
#pragma GCC unroll 16
        for (int v = 0; v < NVR; v++)
            if (r < ROWS) {
                if (load)
                    FR_ACC(r, v) += V_LOAD(C + r * ldc + v * VLEN);
                V_STORE(C + r * ldc + v * VLEN, FR_ACC(r, v));
            }
}
#undef FR_ACC

#define FR_TILE_CASE(M_, AT_) \
    case M_: FR_NAME(tile)(M_, NV, AT_, kc, A, lda, B, ldb, C, ldc, load, pf, pfmask, pfn); break;
#if MR >= 8
#define FR_TILE_CASES(AT_) FR_TILE_CASE(8, AT_) FR_TILE_CASE(7, AT_) FR_TILE_CASE(6, AT_) FR_TILE_CASE(5, AT_) \
    FR_TILE_CASE(4, AT_) FR_TILE_CASE(3, AT_) FR_TILE_CASE(2, AT_)
#elif MR >= 6
#define FR_TILE_CASES(AT_) FR_TILE_CASE(6, AT_) FR_TILE_CASE(5, AT_) FR_TILE_CASE(4, AT_) FR_TILE_CASE(3, AT_) \
    FR_TILE_CASE(2, AT_)
#else
#define FR_TILE_CASES(AT_) FR_TILE_CASE(4, AT_) FR_TILE_CASE(3, AT_) FR_TILE_CASE(2, AT_)
#endif

/* Transposition into a panel: dst[k * NR + j] = src[j * ld + k] for k < kc, j < width, zeros for
 * j in [width, NR): the columns of op(B) = B^T are the rows of B.  By VLEN x VLEN blocks in registers:
 * VLEN vector loads (one cache line of each of VLEN rows of B when VLEN REALs fill a line), log2(VLEN)
 * rounds of two-source shuffles that swap the off-diagonal halves of ever smaller blocks, VLEN vector
 * stores.  Scalar, this was one load and one store per REAL: the largest cost after the products in
 * the packing of Wh^T for BPTT and of Wx^T for dX. */
typedef FR_CAT(FR_IDX_, REAL) FR_NAME(ivec) __attribute__((vector_size(VLEN * sizeof(REAL))));

static inline __attribute__((always_inline)) void FR_NAME(transpose_block)(const REAL *src, ptrdiff_t ld, REAL *dst)
{
    VEC r[VLEN];
#pragma GCC unroll 16
    for (int i = 0; i < VLEN; i++)
        r[i] = V_LOAD(src + i * ld);
#pragma GCC unroll 16
    for (int b = VLEN / 2; b >= 1; b /= 2) {
        FR_NAME(ivec) lo, hi;  /* row i takes the low halves of blocks, row i + b the high ones */
#pragma GCC unroll 16
        for (int p = 0; p < VLEN; p++) {
            lo[p] = (p & b) ? VLEN + p - b : p;
            hi[p] = (p & b) ? VLEN + p : p + b;
        }
#pragma GCC unroll 16
        for (int i = 0; i < VLEN; i++)
            if (!(i & b)) {
                const VEC x = r[i], y = r[i + b];
                r[i] = __builtin_shuffle(x, y, lo);
                r[i + b] = __builtin_shuffle(x, y, hi);
            }
    }
#pragma GCC unroll 16
    for (int i = 0; i < VLEN; i++)
        V_STORE(dst + i * FR_NR, r[i]);
}

static void FR_NAME(pack_t)(ptrdiff_t kc, ptrdiff_t width, const REAL *src, ptrdiff_t ld, REAL *dst)
{
    const ptrdiff_t jv = width / VLEN * VLEN;
    /* by blocks of VLEN rows of the panel, so the lines written stay in L1 (a narrow op(B), e.g. the
     * 25 columns of dA^T in a step's transposed product, is mostly the zero tail of each row) */
    for (ptrdiff_t k0 = 0; k0 < kc; k0 += VLEN) {
        const ptrdiff_t k1 = kc - k0 < VLEN ? kc : k0 + VLEN;
        if (k1 - k0 == VLEN) {
            for (ptrdiff_t j0 = 0; j0 < jv; j0 += VLEN)
                FR_NAME(transpose_block)(src + j0 * ld + k0, ld, dst + k0 * FR_NR + j0);
        } else {  /* the last rows, fewer than VLEN */
            for (ptrdiff_t j = 0; j < jv; j++)
                for (ptrdiff_t k = k0; k < k1; k++)
                    dst[k * FR_NR + j] = src[j * ld + k];
        }
        for (ptrdiff_t k = k0; k < k1; k++) {  /* the columns past the last whole block */
            for (ptrdiff_t j = jv; j < width; j++)
                dst[k * FR_NR + j] = src[j * ld + k];
            for (ptrdiff_t j = width; j < FR_NR; j++)
                dst[k * FR_NR + j] = 0;
        }
    }
}

/* The micro-kernel for every row count 1..MR and both forms of A (a switch: each case fully unrolled).
 * A points at element (row 0, k 0) of the tile's op(A).
 * Never inlined: gcc inlined it into the AVX-512 float64 gemm, where the register allocator, juggling
 * gemm's own loop state too, kept one of the 24 accumulators on the stack (a load and a store per k, a
 * dependency through memory); a call per tile costs nothing next to a tile's kc x 24 FMAs.  Measured
 * (one thread, two builds interleaved in one process): float64 gemm 0.90-0.97 of the time on the
 * layers' once-per-call shapes, float32 (never inlined) unchanged. */
static __attribute__((noinline)) void FR_NAME(tile_m)(int m, int at, ptrdiff_t kc, const REAL *A,
                                                      ptrdiff_t lda, const REAL *B, ptrdiff_t ldb, REAL *C,
                                                      ptrdiff_t ldc, int load, const char *pf,
                                                      ptrdiff_t pfmask, ptrdiff_t pfn)
{
    if (at) {
        switch (m) {
        FR_TILE_CASES(1)
        default: FR_NAME(tile)(1, NV, 1, kc, A, lda, B, ldb, C, ldc, load, pf, pfmask, pfn); break;
        }
    } else {
        switch (m) {
        FR_TILE_CASES(0)
        default: FR_NAME(tile)(1, NV, 0, kc, A, lda, B, ldb, C, ldc, load, pf, pfmask, pfn); break;
        }
    }
}

/* tile_m without the prefetch of a next panel block, gemm's: its arguments are constants here, so the
 * loop over k carries no prefetch test.  (gcc made such a copy of tile_m on its own for gemm's calls, and
 * dropped it when gemm's code changed: float64 products then took 1.01-1.03x the time.) */
#undef FR_TILE_CASE
#define FR_TILE_CASE(M_, AT_) \
    case M_: FR_NAME(tile)(M_, NV, AT_, kc, A, lda, B, ldb, C, ldc, load, NULL, 0, 0); break;
static __attribute__((noinline)) void FR_NAME(tile_g)(int m, int at, ptrdiff_t kc, const REAL *A, ptrdiff_t lda,
                                                      const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc, int load)
{
    if (at) {
        switch (m) {
        FR_TILE_CASES(1)
        default: FR_NAME(tile)(1, NV, 1, kc, A, lda, B, ldb, C, ldc, load, NULL, 0, 0); break;
        }
    } else {
        switch (m) {
        FR_TILE_CASES(0)
        default: FR_NAME(tile)(1, NV, 0, kc, A, lda, B, ldb, C, ldc, load, NULL, 0, 0); break;
        }
    }
}
#undef FR_TILE_CASES
#undef FR_TILE_CASE

/* The narrow micro-kernel, tile with NV / 2 vectors a row for every row count 1..2 MR: for an op(B) of at
 * most NR/2 columns (gemm's narrow case; mostly the step products computed transposed, C^T = W dA^T, at
 * N <= NR/2: see product.h), where tile_m spent half or more of its multiply-adds on zero columns. */
#define FR_NARROW_CASE(M_) \
    case M_: FR_NAME(tile)(M_, NV / 2, 0, kc, A, lda, B, ldb, C, ldc, load, NULL, 0, 0); break;
static __attribute__((noinline)) void FR_NAME(tile_n)(int m, ptrdiff_t kc, const REAL *A, ptrdiff_t lda,
                                                      const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc,
                                                      int load)
{
    switch (m) {
#if (MR != 4 && MR != 6) || NV % 2
#error "tile_n: rows up to 2 MR = 8 or 12, and half of NV"
#endif
#if MR == 6
    FR_NARROW_CASE(12) FR_NARROW_CASE(11) FR_NARROW_CASE(10) FR_NARROW_CASE(9)
#endif
    FR_NARROW_CASE(8) FR_NARROW_CASE(7) FR_NARROW_CASE(6) FR_NARROW_CASE(5) FR_NARROW_CASE(4)
    FR_NARROW_CASE(3) FR_NARROW_CASE(2)
    default: FR_NAME(tile)(1, NV / 2, 0, kc, A, lda, B, ldb, C, ldc, load, NULL, 0, 0); break;
    }
}
#undef FR_NARROW_CASE

/* A partial tile (width columns of C, fewer than the tile's w) goes through a full-width tile on the
 * stack: edge_in fills its m rows of w from C (zeros past width, or everywhere when !load), the tile
 * accumulates into it, edge_out writes its first width columns back. */
static inline void FR_NAME(edge_in)(REAL *edge, ptrdiff_t w, const REAL *C, ptrdiff_t ldc, int m, ptrdiff_t width,
                                    int load)
{
    for (int r = 0; r < m; r++)
        for (ptrdiff_t j = 0; j < w; j++)
            edge[r * w + j] = (load && j < width) ? C[r * ldc + j] : 0;
}

static inline void FR_NAME(edge_out)(const REAL *edge, ptrdiff_t w, REAL *C, ptrdiff_t ldc, int m, ptrdiff_t width)
{
    for (int r = 0; r < m; r++)
        for (ptrdiff_t j = 0; j < width; j++)
            C[r * ldc + j] = edge[r * w + j];
}

/* Rows of row tile ib of nb in a block of mc rows of op(A), r0 of them in the tiles before it (gemm's and mm's):
 * as even as MR allows (25 rows: 5 x 5, not 4 x 6 + 1, whose one-row tile has only NV chains of multiply-adds
 * to hide the FMA latency), except for an op(A) packed into micro-panels (gemm's at), which are MR rows.  Measured (one thread,
 * alternating processes, both orders): (25, 512) x (512, 512) float64 and (25, 512) x (512, 2048) float32
 * 0.92-0.94x the time, (25, 256) x (256, 2048) float64 0.98-1.02x; 2 threads, rnn_step small forward
 * 0.89-0.94x (float32) and 0.90-0.97x (float64), lstm_step small float32 forward + backward 0.93-0.95x,
 * gru_step small float64 forward + backward 0.99-1.04x (within the noise). */
static inline int FR_NAME(tile_rows)(int packed, ptrdiff_t mc, ptrdiff_t nb, ptrdiff_t ib, ptrdiff_t r0)
{
    return packed ? (int)(mc - r0 < MR ? mc - r0 : MR) : (int)((mc - r0 + (nb - ib) - 1) / (nb - ib));
}

/* Every row block of op(A) (M rows, at most MR each, as even as possible) against one packed block of
 * kc rows of a panel: C[0:M, 0:width] (+)= op(A)[0:M, 0:kc] Bp.  A points at (row 0, k 0) of op(A). */
static void FR_NAME(rows)(ptrdiff_t M, ptrdiff_t kc, const REAL *A, ptrdiff_t lda, int at, const REAL *Bp,
                          ptrdiff_t width, REAL *C, ptrdiff_t ldc, int load, const REAL *next, ptrdiff_t next_n)
{
    REAL edge[MR * FR_NR];
    const ptrdiff_t nb = (M + MR - 1) / MR;
    /* the panel block read next (next_n REALs at next; none when next is NULL) is fetched into L2
     * meanwhile: a line every 2^s steps of k, over as many row blocks as it takes, with the largest
     * s <= 3 that still covers the whole block */
    ptrdiff_t lines = next ? (next_n * (ptrdiff_t)sizeof(REAL) + 63) / 64 : 0, s = 3;
    while (s > 0 && nb * (kc >> s) < lines)
        s--;
    const ptrdiff_t per_tile = (kc + (1 << s) - 1) >> s;  /* the k with k % 2^s == 0 */
    const char *pf = (const char *)next;
    ptrdiff_t r0 = 0;
    for (ptrdiff_t blk = 0; blk < nb; blk++) {
        const ptrdiff_t pfn = lines < per_tile ? lines : per_tile;
        const int m = FR_NAME(tile_rows)(0, M, nb, blk, r0);
        const REAL *Ab = at ? A + r0 : A + r0 * lda;
        if (width == FR_NR) {
            FR_NAME(tile_m)(m, at, kc, Ab, lda, Bp, FR_NR, C + r0 * ldc, ldc, load, pf, (1 << s) - 1, pfn);
        } else {  /* a partial panel: through a full-width tile on the stack */
            FR_NAME(edge_in)(edge, FR_NR, C + r0 * ldc, ldc, m, width, load);
            FR_NAME(tile_m)(m, at, kc, Ab, lda, Bp, FR_NR, edge, FR_NR, 1, pf, (1 << s) - 1, pfn);
            FR_NAME(edge_out)(edge, FR_NR, C + r0 * ldc, ldc, m, width);
        }
        pf += pfn * 64;
        lines -= pfn;
        r0 += m;
    }
}

/* C[0:M, cols of panels (ub, g) for ub in [ub0, ub1), every gate] (+)= A[0:M, k_lo:k_hi] @ rows
 * k_lo:k_hi of those panels (of K rows each; A points at column 0, k_lo = 0, k_hi = K: the whole
 * product).  Column j of panel (ub, g) is column g*H + ub*NR + j of C; only the columns below H of each
 * gate block are written.  beta: 0 overwrites C, 1 accumulates into it.  The panels are walked in blocks
 * of KC rows (KC x NR REALs stay in L1, or L2 below, while every row block of A passes over them).  The
 * first row block must read a panel block from L2 or L3 (an LSTM's panels are larger than L2 at H = 512 and above),
 * which deliver it more slowly than the tile consumes it, and the others find it in L1; so the block
 * read next is prefetched into L2 while the row blocks pass over the current one.  Measured
 * (alternating processes, cython LSTM, one thread): forward 0.85-0.95x the time at the small and large
 * sizes in both dtypes, backward 0.90-0.98x; the medium size within noise.
 * Order of the blocks: panel by panel (each panel's blocks in turn), except for an A wider (K) than the
 * call's columns of C and of at least FR_BY_ROWS_MIN_BYTES: block row by block row (the KC-row block of
 * every panel, then the next KC rows of every panel), so that only KC columns of A are live at a time.
 * Panel by panel, such an A (dA_t (N, 4H) in the LSTM's backward: 1.6 MiB at N = 100, H = 512 in
 * float64) is read whole once per panel and, with the panels streaming through L2, from L3.  The
 * backward's step product, one thread, GFLOP/s panel by panel / by block rows: (100, 2048) x
 * (2048, 512) float64 73-78 / 80-85, (64, 4096) x (4096, 512) 81-83 / 89-92, float32 (100, 2048) x
 * (2048, 512) 169-179 / 177-183; at N = 25 (A of 200-400 KiB, which stays in L2) both the same.  A
 * narrower A stays in L2 either way, and C (in the forward the gate buffer, cold from the input
 * projection) is then the larger to re-read.
 * By block rows, every block is one more pass over all of the call's C (M x its columns: from L2, not
 * L1 as one panel's), so the blocks are larger there, FR_KC_ROWS_BYTES, and stream from L2 (the tile
 * reads a panel from L2 nearly as fast as from L1).  Since 2026-12-02; the step product alone, one
 * core, C harness, GFLOP/s with 32 / 128 KiB blocks: float32 (100, 2048) x (2048, 512) 130-136 /
 * 148-151, (64, 4096) x (4096, 512) 149-156 / 158-162; float64 65-70 / 71-75 and 71-73 / 74-77.  Panel
 * by panel, the blocks are as large where A has FR_KC_L2_M rows or more: each block's C tiles are then
 * read and written fewer times, and over 8 or more row blocks the panel's first pass from L2 is paid
 * back.  Since 2026-12-03; the forward's step product alone (one shared packed copy, builds alternated),
 * one thread, time with 128 / 32 KiB blocks: float32 (100, 512) x (512, 2048) 0.97, (64, 1024) x
 * (1024, 1024) 0.97, (50, 512) x (512, 2048) 0.97, float64 (64, 1024) x (1024, 1024) 0.94, (100, 512) x
 * (512, 2048) 0.98; at N = 25 1.00-1.02 (float32 and float64; in a layer, the small LSTM float32 forward
 * with one thread, 1.07x), so A of fewer rows stays in L1.  Whole forwards, cython, two builds in one
 * process: LSTM (100, 16, 256, 512) float32 1.00x (one thread) and 0.96x (two), float64 0.96x (one);
 * RNN (64, 64, 512, 1024) float32 1.00x and 0.98x.
 * reverse != 0 walks the same blocks last to first (the layers alternate it between time steps: the
 * blocks read last at one step, still in cache, are read first at the next).
 * A part of the product (k_lo, k_hi: fr_mm_part_s/d) takes the walk and blocks of the whole product
 * (decided on K): deciding on the part's rows, the LSTM backward's parts (256 of 2048 rows) walked
 * panel by panel in 32 KiB blocks and the backward took 2 % longer.
 * next_ub >= 0: the caller's next product on P reads unit block next_ub's panels (the same M, K, gates
 * and direction), so the last block's rows prefetch that call's first block, as every other block's
 * prefetch the one after it.  The forwards multiply unit block by unit block, each followed by its
 * pointwise pass, and the first block of every call came from L3 unfetched: at H = 1024, float64, one
 * thread, that was 2 of the GRU's 6 blocks per unit block.  The GRU forward's step product alone, by
 * unit block (C harness, 64 steps, the gate buffer cold), GFLOP/s without / with: 76-77 / 81-82; whole
 * float64 forwards at (64, 64, 512, 1024), two trees in one process: 0.93-1.00x the time (RNN, LSTM,
 * GRU; both backends, one and two threads), float32 0.98-1.01x, the smaller sizes within +-3 %.
 * Only above FR_PREFETCH_NEXT_MIN_BYTES of weights (see there). */
static void FR_NAME(mm)(ptrdiff_t M, ptrdiff_t K, ptrdiff_t k_lo, ptrdiff_t k_hi, const REAL *A, ptrdiff_t lda,
                        const REAL *P, ptrdiff_t H, ptrdiff_t gates, ptrdiff_t ub0, ptrdiff_t ub1, REAL *C,
                        ptrdiff_t ldc, int beta, int reverse, ptrdiff_t next_ub)
{
    const ptrdiff_t npanels = (ub1 - ub0) * gates, KR = k_hi - k_lo;
    const int by_rows = K > npanels * FR_NR && M * K * (ptrdiff_t)sizeof(REAL) >= FR_BY_ROWS_MIN_BYTES;
    const ptrdiff_t KC = (by_rows || M >= FR_KC_L2_M ? FR_KC_ROWS_BYTES : FR_KC_BYTES)
                         / (FR_NR * (ptrdiff_t)sizeof(REAL));
    const ptrdiff_t nk = (KR + KC - 1) / KC, nblocks = npanels * nk;
    /* prefetch only panels that cannot stay in L2 from one step to the next: smaller ones are there */
    const ptrdiff_t packed_bytes = (H + FR_NR - 1) / FR_NR * gates * K * FR_NR * (ptrdiff_t)sizeof(REAL);
    const int fetch = packed_bytes > FR_PREFETCH_MIN_BYTES, fetch_next = packed_bytes > FR_PREFETCH_NEXT_MIN_BYTES;
    if (M <= 0 || npanels <= 0 || KR <= 0)
        return;
    for (ptrdiff_t i = 0; i < nblocks; i++) {
        /* block j: panel q (ub0's first gate first), rows kb*KC of it; the next one read, jn */
        const ptrdiff_t j = reverse ? nblocks - 1 - i : i, jn = reverse ? j - 1 : j + 1;
        const ptrdiff_t q = by_rows ? j % npanels : j / nk, kb = by_rows ? j / npanels : j % nk;
        const ptrdiff_t ub = ub0 + q / gates, g = q % gates, k0 = k_lo + kb * KC, kc = k_hi - k0 < KC ? k_hi - k0 : KC;
        const ptrdiff_t width = H - ub * FR_NR < FR_NR ? H - ub * FR_NR : FR_NR;
        const REAL *panel = P + (ub0 * gates + q) * K * FR_NR;
        const REAL *next = NULL;
        ptrdiff_t next_n = 0;
        if (fetch && i + 1 < nblocks) {
            const ptrdiff_t qn = by_rows ? jn % npanels : jn / nk, kn = k_lo + (by_rows ? jn / npanels : jn % nk) * KC;
            next = P + (ub0 * gates + qn) * K * FR_NR + kn * FR_NR;
            next_n = (k_hi - kn < KC ? k_hi - kn : KC) * FR_NR;
        } else if (fetch_next && next_ub >= 0 && next_ub * FR_NR < H) {  /* the next call's first block */
            const ptrdiff_t kn = reverse ? k_lo + (nk - 1) * KC : k_lo;
            next = P + (next_ub * gates + (reverse ? gates - 1 : 0)) * K * FR_NR + kn * FR_NR;
            next_n = (k_hi - kn < KC ? k_hi - kn : KC) * FR_NR;
        }
        /* C is overwritten by the first block of each panel read (beta 0), accumulated by the others */
        const int first = reverse ? kb == nk - 1 : kb == 0;
        FR_NAME(rows)(M, kc, A + k0, lda, 0, panel + k0 * FR_NR, width, C + g * H + ub * FR_NR, ldc,
                      beta || !first, next, next_n);
    }
}

/* Blocking of the general product (see gemm): a block of op(A) of at most MC x KC REALs stays in L2, a
 * packed panel of op(B) of KC x NR in L2 too (L1 holds a tile's rows of op(A)) while the row blocks of A
 * pass over it.  KC: see FR_GEMM_KC. */
static inline ptrdiff_t FR_NAME(gemm_kc)(int at)
{
    return at ? FR_GEMM_KC : FR_GEMM_KC_ROW_BYTES / (ptrdiff_t)sizeof(REAL);
}

/* Rows of op(A) per block for blocks of kc rows of op(B): FR_MC_BYTES of kc columns, counted as at least
 * FR_GEMM_KC columns (a narrow K does not make the blocks taller than that). */
static inline ptrdiff_t FR_NAME(gemm_mc)(ptrdiff_t kc)
{
    if (kc < FR_GEMM_KC)
        kc = FR_GEMM_KC;
    return FR_MC_BYTES / (kc * (ptrdiff_t)sizeof(REAL)) / MR * MR;
}

/* Row stride, in REALs, of gemm's copy of a block of row-major op(A) (kc columns): whole cache lines, an odd
 * number of them, so that the block's rows fall on different cache sets whatever A's own stride. */
static inline ptrdiff_t FR_NAME(copy_ld)(ptrdiff_t kc)
{
    const ptrdiff_t per_line = 64 / (ptrdiff_t)sizeof(REAL);
    return ((kc + per_line - 1) / per_line | 1) * per_line;
}

/* Bytes of the work buffer gemm needs for M rows, N columns in at most `blocks` gate blocks, K. */
static size_t FR_NAME(gemm_work)(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, ptrdiff_t blocks)
{
    const ptrdiff_t nc = (N + blocks * (FR_NR - 1)) / FR_NR * FR_NR;  /* each block may end in a partial panel */
    size_t most = 0;
    for (int at = 0; at < 2; at++) {  /* whichever form of op(A) needs more */
        const ptrdiff_t kc_max = FR_NAME(gemm_kc)(at), kc = K < kc_max ? K : kc_max;
        const ptrdiff_t mc_max = FR_NAME(gemm_mc)(kc);
        const ptrdiff_t mc = M < mc_max ? (M + MR - 1) / MR * MR : mc_max;
        /* + the rounding and alignment in gemm */
        const size_t bytes = (size_t)(mc * FR_NAME(copy_ld)(kc) + 16 + kc * nc) * sizeof(REAL) + 64;
        most = bytes > most ? bytes : most;
    }
    return most;
}

/* gemm's narrow case: C[0:mc, 0:width] (+)= A[0:mc, 0:kc] Bp[0:kc, 0:width] for width <= NR/2, A row-major
 * (row stride lda), Bp a packed panel (rows ldb apart, zero past width), by row blocks of 2 MR through
 * tile_n on a tile on the stack. */
static __attribute__((noinline)) void FR_NAME(gemm_narrow)(ptrdiff_t mc, ptrdiff_t kc, const REAL *A, ptrdiff_t lda,
                                                           const REAL *Bp, ptrdiff_t ldb, ptrdiff_t width, REAL *C,
                                                           ptrdiff_t ldc, int load)
{
    enum { W = FR_NR / 2 };
    REAL edge[2 * MR * W];
    for (ptrdiff_t r0 = 0; r0 < mc; r0 += 2 * MR) {
        const int m = (int)(mc - r0 < 2 * MR ? mc - r0 : 2 * MR);
        FR_NAME(edge_in)(edge, W, C + r0 * ldc, ldc, m, width, load);
        FR_NAME(tile_n)(m, kc, A + r0 * lda, lda, Bp, ldb, edge, W, 1);
        FR_NAME(edge_out)(edge, W, C + r0 * ldc, ldc, m, width);
    }
}

/* The panel of op(B)[k0:k0+kc, j0:j0+width] (width <= NR) at dst: kc rows of NR, zero-padded (gemm's and
 * pack's) */
static void FR_NAME(gemm_panel)(ptrdiff_t kc, ptrdiff_t width, const REAL *B, ptrdiff_t ldb, int bt, ptrdiff_t k0,
                                ptrdiff_t j0, REAL *dst)
{
    if (bt) {
        FR_NAME(pack_t)(kc, width, B + j0 * ldb + k0, ldb, dst);
        return;
    }
    for (ptrdiff_t k = 0; k < kc; k++) {
        const REAL *src = B + (k0 + k) * ldb + j0;
        for (ptrdiff_t j = 0; j < width; j++)
            dst[k * FR_NR + j] = src[j];
        for (ptrdiff_t j = width; j < FR_NR; j++)
            dst[k * FR_NR + j] = 0;
    }
}

/* gemm's panel jp of a slab of units of every gate block (per_gate panels a gate, span units from u0): its
 * first column of op(B) (the return) and its width (<= NR: the slab's last panel of a gate may be partial) */
static inline __attribute__((always_inline)) ptrdiff_t FR_NAME(panel_columns)(ptrdiff_t jp, ptrdiff_t per_gate,
                                                                             ptrdiff_t span, ptrdiff_t H,
                                                                             ptrdiff_t u0, ptrdiff_t *width)
{
    const ptrdiff_t jl = jp % per_gate * FR_NR;
    *width = span - jl < FR_NR ? span - jl : FR_NR;
    return jp / per_gate * H + u0 + jl;
}

/* Panels jp0..jp1-1 of op(B)[k0:k0+kc, the slab's columns] at dst + (jp - jp0) * kc * NR (gemm's; direct: the
 * full panels are read in place, not packed).  With op(B) = B row-major, by groups of FR_PACK_KB rows across
 * all of the panels: each row of B is read in runs of several panels, which the hardware prefetches, not NR
 * columns at a time from rows far apart */
static void FR_NAME(gemm_panels)(ptrdiff_t kc, ptrdiff_t jp0, ptrdiff_t jp1, ptrdiff_t per_gate, ptrdiff_t span,
                                 ptrdiff_t H, ptrdiff_t u0, const REAL *B, ptrdiff_t ldb, int bt, ptrdiff_t k0,
                                 int direct, REAL *dst)
{
    const ptrdiff_t group = bt ? kc : FR_PACK_KB;
    for (ptrdiff_t kb = 0; kb < kc; kb += group) {
        const ptrdiff_t kn = kc - kb < group ? kc - kb : group;
        for (ptrdiff_t jp = jp0; jp < jp1; jp++) {
            ptrdiff_t width;
            const ptrdiff_t j0 = FR_NAME(panel_columns)(jp, per_gate, span, H, u0, &width);
            if (!(direct && width == FR_NR))
                FR_NAME(gemm_panel)(kn, width, B, ldb, bt, k0 + kb, j0, dst + ((jp - jp0) * kc + kb) * FR_NR);
        }
    }
}

/* One tile of gemm: C[0:m, 0:width] (+)= op(A) Bp through tile_g, straight into C for a full panel's
 * width (NR), else through a full-width tile on the stack (see edge_in).  Not inlined: inlined, float64
 * gemm at 2048^3 took 1.02-1.03x the time (one thread, builds alternated); as a call, 0.997-1.006x. */
static __attribute__((noinline)) void FR_NAME(gemm_tile)(int m, int at, ptrdiff_t kc, const REAL *A, ptrdiff_t lda,
                                                         const REAL *Bp, ptrdiff_t ldb, ptrdiff_t width, REAL *C,
                                                         ptrdiff_t ldc, int load)
{
    REAL edge[MR * FR_NR];
    if (width == FR_NR) {
        FR_NAME(tile_g)(m, at, kc, A, lda, Bp, ldb, C, ldc, load);
        return;
    }
    FR_NAME(edge_in)(edge, FR_NR, C, ldc, m, width, load);
    FR_NAME(tile_g)(m, at, kc, A, lda, Bp, ldb, edge, FR_NR, 1);
    FR_NAME(edge_out)(edge, FR_NR, C, ldc, m, width);
}

/* A general product on a set of columns: C[0:M, cols] (+)= op(A) op(B)[:, cols], where cols are the
 * columns g*H + [u0, u1) for g < gates (a slab of units of every gate block; gates = 1, H = N, u0 = 0,
 * u1 = N for plain columns 0..N-1).  op(A) (M x K) = A row-major (row stride lda) when at = 0 or A^T
 * when at = 1 (A stored K x M); op(B) = B row-major (row stride ldb) when bt = 0 or B^T when bt = 1
 * (B stored with one row per column of op(B)).  For the products used once per call (input projection,
 * dX, dWx, dWh).  Blocked like a BLAS (GotoBLAS's scheme): for each block of KC rows of op(B), its
 * columns are packed into panels of NR, then for each block of MC rows of op(A), that block is packed
 * into micro-panels of MR rows (k-major) when at = 1 (read in place when at = 0, or see
 * FR_COPY_A_STRIDE) and every micro-panel of A passes over every panel of B.  work: work_bytes >=
 * gemm_work(M, gates * (u1 - u0), K, gates) bytes (a smaller buffer is replaced by a malloc'ed one).
 * Returns 0, or -1 when that malloc failed (C untouched).
 * A0 (at = 1 only; NULL: unused) makes row k of the stored A A0's row k / period when k % period == 0,
 * else A's row k - 1 (both with row stride lda): the state each step of a batch-major sequence started
 * from (Hprev: h0[n] for the first step of sequence n, then h[n, t - 1]), read where h0 and h lie for
 * dWh = Hprev^T dA.  The rows are gathered in the packing of op(A), which copies them anyway. */
static int FR_NAME(gemm)(ptrdiff_t M, ptrdiff_t K, const REAL *A, ptrdiff_t lda, int at, const REAL *A0,
                         ptrdiff_t period, const REAL *B, ptrdiff_t ldb, int bt, ptrdiff_t H, ptrdiff_t gates,
                         ptrdiff_t u0, ptrdiff_t u1, REAL *C, ptrdiff_t ldc, int beta, void *work,
                         size_t work_bytes)
{
    const ptrdiff_t span = u1 - u0, per_gate = (span + FR_NR - 1) / FR_NR;
    void *own = NULL;
    if (M <= 0 || span <= 0)
        return 0;
    if (K <= 0) {
        if (!beta)
            for (ptrdiff_t r = 0; r < M; r++)
                for (ptrdiff_t g = 0; g < gates; g++)
                    for (ptrdiff_t j = u0; j < u1; j++)
                        C[r * ldc + g * H + j] = 0;
        return 0;
    }
    if (FR_NAME(gemm_work)(M, gates * span, K, gates) > work_bytes) {  /* a caller's slip: never overrun */
        work = own = malloc(FR_NAME(gemm_work)(M, gates * span, K, gates));
        if (!own)
            return -1;
    }
    /* few rows of op(A) against op(B) = B with rows that alias: shorter blocks (see FR_LAZY_KC) */
    const ptrdiff_t ldb_bytes = ldb * (ptrdiff_t)sizeof(REAL);
    const int short_kc = M <= FR_LAZY_M && !bt && ldb_bytes % FR_ALIAS_BYTES == 0 && ldb_bytes <= FR_LAZY_KC_STRIDE;
    const ptrdiff_t kc_max = short_kc && FR_LAZY_KC < FR_NAME(gemm_kc)(at) ? FR_LAZY_KC : FR_NAME(gemm_kc)(at);
    const ptrdiff_t KC = K < kc_max ? K : kc_max;
    const ptrdiff_t mc_max = FR_NAME(gemm_mc)(KC);
    /* blocks of op(A)'s rows as even as mc_max allows: 512 rows were a block of 510 and one of 2, which
     * streamed every panel of op(B) through L1 once more for two rows of work */
    const ptrdiff_t mblocks = (M + mc_max - 1) / mc_max;
    const ptrdiff_t MC = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
    const ptrdiff_t npanels = gates * per_gate;
    /* Few rows in one row block (at most FR_LAZY_M): each group of panels of op(B) (FR_LAZY_GROUP_BYTES) is
     * packed right before the tiles that read it, into one slot, and read while it is still in L2; packing
     * the whole K block first (KC rows of every column: 2 MiB in float64 at 1024 columns, L2's size) had the
     * tiles read it back from L3.  Measured (a panel at a time), one thread, B in huge pages: (25, 256) x
     * (256, 2048) float64 0.72 -> 0.52 ms, (64, 512) x (512, 4096) 4.78 -> 3.97, float32 2.56 -> 2.20, (100,
     * 512) x (512, 1536) float32 1.14 -> 0.98; at 256-512 rows 0.94-1.04x (the panel is read by enough tiles
     * to pay its trip).  Groups rather than single panels: see FR_LAZY_GROUP_BYTES. */
    const int lazy = mblocks == 1 && M <= FR_LAZY_M;
    const ptrdiff_t lazy_fit = FR_LAZY_GROUP_BYTES / (KC * FR_NR * (ptrdiff_t)sizeof(REAL));
    const ptrdiff_t lazy_group = lazy_fit > 1 ? lazy_fit : 1;  /* panels packed at a time when lazy */
    /* Few rows (a single step, a sampled word): every panel of op(B) is read by a few row blocks only,
     * so packing it costs more than it saves: full panels are read in place.  Up to FR_DIRECT_M rows, and
     * beyond one row block only while the rows of op(B) lie at most FR_DIRECT_STRIDE bytes apart: KC rows
     * 16 KiB apart fall on a sixteenth of L2's sets, so a panel is evicted before the next row block
     * reads it again.  Measured, 2 threads, float32: lstm_step_forward (N, D, H) = (64, 512, 1024) took
     * 5.7 ms with its products read in place up to 64 rows, 3.9 ms packed (OpenBLAS: 3.9); the product
     * (25, 1024) x (1024, 4096) 1.79 ms in place, 1.54 packed; with rows 8 KiB apart (H = 512) reading
     * in place stays as fast or faster. */
    const int direct = !bt && M <= FR_DIRECT_M && (M <= MR || ldb * (ptrdiff_t)sizeof(REAL) <= FR_DIRECT_STRIDE);
    /* at = 0, A's rows a multiple of FR_COPY_A_STRIDE bytes apart and more than FR_COPY_A_PANELS panels of
     * op(B): each block of op(A) is copied, row by row, to rows copy_ld(kc) REALs apart (see FR_COPY_A_STRIDE) */
    const int copy_a = !at && !direct && gates * per_gate > FR_COPY_A_PANELS
                       && (lda * (ptrdiff_t)sizeof(REAL)) % FR_COPY_A_STRIDE == 0;
    /* op(B) of at most NR/2 columns and A row-major: row blocks of 2 MR rows through the narrow micro-kernel
     * (tile_n), which multiplies only the panel's first NR/2 columns.  Measured (fr_product, alternating
     * processes, 2 threads, float32 on AVX-512, NR/2 = 32): a step's dA Wx^T and dA Wh^T at N = 25, which
     * product.h computes transposed (op(B) = dA^T, 25 columns), 0.58-0.62x the time; steps at N = 25,
     * forward + backward, 0.78-0.83x (rnn, lstm, gru; 1 and 2 threads; cython and numba).  float64's
     * panels are 32 wide, so N = 25 stays with tile_m there; N = 10 (tiny) 0.96-1.01x. */
    const int narrow = !at && gates * span <= FR_NR / 2;
    /* One block of few rows of op(B) (K <= FR_ROWWISE_MAX_K) into a C of FR_ROWWISE_MIN_BYTES or more
     * (a step's weight gradients, X^T dA and Hprev^T dA): C is walked row block by row block over chunks
     * of panels (see there), not panel by panel */
    const int rowwise = !lazy && !direct && !narrow && K <= FR_ROWWISE_MAX_K
                        && M * gates * span * (ptrdiff_t)sizeof(REAL) >= FR_ROWWISE_MIN_BYTES;
    REAL *Ab = (REAL *)(((uintptr_t)work + 63) & ~(uintptr_t)63);  /* op(A)'s block: copy_ld(KC) >= KC */
    REAL *Bb = Ab + ((MC * FR_NAME(copy_ld)(KC) + 15) & ~(ptrdiff_t)15);
    const REAL *arow[FR_GEMM_KC];  /* at = 1: the stored rows of A of this block, A0's or A's */
    for (ptrdiff_t k0 = 0; k0 < K; k0 += KC) {
        const ptrdiff_t kc = K - k0 < KC ? K - k0 : KC;
        const int load = beta || k0 > 0;
        for (ptrdiff_t k = 0; at && k < kc; k++) {
            const ptrdiff_t kk = k0 + k;
            arow[k] = !A0 ? A + kk * lda : kk % period ? A + (kk - 1) * lda : A0 + kk / period * lda;
        }
        /* op(B)[k0:k0+kc, :] into panels: panel j at Bb + j*kc*NR, kc rows of NR -- all of them here, or
         * (lazy) a group at a time right before its tiles, into one slot (panel jp at jp % lazy_group) */
        if (!lazy)
            FR_NAME(gemm_panels)(kc, 0, npanels, per_gate, span, H, u0, B, ldb, bt, k0, direct, Bb);
        for (ptrdiff_t m0 = 0; m0 < M; m0 += MC) {
            const ptrdiff_t mc = M - m0 < MC ? M - m0 : MC;
            const ptrdiff_t nb = (mc + MR - 1) / MR;
            /* op(A)[m0:m0+mc, k0:k0+kc] into micro-panels of MR rows: panel i, k-major, at Ab + i*kc*MR.
             * A row-major (at = 0) is read in place instead: the micro-kernel broadcasts from MR rows that
             * each stream forward, which the hardware prefetches as well as a packed panel, and the copy
             * (a transposition, scalar stores) cost up to a fifth of the product when N is small (dX).
             * Rows FR_COPY_A_STRIDE bytes apart are copied first (row copies, not a transposition), where
             * enough panels read the copy (FR_COPY_A_PANELS). */
            const ptrdiff_t lda_c = FR_NAME(copy_ld)(kc);
            for (ptrdiff_t r = 0; copy_a && r < mc; r++)
                memcpy(Ab + r * lda_c, A + (m0 + r) * lda + k0, kc * sizeof(REAL));
            for (ptrdiff_t ib = 0; at && ib < nb; ib++) {
                const ptrdiff_t r0 = ib * MR, rows = mc - r0 < MR ? mc - r0 : MR;
                REAL *dst = Ab + ib * kc * MR;
                if (rows == MR) {  /* a fixed-size copy: vector moves, not MR scalar ones */
                    for (ptrdiff_t k = 0; k < kc; k++)
                        memcpy(dst + k * MR, arow[k] + m0 + r0, MR * sizeof(REAL));
                    continue;
                }
                for (ptrdiff_t k = 0; k < kc; k++) {
                    const REAL *src = arow[k] + m0 + r0;
                    for (ptrdiff_t r = 0; r < rows; r++)
                        dst[k * MR + r] = src[r];
                    for (ptrdiff_t r = rows; r < MR; r++)
                        dst[k * MR + r] = 0;
                }
            }
            if (rowwise) {
                /* panel by panel, every row of a tile writes NR columns of C, each row in a page of
                 * its own (C's rows are 16-32 KiB apart), and the next panel comes back to the same
                 * pages only after all mc rows: the TLB and L1's sets lose them in between.  Here the
                 * panels of a chunk (FR_ROWWISE_CHUNK_BYTES: they stay in L2) pass under one row
                 * block at a time, so each row of C is written as one run */
                const ptrdiff_t fit = FR_ROWWISE_CHUNK_BYTES / (kc * FR_NR * (ptrdiff_t)sizeof(REAL));
                const ptrdiff_t chunk = fit > 0 ? fit : 1;
                for (ptrdiff_t jc = 0; jc < npanels; jc += chunk) {
                    const ptrdiff_t je = npanels - jc < chunk ? npanels : jc + chunk;
                    for (ptrdiff_t ib = 0, r0 = 0, m; ib < nb; ib++, r0 += m) {
                        m = FR_NAME(tile_rows)(at, mc, nb, ib, r0);
                        const REAL *At = at ? Ab + ib * kc * MR : copy_a ? Ab + r0 * lda_c : A + (m0 + r0) * lda + k0;
                        const ptrdiff_t ldt = at ? MR : copy_a ? lda_c : lda;
                        for (ptrdiff_t jp = jc; jp < je; jp++) {
                            ptrdiff_t width;
                            const ptrdiff_t j0 = FR_NAME(panel_columns)(jp, per_gate, span, H, u0, &width);
                            FR_NAME(gemm_tile)((int)m, at, kc, At, ldt, Bb + jp * kc * FR_NR, FR_NR, width,
                                               C + (m0 + r0) * ldc + j0, ldc, load);
                        }
                    }
                }
                continue;
            }
            for (ptrdiff_t jp = 0; jp < npanels; jp++) {
                ptrdiff_t width;
                const ptrdiff_t j0 = FR_NAME(panel_columns)(jp, per_gate, span, H, u0, &width);
                const int in_place = direct && width == FR_NR;
                REAL *panel = Bb + (lazy ? jp % lazy_group : jp) * kc * FR_NR;
                if (lazy && jp % lazy_group == 0)
                    FR_NAME(gemm_panels)(kc, jp, npanels - jp < lazy_group ? npanels : jp + lazy_group, per_gate, span,
                                         H, u0, B, ldb, bt, k0, direct, Bb);
                const REAL *Bp = in_place ? B + k0 * ldb + j0 : panel;
                const ptrdiff_t ldbp = in_place ? ldb : FR_NR;
                if (narrow) {  /* width <= NR/2: packed, never read in place */
                    FR_NAME(gemm_narrow)(mc, kc, copy_a ? Ab : A + m0 * lda + k0, copy_a ? lda_c : lda, Bp, ldbp,
                                         width, C + m0 * ldc + j0, ldc, load);
                    continue;
                }
                for (ptrdiff_t ib = 0, r0 = 0, m; ib < nb; ib++, r0 += m) {
                    m = FR_NAME(tile_rows)(at, mc, nb, ib, r0);
                    const REAL *At = at ? Ab + ib * kc * MR : copy_a ? Ab + r0 * lda_c : A + (m0 + r0) * lda + k0;
                    const ptrdiff_t ldt = at ? MR : copy_a ? lda_c : lda;
                    FR_NAME(gemm_tile)((int)m, at, kc, At, ldt, Bp, ldbp, width, C + (m0 + r0) * ldc + j0, ldc, load);
                }
            }
        }
    }
    free(own);
    return 0;
}

/* Packs B for mm: panels (ub, g) for ub in [ub0, ub1).  trans = 0: B is K x (gates*H), row-major with
 * row stride ldb, and panel (ub, g) row k is B[k, g*H + ub*NR + (0:NR)].  trans = 1: the packed matrix
 * is B^T where B is (gates*H) x K row-major (row stride ldb): row k of panel (ub, g) holds
 * B[g*H + ub*NR + j, k] for j in 0:NR -- Wh packed as Wh^T for backpropagation through time. */
static void FR_NAME(pack)(ptrdiff_t K, ptrdiff_t H, ptrdiff_t gates, const REAL *B, ptrdiff_t ldb, int trans,
                          REAL *P, ptrdiff_t ub0, ptrdiff_t ub1)
{
    for (ptrdiff_t ub = ub0; ub < ub1; ub++) {
        const ptrdiff_t width = H - ub * FR_NR < FR_NR ? H - ub * FR_NR : FR_NR;
        for (ptrdiff_t g = 0; g < gates; g++)
            FR_NAME(gemm_panel)(K, width, B, ldb, trans, 0, g * H + ub * FR_NR, P + (ub * gates + g) * K * FR_NR);
    }
}

#undef FR_NR
