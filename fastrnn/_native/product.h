/* One general product as a job of the team: the single-step layers' products (x Wx, h Wh, their
 * gradients), called where a layer outside a sequence pass would otherwise call a multi-threaded BLAS.
 *
 * Why: OpenBLAS's idle threads spin for ~0.1 s after a call.  A loop that alternates a BLAS product
 * with a team job -- CaptioningRNN.sample: a step, then the vocabulary projection, word after word --
 * gave every team job a core that a spinning BLAS thread held (measured, 2 threads, sampling 30 words
 * with an LSTM at N = 100: 70-80 ms so, 52-63 ms with every product on the team, 86-94 ms on the NumPy
 * oracle).  On the team, every product of such a loop uses one pool.  Both dtypes: float64 too since
 * its few-row products got fast (packed.h's gemm packs each panel right before use), measured against
 * the steps on OpenBLAS's dgemm, alternating processes, 2 threads: forward + backward 0.73-0.93x the
 * time (rnn, lstm, gru; N = 25, 100, 64), forwards 0.80-0.96x.  A step whose forward products went to
 * dgemm while its backward's ran here took 1.8-2.5x: BLAS's spinning threads held the team's core.
 *
 * How it wins its speed: the packed products of packed.h (op(B) read in place when op(A) has few rows,
 * see gemm), the columns split between the threads when op(A) has fewer rows than op(B) has columns
 * (each thread packs only its share of B; the common case: N rows against 4H columns), else the rows;
 * a product by B^T with few rows (a step's dA Wh^T, dA Wx^T) computed transposed, C^T = B op(A)^T: B is
 * then read in place, row by row, and only the small op(A) is packed, instead of transposing all of B
 * into panels (measured, 2 threads: (64, 4096) x (4096, 1024)^T 3.2-3.9 ms so, 1.7-1.9 ms transposed,
 * OpenBLAS 2.7-2.9; lstm_step (64, 512, 1024) forward+backward 0.71 of the time before);
 * work buffers from the array pool (pool.h), so a loop of steps maps no memory.  A thread per
 * FR_PRODUCT_MIN_FLOPS, or per FR_PRODUCT_MIN_BYTES of op(B) when that gives more (a product of a few
 * rows is bound by reading op(B): two cores read it faster), at most BLAS's limit (threadpoolctl's) when
 * fr_product_set_threads() has been given OpenBLAS's get_num_threads, else one.
 *
 * A product by weights packed once for a loop (resident.h) streams those panels instead, whatever the
 * thread count.
 *
 * With BLAS limited to one thread nothing spins, and the products run here all the same, on the caller:
 * until 2026-12-03 only the few-row ones did (op(A) of at most FR_DIRECT_M rows, the transposed ones above,
 * X^T dA of at most FR_DIRECT_M rows of X, whose C OpenBLAS first zeroes), OpenBLAS having measured as fast
 * at 64 and 100 rows; with packed.h's few-row blocking since then (FR_LAZY_KC, the narrow tile,
 * FR_COPY_A_PANELS) ours is the faster there too.  Measured (one thread, alternating processes), the
 * products as the steps make them at N = 100 and 64: float32 0.75-0.89x OpenBLAS's time, float64
 * 0.73-0.97x; steps forward + backward (cython): N = 100 0.83-0.86x (float32) and 0.83-0.92x (float64),
 * N = 64 0.81-0.89x and 0.90x (the RNN); numba at N = 100 0.80-0.84x; forwards alone 0.81-0.83x.  Except
 * the float64 weight gradients X^T dA whose C exceeds FR_PRODUCT_BLAS_C_BYTES: with caches flushed between
 * calls, as in a layer, ours took 1.03-1.26x OpenBLAS's time at (512-1024, 64) x (64, 3072-4096) (float32
 * 0.88-0.91x), and the large float64 LSTM and GRU steps 1.07-1.09x; left to OpenBLAS they take 0.99-1.02x.
 */
#ifndef FASTRNN_PRODUCT_H
#define FASTRNN_PRODUCT_H

#include "packed.h"
#include "pool.h"
#include "team.h"

/* A thread's share at least (flops) ...  3 MFLOP, not the affine layers' 4: the small RNN step's products are
 * 6.5 MFLOP (x Wx, dA Wx^T, x^T dA at N = 25, D = 256, H = 512), which ran on one thread so, while the other
 * core idled.  Measured with them split (2 threads, alternating processes with pauses between, cython and
 * numba, two pairs of processes): rnn_step small float32 forward 0.80-0.85x the time, forward + backward
 * 0.79-0.89x, float64 0.87-0.92x; the RNN's sampling loop at N = 25 0.88-0.90x; the LSTM and GRU steps and
 * the model, whose products were split already, within the noise. */
#define FR_PRODUCT_MIN_FLOPS 3.0e6
#define FR_PRODUCT_MIN_BYTES 524288 /* ... or of op(B)'s bytes, which bound a product of few rows */
#define FR_PRODUCT_SWAP_M 64 /* op(B) = B^T with at most this many rows of op(A): computed as C^T = B op(A)^T */
#define FR_PRODUCT_BLAS_C_BYTES (8.0 * 1024 * 1024) /* one thread: float64 X^T dA of a larger C stay with BLAS */

static int (*fr_product_blas_threads)(void) = NULL;

/* Sets the function that says how many threads BLAS may use (NULL: one). */
static void fr_product_set_threads(int (*get_num_threads)(void)) { fr_product_blas_threads = get_num_threads; }

/* The threads BLAS may use (1 when nobody said). */
static int64_t fr_product_limit(void) { return fr_product_blas_threads ? fr_product_blas_threads() : 1; }

/* The threads a product of M x N x K gets: one per FR_PRODUCT_MIN_FLOPS, or per FR_PRODUCT_MIN_BYTES of
 * op(B) when that gives more, within BLAS's limit and the team's size, at least one. */
static int64_t fr_product_threads(int dbl, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K)
{
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    const double bytes = (double)K * (double)N * (dbl ? 8.0 : 4.0);
    const double shares = flops / FR_PRODUCT_MIN_FLOPS > bytes / FR_PRODUCT_MIN_BYTES
                              ? flops / FR_PRODUCT_MIN_FLOPS : bytes / FR_PRODUCT_MIN_BYTES;
    int64_t nth = fr_product_limit();
    if (nth > (int64_t)shares)
        nth = (int64_t)shares;
    if (nth > FR_TEAM_MAX)
        nth = FR_TEAM_MAX;
    return nth < 1 ? 1 : nth;
}

/* resident.h (included after this file): the product by weights packed once, which fr_product tries first */
static int fr_resident_product(int dbl, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const void *A, ptrdiff_t lda,
                               int at, const void *B, ptrdiff_t ldb, int bt, void *C, ptrdiff_t ldc, int beta,
                               const void *bias);

typedef struct {
    ptrdiff_t M, N, K, lda, ldb, ldc;
    ptrdiff_t chunk;  /* swap: the rows of B a work buffer holds (a thread's planned share) */
    int at, bt, beta, dbl, by_rows, swap;
    const void *A, *B;
    void *C;
    void *work[FR_TEAM_MAX];
    size_t bytes;
    atomic_int failed;
} fr_product_job;

/* Thread tid's share: rows [a, e) of C (op(A) from its row a; A^T: from its column a), or gemm's
 * column slab [a, e). */
static void fr_product_task(void *arg, void *sync, int64_t tid, int64_t nth)
{
    fr_product_job *p = (fr_product_job *)arg;
    const ptrdiff_t n = p->by_rows ? p->M : p->N, a = n * tid / nth, e = n * (tid + 1) / nth;
    const ptrdiff_t rows = p->by_rows ? e - a : p->M;
    const ptrdiff_t a_off = p->by_rows ? (p->at ? a : a * p->lda) : 0, c_off = p->by_rows ? a * p->ldc : 0;
    const ptrdiff_t u0 = p->by_rows ? 0 : a, u1 = p->by_rows ? p->N : e;
    int status;
    (void)sync;
    if (e <= a)
        return;
    if (p->swap) {  /* C[:, a:e]^T = B[a:e, :] op(A)^T, chunk rows at a time into the end of the work buffer,
                     * then transposed into C (more than one chunk only when the team was busy and the
                     * caller runs every share) */
        const size_t item = p->dbl ? sizeof(double) : sizeof(float);
        const size_t gemm_bytes = p->bytes - (size_t)p->chunk * (size_t)p->M * item;
        char *T = (char *)p->work[tid] + gemm_bytes;
        for (ptrdiff_t c0 = a; c0 < e; c0 += p->chunk) {
            const ptrdiff_t c1 = e - c0 < p->chunk ? e : c0 + p->chunk;
            if (p->dbl)
                status = fr_gemm_d(c1 - c0, p->K, (const double *)p->B + c0 * p->ldb, p->ldb, 0, (const double *)p->A,
                                   p->lda, !p->at, p->M, 1, 0, p->M, (double *)T, p->M, 0, p->work[tid], gemm_bytes);
            else
                status = fr_gemm_s(c1 - c0, p->K, (const float *)p->B + c0 * p->ldb, p->ldb, 0, (const float *)p->A,
                                   p->lda, !p->at, p->M, 1, 0, p->M, (float *)T, p->M, 0, p->work[tid], gemm_bytes);
            if (status) {
                atomic_store(&p->failed, 1);
                return;
            }
            for (ptrdiff_t i = 0; i < p->M; i++) {
                if (p->dbl) {
                    double *c = (double *)p->C + i * p->ldc + c0;
                    const double *t = (const double *)T + i;
                    for (ptrdiff_t j = 0; j < c1 - c0; j++)
                        c[j] = (p->beta ? c[j] : 0) + t[j * p->M];
                } else {
                    float *c = (float *)p->C + i * p->ldc + c0;
                    const float *t = (const float *)T + i;
                    for (ptrdiff_t j = 0; j < c1 - c0; j++)
                        c[j] = (p->beta ? c[j] : 0) + t[j * p->M];
                }
            }
        }
        return;
    }
    if (p->dbl)
        status = fr_gemm_d(rows, p->K, (const double *)p->A + a_off, p->lda, p->at, (const double *)p->B, p->ldb,
                           p->bt, p->N, 1, u0, u1, (double *)p->C + c_off, p->ldc, p->beta, p->work[tid], p->bytes);
    else
        status = fr_gemm_s(rows, p->K, (const float *)p->A + a_off, p->lda, p->at, (const float *)p->B, p->ldb,
                           p->bt, p->N, 1, u0, u1, (float *)p->C + c_off, p->ldc, p->beta, p->work[tid], p->bytes);
    if (status)  /* only when the team was busy and the caller ran it all, with a malloc that failed */
        atomic_store(&p->failed, 1);
}

static int fr_product(int dbl, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const void *A, ptrdiff_t lda, int at,
                      const void *B, ptrdiff_t ldb, int bt, void *C, ptrdiff_t ldc, int beta)
{
    fr_product_job p;
    const int swap = bt && M <= FR_PRODUCT_SWAP_M && M < N;
    int64_t nth, i;
    if (fr_resident_product(dbl, M, N, K, A, lda, at, B, ldb, bt, C, ldc, beta, NULL) == 0)
        return 0;  /* B's panels were packed once for this loop (resident.h) */
    /* BLAS on one thread (nothing spins then): every product here, on the caller, but float64 weight
     * gradients of a large C (see the top of this file) */
    if (fr_product_limit() <= 1 && dbl && at && K > FR_DIRECT_M
        && (double)M * (double)N * sizeof(double) > FR_PRODUCT_BLAS_C_BYTES)
        return -1;
    nth = fr_product_threads(dbl, M, N, K);
    memset(&p, 0, sizeof p);
    p.M = M, p.N = N, p.K = K, p.lda = lda, p.ldb = ldb, p.ldc = ldc, p.at = at, p.bt = bt, p.beta = beta != 0;
    p.dbl = dbl, p.by_rows = M > N, p.A = A, p.B = B, p.C = C;
    p.swap = swap;
    if (p.swap) {  /* C^T = op(B)^T op(A)^T: B read in place as the left operand, op(A) (small) packed */
        p.chunk = (N + nth - 1) / nth;
        p.by_rows = 0;
        p.bytes = (dbl ? fr_gemm_work_d(p.chunk, M, K, 1) : fr_gemm_work_s(p.chunk, M, K, 1))
                  + (size_t)p.chunk * (size_t)M * (dbl ? sizeof(double) : sizeof(float));
    } else {
        const ptrdiff_t rows = p.by_rows ? (M + nth - 1) / nth : M, cols = p.by_rows ? N : (N + nth - 1) / nth;
        p.bytes = dbl ? fr_gemm_work_d(rows, cols, K, 1) : fr_gemm_work_s(rows, cols, K, 1);
    }
    for (i = 0; i < nth; i++)  /* every buffer first, so that a failure leaves C untouched */
        if (!(p.work[i] = fr_pool_malloc(NULL, p.bytes))) {
            while (i-- > 0)
                fr_pool_free(NULL, p.work[i], p.bytes);
            return -1;
        }
    if (nth == 1)
        fr_product_task(&p, NULL, 0, 1);
    else
        fr_team_run(fr_product_task, &p, nth);
    for (i = 0; i < FR_TEAM_MAX && p.work[i]; i++)
        fr_pool_free(NULL, p.work[i], p.bytes);
    return atomic_load(&p.failed) ? -1 : 0;
}

/* C (M x N, row-major, row stride ldc) = op(A) op(B) (beta 0) or += it (beta 1), op(A) and op(B) read
 * as fr_gemm (packed.h) reads them, on the team (on the caller when one thread is all BLAS may use).
 * Returns 0, or -1 when it leaves the product to the caller (BLAS), C untouched: one of the few it leaves to
 * BLAS on one thread (above), or no work buffer could be had. */
static int fr_product_s(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float *A, ptrdiff_t lda, int at,
                        const float *B, ptrdiff_t ldb, int bt, float *C, ptrdiff_t ldc, int beta)
{
    return fr_product(0, M, N, K, A, lda, at, B, ldb, bt, C, ldc, beta);
}

static int fr_product_d(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const double *A, ptrdiff_t lda, int at,
                        const double *B, ptrdiff_t ldb, int bt, double *C, ptrdiff_t ldc, int beta)
{
    return fr_product(1, M, N, K, A, lda, at, B, ldb, bt, C, ldc, beta);
}

#endif
