/* Pointwise kernels of the Cython backend (fastrnn/_cython/_kernels.pyx calls them between products:
 * BLAS calls, or on the team a slab's packed products, fastrnn/_native/packed.h).
 *
 * How they win their speed: every loop is branch-free and written so that gcc -O3 vectorizes it, and is
 * compiled three times (target_clones: AVX-512, AVX2+FMA, baseline SSE2) with the best one picked at load
 * time, so the binary runs on any x86-64 and still uses the wide units where they exist.  tanh, the
 * sigmoid and exp are evaluated inline with a range-reduced polynomial (below) instead of scalar libm
 * calls: about 0.4 ns (float32) and 1 ns (float64) per element with AVX-512 here, against 20-40 ns for
 * libm's tanhf/tanh.  A whole LSTM step (five activations, cell update, stores of everything backward
 * needs) is one pass over the gate buffer.  The cells' passes prefetch the rows they reach next (see
 * fr_prefetch_span).
 *
 * Accuracy: tanh/exp are within 2 ulp of the correctly rounded value over the whole range (measured
 * against NumPy), NaN and +-inf propagate as IEEE (no -ffast-math; see setup.py for the flags).
 *
 * Layout conventions: every matrix argument is (pointer, leading dimension) in elements, rows
 * contiguous.  A leading dimension of 0 repeats one row for every n (used for rows of zeros).
 */
#ifndef FASTRNN_POINTWISE_H
#define FASTRNN_POINTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__linux__)
#define FR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FR_CLONES
#endif

/* Every helper the cloned loops call is forced inline: a helper gcc chose not to inline would be compiled
 * once, for the baseline ISA, and the AVX-512 clone would call SSE2 code (measured: a 3x slower LSTM
 * pass when gcc's heuristics declined in a test harness). */
#if defined(__GNUC__)
#define FR_INLINE static inline __attribute__((always_inline))
#else
#define FR_INLINE static inline
#endif

/* ---------------------------------------------------------------------------------------- math
 * expm1 on a reduced argument: y = k ln2 + r, |r| <= ln2/2; returns expm1(r) (Taylor, enough terms for
 * the precision) and sets *scale = 2^k, built directly in the exponent bits.  Then
 * exp(y) = scale (1 + p) and expm1(y) = scale p + (scale - 1), exact enough for k >= 0.
 * Callers keep y within [-87, 20] (float) / [-708, 40] (double), or NaN: the result is then NaN.
 * k is rounded with the 1.5 * 2^23 (2^52) trick, whose low bits then hold k.
 */
FR_INLINE float fr_expm1_red_f(float y, float *scale)
{
    float t = y * 0x1.715476p+0f + 0x1.8p23f;
    float k = t - 0x1.8p23f;
    float r = y - k * 0x1.62e4p-1f; /* ln2 split in two: k * hi is exact */
    r = r - k * 0x1.7f7d1cp-20f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * (r * r) + r;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    memcpy(scale, &bits, sizeof bits);
    return p;
}

FR_INLINE double fr_expm1_red_d(double y, double *scale)
{
    double t = y * 0x1.71547652b82fep+0 + 0x1.8p52;
    double k = t - 0x1.8p52;
    double r = y - k * 0x1.62e42fefa38p-1;
    r = r - k * 0x1.ef35793c7673p-45;
    double p = 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * (r * r) + r;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ull + 1023ull) << 52;
    memcpy(scale, &bits, sizeof bits);
    return p;
}

/* tanh(x) = sign(x) em / (em + 2), em = expm1(2|x|); |x| is clamped where tanh rounds to 1 (NaN stays). */
FR_INLINE float fr_tanh_f(float x)
{
    float y = 2.0f * fabsf(x), s;
    y = (y > 20.0f) ? 20.0f : y;
    float em = fr_expm1_red_f(y, &s);
    em = s * em + (s - 1.0f);
    return copysignf(em / (em + 2.0f), x);
}

FR_INLINE double fr_tanh_d(double x)
{
    double y = 2.0 * fabs(x), s;
    y = (y > 40.0) ? 40.0 : y;
    double em = fr_expm1_red_d(y, &s);
    em = s * em + (s - 1.0);
    return copysign(em / (em + 2.0), x);
}

/* exp(z) for z <= 0 (or NaN); flushes to exactly 0 where the result would be subnormal
 * (z < ln(FLT_MIN) = -87.34, ln(DBL_MIN) = -708.40), an absolute error below the smallest normal. */
FR_INLINE float fr_expneg_f(float z)
{
    float zc = (z < -87.33f) ? -87.33f : z, s;
    float p = fr_expm1_red_f(zc, &s);
    float e = s * p + s;
    return (z < -87.33f) ? 0.0f : e;
}

FR_INLINE double fr_expneg_d(double z)
{
    double zc = (z < -708.39) ? -708.39 : z, s;
    double p = fr_expm1_red_d(zc, &s);
    double e = s * p + s;
    return (z < -708.39) ? 0.0 : e;
}

/* The gates' sigmoid: 0.5 + 0.5 tanh(x/2) -- one tanh, no extra division.  Its absolute error is a few
 * ulp of 1 (not of a tiny result), well inside the tolerances; the public sigmoid() below is the
 * relative-accurate one. */
FR_INLINE float fr_gate_f(float x) { return 0.5f * fr_tanh_f(0.5f * x) + 0.5f; }
FR_INLINE double fr_gate_d(double x) { return 0.5 * fr_tanh_d(0.5 * x) + 0.5; }

/* Stable logistic function: with z = exp(-|x|) <= 1, 1/(1+z) for x >= 0 and z/(1+z) otherwise. */
FR_INLINE float fr_sigmoid_f(float x)
{
    float z = fr_expneg_f(-fabsf(x));
    return ((x >= 0.0f) ? 1.0f : z) / (1.0f + z);
}

FR_INLINE double fr_sigmoid_d(double x)
{
    double z = fr_expneg_d(-fabs(x));
    return ((x >= 0.0) ? 1.0 : z) / (1.0 + z);
}

/* ---------------------------------------------------------------------------------------- loops
 * pointwise_template.h is instantiated once per float type. */
/* Software prefetch of the lines of `bytes` bytes from p, rw 0 to read, 1 to write.  The cells' passes
 * fetch their rows FR_PF_ROWS ahead of the row they are at: a slab's run of units in a row of the
 * step's arrays is a few lines, and the next row's lie a row of every step (batch-major) or of 4H
 * (gates) further, in another page, where the hardware prefetchers do not follow.  What the step's
 * product just wrote (the gates) is in cache; what the forward left for the backward (gates, tanh(c),
 * states) and the rows about to be written (c, h, dA, which cost a read for ownership) are not.
 * A single step's call is different: its forward ran just before and its dA lies in this thread's
 * scratch, which the team's other thread read in the step's last products.  There the prefetches, the
 * one for writing dA above all, only cost time, so rnn_bwd, lstm_fwd and lstm_bwd take far = 0 from the
 * step kernels (1 from the sequences).  Measured (cython, 2 threads, N = 100, H = 512, a loop of steps,
 * alternating processes): rnn_step_backward float64 1.39-1.46 -> 1.21-1.25 ms (without dA's prefetch
 * alone: 1.23; the Numba step, which has none: 1.18-1.23); the bench's step workloads, fwd+bwd:
 * rnn_step 0.90x the time (medium, both dtypes), 0.93x (small float32), lstm_step 0.97-1.00x.  Skipping
 * the prefetch wherever rows are contiguous, the sequences' too, cost them up to 2 % (float32 LSTM and
 * GRU, medium, one thread), so the sequences keep theirs. */
#ifndef FR_PF_ROWS
#define FR_PF_ROWS 8
#endif
FR_INLINE void fr_prefetch_span(const void *p, size_t bytes, int rw)
{
    const uintptr_t first = (uintptr_t)p & ~(uintptr_t)63, last = ((uintptr_t)p + bytes - 1) & ~(uintptr_t)63;
    for (uintptr_t a = first; a <= last; a += 64) {
        if (rw)
            __builtin_prefetch((const void *)a, 1, 3);
        else
            __builtin_prefetch((const void *)a, 0, 3);
    }
}

#define FR_CAT_(a, b) a##b
#define FR_CAT(a, b) FR_CAT_(a, b)

#define REAL float
#define FR_SFX _f
#include "pointwise_template.h"
#undef REAL
#undef FR_SFX

#define REAL double
#define FR_SFX _d
#include "pointwise_template.h"
#undef REAL
#undef FR_SFX

#endif
