/* Packed-panel matrix products for the sequence layers, with run-time ISA dispatch.
 *
 * How it wins its speed: a recurrent layer multiplies by the same weights (Wh forward, Wh^T backward)
 * at every time step, with few rows (N = 10..100).  BLAS re-packs the whole weight matrix into its
 * internal layout on every call, which at these shapes costs as much as the arithmetic.  Here the
 * weights are packed once per layer call into panels of NR columns (packed_template.h) and every step
 * (mm) streams them through a register-tiled micro-kernel: an MR x NR tile of C in registers (AVX-512:
 * 6 x 4 vectors, 24 of the 32 registers), per k one vector load of the panel per column block and one
 * broadcast per row, all fused multiply-adds (2 MR x NR/2, as many registers, where op(B) is that
 * narrow).  The panel is walked in blocks of FR_KC_BYTES so it stays in L1 while every row block of A
 * passes over it (larger blocks, streamed from L2, where mm walks by
 * block rows: see mm), and meanwhile the block after it is prefetched into
 * L2 (the first row block would otherwise wait for it from L2 or L3).  The products used once per call
 * (input projection, dX, dWx, dWh) run through the same micro-kernel blocked like a BLAS (gemm:
 * GotoBLAS's packing of both operands), so a layer never calls BLAS and never wakes BLAS's threads.
 * Both take their columns as a slab of units of every gate block, the share of one thread of the team
 * (team.h).
 *
 * The same source is compiled for AVX-512, AVX2+FMA and a portable 16-byte-vector version; fr_init()
 * picks the best the CPU (and OS) support, or the one FASTRNN_ISA names ("avx512", "avx2", "generic"),
 * which the tests use to check every version on one machine.  The packed layout depends on NR, so
 * pack and multiply always use the same selection.
 */
#ifndef FASTRNN_PACKED_H
#define FASTRNN_PACKED_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FR_KC_BYTES (32 * 1024) /* bytes of a panel block kept in L1 (48 KiB on current x86 cores) ... */
#define FR_KC_ROWS_BYTES (128 * 1024) /* ... or, when mm walks by block rows, streamed from L2 (see mm) */
#ifndef FR_KC_L2_M
#define FR_KC_L2_M 48 /* ... and panel by panel too when A has at least this many rows (see mm) */
#endif
/* Rows of op(B) per block in gemm (its panels then stream from L2): FR_GEMM_KC when op(A) is packed (A^T),
 * or as many as span FR_GEMM_KC_ROW_BYTES of a row of op(A) when the micro-kernel reads op(A) in place
 * (A row-major): MR rows that each stream forward, and longer streams keep the hardware prefetcher
 * ahead.  Measured (one thread, builds interleaved in one process): float32 with 512 rows rather than
 * 256, 0.91-0.97x the time on dX-shaped products ((1600 x 2048) x (2048 x 256) and the large sizes'),
 * the large sizes' input projections and 2048^3; 128 rows 1.12-1.14x; float64 (256 rows already 2 KiB)
 * unchanged with 512 then (measured again on 2026-12-05: those products alone 0.92-0.97x, but whole layers
 * within +-1 % and the small float64 LSTM 1.02x, so 256 stay: BENCHMARKS.md); with A^T packed, 512 rows were
 * 1.02-1.06x (dWx, dWh), so 256 stay. */
#ifndef FR_GEMM_KC
#define FR_GEMM_KC 256
#endif
#define FR_GEMM_KC_ROW_BYTES 2048
/* mm prefetches the panels of packed weights above this: half of L2 on this project's Xeon (the rest holds
 * h, the gates and the tiles of a step), all of it on Zen 4.  Above 2 MiB only, the float32 GRU's r/z
 * block (2 MiB) and the float64 RNN's weights (2 MiB) took 1.02-1.06x the forward time; prefetching
 * weights of 256-768 KiB, which stay in L2, measured about 1 % slower. */
#define FR_PREFETCH_MIN_BYTES (1024 * 1024)
/* ... and the first block of the caller's next call (mm's next_ub) above this, all of this Xeon's L2: the RNN's
 * float64 weights at H = 512 (2 MiB), which stay in L2 walked back and forth, took 1.01-1.02x the forward
 * time at N = 100 with it (one and two threads); see mm for what it gains on larger weights. */
#define FR_PREFETCH_NEXT_MIN_BYTES (2 * 1024 * 1024)
#ifndef FR_BY_ROWS_MIN_BYTES
#define FR_BY_ROWS_MIN_BYTES (512 * 1024) /* mm walks by block rows only an A of this many bytes or more */
#endif
#define FR_MC_BYTES (512 * 1024) /* bytes of the packed block of op(A) kept in L2 in gemm */
/* gemm reads a row-major op(A) in place, except when its rows lie a multiple of this many bytes apart:
 * L2 (2048 sets of 64-byte lines on this project's Xeon and on Zen 4) maps such rows to 1/8 or fewer of its
 * sets, so a block of FR_MC_BYTES does not stay there while the panels of op(B) pass over it, and is read
 * from L3 again for every panel.  Then each block is first copied to rows an odd number of lines apart.
 * Measured (one thread, gemm builds interleaved in one process, float64): dX = dA Wx^T of the LSTMs,
 * (4096 x 4096) x (4096 x 512) 0.85x the time, (4096 x 2048) x (2048 x 512) 0.94x, (1600 x 2048) x (2048 x
 * 256) 0.90x; rows 8 or 24 KiB apart gained nothing (0.99-1.00x) and the copy cost 2-5 % where they are
 * 4 KiB apart (the input projections); float32, whose micro-kernel reads half as many bytes of A per
 * FLOP, 0.99-1.01x at 16 KiB. */
#define FR_COPY_A_STRIDE (16 * 1024)
/* ... and only when more than this many panels of op(B) read each copied block: the copy reads the block
 * from L3 once, where without it each panel does, so with few panels it costs more than it saves.  Measured
 * (one thread, the two versions alternated in one process, rows 16 or 32 KiB apart): a step's dA Wh^T and
 * dA Wx^T, which product.h computes transposed (op(A) = the weights, op(B) = dA^T of N columns), (512-1024,
 * 4096) x (4096, 25-64) float32 0.66-0.78x the time without the copy, float64 0.67x at 25 columns and 0.85x
 * at 64 (2 panels); 4 panels 0.95-0.96x, 8 panels 0.96-1.00x, 10-12 panels float64 1.04-1.12x. */
#define FR_COPY_A_PANELS 8
#ifndef FR_DIRECT_M
#define FR_DIRECT_M 32             /* gemm reads op(B) in place (unpacked) for at most this many rows ... */
#endif
#define FR_DIRECT_STRIDE 8192      /* ... and, beyond one row block, rows of op(B) at most these bytes apart */
#define FR_LAZY_M 128              /* gemm packs each panel of op(B) right before use up to these many rows */
/* ... and, with op(B) = B row-major and its rows a multiple of FR_ALIAS_BYTES apart (at most
 * FR_LAZY_KC_STRIDE), in blocks of FR_LAZY_KC rows of op(B), not 256-512.  Such rows share L1's sets
 * (12 rows of a 256-byte panel row fill a set's ways) and a sixteenth or less of L2's, so a long block of
 * a panel was evicted before the few row blocks of A had all passed over it, and read again from L3 by
 * each.  Measured, products as the steps make them (fr_product, alternating processes, 2 threads; a
 * step's columns split between them), float32: (25, 512) x (512, 2048) 0.75x the time, (64, 512-1024) x
 * (512-1024, 1024-4096) 0.88-0.97x, (100, 256-512) x (256-512, 2048) 0.92-0.94x; float64 (25, 256-512) x
 * (256-512, 2048) 0.86-0.88x, (100, 512) x (512, 512-2048) 0.93-0.96x; one thread, (25, 512) x (512, 2048)
 * float32 0.65-0.77x, float64 0.88x.  Given to rows 2 or 6 KiB apart too (H = 512 float32 RNN and GRU),
 * the short blocks gained nothing there and lost up to 27 % ((25, 512) x (512, 1536), 2 threads); rows
 * 32 KiB apart lost 13 % ((64, 1024) x (1024, 4096) float64, C harness). */
#ifndef FR_LAZY_KC
#define FR_LAZY_KC 128
#endif
#define FR_LAZY_KC_STRIDE (16 * 1024)
/* gemm walks C row block by row block over chunks of panels (see there) for a C of FR_ROWWISE_MIN_BYTES or
 * more from at most FR_ROWWISE_MAX_K rows of op(B): a single step's weight gradients, X^T dA and H^T dA with
 * K = N.  Measured (one thread, fr_gemm alternated between builds in one process; time, row blocks / panel by
 * panel): (1024, 64) x (64, 4096) float64 0.59-0.63 (9.4 ms against 15.2: NumPy's OpenBLAS 9.3, torch's MKL
 * 12.1), float32 0.56-0.61; (512, 64) x (64, 4096) float64 0.64-0.74; (1024, 100) x (100, 2048) float64
 * 0.74-0.82; (512, 64) x (64, 2048) float64, op(A) = A, 0.68; C of 2 MiB 0.91-0.97.  The bench's step
 * workloads, forward + backward (alternating processes, both backends): the large steps 0.81-0.94x the time
 * with 2 threads and 0.81-0.95x with one (the float64 LSTM's 1.00x with one); the medium float32 LSTM step
 * with 2 threads, whose dWh is 2 MiB a thread, took 1.04x with the line at 2 MiB, so it is at 4.  K = 256
 * (the input projections of D = 256) measured within +-2 %, so those stay panel by panel. */
#ifndef FR_ROWWISE_MAX_K
#define FR_ROWWISE_MAX_K 128 /* at most this many rows of op(B) ... */
#endif
#ifndef FR_ROWWISE_MIN_BYTES
#define FR_ROWWISE_MIN_BYTES (4 * 1024 * 1024) /* ... into a C of at least this many bytes ... */
#endif
#define FR_ROWWISE_CHUNK_BYTES (512 * 1024) /* ... by chunks of panels of this many bytes */
#define FR_ALIAS_BYTES 4096 /* a way of L1 (64 sets of 64 bytes: this Xeon's, Zen 4's) */
/* gemm packs op(B) = B (row-major) by groups of FR_PACK_KB rows across several panels (gemm_panels), and a
 * product of few rows (lazy, FR_LAZY_M) FR_LAZY_GROUP_BYTES of panels at a time, not one: a panel alone is
 * NR columns (256 bytes) of each of kc rows of B far apart, a page each, which the hardware prefetcher does not
 * follow; a group reads 1-2 KiB runs of each row.  Measured (fr_gemm, one thread, builds alternated in one
 * process): a large step's h Wh, (64, 1024) x (1024, 4096), float32 0.87-0.92x the time, float64 0.92-0.99x;
 * the bench's lstm_step large forward (alternating processes) float32 0.89x (one thread) / 0.93x (two),
 * float64 0.96x; the small and medium steps 1.00x.  Groups of 1 MiB: float32 0.91x; 16 rows: as 8.  Prefetching
 * the next group's rows into L2 while packing gained nothing (the packing waits on memory either way). */
#ifndef FR_PACK_KB
#define FR_PACK_KB 8
#endif
#ifndef FR_LAZY_GROUP_BYTES
#define FR_LAZY_GROUP_BYTES (256 * 1024)
#endif

/* ------------------------------------------------------------------------------------ portable */
#define FR_CAT_(a, b) a##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#define FR_PRAGMA_(x) _Pragma(#x)
#define FR_PRAGMA(x) FR_PRAGMA_(x) /* a pragma whose arguments are macros, expanded first */
#define FR_IDX_float int32_t   /* shuffle indices: integers as wide as the REALs they pick */
#define FR_IDX_double int64_t

typedef float fr_v4sf __attribute__((vector_size(16)));
typedef double fr_v2df __attribute__((vector_size(16)));

static inline fr_v4sf fr_load_v4sf(const float *p) { fr_v4sf v; memcpy(&v, p, sizeof v); return v; }
static inline void fr_store_v4sf(float *p, fr_v4sf v) { memcpy(p, &v, sizeof v); }
static inline fr_v2df fr_load_v2df(const double *p) { fr_v2df v; memcpy(&v, p, sizeof v); return v; }
static inline void fr_store_v2df(double *p, fr_v2df v) { memcpy(p, &v, sizeof v); }

#define FR_NAME(x) FR_CAT(fr_gen_f_, x)
#define REAL float
#define VEC fr_v4sf
#define VLEN 4
#define NV 2
#define MR 4
#define V_LOAD(p) fr_load_v4sf(p)
#define V_STORE(p, v) fr_store_v4sf(p, v)
#define V_SET1(x) ((fr_v4sf){0, 0, 0, 0} + (float)(x))
#define V_ZERO() ((fr_v4sf){0, 0, 0, 0})
#define V_FMA(a, b, c) ((a) * (b) + (c))
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO

#define FR_NAME(x) FR_CAT(fr_gen_d_, x)
#define REAL double
#define VEC fr_v2df
#define VLEN 2
#define V_LOAD(p) fr_load_v2df(p)
#define V_STORE(p, v) fr_store_v2df(p, v)
#define V_SET1(x) ((fr_v2df){0, 0} + (double)(x))
#define V_ZERO() ((fr_v2df){0, 0})
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef NV
#undef MR
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO
#undef V_FMA

/* ------------------------------------------------------------------------------------ x86-64 */
#if defined(__x86_64__) && defined(__GNUC__)
#define FR_HAVE_X86 1
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define NV 2
#define MR 6
#define V_FMA(a, b, c) FR_CAT(FR_FMA_, REAL)(a, b, c)
#define FR_FMA_float _mm256_fmadd_ps
#define FR_FMA_double _mm256_fmadd_pd

#define FR_NAME(x) FR_CAT(fr_avx2_f_, x)
#define REAL float
#define VEC __m256
#define VLEN 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ZERO() _mm256_setzero_ps()
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO

#define FR_NAME(x) FR_CAT(fr_avx2_d_, x)
#define REAL double
#define VEC __m256d
#define VLEN 4
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_STORE(p, v) _mm256_storeu_pd(p, v)
#define V_SET1(x) _mm256_set1_pd(x)
#define V_ZERO() _mm256_setzero_pd()
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO
#undef NV
#undef MR
#undef V_FMA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define NV 4
#define MR 6
/* The k loop unrolled twice: the step products 1-9 % faster alone (float32 and float64, forward and
 * BPTT shapes, one thread, two builds sharing one packed copy, order alternated; unrolled 4 or 8
 * times, as fast or slower), the once-per-call products 0-4 %.
 * (AVX2 with 16 registers: within +-4 %, so not there.) */
#define KUNROLL 2
#define V_FMA(a, b, c) FR_CAT(FR_FMA512_, REAL)(a, b, c)
#define FR_FMA512_float _mm512_fmadd_ps
#define FR_FMA512_double _mm512_fmadd_pd

#define FR_NAME(x) FR_CAT(fr_avx512_f_, x)
#define REAL float
#define VEC __m512
#define VLEN 16
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ZERO() _mm512_setzero_ps()
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO

#define FR_NAME(x) FR_CAT(fr_avx512_d_, x)
#define REAL double
#define VEC __m512d
#define VLEN 8
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_STORE(p, v) _mm512_storeu_pd(p, v)
#define V_SET1(x) _mm512_set1_pd(x)
#define V_ZERO() _mm512_setzero_pd()
#include "packed_template.h"
#undef FR_NAME
#undef REAL
#undef VEC
#undef VLEN
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO
#undef NV
#undef MR
#undef KUNROLL
#undef V_FMA
#pragma GCC pop_options
#endif

/* ------------------------------------------------------------------------------------ dispatch */
typedef void (*fr_mm_s_t)(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *,
                          ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *, ptrdiff_t, int, int,
                          ptrdiff_t);
typedef void (*fr_mm_d_t)(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t, const double *,
                          ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double *, ptrdiff_t, int, int,
                          ptrdiff_t);
typedef int (*fr_gemm_s_t)(ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, int, const float *, ptrdiff_t,
                           const float *, ptrdiff_t, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *,
                           ptrdiff_t, int, void *, size_t);
typedef int (*fr_gemm_d_t)(ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t, int, const double *, ptrdiff_t,
                           const double *, ptrdiff_t, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double *,
                           ptrdiff_t, int, void *, size_t);
typedef size_t (*fr_gemm_work_t)(ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t);
typedef void (*fr_pack_s_t)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, int, float *, ptrdiff_t,
                            ptrdiff_t);
typedef void (*fr_pack_d_t)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t, int, double *, ptrdiff_t,
                            ptrdiff_t);

static struct {
    const char *isa;
    int64_t nr_s, nr_d;
    fr_mm_s_t mm_s;
    fr_mm_d_t mm_d;
    fr_gemm_s_t gemm_s;
    fr_gemm_d_t gemm_d;
    fr_gemm_work_t gemm_work_s, gemm_work_d;
    fr_pack_s_t pack_s;
    fr_pack_d_t pack_d;
} fr_impl = {"generic", 8, 4, fr_gen_f_mm, fr_gen_d_mm, fr_gen_f_gemm, fr_gen_d_gemm,
              fr_gen_f_gemm_work, fr_gen_d_gemm_work, fr_gen_f_pack, fr_gen_d_pack};

/* Picks the version (see the top of this file); returns its name. */
static const char *fr_init(void)
{
    const char *want = getenv("FASTRNN_ISA");
    int any = !want || !*want;
#ifdef FR_HAVE_X86
    __builtin_cpu_init();
    if ((any || !strcmp(want, "avx512")) && __builtin_cpu_supports("avx512f")) {
        fr_impl.isa = "avx512";
        fr_impl.nr_s = 64, fr_impl.nr_d = 32;
        fr_impl.mm_s = fr_avx512_f_mm, fr_impl.mm_d = fr_avx512_d_mm;
        fr_impl.gemm_s = fr_avx512_f_gemm, fr_impl.gemm_d = fr_avx512_d_gemm;
        fr_impl.gemm_work_s = fr_avx512_f_gemm_work, fr_impl.gemm_work_d = fr_avx512_d_gemm_work;
        fr_impl.pack_s = fr_avx512_f_pack, fr_impl.pack_d = fr_avx512_d_pack;
        return fr_impl.isa;
    }
    if ((any || !strcmp(want, "avx2") || !strcmp(want, "avx512")) && __builtin_cpu_supports("avx2")
        && __builtin_cpu_supports("fma")) {
        fr_impl.isa = "avx2";
        fr_impl.nr_s = 16, fr_impl.nr_d = 8;
        fr_impl.mm_s = fr_avx2_f_mm, fr_impl.mm_d = fr_avx2_d_mm;
        fr_impl.gemm_s = fr_avx2_f_gemm, fr_impl.gemm_d = fr_avx2_d_gemm;
        fr_impl.gemm_work_s = fr_avx2_f_gemm_work, fr_impl.gemm_work_d = fr_avx2_d_gemm_work;
        fr_impl.pack_s = fr_avx2_f_pack, fr_impl.pack_d = fr_avx2_d_pack;
        return fr_impl.isa;
    }
#endif
    fr_impl.isa = "generic";
    fr_impl.nr_s = 8, fr_impl.nr_d = 4;
    fr_impl.mm_s = fr_gen_f_mm, fr_impl.mm_d = fr_gen_d_mm;
    fr_impl.gemm_s = fr_gen_f_gemm, fr_impl.gemm_d = fr_gen_d_gemm;
    fr_impl.gemm_work_s = fr_gen_f_gemm_work, fr_impl.gemm_work_d = fr_gen_d_gemm_work;
    fr_impl.pack_s = fr_gen_f_pack, fr_impl.pack_d = fr_gen_d_pack;
    return fr_impl.isa;
}

/* The exported entry points (the backends call these through their addresses). */
static void fr_mm_s(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda, const float *P, ptrdiff_t H,
                    ptrdiff_t gates, ptrdiff_t ub0, ptrdiff_t ub1, float *C, ptrdiff_t ldc, int beta,
                    int reverse, ptrdiff_t next_ub)
{
    fr_impl.mm_s(M, K, 0, K, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse, next_ub);
}

static void fr_mm_d(ptrdiff_t M, ptrdiff_t K, const double *A, ptrdiff_t lda, const double *P, ptrdiff_t H,
                    ptrdiff_t gates, ptrdiff_t ub0, ptrdiff_t ub1, double *C, ptrdiff_t ldc, int beta,
                    int reverse, ptrdiff_t next_ub)
{
    fr_impl.mm_d(M, K, 0, K, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse, next_ub);
}

/* The part of fr_mm_s/d's product over rows k_lo:k_hi of the panels (K rows each) and columns k_lo:k_hi of
 * A (A still points at column 0): a step's product split around the barrier, the rows of h_t (or dA_t)
 * this thread wrote itself first, the others' after the wait (see fr_sync_arrive in team.h). */
static void fr_mm_part_s(ptrdiff_t M, ptrdiff_t K, ptrdiff_t k_lo, ptrdiff_t k_hi, const float *A, ptrdiff_t lda,
                         const float *P, ptrdiff_t H, ptrdiff_t gates, ptrdiff_t ub0, ptrdiff_t ub1, float *C,
                         ptrdiff_t ldc, int beta, int reverse)
{
    fr_impl.mm_s(M, K, k_lo, k_hi, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse, -1);
}

static void fr_mm_part_d(ptrdiff_t M, ptrdiff_t K, ptrdiff_t k_lo, ptrdiff_t k_hi, const double *A, ptrdiff_t lda,
                         const double *P, ptrdiff_t H, ptrdiff_t gates, ptrdiff_t ub0, ptrdiff_t ub1, double *C,
                         ptrdiff_t ldc, int beta, int reverse)
{
    fr_impl.mm_d(M, K, k_lo, k_hi, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse, -1);
}

static int fr_gemm_s(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda, int at, const float *B, ptrdiff_t ldb,
                     int bt, ptrdiff_t H, ptrdiff_t gates, ptrdiff_t u0, ptrdiff_t u1, float *C, ptrdiff_t ldc,
                     int beta, void *work, size_t work_bytes)
{
    return fr_impl.gemm_s(M, K, A, lda, at, NULL, 1, B, ldb, bt, H, gates, u0, u1, C, ldc, beta, work, work_bytes);
}

static int fr_gemm_d(ptrdiff_t M, ptrdiff_t K, const double *A, ptrdiff_t lda, int at, const double *B,
                     ptrdiff_t ldb, int bt, ptrdiff_t H, ptrdiff_t gates, ptrdiff_t u0, ptrdiff_t u1, double *C,
                     ptrdiff_t ldc, int beta, void *work, size_t work_bytes)
{
    return fr_impl.gemm_d(M, K, A, lda, at, NULL, 1, B, ldb, bt, H, gates, u0, u1, C, ldc, beta, work, work_bytes);
}

/* C[0:M, cols] (+)= Hprev^T B[:, cols] as fr_gemm_s/d with at = 1, bt = 0, where Hprev (K x M, K = N*T
 * rows of a batch-major sequence of `period` = T steps) is read where it lies: its row n*T is h0's row n,
 * its row n*T + t (t > 0) h's row n*T + t - 1 (see gemm's A0).  The Numba backend's dWh: its h is
 * batch-major (N, T, H), so the states each step started from are not one matrix; copying them took
 * 3-4 % of an RNN's or a GRU's backward. */
static int fr_gemm_prev_s(ptrdiff_t M, ptrdiff_t K, const float *h, const float *h0, ptrdiff_t lda,
                          ptrdiff_t period, const float *B, ptrdiff_t ldb, ptrdiff_t H, ptrdiff_t gates,
                          ptrdiff_t u0, ptrdiff_t u1, float *C, ptrdiff_t ldc, int beta, void *work,
                          size_t work_bytes)
{
    return fr_impl.gemm_s(M, K, h, lda, 1, h0, period, B, ldb, 0, H, gates, u0, u1, C, ldc, beta, work, work_bytes);
}

static int fr_gemm_prev_d(ptrdiff_t M, ptrdiff_t K, const double *h, const double *h0, ptrdiff_t lda,
                          ptrdiff_t period, const double *B, ptrdiff_t ldb, ptrdiff_t H, ptrdiff_t gates,
                          ptrdiff_t u0, ptrdiff_t u1, double *C, ptrdiff_t ldc, int beta, void *work,
                          size_t work_bytes)
{
    return fr_impl.gemm_d(M, K, h, lda, 1, h0, period, B, ldb, 0, H, gates, u0, u1, C, ldc, beta, work, work_bytes);
}

/* Bytes of work buffer fr_gemm_s/d need for M rows, N columns in at most `blocks` gate blocks, K. */
static size_t fr_gemm_work_s(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, ptrdiff_t blocks)
{
    return fr_impl.gemm_work_s(M, N, K, blocks);
}
static size_t fr_gemm_work_d(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, ptrdiff_t blocks)
{
    return fr_impl.gemm_work_d(M, N, K, blocks);
}

static void fr_pack_s(ptrdiff_t K, ptrdiff_t H, ptrdiff_t gates, const float *B, ptrdiff_t ldb, int trans,
                      float *P, ptrdiff_t ub0, ptrdiff_t ub1)
{
    fr_impl.pack_s(K, H, gates, B, ldb, trans, P, ub0, ub1);
}

static void fr_pack_d(ptrdiff_t K, ptrdiff_t H, ptrdiff_t gates, const double *B, ptrdiff_t ldb, int trans,
                      double *P, ptrdiff_t ub0, ptrdiff_t ub1)
{
    fr_impl.pack_d(K, H, gates, B, ldb, trans, P, ub0, ub1);
}

#endif
