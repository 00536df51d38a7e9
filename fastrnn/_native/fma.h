/* The FMA limit: how many floating-point operations the cores retire when they do nothing but
 * multiply-adds from registers -- the ceiling no product can pass, against which `fastrnn bench` also
 * shows its measured peak (the libraries' large GEMMs), since a BLAS's GEMM need not reach it.
 *
 * How it is measured: every thread of a team job runs `iters` rounds of 12-16 independent vector
 * multiply-adds, acc = acc * m + a, with the vectors, instructions and ISA selection of the
 * packed kernels (packed.h's fr_impl: AVX-512, AVX2+FMA, or the portable 16-byte vectors, whose
 * multiply and add count as the two operations of one multiply-add).  The chains are enough to cover
 * the latency of every FMA unit of current x86 cores (4-5 cycles, two units: 8-10 in flight), and few
 * enough to stay in registers (16 with AVX-512's 32 registers, 12 with the 16 of AVX2 and SSE).
 * m < 1, so every chain settles at a / (1 - m): no overflow, no subnormals, no slow paths.
 * The threads meet at a barrier before and after their loops; the time between is the job's.
 */
#ifndef FASTRNN_FMA_H
#define FASTRNN_FMA_H

#include <stdint.h>
#include <string.h>

#include "packed.h"
#include "team.h"

#define FR_FMA_M 0.9990234375 /* 1 - 2^-10 */
#define FR_FMA_A 0.0009765625 /* 2^-10: each chain tends to 1 */

/* FR_FMA_FN(name, REAL, VEC, CHAINS, SET1, FMA) defines double name(int64_t iters, int64_t *flops_per_iter):
 * iters rounds of CHAINS multiply-adds of VECs; returns the sum of the chains' lanes, sets the FLOPs a round. */
#define FR_FMA_FN(NAME, REAL, VEC, CHAINS, SET1, FMA)                                                 \
    static __attribute__((noinline)) double NAME(int64_t iters, int64_t *flops_per_iter)             \
    {                                                                                                 \
        VEC acc[CHAINS];                                                                              \
        const VEC m = SET1((REAL)FR_FMA_M), a = SET1((REAL)FR_FMA_A);                                 \
        _Pragma("GCC unroll 16") for (int i = 0; i < CHAINS; i++) acc[i] = SET1((REAL)i / CHAINS);     \
        for (int64_t it = 0; it < iters; it++) {                                                      \
            _Pragma("GCC unroll 16") for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], m, a);     \
        }                                                                                             \
        REAL lanes[sizeof(VEC) / sizeof(REAL)];                                                       \
        double sum = 0;                                                                               \
        for (int i = 0; i < CHAINS; i++) {                                                            \
            memcpy(lanes, &acc[i], sizeof lanes);                                                     \
            for (size_t j = 0; j < sizeof(VEC) / sizeof(REAL); j++)                                   \
                sum += lanes[j];                                                                      \
        }                                                                                             \
        *flops_per_iter = 2 * CHAINS * (int64_t)(sizeof(VEC) / sizeof(REAL));                         \
        return sum;                                                                                   \
    }

#define FR_GEN_SET1_F(x) ((fr_v4sf){0, 0, 0, 0} + (x))
#define FR_GEN_SET1_D(x) ((fr_v2df){0, 0} + (x))
#define FR_GEN_FMA(x, y, z) ((x) * (y) + (z))
FR_FMA_FN(fr_fma_gen_f, float, fr_v4sf, 12, FR_GEN_SET1_F, FR_GEN_FMA)
FR_FMA_FN(fr_fma_gen_d, double, fr_v2df, 12, FR_GEN_SET1_D, FR_GEN_FMA)

#ifdef FR_HAVE_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
FR_FMA_FN(fr_fma_avx2_f, float, __m256, 12, _mm256_set1_ps, _mm256_fmadd_ps)
FR_FMA_FN(fr_fma_avx2_d, double, __m256d, 12, _mm256_set1_pd, _mm256_fmadd_pd)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
FR_FMA_FN(fr_fma_avx512_f, float, __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps)
FR_FMA_FN(fr_fma_avx512_d, double, __m512d, 16, _mm512_set1_pd, _mm512_fmadd_pd)
#pragma GCC pop_options
#endif

/* The loop of the selected ISA for float (dbl = 0) or double. */
static double fr_fma_loop(int dbl, int64_t iters, int64_t *flops_per_iter)
{
#ifdef FR_HAVE_X86
    if (!strcmp(fr_impl.isa, "avx512"))
        return dbl ? fr_fma_avx512_d(iters, flops_per_iter) : fr_fma_avx512_f(iters, flops_per_iter);
    if (!strcmp(fr_impl.isa, "avx2"))
        return dbl ? fr_fma_avx2_d(iters, flops_per_iter) : fr_fma_avx2_f(iters, flops_per_iter);
#endif
    return dbl ? fr_fma_gen_d(iters, flops_per_iter) : fr_fma_gen_f(iters, flops_per_iter);
}

typedef struct {
    int dbl;
    int64_t iters;
    int64_t flops_per_iter;
    int64_t t0, t1;                 /* CLOCK_MONOTONIC ns, taken by tid 0 at the two barriers */
    double sink[FR_TEAM_MAX];       /* each thread's chains, summed (keeps the loops' results live) */
} fr_fma_job;

static void fr_fma_task(void *arg, void *sync, int64_t tid, int64_t nth)
{
    fr_fma_job *job = (fr_fma_job *)arg;
    int64_t per_iter = 0;
    (void)nth;
    fr_sync(sync);
    if (tid == 0)
        job->t0 = fr_now_ns();
    job->sink[tid] = fr_fma_loop(job->dbl, job->iters, &per_iter);
    fr_sync(sync);
    if (tid == 0) {
        job->t1 = fr_now_ns();
        job->flops_per_iter = per_iter;
    }
}

/* Runs the loops on up to nth threads; returns the threads they ran on, with the job's seconds and its
 * floating-point operations (every thread's) in *seconds and *flops. */
static int64_t fr_fma_run(int dbl, int64_t iters, int64_t nth, double *seconds, double *flops)
{
    fr_fma_job job;
    memset(&job, 0, sizeof job);
    job.dbl = dbl;
    job.iters = iters;
    const int64_t ran = fr_team_run(fr_fma_task, &job, nth);
    *seconds = (double)(job.t1 - job.t0) * 1e-9;
    *flops = (double)ran * (double)iters * (double)job.flops_per_iter;
    return ran;
}

#endif
