/* Resident weights: matrices packed once into mm's panels and kept for a loop of single steps and affine
 * layers (CaptioningRNN.sample and beam_search: a step, then the vocabulary projection, word after word,
 * always by the same Wx, Wh and W_vocab).
 *
 * Why: outside a sequence pass every product packs its weights again (product.h: each thread packs its
 * share of op(B)) or BLAS does.  At a sampled word's shapes the packing costs 150-300 us per product, as
 * much as a third of the product (measured, one thread, float32, (100, 512) x (512, 2048): OpenBLAS
 * 1415 us, packed per call 1327, packed once 1004; the word's three products at N = 100: 2.70 ms on
 * OpenBLAS, 2.04 packed once, torch.mm 2.15).
 *
 * How it wins its speed: fr_resident_add() packs a row-major K x N matrix B into panels of NR columns
 * (fr_pack, gates = 1) and records it for the calling thread; while it is recorded, every product
 * C (+)= A B that reaches fr_resident_product() with that B (same address, row stride, K, N and dtype, A
 * not transposed) streams the panels through fr_mm: no packing, no work buffer, for any number of rows
 * and on one thread too.  The columns are split between the threads of the team by whole panels, as
 * many threads as product.h would use (fr_product_threads), within BLAS's limit.  fr_product tries it
 * first, so the products of both backends' steps find it; both backends' affine layers call
 * fr_resident_product_s/d themselves.
 * fr_resident_remove() frees the panels.
 *
 * Measured (CaptioningRNN.sample, 16 words, alternating processes, time with / without; one thread, two):
 * float32 N = 100: GRU 0.75-0.76 / 0.85-0.91, LSTM 0.81-0.86 / 0.82-0.88; N = 25: 0.59-0.78 / 0.59-0.78;
 * float64 N = 100: 0.82-0.86 / 0.43-0.55 (there the dgemm's spinning threads took the team's core).
 *
 * The record is per thread (the thread that runs the loop; the team's workers get the panels through
 * the job): another thread calling the same layers meanwhile packs as before.  The caller promises
 * that B does not change while it is recorded (fastrnn._native.resident: the models' own loops, which
 * only read their weights).
 */
#ifndef FASTRNN_RESIDENT_H
#define FASTRNN_RESIDENT_H

#include <stdatomic.h>

#include "packed.h"
#include "pool.h"
#include "product.h"
#include "team.h"

#define FR_RESIDENT_MAX 8 /* matrices one thread can hold resident at once */

typedef struct {
    const void *B;
    ptrdiff_t ldb, K, N;
    int dbl, refs;
    void *P;  /* the panels: ceil(N / NR) x K x NR REALs */
    size_t bytes;
} fr_resident_entry;

static _Thread_local fr_resident_entry fr_resident[FR_RESIDENT_MAX];
static _Thread_local int fr_resident_n;
static atomic_ullong fr_resident_hits; /* products served from resident panels, every thread */

static fr_resident_entry *fr_resident_find(int dbl, const void *B, ptrdiff_t ldb, ptrdiff_t K, ptrdiff_t N)
{
    for (int i = 0; i < fr_resident_n; i++) {
        fr_resident_entry *e = &fr_resident[i];
        if (e->B == B && (e->ldb == ldb || K == 1) && e->K == K && e->N == N && e->dbl == dbl)  /* one row: any stride */
            return e;
    }
    return NULL;
}

/* Packs B (K x N, row-major, row stride ldb >= N) and records it for this thread (a second call for the
 * same matrix counts a reference).  Returns 0, or -1: FR_RESIDENT_MAX matrices already, or no memory. */
static int fr_resident_add(int dbl, const void *B, ptrdiff_t ldb, ptrdiff_t K, ptrdiff_t N)
{
    fr_resident_entry *e = fr_resident_find(dbl, B, ldb, K, N);
    if (e) {
        e->refs++;
        return 0;
    }
    if (fr_resident_n == FR_RESIDENT_MAX || K < 1 || N < 1)
        return -1;
    const ptrdiff_t nr = dbl ? fr_impl.nr_d : fr_impl.nr_s, panels = (N + nr - 1) / nr;
    const size_t bytes = (size_t)panels * (size_t)K * (size_t)nr * (dbl ? sizeof(double) : sizeof(float));
    void *P = fr_pool_malloc(NULL, bytes);
    if (!P)
        return -1;
    if (dbl)
        fr_pack_d(K, N, 1, (const double *)B, ldb, 0, (double *)P, 0, panels);
    else
        fr_pack_s(K, N, 1, (const float *)B, ldb, 0, (float *)P, 0, panels);
    e = &fr_resident[fr_resident_n++];
    e->B = B, e->ldb = ldb, e->K = K, e->N = N, e->dbl = dbl, e->refs = 1, e->P = P, e->bytes = bytes;
    return 0;
}

/* Drops one reference to B's record (this thread's); the last frees its panels.  Returns 0, or -1 when
 * B is not recorded. */
static int fr_resident_remove(int dbl, const void *B, ptrdiff_t ldb, ptrdiff_t K, ptrdiff_t N)
{
    fr_resident_entry *e = fr_resident_find(dbl, B, ldb, K, N);
    if (!e)
        return -1;
    if (--e->refs > 0)
        return 0;
    fr_pool_free(NULL, e->P, e->bytes);
    *e = fr_resident[--fr_resident_n];
    return 0;
}

typedef struct {
    ptrdiff_t M, K, N, lda, ldc, panels, nr;
    int beta, dbl;
    const void *A, *P, *bias;
    void *C;
} fr_resident_job;

static void fr_resident_task(void *arg, void *sync, int64_t tid, int64_t nth)
{
    const fr_resident_job *j = (const fr_resident_job *)arg;
    const ptrdiff_t ub0 = j->panels * tid / nth, ub1 = j->panels * (tid + 1) / nth;
    (void)sync;
    if (ub1 <= ub0)
        return;
    if (j->bias) {  /* this thread's columns of every row of C start as the bias */
        const ptrdiff_t c0 = ub0 * j->nr, c1 = ub1 * j->nr < j->N ? ub1 * j->nr : j->N;
        const size_t item = j->dbl ? sizeof(double) : sizeof(float);
        for (ptrdiff_t i = 0; i < j->M; i++)
            memcpy((char *)j->C + ((size_t)(i * j->ldc + c0)) * item, (const char *)j->bias + (size_t)c0 * item,
                   (size_t)(c1 - c0) * item);
    }
    if (j->dbl)
        fr_mm_d(j->M, j->K, (const double *)j->A, j->lda, (const double *)j->P, j->N, 1, ub0, ub1, (double *)j->C,
                j->ldc, j->beta || j->bias, 0, -1);
    else
        fr_mm_s(j->M, j->K, (const float *)j->A, j->lda, (const float *)j->P, j->N, 1, ub0, ub1, (float *)j->C,
                j->ldc, j->beta || j->bias, 0, -1);
}

/* C (M x N, row-major, row stride ldc) = A B (beta 0) or += it (beta 1), or = A B + the row vector bias
 * when bias is not NULL (beta ignored), A (M x K) row-major (row stride lda), when B is resident on this
 * thread; at, bt as fr_product's.  Returns 0, or -1 (C untouched) when B is not resident for this product
 * (not recorded, or either operand transposed).  Threads: fr_product_threads's, at most one per panel. */
static int fr_resident_product(int dbl, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const void *A, ptrdiff_t lda,
                               int at, const void *B, ptrdiff_t ldb, int bt, void *C, ptrdiff_t ldc, int beta,
                               const void *bias)
{
    const fr_resident_entry *e;
    fr_resident_job j;
    if (fr_resident_n == 0 || at || bt || M < 1 || !(e = fr_resident_find(dbl, B, ldb, K, N)))
        return -1;
    j.M = M, j.K = K, j.N = N, j.lda = lda, j.ldc = ldc, j.nr = dbl ? fr_impl.nr_d : fr_impl.nr_s;
    j.panels = (N + j.nr - 1) / j.nr;
    j.beta = beta != 0, j.dbl = dbl, j.A = A, j.P = e->P, j.bias = bias, j.C = C;
    int64_t nth = fr_product_threads(dbl, M, N, K);
    if (nth > j.panels)
        nth = j.panels;
    if (nth <= 1)
        fr_resident_task(&j, NULL, 0, 1);
    else
        fr_team_run(fr_resident_task, &j, nth);
    atomic_fetch_add_explicit(&fr_resident_hits, 1, memory_order_relaxed);
    return 0;
}

static int fr_resident_product_s(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, int at,
                                 const float *B, ptrdiff_t ldb, int bt, float *C, ptrdiff_t ldc, int beta,
                                 const float *bias)
{
    return fr_resident_product(0, M, N, K, A, lda, at, B, ldb, bt, C, ldc, beta, bias);
}

static int fr_resident_product_d(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda, int at,
                                 const double *B, ptrdiff_t ldb, int bt, double *C, ptrdiff_t ldc, int beta,
                                 const double *bias)
{
    return fr_resident_product(1, M, N, K, A, lda, at, B, ldb, bt, C, ldc, beta, bias);
}

#endif
