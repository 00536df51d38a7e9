# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: embedsignature=False, cpow=True
"""Compiled kernels of the Cython backend (the layer functions themselves; backend.py re-exports them).

How it wins its speed:
* one compiled call per public function: no Python in the loop over T, nothing allocated per step, and
  the whole computation runs with the GIL released;
* sgemm/dgemm called directly (column-major, so a row-major C = A B is computed as the column-major
  C^T = B^T A^T, see mm()): NumPy's bundled OpenBLAS when backend.py finds it, else
  scipy.linalg.cython_blas (see backend.py for why):
  - forward: the bias is written into the gate buffer and ONE GEMM adds the input projection of all T*N
    rows (beta = 1); per step one GEMM adds h_{t-1} Wh into that step's gates (beta = 1, no temporary)
    and one fused pointwise pass (pointwise.h) applies the activations and the cell update and stores
    what backward needs;
  - backward: per step one fused pointwise pass gives dA_t (and db, and the carried dc), then one GEMM
    dh_{t-1} = dA_t Wh^T; after the loop ONE GEMM each for dX = dA Wx^T, dWx = X^T dA, dWh = Hprev^T dA;
  - the GRU: n = tanh(x Wx_n + b_n + r (h Wh_n + bhn)) needs the recurrent product of its n block apart
    from the input part, so the per-step GEMM writes its own (N, 3H) buffer and the fused pass combines
    them; its dA_t is [dr, dz, dhn, dn] (N, 4H): columns [0, 3H) multiply Wh^T in the one per-step GEMM,
    and the input part [dr, dz], dn makes dX and dWx two GEMMs each (the same work as one); on the team
    (below) Wh is packed as its r, z blocks, whose products accumulate into the gates, and its n block;
* time-major (T, N, .) internal buffers: every step's slice (gates, h, c, dA) is one contiguous block,
  which the per-step GEMMs run measurably faster on than on the (N, T, .) rows strided by T*G (up to
  25% for the LSTM: power-of-two strides make the rows collide in cache); the user's batch-major x is
  transposed once on the way in and dx once on the way out (N*T*D copies, cheap next to the GEMMs), and
  the pointwise pass writes h straight into the batch-major output.  The h stack (h0, h_0 ... h_{T-2})
  is then a contiguous (T*N, H) matrix: the Hprev of the single dWh GEMM.  Except the RNN's, batch-major
  throughout as the Numba backend's: its step is the lightest, so the copies weighed most (x transposed
  and h copied took 5-9 % of its forward on the Intel Xeon), and its output h is its gate buffer; dWh
  reads Hprev from h0 and h where they lie (packed.h's fr_gemm_prev).

The sequence layers come in two forms with the same cache: cs231n's, and *_state, which also returns the
final state(s) and whose backward takes their gradients (dhT, dcT) and returns dc0; the optional inputs
(c0, dh, dhT, dcT) may be None, which the kernels read as a row of zeros with a leading dimension of 0.

Caches are flat tuples of contiguous arrays (fastrnn.layers may cast them all to float64 and call the
backward with float64 everything, so a backward works from its tuple alone, in either dtype):
  rnn:  (x, h0, Wx, Wh, h)            batch-major, as the Numba backend's (above: the RNN's exception)
  lstm: (xt, Wx, Wh, hs, c0, c, tc, A)  hs (T, N, H) the h stack, c0 (N, H) or None (zeros), c and
                                      tc = tanh(c) (T, N, H), A (T, N, 4H) the activated gates i, f, o, g
  gru:  (xt, Wx, Wh, hs, A, hn)       hs the h stack, A (T, N, 3H) the activated r, z, n, hn (T, N, H) =
                                      h_{t-1} Wh_n + bhn; gru_step is gru with T = 1
  rnn_step:  (x, prev_h, Wx, Wh, next_h)       lstm_step: (x, prev_h, prev_c, Wx, Wh, gates, tc)
  affine, temporal_affine: (x, w)              word_embedding: (x, V)

fastrnn.layers validates shapes, dtypes and word indices before calling here; the cheap structural
checks below (dtype, contiguity, shapes that must agree, 32-bit BLAS sizes, index range) keep every
memory access in bounds even when a function is called directly.
"""

cimport numpy as cnp
import numpy as np
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from fastrnn import _workspace

cnp.import_array()

ctypedef cnp.npy_intp intp

cdef extern from "pointwise.h" nogil:
    void fr_rnn_fwd_f(intp N, intp H, float *A, intp lda, const float *b, float *hs, intp lds)
    void fr_rnn_fwd_d(intp N, intp H, double *A, intp lda, const double *b, double *hs, intp lds)
    void fr_lstm_fwd_f(intp N, intp nu, intp gs, float *A, intp lda, const float *b, const float *cprev, intp ldcp,
                       float *c, intp ldc, float *tc, intp ldtc, float *h, intp ldh, float *hs, intp lds, int far)
    void fr_lstm_fwd_d(intp N, intp nu, intp gs, double *A, intp lda, const double *b, const double *cprev,
                       intp ldcp, double *c, intp ldc, double *tc, intp ldtc, double *h, intp ldh, double *hs,
                       intp lds, int far)
    void fr_rnn_bwd_f(intp N, intp H, const float *dh, intp lddh, const float *dhp, intp lddhp,
                      const float *h, intp ldh, float *dA, intp ldda, float *db, int far)
    void fr_rnn_bwd_d(intp N, intp H, const double *dh, intp lddh, const double *dhp, intp lddhp,
                      const double *h, intp ldh, double *dA, intp ldda, double *db, int far)
    void fr_lstm_bwd_f(intp N, intp nu, intp gs, const float *dh, intp lddh, const float *dhp, intp lddhp,
                       float *dc, intp lddc, const float *gates, intp ldg, const float *tc, intp ldtc,
                       const float *cprev, intp ldcp, float *dA, intp ldda, float *db, int far)
    void fr_lstm_bwd_d(intp N, intp nu, intp gs, const double *dh, intp lddh, const double *dhp, intp lddhp,
                       double *dc, intp lddc, const double *gates, intp ldg, const double *tc, intp ldtc,
                       const double *cprev, intp ldcp, double *dA, intp ldda, double *db, int far)
    void fr_gru_fwd_f(intp N, intp H, float *A, intp lda, const float *R, intp ldr, const float *bhn,
                      const float *hp, intp ldhp, float *hn, intp ldhn, float *h, intp ldh, float *hs, intp lds)
    void fr_gru_fwd_d(intp N, intp H, double *A, intp lda, const double *R, intp ldr, const double *bhn,
                      const double *hp, intp ldhp, double *hn, intp ldhn, double *h, intp ldh, double *hs, intp lds)
    void fr_gru_fwd_units_f(intp N, intp nu, intp gs, float *A, intp lda, const float *b, float *hn, intp ldhn,
                            const float *bhn, const float *hp, intp ldhp, float *h, intp ldh, float *hs, intp lds)
    void fr_gru_fwd_units_d(intp N, intp nu, intp gs, double *A, intp lda, const double *b, double *hn, intp ldhn,
                            const double *bhn, const double *hp, intp ldhp, double *h, intp ldh, double *hs,
                            intp lds)
    void fr_gru_bwd_f(intp N, intp nu, intp gs, const float *dh, intp lddh, float *dhc, intp lddhc,
                      const float *gates, intp ldg, const float *hn, intp ldhn, const float *hp, intp ldhp,
                      float *dA, intp ldda, float *db, float *dbhn)
    void fr_gru_bwd_d(intp N, intp nu, intp gs, const double *dh, intp lddh, double *dhc, intp lddhc,
                      const double *gates, intp ldg, const double *hn, intp ldhn, const double *hp, intp ldhp,
                      double *dA, intp ldda, double *db, double *dbhn)
    void fr_sigmoid_loop_f(intp n, const float *x, float *out)
    void fr_sigmoid_loop_d(intp n, const double *x, double *out)
    void fr_colsum_f(intp R, intp M, const float *A, intp lda, float *out)
    void fr_colsum_d(intp R, intp M, const double *A, intp lda, double *out)
    double fr_softmax_loss_f(intp R, intp V, const float *x, const intp *y, const float *mask,
                             float inv_n, float *dx)
    double fr_softmax_loss_d(intp R, intp V, const double *x, const intp *y, const double *mask,
                             double inv_n, double *dx)


# ------------------------------------------------------------------------------------------ helpers

# Which BLAS: SciPy's cython_blas (LP64: 32-bit integers) unless backend.py hands over the addresses of
# an ILP64 (64-bit integer) sgemm/dgemm -- NumPy's bundled OpenBLAS -- through set_ilp64_blas().
ctypedef void (*sgemm64_t)(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                           const float *, const float *, const int64_t *, const float *, const int64_t *,
                           const float *, float *, const int64_t *) noexcept nogil
ctypedef void (*dgemm64_t)(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                           const double *, const double *, const int64_t *, const double *, const int64_t *,
                           const double *, double *, const int64_t *) noexcept nogil
cdef sgemm64_t sgemm64 = NULL
cdef dgemm64_t dgemm64 = NULL


def set_ilp64_blas(size_t sgemm_address, size_t dgemm_address):
    """Calls the ILP64 sgemm/dgemm at these addresses from now on; (0, 0): SciPy's cython_blas again.

    The caller vouches for the addresses (backend.py takes them from a library NumPy has loaded and
    checks the results with blas_selftest())."""
    global sgemm64, dgemm64
    if sgemm_address and dgemm_address:
        sgemm64 = <sgemm64_t>sgemm_address
        dgemm64 = <dgemm64_t>dgemm_address
    else:
        sgemm64 = NULL
        dgemm64 = NULL


def blas_in_use():
    """"ilp64" (addresses from set_ilp64_blas) or "scipy.linalg.cython_blas"."""
    return "ilp64" if sgemm64 != NULL else "scipy.linalg.cython_blas"


cdef inline void gemm(bint ta, bint tb, intp m, intp n, intp k, const floating *A, intp lda,
                    const floating *B, intp ldb, floating beta, floating *C, intp ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) op(B) + beta C, op(X) = X^T when tX; as column-major C^T = op(B)^T op(A)^T.

    Every size was checked to fit a 32-bit int by the caller (blas_sizes), whichever BLAS is in use."""
    cdef const char *opa = b"T" if tb else b"N"
    cdef const char *opb = b"T" if ta else b"N"
    cdef floating one = 1
    cdef int M = <int>n, N = <int>m, K = <int>k, LDA = <int>ldb, LDB = <int>lda, LDC = <int>ldc
    cdef int64_t M8 = n, N8 = m, K8 = k, LDA8 = ldb, LDB8 = lda, LDC8 = ldc
    if floating is float:
        if sgemm64 != NULL:
            sgemm64(opa, opb, &M8, &N8, &K8, &one, B, &LDA8, A, &LDB8, &beta, C, &LDC8)
        else:
            sgemm(<char *>opa, <char *>opb, &M, &N, &K, &one, <float *>B, &LDA, <float *>A, &LDB, &beta, C, &LDC)
    else:
        if dgemm64 != NULL:
            dgemm64(opa, opb, &M8, &N8, &K8, &one, B, &LDA8, A, &LDB8, &beta, C, &LDC8)
        else:
            dgemm(<char *>opa, <char *>opb, &M, &N, &K, &one, <double *>B, &LDA, <double *>A, &LDB, &beta, C, &LDC)


# OpenBLAS runs a GEMM on one thread when m*n*k <= 65536 * GEMM_MULTITHREAD_THRESHOLD (4 by default),
# and on all its threads above.  Just above that line a GEMM takes ~10 us: a second thread saves little
# on an idle machine, and on a busy one the call waits for a worker that has no core -- measured here:
# the tiny LSTM went from 0.14 ms to 7 ms, 5x slower than the oracle, whose per-step GEMMs all stay
# below the line.  So GEMMs up to SMALL_GEMM are cut into pieces below the line (at most ~5 calls).
cdef double SERIAL_GEMM = 65536.0 * 4
cdef double SMALL_GEMM = 1048576.0

# Above the serial line, with fastrnn._native, a product runs on the team (product.h) instead of on BLAS's
# threads: a loop that alternates single steps with affine layers (CaptioningRNN.sample) then uses one
# pool of threads, not BLAS's spinning after every step while the team's affine job wants the core.
ctypedef int (*product_s_t)(intp M, intp N, intp K, const float *A, intp lda, int at, const float *B, intp ldb,
                            int bt, float *C, intp ldc, int beta) noexcept nogil
ctypedef int (*product_d_t)(intp M, intp N, intp K, const double *A, intp lda, int at, const double *B, intp ldb,
                            int bt, double *C, intp ldc, int beta) noexcept nogil
cdef product_s_t fr_product_s = NULL
cdef product_d_t fr_product_d = NULL

# A product by weights packed once for a loop (resident.h: fastrnn._native.resident, CaptioningRNN.sample):
# fr_product_s/d try it first; the affine layer's job asks it itself.
ctypedef int (*resident_s_t)(intp M, intp N, intp K, const float *A, intp lda, int at, const float *B, intp ldb,
                             int bt, float *C, intp ldc, int beta, const float *bias) noexcept nogil
ctypedef int (*resident_d_t)(intp M, intp N, intp K, const double *A, intp lda, int at, const double *B, intp ldb,
                             int bt, double *C, intp ldc, int beta, const double *bias) noexcept nogil
cdef resident_s_t fr_resident_s = NULL
cdef resident_d_t fr_resident_d = NULL


cdef inline int resident(intp m, intp n, intp k, const floating *A, intp lda, const floating *B, intp ldb,
                         floating *C, intp ldc, int beta, const floating *bias) noexcept nogil:
    """C (=, +=, = bias +) A B by B's resident panels: 0, or -1 (C untouched) when B is not resident."""
    if floating is float:
        if fr_resident_s != NULL:
            return fr_resident_s(m, n, k, A, lda, 0, B, ldb, 0, C, ldc, beta, bias)
    else:
        if fr_resident_d != NULL:
            return fr_resident_d(m, n, k, A, lda, 0, B, ldb, 0, C, ldc, beta, bias)
    return -1


cdef inline void big(bint ta, bint tb, intp m, intp n, intp k, const floating *A, intp lda,
                     const floating *B, intp ldb, floating beta, floating *C, intp ldc) noexcept nogil:
    """A product above the serial line: on the team when there is one (and beta is 0 or 1; by B's resident
    panels when B is resident), else BLAS -- which also takes the products product.h leaves to it."""
    cdef int failed = 1
    if beta == 0 or beta == 1:
        if floating is float:
            if fr_product_s != NULL:
                failed = fr_product_s(m, n, k, A, lda, ta, B, ldb, tb, C, ldc, <int>beta)
        elif fr_product_d != NULL:
            failed = fr_product_d(m, n, k, A, lda, ta, B, ldb, tb, C, ldc, <int>beta)
    if failed:  # C is untouched then
        gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)


cdef inline void mm(bint ta, bint tb, intp m, intp n, intp k, const floating *A, intp lda,
                    const floating *B, intp ldb, floating beta, floating *C, intp ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) op(B) + beta C (see gemm): above the serial line on the team when there
    is one (big), else small GEMMs in single-threaded pieces."""
    cdef double mnk = <double>m * <double>n * <double>k
    cdef intp i, step
    if mnk <= SERIAL_GEMM:
        gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)
    elif (fr_product_s != NULL if floating is float else fr_product_d != NULL) or mnk > SMALL_GEMM:
        big(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)
    elif m >= n and n * k <= SERIAL_GEMM:  # pieces of rows of C: rows of op(A)
        step = <intp>(SERIAL_GEMM // (n * k))
        i = 0
        while i < m:
            gemm(ta, tb, min(step, m - i), n, k, A + (i if ta else i * lda), lda, B, ldb, beta, C + i * ldc, ldc)
            i += step
    elif m * k <= SERIAL_GEMM:  # pieces of columns of C: columns of op(B)
        step = <intp>(SERIAL_GEMM // (m * k))
        i = 0
        while i < n:
            gemm(ta, tb, m, min(step, n - i), k, A, lda, B + (i * ldb if tb else i), ldb, beta, C + i, ldc)
            i += step
    else:
        gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)


def blas_selftest():
    """True when the BLAS in use computes a small product (all four transpose cases, both dtypes) right."""
    cdef float fa[6]
    cdef float fb[6]
    cdef float fc[4]
    cdef double da[6]
    cdef double db[6]
    cdef double dc[4]
    cdef int i, ta, tb
    # A (2, 3) = [[1, 2, 3], [4, 5, 6]], B (3, 2) = [[1, -1], [2, 0], [0, 3]]: A B = [[5, 8], [14, 14]]
    cdef double a_rows[6]
    cdef double a_cols[6]
    cdef double b_rows[6]
    cdef double b_cols[6]
    cdef double want[4]
    a_rows[:] = [1, 2, 3, 4, 5, 6]
    a_cols[:] = [1, 4, 2, 5, 3, 6]
    b_rows[:] = [1, -1, 2, 0, 0, 3]
    b_cols[:] = [1, 2, 0, -1, 0, 3]
    want[:] = [5, 8, 14, 14]
    for ta in range(2):
        for tb in range(2):
            for i in range(6):
                da[i] = a_cols[i] if ta else a_rows[i]
                db[i] = b_cols[i] if tb else b_rows[i]
                fa[i] = <float>da[i]
                fb[i] = <float>db[i]
            for i in range(4):
                fc[i] = 1
                dc[i] = 1
            mm(ta, tb, 2, 2, 3, fa, 2 if ta else 3, fb, 3 if tb else 2, <float>0.5, fc, 2)
            mm(ta, tb, 2, 2, 3, da, 2 if ta else 3, db, 3 if tb else 2, 0.5, dc, 2)
            for i in range(4):
                if fc[i] != want[i] + 0.5 or dc[i] != want[i] + 0.5:
                    return False
    return True


cdef inline void *P(cnp.ndarray a) noexcept nogil:
    """The data pointer of a (borrowed: a outlives the call)."""
    return cnp.PyArray_DATA(a)


cdef inline void swap01(intp A, intp B, intp D, const floating *src, floating *dst) noexcept nogil:
    """dst (B, A, D) = src (A, B, D) with its first two axes swapped: batch-major <-> time-major."""
    cdef intp i, j
    if A == 1 or B == 1:
        memcpy(dst, src, A * B * D * sizeof(floating))
        return
    for i in range(A):
        for j in range(B):
            memcpy(dst + (j * A + i) * D, src + (i * B + j) * D, D * sizeof(floating))


cdef inline void transpose(intp R, intp C, const floating *src, floating *dst) noexcept nogil:
    """dst (C, R) = src (R, C)^T, by 16 x 16 blocks so that both sides stay in cache."""
    cdef intp r0, c0, r, c, r1, c1
    for r0 in range(0, R, 16):
        r1 = min(r0 + 16, R)
        for c0 in range(0, C, 16):
            c1 = min(c0 + 16, C)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    dst[c * R + r] = src[r * C + c]


cdef inline void fill_rows(intp R, intp M, const floating *b, floating *out, intp ldo) noexcept nogil:
    """Every row of out (R, M) = b: how a bias is folded into a GEMM that then accumulates (beta = 1)."""
    cdef intp r
    for r in range(R):
        memcpy(out + r * ldo, b, M * sizeof(floating))


cdef object shape_of(a):
    """The Python shape tuple (for error messages; a typed ndarray's .shape is a C pointer)."""
    return (<object>a).shape


cdef inline int float_type(cnp.ndarray a) except -1:
    cdef int tn = cnp.PyArray_TYPE(a)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        raise TypeError(f"the Cython kernels take float32 or float64 arrays, got {a.dtype}")
    return tn


cdef inline int check(cnp.ndarray a, int tn, int ndim, intp d0=-1, intp d1=-1, intp d2=-1) except -1:
    """a has dtype tn, is C-contiguous and aligned, has ndim dims, none empty, and dims[K] == dK where dK >= 0."""
    cdef intp *dims
    cdef int k
    if cnp.PyArray_TYPE(a) != tn or not cnp.PyArray_ISCARRAY_RO(a) or cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(
            f"the Cython kernels take C-contiguous {cnp.PyArray_DescrFromType(tn)} arrays of {ndim} dimensions "
            f"that agree in shape (fastrnn.layers makes them so); got {a.dtype} {shape_of(a)}"
        )
    dims = cnp.PyArray_DIMS(a)
    for k in range(ndim):
        if dims[k] < 1:
            raise ValueError(f"array of shape {shape_of(a)}: the Cython kernels take no empty dimension")
    if ((d0 >= 0 and dims[0] != d0) or (ndim > 1 and d1 >= 0 and dims[1] != d1)
            or (ndim > 2 and d2 >= 0 and dims[2] != d2)):
        raise ValueError(f"array of shape {shape_of(a)} does not match the other arguments")
    return 0


cdef inline int check_index(cnp.ndarray a) except -1:
    if (not cnp.PyArray_ISINTEGER(a) or cnp.PyArray_ITEMSIZE(a) != sizeof(intp)
            or not cnp.PyArray_ISCARRAY_RO(a)):
        raise ValueError(f"word indices must be a C-contiguous np.intp array, got {a.dtype}")
    return 0


cdef inline int blas_sizes(intp a, intp b=1, intp c=1, intp d=1) except -1:
    if a > INT_MAX or b > INT_MAX or c > INT_MAX or d > INT_MAX:
        raise ValueError("arrays too large for BLAS with 32-bit integer sizes (scipy.linalg.cython_blas)")
    return 0


cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

# fastrnn._native's array pool (a NumPy memory handler, fastrnn/_native/pool.h), or None.  Arrays of at
# least POOLED bytes come from it: a training loop asks for the same sizes at every step, and the pool
# hands back blocks that are still mapped instead of faulting in fresh pages.
cdef object pool_handler = None
cdef size_t POOLED = 256 * 1024


def set_pool(handler):
    """Allocates the large arrays from this NumPy memory handler (a capsule); None: NumPy's default."""
    global pool_handler
    pool_handler = handler


cdef cnp.ndarray pooled_empty(int nd, intp *dims, int tn):
    """PyArray_EMPTY, from the array pool when the array is large and the pool is there."""
    cdef size_t n = 4 if tn == cnp.NPY_FLOAT32 else 8
    cdef int k
    for k in range(nd):
        n *= <size_t>dims[k]
    if pool_handler is None or n < POOLED:
        return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, tn, 0)
    previous = PyDataMem_SetHandler(pool_handler)
    try:
        return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, tn, 0)
    finally:
        PyDataMem_SetHandler(previous)


cdef inline cnp.ndarray empty(int nd, intp d0, intp d1, intp d2, int tn):
    cdef intp dims[3]
    dims[0] = d0
    dims[1] = d1
    dims[2] = d2
    return pooled_empty(nd, dims, tn)


cdef inline cnp.ndarray step_empty(int nd, intp d0, intp d1, intp d2, int tn):
    """PyArray_EMPTY from NumPy's own allocator, never the pool: for the single steps' arrays, as the Numba
    backend's steps.  A step's weight gradients (2-4 MiB at the bench's small size) are freed and asked for
    again within one step of a loop, and between steps the caller's own NumPy work reuses the same heap
    memory, so glibc hands back lines that are still in cache; the pool's blocks are fastrnn's alone and
    went cold while that other work ran.  Measured in ``fastrnn bench`` (the oracle, both backends, torch
    and the BLAS floor interleaved; Intel Xeon, one thread): lstm_step small float32 fwd+bwd 4.1-4.4 ms
    from the pool, 2.9-3.1 ms without (the backward 3.0 -> 1.9 ms); alone in a loop, 1.64 ms backward from
    the pool, 1.69-1.73 without."""
    cdef intp dims[3]
    dims[0] = d0
    dims[1] = d1
    dims[2] = d2
    return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, tn, 0)


cdef inline cnp.ndarray layer_empty(bint step, int nd, intp d0, intp d1, intp d2, int tn):
    """step_empty for a single step's arrays, else empty (the GRU's steps run its sequence code)."""
    return step_empty(nd, d0, d1, d2, tn) if step else empty(nd, d0, d1, d2, tn)


cdef inline cnp.ndarray zeros(int nd, intp d0, intp d1, int tn):
    cdef intp dims[2]
    dims[0] = d0
    dims[1] = d1
    return <cnp.ndarray>cnp.PyArray_ZEROS(nd, dims, tn, 0)


cdef object _workspace_scratch = _workspace.scratch


cdef inline cnp.ndarray scratch(size_t nbytes):
    """nbytes of this thread's scratch memory, 64-byte aligned (fastrnn._workspace: kept between calls,
    up to the per-thread cap, and freed when the thread ends).

    Fresh memory costs a page fault per 4 KiB on first touch, measurable next to the GEMMs at the small
    sizes.  The caller keeps the returned array referenced while it uses the memory, and asks once per
    call."""
    return <cnp.ndarray>_workspace_scratch(nbytes)


cdef inline size_t up64(size_t nbytes) noexcept nogil:
    """nbytes rounded up to a multiple of 64: carves a scratch buffer into cache-line-aligned parts."""
    return (nbytes + 63) & ~(<size_t>63)


cdef inline size_t up_page(size_t nbytes) noexcept nogil:
    """nbytes rounded up to a multiple of 4 KiB (see Layer.carry)."""
    return (nbytes + 4095) & ~(<size_t>4095)


# ------------------------------------------------------------------------------------------ the team
# When fastrnn._native is there (backend.py hands over its addresses: set_native), a sequence layer's
# pass runs as ONE job of its thread team (fastrnn/_native/team.h), whose threads each own a slab of
# hidden units -- all gates of those units:
#   forward:  each thread computes the input projection of its columns (x Wx, all T*N rows), packs its
#             slab of Wh once, then per step computes its tiles of h_{t-1} Wh and runs the fused pointwise
#             pass on them (adding the bias), and meets the others at one barrier per step.  From
#             FORWARD_MIN_ROWS rows a thread on, after one barrier every thread runs its rows of the
#             batch through all steps alone, by all of the packed Wh (lstm_fwd_rows, rnn_fwd_by_rows);
#   backward: each thread packs its slab of Wh^T, then per step (last first) runs the pointwise pass of
#             its units (dA_t, the carried dc, db), meets the others, and computes its units of
#             dA_t Wh^T; after the loop a share of the rows of dX and its own columns of dWx and dWh.
#             From BATCH_MIN_ROWS rows a thread on, the loop is split by rows of the batch instead
#             (bptt_by_rows, lstm_bptt_rows): a sequence's gradients never meet another's before the
#             weight gradients, so a thread runs its rows' whole loop alone, without a barrier.
# The barrier is split (fr_sync_arrive / fr_sync_wait, team.h): a thread arrives as soon as its units of
# the step are written, starts the next product on those rows of h_t (dA_t) -- its own, in its cache --
# and waits for the others only before their rows (pmm_split): the wait absorbs a late thread instead of
# idling (in the forward only the first unit block's product is split: splitting every block's cost the
# fused pass its data in cache).  Measured against one barrier, 2 threads, float32, both backends:
# 1-3 % less time forward and backward, small to large (sequence fwd+bwd).
# The products run on the packed micro-kernels (fastrnn/_native/packed.h), never on BLAS: an OpenBLAS
# call leaves its idle threads spinning for ~0.1 s, which would take the team's second core (measured: a
# 2-thread team job right after a 2-thread OpenBLAS GEMM took 7.2 ms instead of 3.3 ms).  The affine
# layers use the same products and team, and so do the single steps' products above the serial line
# (big, product.h; with BLAS on one thread, on the caller, all but a few it leaves to BLAS).  Without
# fastrnn._native the kernels below call BLAS as before.

ctypedef void (*task_t)(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil
ctypedef int64_t (*team_run_t)(task_t fn, void *arg, int64_t nth) noexcept nogil
ctypedef void (*sync_t)(void *sync) noexcept nogil
ctypedef void (*mm_s_t)(intp M, intp K, const float *A, intp lda, const float *P, intp H, intp gates,
                        intp ub0, intp ub1, float *C, intp ldc, int beta, int reverse,
                        intp next_ub) noexcept nogil
ctypedef void (*mm_d_t)(intp M, intp K, const double *A, intp lda, const double *P, intp H, intp gates,
                        intp ub0, intp ub1, double *C, intp ldc, int beta, int reverse,
                        intp next_ub) noexcept nogil
ctypedef int64_t (*sync_arrive_t)(void *sync) noexcept nogil
ctypedef void (*sync_wait_t)(void *sync, int64_t token) noexcept nogil
ctypedef void (*mm_part_s_t)(intp M, intp K, intp k_lo, intp k_hi, const float *A, intp lda, const float *P,
                             intp H, intp gates, intp ub0, intp ub1, float *C, intp ldc, int beta,
                             int reverse) noexcept nogil
ctypedef void (*mm_part_d_t)(intp M, intp K, intp k_lo, intp k_hi, const double *A, intp lda, const double *P,
                             intp H, intp gates, intp ub0, intp ub1, double *C, intp ldc, int beta,
                             int reverse) noexcept nogil
ctypedef int (*gemm_s_t)(intp M, intp K, const float *A, intp lda, int at, const float *B, intp ldb, int bt,
                         intp H, intp gates, intp u0, intp u1, float *C, intp ldc, int beta, void *work,
                         size_t work_bytes) noexcept nogil
ctypedef int (*gemm_d_t)(intp M, intp K, const double *A, intp lda, int at, const double *B, intp ldb, int bt,
                         intp H, intp gates, intp u0, intp u1, double *C, intp ldc, int beta, void *work,
                         size_t work_bytes) noexcept nogil
ctypedef size_t (*gemm_work_t)(intp M, intp N, intp K, intp blocks) noexcept nogil
ctypedef int (*gemm_prev_s_t)(intp M, intp K, const float *h, const float *h0, intp lda, intp period,
                              const float *B, intp ldb, intp H, intp gates, intp u0, intp u1, float *C, intp ldc,
                              int beta, void *work, size_t work_bytes) noexcept nogil
ctypedef int (*gemm_prev_d_t)(intp M, intp K, const double *h, const double *h0, intp lda, intp period,
                              const double *B, intp ldb, intp H, intp gates, intp u0, intp u1, double *C, intp ldc,
                              int beta, void *work, size_t work_bytes) noexcept nogil
ctypedef void (*pack_s_t)(intp K, intp H, intp gates, const float *B, intp ldb, int trans, float *P,
                          intp ub0, intp ub1) noexcept nogil
ctypedef void (*pack_d_t)(intp K, intp H, intp gates, const double *B, intp ldb, int trans, double *P,
                          intp ub0, intp ub1) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil

cdef team_run_t fr_team_run = NULL
cdef sync_t fr_sync = NULL
cdef mm_s_t fr_mm_s = NULL
cdef mm_d_t fr_mm_d = NULL
cdef sync_arrive_t fr_sync_arrive = NULL
cdef sync_wait_t fr_sync_wait = NULL
cdef mm_part_s_t fr_mm_part_s = NULL
cdef mm_part_d_t fr_mm_part_d = NULL
cdef gemm_s_t fr_gemm_s = NULL
cdef gemm_d_t fr_gemm_d = NULL
cdef gemm_work_t fr_gemm_work_s = NULL
cdef gemm_work_t fr_gemm_work_d = NULL
cdef gemm_prev_s_t fr_gemm_prev_s = NULL
cdef gemm_prev_d_t fr_gemm_prev_d = NULL
cdef pack_s_t fr_pack_s = NULL
cdef pack_d_t fr_pack_d = NULL
cdef intp NR_F = 0, NR_D = 0
cdef get_threads_t blas_get_threads = NULL


def set_native(dict symbols, intp nr_float32, intp nr_float64):
    """Runs the sequence and affine layers on fastrnn._native (symbols: name -> address; the panel width
    NR per dtype); an empty dict turns it off (BLAS, one GEMM per step)."""
    global fr_team_run, fr_sync, fr_mm_s, fr_mm_d, fr_gemm_s, fr_gemm_d, fr_gemm_work_s, fr_gemm_work_d
    global fr_pack_s, fr_pack_d, NR_F, NR_D, fr_product_s, fr_product_d, fr_resident_s, fr_resident_d
    global fr_sync_arrive, fr_sync_wait, fr_mm_part_s, fr_mm_part_d, fr_gemm_prev_s, fr_gemm_prev_d
    if not symbols:
        fr_team_run = NULL
        fr_product_s = NULL
        fr_product_d = NULL
        fr_resident_s = NULL
        fr_resident_d = NULL
        NR_F = NR_D = 0
        return
    fr_product_s = <product_s_t><size_t>symbols["fr_product_s"]
    fr_product_d = <product_d_t><size_t>symbols["fr_product_d"]
    fr_resident_s = <resident_s_t><size_t>symbols["fr_resident_product_s"]
    fr_resident_d = <resident_d_t><size_t>symbols["fr_resident_product_d"]
    fr_sync = <sync_t><size_t>symbols["fr_sync"]
    fr_mm_s = <mm_s_t><size_t>symbols["fr_mm_s"]
    fr_mm_d = <mm_d_t><size_t>symbols["fr_mm_d"]
    fr_sync_arrive = <sync_arrive_t><size_t>symbols["fr_sync_arrive"]
    fr_sync_wait = <sync_wait_t><size_t>symbols["fr_sync_wait"]
    fr_mm_part_s = <mm_part_s_t><size_t>symbols["fr_mm_part_s"]
    fr_mm_part_d = <mm_part_d_t><size_t>symbols["fr_mm_part_d"]
    fr_gemm_s = <gemm_s_t><size_t>symbols["fr_gemm_s"]
    fr_gemm_d = <gemm_d_t><size_t>symbols["fr_gemm_d"]
    fr_gemm_work_s = <gemm_work_t><size_t>symbols["fr_gemm_work_s"]
    fr_gemm_work_d = <gemm_work_t><size_t>symbols["fr_gemm_work_d"]
    fr_gemm_prev_s = <gemm_prev_s_t><size_t>symbols["fr_gemm_prev_s"]
    fr_gemm_prev_d = <gemm_prev_d_t><size_t>symbols["fr_gemm_prev_d"]
    fr_pack_s = <pack_s_t><size_t>symbols["fr_pack_s"]
    fr_pack_d = <pack_d_t><size_t>symbols["fr_pack_d"]
    NR_F, NR_D = nr_float32, nr_float64
    fr_team_run = <team_run_t><size_t>symbols["fr_team_run"]


def set_blas_threads(size_t get_num_threads_address):
    """The BLAS's ``get_num_threads`` (threadpoolctl's limit lands there): the team never uses more
    threads than the BLAS may.  0: no such function; the team then uses one thread."""
    global blas_get_threads
    blas_get_threads = <get_threads_t>get_num_threads_address if get_num_threads_address else NULL


def native_in_use():
    """True when the sequence and affine layers run on fastrnn._native (see set_native)."""
    return fr_team_run != NULL


# A team thread needs at least TEAM_MIN_FLOPS of recurrent product per step (half a panel of 64 units
# times 512 rows is 2.1e5), and an affine layer's job DENSE_MIN_FLOPS per thread: below them a barrier
# per step, or a second thread's start, costs more than it saves.  Below TEAM_USE_FLOPS per step (the
# tiny sizes) the packing and the partly empty panels cost more than BLAS per step: the layer stays there.
# Measured on the project machine (Xeon, 2 cores) over shapes N 10-100, H 40-256: see the commit message.
cdef double TEAM_MIN_FLOPS = 2.5e5
cdef double TEAM_USE_FLOPS = 3.0e5
cdef double DENSE_MIN_FLOPS = 4.0e6
cdef double DENSE_MIN_BYTES = 524288.0  # as fastrnn/_native/product.h's FR_PRODUCT_MIN_BYTES
# The softmax loss takes a second thread from SOFTMAX_MIN_SCORES scores per thread (~0.1 ms of work).
cdef double SOFTMAX_MIN_SCORES = 131072.0
# A backward pass splits its loop by rows of the batch (bptt_by_rows) from BATCH_MIN_ROWS rows a thread on,
# by units below.  Measured (AMD EPYC Zen 4, 2 threads, float32 fwd+bwd, rows split against units, the
# two CPUs near / far): LSTM N = 100: 0.966 / 0.954 (float64 0.994 / 0.960), N = 64, H = 1024: 0.999 /
# 0.990, N = 25 (13 rows a thread): 1.006 / 0.993 -- there streaming all of Wh^T per thread costs what
# the barriers save; N = 100: RNN 0.987 (float64 0.997), GRU 0.981 / 0.897.
cdef intp BATCH_MIN_ROWS = 16
# The forwards do so from FORWARD_MIN_ROWS rows a thread on (lstm_fwd_rows): LSTM float32, N = 100 (50
# rows a thread): 1.001 near / 0.949 far (2000 rounds, 780 far), float64 1.007 near; N = 64, H = 1024 (32
# rows): 1.02 near and far, each thread's reading all of Wh's panels per step weighing more than the
# barriers it saves; GRU N = 100: 0.947 far (float64 0.975).  Intel Xeon, N = 100, forward alone: LSTM
# 0.962, RNN (rnn_fwd_by_rows) float32 0.963 (H = 1024: 0.979), float64 at H = 256 0.947, H = 1024 0.991.
cdef intp FORWARD_MIN_ROWS = 48
# ... but not the RNN's where its Wh would leave L2 (rnn_fwd_by_rows): H = 512 in float64 (packed Wh 2 MiB,
# a thread's slab 1 MiB) took 1.008 (cython) and 1.024 (numba) the time by rows on the Xeon (2 MiB of L2 a
# core).  Half of the Xeon's L2 and all of Zen 4's (as packed.h's FR_PREFETCH_MIN_BYTES).
cdef double ROWS_L2_BYTES = 1048576.0


cdef inline int64_t team_threads(double flops, double least, intp most) noexcept nogil:
    """Threads for a job: the BLAS's limit, at most one per `least` flops and `most`, at least 1."""
    cdef int64_t n = blas_get_threads() if blas_get_threads != NULL else 1
    cdef int64_t cap = <int64_t>(flops / least)
    if n > cap:
        n = cap
    if n > most:
        n = most
    return n if n > 1 else 1


def team_plan(intp N, intp T, intp D, intp H, intp gates, dtype):
    """Threads of the team job a sequence layer of these sizes would run as (0: BLAS per step instead)."""
    cdef int tn = cnp.NPY_FLOAT32 if np.dtype(dtype) == np.float32 else cnp.NPY_FLOAT64
    if not use_team(N, T, H, gates, tn):
        return 0
    return team_threads(2.0 * N * H * gates * H, TEAM_MIN_FLOPS, (H + panel_width(tn) - 1) // panel_width(tn))


def set_team_flops(double use_flops, double min_flops):
    """Sets TEAM_USE_FLOPS and TEAM_MIN_FLOPS (the tests reach the team path at small shapes with it);
    returns the previous pair."""
    global TEAM_USE_FLOPS, TEAM_MIN_FLOPS
    previous = (TEAM_USE_FLOPS, TEAM_MIN_FLOPS)
    TEAM_USE_FLOPS, TEAM_MIN_FLOPS = use_flops, min_flops
    return previous


cdef inline intp panel_width(int tn) noexcept nogil:
    return NR_F if tn == cnp.NPY_FLOAT32 else NR_D


cdef inline bint use_team(intp N, intp T, intp H, intp gates, int tn) noexcept nogil:
    """Whether a sequence layer runs on the team: fastrnn._native must be there, and packing the
    recurrent weights (once per call) must pay: more than one step, at least half a panel of units,
    TEAM_USE_FLOPS per step, and more than one panel when BLAS would use more than one thread (one
    panel is one team thread)."""
    cdef intp nr = panel_width(tn)
    if fr_team_run == NULL or T < 2 or 2 * H < nr or 2.0 * N * H * gates * H < TEAM_USE_FLOPS:
        return False
    return H > nr or blas_get_threads == NULL or blas_get_threads() <= 1


cdef inline size_t packed_bytes(intp K, intp H, intp gates, int tn) noexcept nogil:
    cdef intp nr = panel_width(tn)
    return up64(<size_t>((H + nr - 1) // nr) * gates * K * nr * (4 if tn == cnp.NPY_FLOAT32 else 8))


cdef inline void pmm(intp M, intp K, const floating *A, intp lda, const floating *P, intp H, intp gates,
                     intp ub, floating *C, intp ldc, int beta, intp next_ub) noexcept nogil:
    """C[0:M, unit block ub of every gate] (+)= A (M, K) @ packed panels (ub, *).  next_ub: the unit block
    of the next pmm on P (its first block is fetched meanwhile, see mm in packed_template.h), or -1."""
    if floating is float:
        fr_mm_s(M, K, A, lda, P, H, gates, ub, ub + 1, C, ldc, beta, 0, next_ub)
    else:
        fr_mm_d(M, K, A, lda, P, H, gates, ub, ub + 1, C, ldc, beta, 0, next_ub)


cdef inline void pmm_part(intp M, intp K, intp k_lo, intp k_hi, const floating *A, intp lda, const floating *P,
                          intp H, intp gates, intp ub0, intp ub1, floating *C, intp ldc, int beta,
                          int reverse) noexcept nogil:
    """pmm's (or pmm_slab's) product over rows k_lo:k_hi of the panels and columns k_lo:k_hi of A only."""
    if floating is float:
        fr_mm_part_s(M, K, k_lo, k_hi, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse)
    else:
        fr_mm_part_d(M, K, k_lo, k_hi, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse)


cdef inline int pmm_split(bint own, intp M, intp K, intp u0, intp u1, const floating *A, intp lda,
                          const floating *P, intp H, intp gates, intp ub0, intp ub1, floating *C, intp ldc,
                          int beta, int reverse) noexcept nogil:
    """Part of the product C (+)= A[:, 0:K] @ panels (ub0..ub1-1, *), K a multiple of H (a step's h_t, or
    its dA_t of K / H gate blocks): the rows of each block of H that belong to units [u0, u1) (own = 1:
    what this thread wrote, before the barrier's wait) or the others (own = 0, after it).  Returns the
    beta of the next part (1 once this part wrote anything)."""
    cdef intp g, k
    for g in range(K // H):
        k = g * H
        if own:
            if u1 > u0:
                pmm_part(M, K, k + u0, k + u1, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse)
                beta = 1
        else:
            if u0 > 0:
                pmm_part(M, K, k, k + u0, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse)
                beta = 1
            if u1 < H:
                pmm_part(M, K, k + u1, k + H, A, lda, P, H, gates, ub0, ub1, C, ldc, beta, reverse)
                beta = 1
    return beta


cdef inline void pmm_slab(intp M, intp K, const floating *A, intp lda, const floating *P, intp H, intp ub0,
                          intp ub1, intp t, floating *C, intp ldc, int beta) noexcept nogil:
    """C[0:M, unit blocks ub0..ub1-1] (+)= A (M, K) @ packed panels (ub, 0) of one gate block, in one
    call: the backward's dA_t Wh^T, whose A is wider than the slab's columns, so that mm can walk a
    large one by block rows (see packed_template.h); in reverse at odd steps t, as unit_block orders
    the forward's blocks."""
    if floating is float:
        fr_mm_s(M, K, A, lda, P, H, 1, ub0, ub1, C, ldc, beta, t % 2, -1)
    else:
        fr_mm_d(M, K, A, lda, P, H, 1, ub0, ub1, C, ldc, beta, t % 2, -1)


cdef inline void bptt_product(void *sync, int64_t nth, intp N, intp K, intp u0, intp u1, const floating *A,
                              intp lda, const floating *P, intp H, intp ub0, intp ub1, intp t, floating *C,
                              int beta) noexcept nogil:
    """A backward step's product C[:, this slab] (+)= A (N, K) @ the packed Wh^T, once this thread's
    pointwise pass wrote its units of A = dA_t: it arrives at the barrier, multiplies the rows of A it
    wrote, waits for the others and multiplies theirs (one thread: one whole product).  The thread that
    arrives last, with nothing to wait for, still sums in that order, so that every run gives the same
    bits (as one whole product it summed in another order than when it arrived earlier)."""
    cdef int64_t token = fr_sync_arrive(sync)
    if nth > 1:
        beta = pmm_split(1, N, K, u0, u1, A, lda, P, H, 1, ub0, ub1, C, H, beta, t % 2)
        fr_sync_wait(sync, token)
        pmm_split(0, N, K, u0, u1, A, lda, P, H, 1, ub0, ub1, C, H, beta, t % 2)
    else:
        pmm_slab(N, K, A, lda, P, H, ub0, ub1, t, C, H, beta)


cdef struct Work:
    void *buffer  # this thread's gemm work
    size_t bytes
    int *failed   # set when gemm could not allocate a bigger buffer (the caller raises MemoryError)


cdef inline void pgemm(intp M, intp K, const floating *A, intp lda, int at, const floating *B, intp ldb, int bt,
                       intp H, intp gates, intp u0, intp u1, floating *C, intp ldc, int beta,
                       Work *w) noexcept nogil:
    """C[0:M, columns g*H + [u0, u1) of every gate g] (+)= op(A) op(B)[:, those columns] (packed.h)."""
    cdef int status
    if floating is float:
        status = fr_gemm_s(M, K, A, lda, at, B, ldb, bt, H, gates, u0, u1, C, ldc, beta, w.buffer, w.bytes)
    else:
        status = fr_gemm_d(M, K, A, lda, at, B, ldb, bt, H, gates, u0, u1, C, ldc, beta, w.buffer, w.bytes)
    if status:
        w.failed[0] = 1


cdef inline void pgemm_prev(intp M, intp K, const floating *h, const floating *h0, intp lda, intp period,
                            const floating *B, intp ldb, intp H, intp gates, intp u0, intp u1, floating *C, intp ldc,
                            Work *w) noexcept nogil:
    """pgemm with op(A) = Hprev^T, Hprev the states each step of a batch-major (N, T, H) sequence started
    from, read where they lie: row n*T is h0's row n, row n*T + t h's row n*T + t - 1 (packed.h)."""
    cdef int status
    if floating is float:
        status = fr_gemm_prev_s(M, K, h, h0, lda, period, B, ldb, H, gates, u0, u1, C, ldc, 0, w.buffer, w.bytes)
    else:
        status = fr_gemm_prev_d(M, K, h, h0, lda, period, B, ldb, H, gates, u0, u1, C, ldc, 0, w.buffer, w.bytes)
    if status:
        w.failed[0] = 1


cdef inline void ppack(intp K, intp H, intp gates, const floating *B, intp ldb, int trans, floating *P,
                       intp ub0, intp ub1) noexcept nogil:
    if floating is float:
        fr_pack_s(K, H, gates, B, ldb, trans, P, ub0, ub1)
    else:
        fr_pack_d(K, H, gates, B, ldb, trans, P, ub0, ub1)


cdef inline void share(intp n, int64_t tid, int64_t nth, intp *a, intp *b) noexcept nogil:
    """Thread tid's part [a, b) of n items: contiguous, as even as possible."""
    a[0] = n * tid // nth
    b[0] = n * (tid + 1) // nth


cdef struct Layer:
    # sizes: G = gates * H; nr = panel width, nb = unit blocks; work = bytes of gemm work per thread
    intp N, T, D, H, G, gates, nr, nb
    size_t work
    int64_t threads
    # inputs: xt = x time-major (T, N, D) [rnn: x batch-major (N, T, D)]; c0 (N, H) or NULL (zeros); h0
    # (N, H) [rnn only]
    const void *xt
    const void *Wx
    const void *Wh
    const void *b
    const void *c0
    const void *h0
    # forward: A the gate buffer (T, N, G); hs the h stack (T, N, H); c, tc (T, N, H); h the batch-major
    # output (N, T, H) [rnn: h is its own gate buffer, and there is no A nor hs]
    void *A
    void *hs
    void *c
    void *tc
    void *h
    const void *zero
    # backward: dh (N, T, H) and dhT (N, H), each NULL for zeros; dA (T, N, G) [rnn: (N, T, H)]; dprev
    # (N, H) the carried dh; dc (N, H) the carried dc (the final cell state's gradient in, dc0 out); dxt
    # (T, N, D) [rnn: none], dx (N, T, D)
    const void *dh
    const void *dhT
    void *dA
    void *dprev
    void *dc
    void *dxt
    void *dx
    void *dh0
    void *dWx
    void *dWh
    void *db
    # scratch: P the packed recurrent weights, W every thread's gemm work; failed: a gemm's malloc failed
    void *P
    void *W
    int failed
    # GRU: bhn (H,); hn (T, N, H) = h_{t-1} Wh_n + bhn; dbhn (H,)
    const void *bhn
    void *hn
    void *dbhn
    # backward passes: pages of each thread's own (4 KiB-aligned, carry_stride bytes apart, thread 1's
    # first; own_pages).  The LSTM's split by units: threads 1.. carry their units of dprev and dc (N, H)
    # there (thread 0 in L.dprev and L.dc): the shared arrays hold each thread's units in runs of 1 KiB
    # (H = 512, float32), every page written by both threads at every step, which costs little while the
    # two CPUs share an L3 and a lot when the host runs them on different dies (BENCHMARKS.md, "What the
    # far phase punishes").  Split by rows (bptt_by_rows): threads 1.. sum their parts of db there.
    char *carry
    size_t carry_stride


cdef inline Work thread_work(void *W, size_t bytes, int64_t tid, int *failed) noexcept nogil:
    cdef Work w
    w.buffer = <char *>W + tid * bytes
    w.bytes = bytes
    w.failed = failed
    return w


cdef inline void layer_setup(Layer *L, intp N, intp T, intp D, intp H, intp gates, int tn) noexcept nogil:
    """L's sizes for a team pass, and the threads of its team (its scratch: layer_scratch)."""
    memset(L, 0, sizeof(Layer))
    L.N, L.T, L.D, L.H, L.gates, L.G = N, T, D, H, gates, gates * H
    L.nr = panel_width(tn)
    L.nb = (H + L.nr - 1) // L.nr
    cdef intp M = max(T * N, max(D, H)), C = max(L.G, D), K = max(max(D, L.G), T * N)
    L.work = up64((fr_gemm_work_s if tn == cnp.NPY_FLOAT32 else fr_gemm_work_d)(M, C, K, gates))
    L.threads = team_threads(2.0 * N * H * L.G, TEAM_MIN_FLOPS, L.nb)


cdef inline size_t layer_scratch(Layer *L, intp K, intp pgates, int tn) noexcept nogil:
    """Bytes of scratch for the packed recurrent weights (K rows in pgates gate blocks: Wh forward,
    Wh^T backward) and every thread's gemm work."""
    return packed_bytes(K, L.H, pgates, tn) + <size_t>L.threads * L.work


cdef inline void layer_place(Layer *L, char *scratch, intp K, intp pgates, int tn) noexcept nogil:
    L.P = scratch
    L.W = scratch + packed_bytes(K, L.H, pgates, tn)


cdef inline size_t own_pages(Layer *L, size_t nbytes) noexcept nogil:
    """Bytes of scratch for Layer.carry, nbytes in whole pages for each thread but the first (and a page
    to align them); sets L.carry_stride.  0 for a team of one."""
    L.carry_stride = up_page(nbytes)
    return 4096 + <size_t>(L.threads - 1) * L.carry_stride if L.threads > 1 else 0


cdef inline void place_own_pages(Layer *L, char *scratch, size_t nbytes) noexcept nogil:
    """L.carry at the first page boundary in scratch (own_pages' nbytes of it)."""
    if nbytes:
        L.carry = <char *>((<size_t>scratch + 4095) & ~(<size_t>4095))


cdef inline void add_parts(Layer *L, int64_t nth, floating *dst, intp offset, intp n) noexcept nogil:
    """dst[0:n] += the parts threads 1.. summed at offset (items) in their own pages, in thread order
    (the same bits every run): a bias gradient of a loop split by rows."""
    cdef intp j
    cdef int64_t k
    cdef const floating *part
    for k in range(1, nth):
        part = <const floating *>(L.carry + (k - 1) * L.carry_stride) + offset
        for j in range(n):
            dst[j] += part[j]


cdef inline floating *own_part(Layer *L, int64_t tid, floating *shared, intp n) noexcept nogil:
    """Where thread tid sums its part of a bias gradient of n items in a loop split by rows: thread 0
    into the gradient itself (zeroed by the caller), threads 1.. into their own pages, zeroed here."""
    if tid == 0:
        return shared
    cdef floating *part = <floating *>(L.carry + (tid - 1) * L.carry_stride)
    memset(part, 0, n * sizeof(floating))
    return part


cdef inline void slab(Layer *L, int64_t tid, int64_t nth, intp *ub0, intp *ub1, intp *u0, intp *u1) noexcept nogil:
    """Thread tid's unit blocks [ub0, ub1) and hidden units [u0, u1)."""
    share(L.nb, tid, nth, ub0, ub1)
    u0[0] = min(L.H, ub0[0] * L.nr)
    u1[0] = min(L.H, ub1[0] * L.nr)


cdef inline intp unit_block(intp i, intp ub0, intp ub1, intp t) noexcept nogil:
    """The i-th unit block a thread works on at step t: its slab's blocks in order at even steps, in
    reverse at odd ones.  A slab's packed weights about fill L2 (2 MiB a thread at H = 512, 2 threads):
    walked the same way every step, each panel is evicted just before it is needed again; walked back
    and forth, the panels read last at one step are read first at the next, while still in L2."""
    return ub0 + i if t % 2 == 0 else ub1 - 1 - i


cdef inline intp next_unit_block(intp i, intp ub0, intp ub1, intp t) noexcept nogil:
    """The unit block after the i-th at step t, or -1 after the slab's last (pmm's next_ub)."""
    return unit_block(i + 1, ub0, ub1, t) if i + 1 < ub1 - ub0 else -1


cdef inline void projection(floating *kind, Layer *L, intp u0, intp u1, floating *A, Work *work) noexcept nogil:
    """A[:, this slab's columns of every gate] = x W_x for all T*N rows (A: T*N rows of G; the pointwise
    passes add the bias, which saves a pass over A)."""
    pgemm(L.T * L.N, L.D, <const floating *>L.xt, L.D, 0, <const floating *>L.Wx, L.G, 0, L.H, L.gates, u0, u1, A,
          L.G, 0, work)


cdef inline void gradients(floating *kind, Layer *L, int64_t tid, int64_t nth, intp u0, intp u1,
                           const floating *Hprev, Work *work) noexcept nogil:
    """After BPTT: a share of the rows of dX = dA Wx^T (then into the batch-major dx), and this slab's
    columns of dWx = X^T dA and dWh = Hprev^T dA.  Every dA_t is complete: the last step's barrier."""
    cdef intp r, r0, r1, t, n, TN = L.T * L.N
    cdef const floating *dA = <const floating *>L.dA
    cdef floating *dxt = <floating *>L.dxt
    cdef floating *dx = <floating *>L.dx
    share(TN, tid, nth, &r0, &r1)
    if r1 > r0:  # op(B) = Wx^T: its columns 0..D-1
        pgemm(r1 - r0, L.G, dA + r0 * L.G, L.G, 0, <const floating *>L.Wx, L.G, 1, L.D, 1, 0, L.D, dxt + r0 * L.D,
              L.D, 0, work)
    for r in range(r0, r1):  # row r of dxt is step t = r // N of sequence n = r % N
        t, n = r // L.N, r % L.N
        memcpy(dx + (n * L.T + t) * L.D, dxt + r * L.D, L.D * sizeof(floating))
    pgemm(L.D, TN, <const floating *>L.xt, L.D, 1, dA, L.G, 0, L.H, L.gates, u0, u1, <floating *>L.dWx, L.G, 0, work)
    pgemm(L.H, TN, Hprev, L.H, 1, dA, L.G, 0, L.H, L.gates, u0, u1, <floating *>L.dWh, L.G, 0, work)


cdef inline const floating *upstream(Layer *L, intp t, intp *ld, floating *kind) noexcept nogil:
    """The upstream gradient of step t's h: dh[:, t] (row stride T*H), or the zero row."""
    if L.dh != NULL:
        ld[0] = L.T * L.H
        return <const floating *>L.dh + t * L.H
    ld[0] = 0
    return <const floating *>L.zero


cdef inline const floating *carried(Layer *L, intp t, const floating *dprev, intp *ld) noexcept nogil:
    """The gradient flowing into step t's h from step t+1 (dprev: the thread's carry, L.dprev or its own
    pages, see Layer.carry), or at the last step dhT or zeros."""
    if t < L.T - 1:
        ld[0] = L.H
        return dprev
    if L.dhT != NULL:
        ld[0] = L.H
        return <const floating *>L.dhT
    ld[0] = 0
    return <const floating *>L.zero


cdef inline const floating *previous_cell(Layer *L, intp t, intp *ld, floating *kind) noexcept nogil:
    """c_{t-1}: the cell states' row block t-1, or at t = 0 c0 or zeros."""
    if t > 0:
        ld[0] = L.H
        return <const floating *>L.c + (t - 1) * L.N * L.H
    if L.c0 != NULL:
        ld[0] = L.H
        return <const floating *>L.c0
    ld[0] = 0
    return <const floating *>L.zero


cdef inline const floating *previous_h(Layer *L, intp t, intp *ld, floating *kind) noexcept nogil:
    """The RNN's h_{t-1}: step t-1 of the batch-major h (row stride T*H), or at t = 0 h0 (row stride H)."""
    if t > 0:
        ld[0] = L.T * L.H
        return <const floating *>L.h + (t - 1) * L.H
    ld[0] = L.H
    return <const floating *>L.h0


cdef void rnn_fwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of the RNN forward pass, batch-major: h (N, T, H) is its own gate buffer (x Wx,
    then + h_{t-1} Wh and tanh in place)."""
    cdef intp ub0, ub1, iu, u0, u1, t, ub, v0, ld, N = L.N, T = L.T, H = L.H, TH = L.T * L.H
    cdef int64_t token = -1
    cdef floating *h = <floating *>L.h
    cdef floating *P = <floating *>L.P
    cdef const floating *b = <const floating *>L.b
    cdef const floating *hp
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    projection(kind, L, u0, u1, h, &w)  # x's rows (n, t) in order: h's
    ppack(H, H, 1, <const floating *>L.Wh, H, 0, P, ub0, ub1)  # by units: only this thread reads its panels
    if rnn_fwd_by_rows(L, nth, sizeof(floating)):
        rnn_fwd_rows(kind, L, sync, tid, nth)
        return
    for t in range(T):
        hp = previous_h(L, t, &ld, kind)
        if nth > 1 and t > 0:  # the units of h_{t-1} this thread wrote, while the others finish theirs (the
            # last to arrive too, so that every run sums in the same order: see bptt_product)
            if ub1 > ub0:
                ub = unit_block(0, ub0, ub1, t)
                pmm_split(1, N, H, u0, u1, hp, ld, P, H, 1, ub, ub + 1, h + t * H, TH, 1, 0)
            fr_sync_wait(sync, token)
        for iu in range(ub1 - ub0):
            ub = unit_block(iu, ub0, ub1, t)
            v0 = ub * L.nr
            if nth > 1 and t > 0 and iu == 0:
                pmm_split(0, N, H, u0, u1, hp, ld, P, H, 1, ub, ub + 1, h + t * H, TH, 1, 0)
            else:
                pmm(N, H, hp, ld, P, H, 1, ub, h + t * H, TH, 1, next_unit_block(iu, ub0, ub1, t))
            if floating is float:
                fr_rnn_fwd_f(N, min(H, v0 + L.nr) - v0, h + t * H + v0, TH, b + v0, NULL, 0)
            else:
                fr_rnn_fwd_d(N, min(H, v0 + L.nr) - v0, h + t * H + v0, TH, b + v0, NULL, 0)
        token = fr_sync_arrive(sync)
    fr_sync_wait(sync, token)


cdef void rnn_fwd_rows(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """The RNN forward's loop split by rows of the batch (FORWARD_MIN_ROWS), as lstm_fwd_rows: once every
    thread has projected its columns and packed its slab of Wh, thread tid runs sequences [r0, r1) alone
    through all steps and unit blocks, by all of the packed Wh, writing whole rows of its own of h."""
    cdef intp iu, t, ub, v0, ld, r0, r1, N = L.N, T = L.T, H = L.H, TH = L.T * L.H
    cdef floating *h = <floating *>L.h
    cdef const floating *P = <const floating *>L.P
    cdef const floating *b = <const floating *>L.b
    cdef const floating *hp
    cdef int64_t token = fr_sync_arrive(sync)  # every column of h's projection, every slab of Wh
    fr_sync_wait(sync, token)
    share(N, tid, nth, &r0, &r1)
    for t in range(T):
        hp = previous_h(L, t, &ld, kind)
        for iu in range(L.nb):
            ub = unit_block(iu, 0, L.nb, t)
            v0 = ub * L.nr
            pmm(r1 - r0, H, hp + r0 * ld, ld, P, H, 1, ub, h + r0 * TH + t * H, TH, 1, next_unit_block(iu, 0, L.nb, t))
            if floating is float:
                fr_rnn_fwd_f(r1 - r0, min(H, v0 + L.nr) - v0, h + r0 * TH + t * H + v0, TH, b + v0, NULL, 0)
            else:
                fr_rnn_fwd_d(r1 - r0, min(H, v0 + L.nr) - v0, h + r0 * TH + t * H + v0, TH, b + v0, NULL, 0)


cdef inline void rnn_gradients(floating *kind, Layer *L, int64_t tid, int64_t nth, intp u0, intp u1,
                               Work *work) noexcept nogil:
    """After the RNN's BPTT, batch-major: a share of the rows of dx = dA Wx^T (straight into dx), and this
    slab's columns of dWx = X^T dA and dWh = Hprev^T dA (Hprev read from h0 and h where they lie).  Every
    dA_t is complete: the last step's barrier."""
    cdef intp r0, r1, TN = L.T * L.N
    cdef const floating *dA = <const floating *>L.dA
    share(TN, tid, nth, &r0, &r1)
    if r1 > r0:  # op(B) = Wx^T: its columns 0..D-1
        pgemm(r1 - r0, L.H, dA + r0 * L.H, L.H, 0, <const floating *>L.Wx, L.H, 1, L.D, 1, 0, L.D,
              <floating *>L.dx + r0 * L.D, L.D, 0, work)
    pgemm(L.D, TN, <const floating *>L.xt, L.D, 1, dA, L.H, 0, L.H, 1, u0, u1, <floating *>L.dWx, L.H, 0, work)
    pgemm_prev(L.H, TN, <const floating *>L.h, <const floating *>L.h0, L.H, L.T, dA, L.H, L.H, 1, u0, u1,
               <floating *>L.dWh, L.H, work)


cdef void rnn_bwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of RNN BPTT and the weight gradients, batch-major (h, dh, dA: (N, T, H))."""
    cdef intp ub0, ub1, u0, u1, t, lddh, lddhp, r0, r1, N = L.N, T = L.T, H = L.H, TH = L.T * L.H
    cdef const floating *h = <const floating *>L.h
    cdef const floating *dht
    cdef const floating *dhp
    cdef floating *dA = <floating *>L.dA
    cdef floating *db = <floating *>L.db
    cdef floating *P = <floating *>L.P
    cdef floating *out
    cdef int64_t token
    cdef bint rows = bptt_by_rows(L, nth)
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    ppack(H, H, 1, <const floating *>L.Wh, H, 1, P, ub0, ub1)
    if rows:  # split by rows of the batch, as lstm_bptt_rows
        db = own_part(L, tid, db, H)
        share(N, tid, nth, &r0, &r1)
        token = fr_sync_arrive(sync)  # every slab of Wh^T packed
        fr_sync_wait(sync, token)
    else:  # split by units: every row, this slab
        r0, r1 = 0, N
        db += u0
    for t in range(T - 1, -1, -1):
        dht = upstream(L, t, &lddh, kind)
        dhp = carried(L, t, <const floating *>L.dprev, &lddhp)
        out = <floating *>L.dh0 if t == 0 else <floating *>L.dprev
        if rows:
            if floating is float:
                fr_rnn_bwd_f(r1 - r0, H, dht + r0 * lddh, lddh, dhp + r0 * lddhp, lddhp, h + r0 * TH + t * H, TH,
                             dA + r0 * TH + t * H, TH, db, 1)
            else:
                fr_rnn_bwd_d(r1 - r0, H, dht + r0 * lddh, lddh, dhp + r0 * lddhp, lddhp, h + r0 * TH + t * H, TH,
                             dA + r0 * TH + t * H, TH, db, 1)
            pmm_slab(r1 - r0, H, dA + r0 * TH + t * H, TH, P, H, 0, L.nb, t, out + r0 * H, H, 0)
            continue
        if floating is float:  # the whole slab in one pass: nothing to fuse with, the barrier is next
            fr_rnn_bwd_f(N, u1 - u0, dht + u0, lddh, dhp + u0, lddhp, h + t * H + u0, TH, dA + t * H + u0, TH, db, 1)
        else:
            fr_rnn_bwd_d(N, u1 - u0, dht + u0, lddh, dhp + u0, lddhp, h + t * H + u0, TH, dA + t * H + u0, TH, db, 1)
        bptt_product(sync, nth, N, H, u0, u1, dA + t * H, TH, P, H, ub0, ub1, t, out, 0)
    if rows:
        token = fr_sync_arrive(sync)  # every dA_t complete (gradients), every part of db summed
        fr_sync_wait(sync, token)
        if tid == 0:
            add_parts(L, nth, <floating *>L.db, 0, H)
    rnn_gradients(kind, L, tid, nth, u0, u1, &w)


cdef void lstm_fwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of the LSTM forward pass."""
    cdef intp ub0, ub1, iu, u0, u1, t, ub, v0, nu, ldcp, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef int64_t token = -1
    cdef floating *A = <floating *>L.A
    cdef floating *hs = <floating *>L.hs
    cdef floating *c = <floating *>L.c
    cdef floating *tc = <floating *>L.tc
    cdef floating *h = <floating *>L.h
    cdef floating *P = <floating *>L.P
    cdef const floating *b = <const floating *>L.b
    cdef const floating *cprev
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    projection(kind, L, u0, u1, A, &w)
    ppack(H, H, 4, <const floating *>L.Wh, G, 0, P, ub0, ub1)
    if by_rows(L, nth, FORWARD_MIN_ROWS):
        lstm_fwd_rows(kind, L, sync, tid, nth)
        return
    for t in range(T):
        cprev = previous_cell(L, t, &ldcp, kind)
        if nth > 1 and t > 0:  # the rows of h_t this thread wrote, while the others finish theirs (the last
            # to arrive too, so that every run sums in the same order: see bptt_product)
            if ub1 > ub0:
                ub = unit_block(0, ub0, ub1, t)
                pmm_split(1, N, H, u0, u1, hs + t * NH, H, P, H, 4, ub, ub + 1, A + t * NG, G, 1, 0)
            fr_sync_wait(sync, token)
        for iu in range(ub1 - ub0):
            ub = unit_block(iu, ub0, ub1, t)
            v0 = ub * L.nr
            nu = min(H, v0 + L.nr) - v0
            if nth > 1 and t > 0 and iu == 0:
                pmm_split(0, N, H, u0, u1, hs + t * NH, H, P, H, 4, ub, ub + 1, A + t * NG, G, 1, 0)
            else:
                pmm(N, H, hs + t * NH, H, P, H, 4, ub, A + t * NG, G, 1, next_unit_block(iu, ub0, ub1, t))
            if floating is float:
                fr_lstm_fwd_f(N, nu, H, A + t * NG + v0, G, b + v0, cprev + v0, ldcp, c + t * NH + v0, H,
                              tc + t * NH + v0, H, h + t * H + v0, T * H, hs + (t + 1) * NH + v0 if t + 1 < T else NULL, H, 1)
            else:
                fr_lstm_fwd_d(N, nu, H, A + t * NG + v0, G, b + v0, cprev + v0, ldcp, c + t * NH + v0, H,
                              tc + t * NH + v0, H, h + t * H + v0, T * H, hs + (t + 1) * NH + v0 if t + 1 < T else NULL, H, 1)
        token = fr_sync_arrive(sync)
    fr_sync_wait(sync, token)


cdef void lstm_fwd_rows(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """The LSTM forward's loop split by rows of the batch (FORWARD_MIN_ROWS): once every thread has projected
    its columns and packed its slab of Wh, thread tid runs sequences [r0, r1) alone through all steps,
    all unit blocks (each block's tile, then its pointwise pass), by all of the packed Wh, without a
    barrier between steps, writing whole rows of its own of the gate buffer, c, tanh(c), h and hs."""
    cdef intp iu, t, ub, v0, nu, ldcp, r0, r1, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef floating *A = <floating *>L.A
    cdef floating *hs = <floating *>L.hs
    cdef floating *c = <floating *>L.c
    cdef floating *tc = <floating *>L.tc
    cdef floating *h = <floating *>L.h
    cdef const floating *P = <const floating *>L.P
    cdef const floating *b = <const floating *>L.b
    cdef const floating *cprev
    cdef int64_t token = fr_sync_arrive(sync)  # every column of the gate buffer, every slab of Wh
    fr_sync_wait(sync, token)
    share(N, tid, nth, &r0, &r1)
    for t in range(T):
        cprev = previous_cell(L, t, &ldcp, kind) + r0 * ldcp
        for iu in range(L.nb):
            ub = unit_block(iu, 0, L.nb, t)
            v0 = ub * L.nr
            nu = min(H, v0 + L.nr) - v0
            pmm(r1 - r0, H, hs + t * NH + r0 * H, H, P, H, 4, ub, A + t * NG + r0 * G, G, 1,
                next_unit_block(iu, 0, L.nb, t))
            if floating is float:
                fr_lstm_fwd_f(r1 - r0, nu, H, A + t * NG + r0 * G + v0, G, b + v0, cprev + v0, ldcp,
                              c + t * NH + r0 * H + v0, H, tc + t * NH + r0 * H + v0, H, h + r0 * T * H + t * H + v0,
                              T * H, hs + (t + 1) * NH + r0 * H + v0 if t + 1 < T else NULL, H, 1)
            else:
                fr_lstm_fwd_d(r1 - r0, nu, H, A + t * NG + r0 * G + v0, G, b + v0, cprev + v0, ldcp,
                              c + t * NH + r0 * H + v0, H, tc + t * NH + r0 * H + v0, H, h + r0 * T * H + t * H + v0,
                              T * H, hs + (t + 1) * NH + r0 * H + v0 if t + 1 < T else NULL, H, 1)


cdef void lstm_bwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of LSTM BPTT and the weight gradients."""
    cdef intp ub0, ub1, u0, u1
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    ppack(L.G, L.H, 1, <const floating *>L.Wh, L.G, 1, <floating *>L.P, ub0, ub1)
    if bptt_by_rows(L, nth):
        lstm_bptt_rows(kind, L, sync, tid, nth)
    else:
        lstm_bptt_units(kind, L, sync, tid, nth, ub0, ub1, u0, u1)
    gradients(kind, L, tid, nth, u0, u1, <const floating *>L.hs, &w)


cdef inline bint by_rows(Layer *L, int64_t nth, intp min_rows) noexcept nogil:
    """Whether a pass on nth threads splits its loop by rows of the batch: min_rows or more a thread."""
    return nth > 1 and L.N >= min_rows * nth


cdef inline bint rnn_fwd_by_rows(Layer *L, int64_t nth, size_t item) noexcept nogil:
    """Whether the RNN forward splits its loop by rows (as the LSTM's and GRU's, FORWARD_MIN_ROWS) -- except
    where a thread's slab of the packed Wh fits in ROWS_L2_BYTES and all of Wh does not: by units each
    thread then keeps its slab in L2 from step to step, by rows each would stream all of Wh through it."""
    cdef double whole = <double>L.nb * L.nr * L.H * item
    return by_rows(L, nth, FORWARD_MIN_ROWS) and not (whole > ROWS_L2_BYTES and whole / nth <= ROWS_L2_BYTES)


cdef inline bint bptt_by_rows(Layer *L, int64_t nth) noexcept nogil:
    """Whether a backward pass splits its loop by rows of the batch (BATCH_MIN_ROWS; the bias gradients'
    parts go to the threads' own pages, Layer.carry)."""
    return by_rows(L, nth, BATCH_MIN_ROWS) and L.carry != NULL


cdef void lstm_bptt_units(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth, intp ub0, intp ub1,
                          intp u0, intp u1) noexcept nogil:
    """The loop of LSTM BPTT, thread tid's slab of units [u0, u1): its pointwise pass, a barrier, its
    units of dA_t Wh^T (bptt_product) at every step."""
    cdef intp t, lddh, lddhp, ldcp, r, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef const floating *A = <const floating *>L.A
    cdef const floating *tc = <const floating *>L.tc
    cdef const floating *dht
    cdef const floating *dhp
    cdef const floating *cprev
    cdef floating *dA = <floating *>L.dA
    cdef floating *dc = <floating *>L.dc
    cdef floating *dprev = <floating *>L.dprev
    cdef floating *db = <floating *>L.db
    cdef floating *P = <floating *>L.P
    if tid > 0 and L.carry != NULL:  # carried in pages of this thread's own (Layer.carry); dc starts as L.dc
        dprev = <floating *>(L.carry + (tid - 1) * L.carry_stride)
        dc = dprev + NH
        for r in range(N):
            memcpy(dc + r * H + u0, <floating *>L.dc + r * H + u0, (u1 - u0) * sizeof(floating))
    for t in range(T - 1, -1, -1):
        dht = upstream(L, t, &lddh, kind)
        dhp = carried(L, t, dprev, &lddhp)
        cprev = previous_cell(L, t, &ldcp, kind)
        if floating is float:  # the whole slab in one pass: nothing to fuse with, the barrier is next
            fr_lstm_bwd_f(N, u1 - u0, H, dht + u0, lddh, dhp + u0, lddhp, dc + u0, H, A + t * NG + u0, G,
                          tc + t * NH + u0, H, cprev + u0, ldcp, dA + t * NG + u0, G, db + u0, 1)
        else:
            fr_lstm_bwd_d(N, u1 - u0, H, dht + u0, lddh, dhp + u0, lddhp, dc + u0, H, A + t * NG + u0, G,
                          tc + t * NH + u0, H, cprev + u0, ldcp, dA + t * NG + u0, G, db + u0, 1)
        bptt_product(sync, nth, N, G, u0, u1, dA + t * NG, G, P, H, ub0, ub1, t,
                     <floating *>L.dh0 if t == 0 else dprev, 0)
    if dc != <floating *>L.dc:  # dc0, this thread's units
        for r in range(N):
            memcpy(<floating *>L.dc + r * H + u0, dc + r * H + u0, (u1 - u0) * sizeof(floating))


cdef void lstm_bptt_rows(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """The loop of LSTM BPTT split by rows of the batch: thread tid takes sequences [r0, r1), all units,
    and runs their whole loop alone -- the pointwise pass of its rows, then its rows of dA_t Wh^T by all
    of the packed Wh^T -- without a barrier between steps, and every array it writes (dA_t's, dprev's
    and dc's rows) in runs of whole rows, pages no other thread writes but at the ends of its run.  It
    reads all of Wh^T per step instead of its slab's, which pays from BATCH_MIN_ROWS rows on.  db: thread
    0 sums into L.db, threads 1.. into their carry pages, added to L.db in thread order after the loop
    (the same bits every run)."""
    cdef intp t, lddh, lddhp, ldcp, r0, r1, nrow, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef const floating *A = <const floating *>L.A
    cdef const floating *tc = <const floating *>L.tc
    cdef const floating *dht
    cdef const floating *dhp
    cdef const floating *cprev
    cdef floating *dA = <floating *>L.dA
    cdef floating *dc = <floating *>L.dc
    cdef floating *dprev = <floating *>L.dprev
    cdef floating *db = own_part(L, tid, <floating *>L.db, G)
    cdef floating *out
    cdef int64_t token
    share(N, tid, nth, &r0, &r1)
    nrow = r1 - r0
    token = fr_sync_arrive(sync)  # every slab of Wh^T packed
    fr_sync_wait(sync, token)
    for t in range(T - 1, -1, -1):
        dht = upstream(L, t, &lddh, kind)
        dhp = carried(L, t, dprev, &lddhp)
        cprev = previous_cell(L, t, &ldcp, kind)
        if floating is float:
            fr_lstm_bwd_f(nrow, H, H, dht + r0 * lddh, lddh, dhp + r0 * lddhp, lddhp, dc + r0 * H, H,
                          A + t * NG + r0 * G, G, tc + t * NH + r0 * H, H, cprev + r0 * ldcp, ldcp,
                          dA + t * NG + r0 * G, G, db, 1)
        else:
            fr_lstm_bwd_d(nrow, H, H, dht + r0 * lddh, lddh, dhp + r0 * lddhp, lddhp, dc + r0 * H, H,
                          A + t * NG + r0 * G, G, tc + t * NH + r0 * H, H, cprev + r0 * ldcp, ldcp,
                          dA + t * NG + r0 * G, G, db, 1)
        out = <floating *>L.dh0 if t == 0 else dprev
        pmm_slab(nrow, G, dA + t * NG + r0 * G, G, <const floating *>L.P, H, 0, L.nb, t, out + r0 * H, H, 0)
    token = fr_sync_arrive(sync)  # every dA_t complete (gradients), every part of db summed
    fr_sync_wait(sync, token)
    if tid == 0:
        add_parts(L, nth, <floating *>L.db, 0, G)


cdef void rnn_fwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    rnn_fwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void rnn_fwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    rnn_fwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


cdef void rnn_bwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    rnn_bwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void rnn_bwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    rnn_bwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


cdef void lstm_fwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    lstm_fwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void lstm_fwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    lstm_fwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


cdef void lstm_bwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    lstm_bwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void lstm_bwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    lstm_bwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


# The GRU on the team.  n = tanh(x Wx_n + b_n + r (h Wh_n + bhn)) needs the recurrent part of its n block
# apart from the input part, so the forward packs Wh in two parts: its r and z blocks (2 gate blocks, whose
# products accumulate into the projected gate buffer A) and its n block (whose product goes to hn, kept for
# the backward).  The backward's dA_t is [dr, dz, dhn, dn] (N, 4H): its first 3H columns, the gradient of
# h_{t-1} Wh, make one packed product by Wh^T per step (as the LSTM's); the input side [dr, dz], dn makes
# dX and dWx two products each after the loop (the same work as one).

cdef void gru_fwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of the GRU forward pass."""
    cdef intp ub0, ub1, iu, u0, u1, t, ub, ubn, v0, nu, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef int64_t token = -1
    cdef floating *A = <floating *>L.A
    cdef floating *hs = <floating *>L.hs
    cdef floating *hn = <floating *>L.hn
    cdef floating *h = <floating *>L.h
    cdef floating *P = <floating *>L.P
    cdef floating *Pn = P + L.nb * 2 * H * L.nr  # the packed n block, after the r and z blocks
    cdef const floating *b = <const floating *>L.b
    cdef const floating *bhn = <const floating *>L.bhn
    cdef const floating *Wh = <const floating *>L.Wh
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    projection(kind, L, u0, u1, A, &w)
    ppack(H, H, 2, Wh, G, 0, P, ub0, ub1)
    ppack(H, H, 1, Wh + 2 * H, G, 0, Pn, ub0, ub1)
    if by_rows(L, nth, FORWARD_MIN_ROWS):
        gru_fwd_rows(kind, L, sync, tid, nth)
        return
    for t in range(T):
        if nth > 1 and t > 0:  # the rows of h_t this thread wrote, while the others finish theirs (the last
            # to arrive too, so that every run sums in the same order: see bptt_product)
            if ub1 > ub0:
                ub = unit_block(0, ub0, ub1, t)
                pmm_split(1, N, H, u0, u1, hs + t * NH, H, P, H, 2, ub, ub + 1, A + t * NG, G, 1, 0)
                pmm_split(1, N, H, u0, u1, hs + t * NH, H, Pn, H, 1, ub, ub + 1, hn + t * NH, H, 0, 0)
            fr_sync_wait(sync, token)
        for iu in range(ub1 - ub0):
            ub = unit_block(iu, ub0, ub1, t)
            v0 = ub * L.nr
            nu = min(H, v0 + L.nr) - v0
            if nth > 1 and t > 0 and iu == 0:  # (a thread with unit blocks has units: hn's own part was written)
                pmm_split(0, N, H, u0, u1, hs + t * NH, H, P, H, 2, ub, ub + 1, A + t * NG, G, 1, 0)
                pmm_split(0, N, H, u0, u1, hs + t * NH, H, Pn, H, 1, ub, ub + 1, hn + t * NH, H, 1, 0)
            else:
                ubn = next_unit_block(iu, ub0, ub1, t)
                pmm(N, H, hs + t * NH, H, P, H, 2, ub, A + t * NG, G, 1, ubn)
                pmm(N, H, hs + t * NH, H, Pn, H, 1, ub, hn + t * NH, H, 0, ubn)
            if floating is float:
                fr_gru_fwd_units_f(N, nu, H, A + t * NG + v0, G, b + v0, hn + t * NH + v0, H, bhn + v0,
                                   hs + t * NH + v0, H, h + t * H + v0, T * H,
                                   hs + (t + 1) * NH + v0 if t + 1 < T else NULL, H)
            else:
                fr_gru_fwd_units_d(N, nu, H, A + t * NG + v0, G, b + v0, hn + t * NH + v0, H, bhn + v0,
                                   hs + t * NH + v0, H, h + t * H + v0, T * H,
                                   hs + (t + 1) * NH + v0 if t + 1 < T else NULL, H)
        token = fr_sync_arrive(sync)
    fr_sync_wait(sync, token)


cdef void gru_fwd_rows(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """The GRU forward's loop split by rows of the batch, as lstm_fwd_rows."""
    cdef intp iu, t, ub, ubn, v0, nu, r0, r1, N = L.N, T = L.T, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G
    cdef floating *A = <floating *>L.A
    cdef floating *hs = <floating *>L.hs
    cdef floating *hn = <floating *>L.hn
    cdef floating *h = <floating *>L.h
    cdef const floating *P = <const floating *>L.P
    cdef const floating *Pn = P + L.nb * 2 * H * L.nr  # the packed n block, after the r and z blocks
    cdef const floating *b = <const floating *>L.b
    cdef const floating *bhn = <const floating *>L.bhn
    cdef int64_t token = fr_sync_arrive(sync)  # every column of the gate buffer, every slab of Wh
    fr_sync_wait(sync, token)
    share(N, tid, nth, &r0, &r1)
    for t in range(T):
        for iu in range(L.nb):
            ub = unit_block(iu, 0, L.nb, t)
            ubn = next_unit_block(iu, 0, L.nb, t)
            v0 = ub * L.nr
            nu = min(H, v0 + L.nr) - v0
            pmm(r1 - r0, H, hs + t * NH + r0 * H, H, P, H, 2, ub, A + t * NG + r0 * G, G, 1, ubn)
            pmm(r1 - r0, H, hs + t * NH + r0 * H, H, Pn, H, 1, ub, hn + t * NH + r0 * H, H, 0, ubn)
            if floating is float:
                fr_gru_fwd_units_f(r1 - r0, nu, H, A + t * NG + r0 * G + v0, G, b + v0, hn + t * NH + r0 * H + v0, H,
                                   bhn + v0, hs + t * NH + r0 * H + v0, H, h + r0 * T * H + t * H + v0, T * H,
                                   hs + (t + 1) * NH + r0 * H + v0 if t + 1 < T else NULL, H)
            else:
                fr_gru_fwd_units_d(r1 - r0, nu, H, A + t * NG + r0 * G + v0, G, b + v0, hn + t * NH + r0 * H + v0, H,
                                   bhn + v0, hs + t * NH + r0 * H + v0, H, h + r0 * T * H + t * H + v0, T * H,
                                   hs + (t + 1) * NH + r0 * H + v0 if t + 1 < T else NULL, H)


cdef void gru_bwd_body(floating *kind, Layer *L, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """Thread tid's share of GRU BPTT and the weight gradients.  L.dh0 carries the gradient of h between
    steps (the final state's on entry, h0's on return)."""
    cdef intp ub0, ub1, u0, u1, t, lddh, r, r0, r1, n, N = L.N, T = L.T, D = L.D, H = L.H, G = L.G
    cdef intp NH = L.N * L.H, NG = L.N * L.G, F = 4 * L.H, NF = L.N * 4 * L.H, TN = L.T * L.N
    cdef const floating *A = <const floating *>L.A
    cdef const floating *hs = <const floating *>L.hs
    cdef const floating *hn = <const floating *>L.hn
    cdef const floating *Wx = <const floating *>L.Wx
    cdef const floating *xt = <const floating *>L.xt
    cdef const floating *dht
    cdef floating *dA = <floating *>L.dA
    cdef floating *dh0 = <floating *>L.dh0
    cdef floating *db = <floating *>L.db
    cdef floating *dbhn = <floating *>L.dbhn
    cdef floating *dxt = <floating *>L.dxt
    cdef floating *dx = <floating *>L.dx
    cdef floating *dWx = <floating *>L.dWx
    cdef floating *P = <floating *>L.P
    cdef int64_t token
    cdef bint rows = bptt_by_rows(L, nth)
    cdef Work w = thread_work(L.W, L.work, tid, &L.failed)
    slab(L, tid, nth, &ub0, &ub1, &u0, &u1)
    ppack(G, H, 1, <const floating *>L.Wh, G, 1, P, ub0, ub1)  # Wh^T, this thread's slab of units
    if rows:  # split by rows of the batch, as lstm_bptt_rows: db's and dbhn's parts in one run
        db = own_part(L, tid, db, G + H)
        dbhn = db + G if tid > 0 else dbhn
        share(N, tid, nth, &r0, &r1)
        token = fr_sync_arrive(sync)  # every slab of Wh^T packed
        fr_sync_wait(sync, token)
    else:  # split by units: every row, this slab
        r0, r1 = 0, N
        db += u0
        dbhn += u0
    for t in range(T - 1, -1, -1):
        dht = upstream(L, t, &lddh, kind)
        if rows:
            if floating is float:
                fr_gru_bwd_f(r1 - r0, H, H, dht + r0 * lddh, lddh, dh0 + r0 * H, H, A + t * NG + r0 * G, G,
                             hn + t * NH + r0 * H, H, hs + t * NH + r0 * H, H, dA + t * NF + r0 * F, F, db, dbhn)
            else:
                fr_gru_bwd_d(r1 - r0, H, H, dht + r0 * lddh, lddh, dh0 + r0 * H, H, A + t * NG + r0 * G, G,
                             hn + t * NH + r0 * H, H, hs + t * NH + r0 * H, H, dA + t * NF + r0 * F, F, db, dbhn)
            # dh_{t-1} = its direct part (left by the pass) + dA_t[:, :3H] Wh^T
            pmm_slab(r1 - r0, G, dA + t * NF + r0 * F, F, P, H, 0, L.nb, t, dh0 + r0 * H, H, 1)
            continue
        if floating is float:  # the whole slab in one pass: nothing to fuse with, the barrier is next
            fr_gru_bwd_f(N, u1 - u0, H, dht + u0, lddh, dh0 + u0, H, A + t * NG + u0, G, hn + t * NH + u0, H,
                         hs + t * NH + u0, H, dA + t * NF + u0, F, db, dbhn)
        else:
            fr_gru_bwd_d(N, u1 - u0, H, dht + u0, lddh, dh0 + u0, H, A + t * NG + u0, G, hn + t * NH + u0, H,
                         hs + t * NH + u0, H, dA + t * NF + u0, F, db, dbhn)
        # dh_{t-1} = its direct part (left by the pass) + dA_t[:, :3H] Wh^T
        bptt_product(sync, nth, N, G, u0, u1, dA + t * NF, F, P, H, ub0, ub1, t, dh0, 1)
    if rows:
        token = fr_sync_arrive(sync)  # every dA_t complete, every part of db and dbhn summed
        fr_sync_wait(sync, token)
        if tid == 0:
            add_parts(L, nth, <floating *>L.db, 0, G)
            add_parts(L, nth, <floating *>L.dbhn, G, H)
    # after the loop (every dA_t is complete: the last step's barrier): a share of the rows of
    # dX = [dr, dz] Wx_rz^T + dn Wx_n^T, then this slab's columns of dWx and dWh = Hprev^T dA[:, :3H]
    share(TN, tid, nth, &r0, &r1)
    if r1 > r0:
        pgemm(r1 - r0, 2 * H, dA + r0 * F, F, 0, Wx, G, 1, D, 1, 0, D, dxt + r0 * D, D, 0, &w)
        pgemm(r1 - r0, H, dA + r0 * F + 3 * H, F, 0, Wx + 2 * H, G, 1, D, 1, 0, D, dxt + r0 * D, D, 1, &w)
    for r in range(r0, r1):  # row r of dxt is step t = r // N of sequence n = r % N
        t, n = r // N, r % N
        memcpy(dx + (n * T + t) * D, dxt + r * D, D * sizeof(floating))
    pgemm(D, TN, xt, D, 1, dA, F, 0, H, 2, u0, u1, dWx, G, 0, &w)
    pgemm(D, TN, xt, D, 1, dA + 3 * H, F, 0, H, 1, u0, u1, dWx + 2 * H, G, 0, &w)
    pgemm(H, TN, hs, H, 1, dA, F, 0, H, 3, u0, u1, <floating *>L.dWh, G, 0, &w)


cdef void gru_fwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    gru_fwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void gru_fwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    gru_fwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


cdef void gru_bwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    gru_bwd_body(<float *>NULL, <Layer *>arg, sync, tid, nth)


cdef void gru_bwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    gru_bwd_body(<double *>NULL, <Layer *>arg, sync, tid, nth)


# ------------------------------------------------------------------------------------------ vanilla RNN

cdef void rnn_fwd_k(intp N, intp T, intp D, intp H, const floating *x, const floating *h0,
                    const floating *Wx, const floating *Wh, const floating *b, floating *h, Layer *L) noexcept nogil:
    """Batch-major: h (N, T, H) is the gate buffer (x Wx for all rows, then per step + h_{t-1} Wh and tanh in
    place), h_{t-1} read where it lies (h0 at t = 0).  L: run as a team job (L set up by the caller), or
    NULL: on BLAS, one GEMM per step."""
    cdef intp t, TH = T * H
    if L != NULL:
        L.xt, L.h0, L.Wx, L.Wh, L.b, L.h = x, h0, Wx, Wh, b, h
        fr_team_run(rnn_fwd_task_f if floating is float else rnn_fwd_task_d, L, L.threads)
        return
    mm(False, False, N * T, H, D, x, D, Wx, H, 0, h, H)
    for t in range(T):
        if t == 0:
            mm(False, False, N, H, H, h0, H, Wh, H, 1, h, TH)
        else:
            mm(False, False, N, H, H, h + (t - 1) * H, TH, Wh, H, 1, h + t * H, TH)
        if floating is float:
            fr_rnn_fwd_f(N, H, h + t * H, TH, b, NULL, 0)
        else:
            fr_rnn_fwd_d(N, H, h + t * H, TH, b, NULL, 0)


cdef void rnn_bwd_k(intp N, intp T, intp D, intp H, const floating *dh, const floating *dhT,
                    const floating *x, const floating *h0, const floating *Wx, const floating *Wh,
                    const floating *h, floating *dx, floating *dh0, floating *dWx, floating *dWh, floating *db,
                    floating *dA, floating *dprev, const floating *zero, floating *hprev, Layer *L) noexcept nogil:
    """dh (N, T, H), the gradient of every step's h, and dhT (N, H), that of the final state (added to the
    last step's), may each be NULL: zeros (the zero row, leading dimension 0).  Batch-major, as rnn_fwd_k:
    dA (N, T, H).  L: as in rnn_fwd_k; without it hprev (N, T, H) is scratch for the states the steps
    started from (dWh's one GEMM)."""
    cdef intp t, n, TH = T * H, lddhp
    cdef const floating *dht
    cdef const floating *dhp
    for t in range(H):
        db[t] = 0
    if L != NULL:
        L.xt, L.h0, L.Wx, L.Wh, L.h, L.dh, L.dhT, L.zero = x, h0, Wx, Wh, <void *>h, dh, dhT, zero
        L.dA, L.dprev, L.dx, L.dh0, L.dWx, L.dWh, L.db = dA, dprev, dx, dh0, dWx, dWh, db
        fr_team_run(rnn_bwd_task_f if floating is float else rnn_bwd_task_d, L, L.threads)
        return
    for t in range(T - 1, -1, -1):
        dht = dh + t * H if dh != NULL else zero
        if t < T - 1:
            dhp = dprev
            lddhp = H
        elif dhT != NULL:
            dhp = dhT
            lddhp = H
        else:
            dhp = zero
            lddhp = 0
        if floating is float:
            fr_rnn_bwd_f(N, H, dht, TH if dh != NULL else 0, dhp, lddhp, h + t * H, TH, dA + t * H, TH, db, 1)
        else:
            fr_rnn_bwd_d(N, H, dht, TH if dh != NULL else 0, dhp, lddhp, h + t * H, TH, dA + t * H, TH, db, 1)
        mm(False, True, N, H, H, dA + t * H, TH, Wh, H, 0, dh0 if t == 0 else dprev, H)
    mm(False, True, N * T, D, H, dA, H, Wx, H, 0, dx, D)
    mm(True, False, D, H, N * T, x, D, dA, H, 0, dWx, H)
    for n in range(N):  # Hprev: h0's row, then the sequence's h_0 .. h_{T-2}
        memcpy(hprev + n * TH, h0 + n * H, H * sizeof(floating))
        memcpy(hprev + n * TH + H, h + n * TH, (T - 1) * H * sizeof(floating))
    mm(True, False, H, H, N * T, hprev, H, dA, H, 0, dWh, H)


cdef inline void *P_or_null(object a):
    """The data pointer of a, or NULL when a is None (an optional input: zeros)."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef tuple rnn_fwd(cnp.ndarray x, cnp.ndarray h0, cnp.ndarray Wx, cnp.ndarray Wh, cnp.ndarray b):
    cdef int tn = float_type(x)
    check(x, tn, 3)
    cdef intp N = x.shape[0], T = x.shape[1], D = x.shape[2], H = h0.shape[1] if h0.ndim == 2 else -1
    check(h0, tn, 2, N, H)
    check(Wx, tn, 2, D, H)
    check(Wh, tn, 2, H, H)
    check(b, tn, 1, H)
    blas_sizes(N * T, D, H)
    cdef cnp.ndarray h = empty(3, N, T, H, tn)
    cdef Layer layer
    cdef Layer *L = NULL
    cdef cnp.ndarray work
    if use_team(N, T, H, 1, tn):
        layer_setup(&layer, N, T, D, H, 1, tn)
        work = scratch(layer_scratch(&layer, H, 1, tn))
        layer_place(&layer, <char *>P(work), H, 1, tn)
        L = &layer
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_fwd_k(N, T, D, H, <float *>P(x), <float *>P(h0), <float *>P(Wx), <float *>P(Wh), <float *>P(b),
                      <float *>P(h), L)
        else:
            rnn_fwd_k(N, T, D, H, <double *>P(x), <double *>P(h0), <double *>P(Wx), <double *>P(Wh),
                      <double *>P(b), <double *>P(h), L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return h, (x, h0, Wx, Wh, h)


cdef tuple rnn_bwd(object dh, object dhT, tuple cache):
    cdef cnp.ndarray x, h0, Wx, Wh, h
    x, h0, Wx, Wh, h = cache
    cdef int tn = float_type(x)
    check(x, tn, 3)
    cdef intp N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0] if Wh.ndim == 2 else -1
    check(h0, tn, 2, N, H)
    check(Wx, tn, 2, D, H)
    check(Wh, tn, 2, H, H)
    check(h, tn, 3, N, T, H)
    if dh is not None:
        check(dh, tn, 3, N, T, H)
    if dhT is not None:
        check(dhT, tn, 2, N, H)
    blas_sizes(N * T, D, H)
    cdef cnp.ndarray dx = empty(3, N, T, D, tn), dh0 = empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = empty(2, D, H, 0, tn), dWh = empty(2, H, H, 0, tn), db = empty(1, H, 0, 0, tn)
    cdef size_t item = cnp.PyArray_ITEMSIZE(x), o1 = up64(N * T * H * item), o2 = o1 + up64(N * H * item)
    cdef size_t o3 = o2 + up64(H * item)
    cdef Layer layer
    cdef Layer *L = NULL
    cdef size_t own = 0
    if use_team(N, T, H, 1, tn):
        layer_setup(&layer, N, T, D, H, 1, tn)
        L = &layer
        own = own_pages(L, H * item)  # db's part (split by rows)
    cdef size_t o4 = o3 + (layer_scratch(L, H, 1, tn) if L != NULL else o1)  # the team's scratch, or hprev
    cdef cnp.ndarray work = scratch(o4 + own)
    cdef char *dA = <char *>P(work)
    cdef char *dprev = dA + o1
    cdef char *zero = dA + o2
    cdef void *pdh = P_or_null(dh)
    cdef void *pdhT = P_or_null(dhT)
    memset(zero, 0, H * item)
    if L != NULL:
        layer_place(L, dA + o3, H, 1, tn)
        place_own_pages(L, dA + o4, own)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_bwd_k(N, T, D, H, <float *>pdh, <float *>pdhT, <float *>P(x), <float *>P(h0), <float *>P(Wx),
                      <float *>P(Wh), <float *>P(h), <float *>P(dx), <float *>P(dh0), <float *>P(dWx),
                      <float *>P(dWh), <float *>P(db), <float *>dA, <float *>dprev, <float *>zero,
                      <float *>(dA + o3), L)
        else:
            rnn_bwd_k(N, T, D, H, <double *>pdh, <double *>pdhT, <double *>P(x), <double *>P(h0), <double *>P(Wx),
                      <double *>P(Wh), <double *>P(h), <double *>P(dx), <double *>P(dh0), <double *>P(dWx),
                      <double *>P(dWh), <double *>P(db), <double *>dA, <double *>dprev, <double *>zero,
                      <double *>(dA + o3), L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return dx, dh0, dWx, dWh, db


def rnn_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                cnp.ndarray Wh not None, cnp.ndarray b not None):
    """Vanilla RNN over a sequence: x (N, T, D), h0 (N, H) -> (h (N, T, H), cache)."""
    return rnn_fwd(x, h0, Wx, Wh, b)


def rnn_forward_state(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                      cnp.ndarray Wh not None, cnp.ndarray b not None):
    """rnn_forward that also returns the final state: -> (h, hT (N, H), cache); same cache."""
    h, cache = rnn_fwd(x, h0, Wx, Wh, b)
    return h, h[:, x.shape[1] - 1].copy(), cache


def rnn_backward(cnp.ndarray dh not None, tuple cache not None):
    """BPTT for rnn_forward: dh (N, T, H) -> (dx, dh0, dWx, dWh, db)."""
    return rnn_bwd(dh, None, cache)


def rnn_backward_state(cnp.ndarray dh, cnp.ndarray dhT, tuple cache not None):
    """BPTT with the final state's gradient dhT (N, H); dh and dhT may be None -> (dx, dh0, dWx, dWh, db)."""
    return rnn_bwd(dh, dhT, cache)


# ------------------------------------------------------------------------------------------ LSTM

cdef void lstm_fwd_k(intp N, intp T, intp D, intp H, const floating *x, const floating *h0,
                     const floating *c0, const floating *Wx, const floating *Wh, const floating *b,
                     floating *h, floating *xt, floating *hs, floating *c, floating *tc, floating *A,
                     const floating *zero, Layer *L) noexcept nogil:
    """hs (T, N, H): hs[0] = h0, hs[t] = h_{t-1} (the h stack); c, tc = tanh(c) (T, N, H); A (T, N, 4H).
    c0 (N, H) may be NULL: zeros.  L: run as a team job (L set up by the caller), or NULL: on BLAS."""
    cdef intp t, G = 4 * H, NH = N * H, NG = N * 4 * H, ldcp
    cdef const floating *cprev
    swap01(N, T, D, x, xt)
    memcpy(hs, h0, NH * sizeof(floating))
    if L != NULL:
        L.xt, L.Wx, L.Wh, L.b, L.c0, L.A, L.hs, L.c, L.tc, L.h, L.zero = xt, Wx, Wh, b, c0, A, hs, c, tc, h, zero
        fr_team_run(lstm_fwd_task_f if floating is float else lstm_fwd_task_d, L, L.threads)
        return
    mm(False, False, T * N, G, D, xt, D, Wx, G, 0, A, G)
    for t in range(T):
        mm(False, False, N, G, H, hs + t * NH, H, Wh, G, 1, A + t * NG, G)
        if t > 0:
            cprev = c + (t - 1) * NH
            ldcp = H
        elif c0 != NULL:
            cprev = c0
            ldcp = H
        else:
            cprev = zero
            ldcp = 0
        if floating is float:
            fr_lstm_fwd_f(N, H, H, A + t * NG, G, b, cprev, ldcp, c + t * NH, H, tc + t * NH, H, h + t * H, T * H,
                          hs + (t + 1) * NH if t + 1 < T else NULL, H, 1)
        else:
            fr_lstm_fwd_d(N, H, H, A + t * NG, G, b, cprev, ldcp, c + t * NH, H, tc + t * NH, H, h + t * H, T * H,
                          hs + (t + 1) * NH if t + 1 < T else NULL, H, 1)


cdef void lstm_bwd_k(intp N, intp T, intp D, intp H, const floating *dh, const floating *dhT,
                     const floating *xt, const floating *Wx, const floating *Wh, const floating *hs,
                     const floating *c0, const floating *c, const floating *tc, const floating *A,
                     floating *dx, floating *dh0, floating *dWx, floating *dWh, floating *db, floating *dA,
                     floating *dxt, floating *dprev, floating *dc, const floating *zero, Layer *L) noexcept nogil:
    """dh (N, T, H), dhT and c0 (N, H) may be NULL (zeros).  dc (N, H) holds the gradient of the final cell
    state on entry and that of c0 on return.  L: as in lstm_fwd_k."""
    cdef intp t, G = 4 * H, NH = N * H, NG = N * 4 * H, lddhp, ldcp
    cdef const floating *dht
    cdef const floating *dhp
    cdef const floating *cprev
    for t in range(G):
        db[t] = 0
    if L != NULL:
        L.xt, L.Wx, L.Wh, L.c0, L.dh, L.dhT, L.zero = xt, Wx, Wh, c0, dh, dhT, zero
        L.A, L.hs, L.c, L.tc = <void *>A, <void *>hs, <void *>c, <void *>tc  # read only in the backward
        L.dA, L.dprev, L.dc, L.dxt, L.dx, L.dh0, L.dWx, L.dWh, L.db = dA, dprev, dc, dxt, dx, dh0, dWx, dWh, db
        fr_team_run(lstm_bwd_task_f if floating is float else lstm_bwd_task_d, L, L.threads)
        return
    for t in range(T - 1, -1, -1):
        dht = dh + t * H if dh != NULL else zero
        if t < T - 1:
            dhp = dprev
            lddhp = H
        elif dhT != NULL:
            dhp = dhT
            lddhp = H
        else:
            dhp = zero
            lddhp = 0
        if t > 0:
            cprev = c + (t - 1) * NH
            ldcp = H
        elif c0 != NULL:
            cprev = c0
            ldcp = H
        else:
            cprev = zero
            ldcp = 0
        if floating is float:
            fr_lstm_bwd_f(N, H, H, dht, T * H if dh != NULL else 0, dhp, lddhp, dc, H, A + t * NG, G, tc + t * NH, H,
                          cprev, ldcp, dA + t * NG, G, db, 1)
        else:
            fr_lstm_bwd_d(N, H, H, dht, T * H if dh != NULL else 0, dhp, lddhp, dc, H, A + t * NG, G, tc + t * NH, H,
                          cprev, ldcp, dA + t * NG, G, db, 1)
        mm(False, True, N, H, G, dA + t * NG, G, Wh, G, 0, dh0 if t == 0 else dprev, H)
    mm(False, True, T * N, D, G, dA, G, Wx, G, 0, dxt, D)
    swap01(T, N, D, dxt, dx)
    mm(True, False, D, G, T * N, xt, D, dA, G, 0, dWx, G)
    mm(True, False, H, G, T * N, hs, H, dA, G, 0, dWh, G)


cdef tuple lstm_fwd(cnp.ndarray x, cnp.ndarray h0, object c0, cnp.ndarray Wx, cnp.ndarray Wh, cnp.ndarray b):
    """-> (h, cache); cache = (xt, Wx, Wh, hs, c0 or None, c, tc, A)."""
    cdef int tn = float_type(x)
    check(x, tn, 3)
    cdef intp N = x.shape[0], T = x.shape[1], D = x.shape[2], H = h0.shape[1] if h0.ndim == 2 else -1
    check(h0, tn, 2, N, H)
    if c0 is not None:
        check(c0, tn, 2, N, H)
    check(Wx, tn, 2, D, 4 * H)
    check(Wh, tn, 2, H, 4 * H)
    check(b, tn, 1, 4 * H)
    blas_sizes(N * T, D, 4 * H)
    cdef cnp.ndarray h = empty(3, N, T, H, tn), xt = empty(3, T, N, D, tn), hs = empty(3, T, N, H, tn)
    cdef cnp.ndarray c = empty(3, T, N, H, tn), tc = empty(3, T, N, H, tn), A = empty(3, T, N, 4 * H, tn)
    cdef size_t o1 = up64(H * cnp.PyArray_ITEMSIZE(x))
    cdef Layer layer
    cdef Layer *L = NULL
    if use_team(N, T, H, 4, tn):
        layer_setup(&layer, N, T, D, H, 4, tn)
        L = &layer
    cdef cnp.ndarray work = scratch(o1 + (layer_scratch(L, H, 4, tn) if L != NULL else 0))
    cdef char *zero = <char *>P(work)
    cdef void *pc0 = P_or_null(c0)
    memset(zero, 0, H * cnp.PyArray_ITEMSIZE(x))
    if L != NULL:
        layer_place(L, zero + o1, H, 4, tn)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_fwd_k(N, T, D, H, <float *>P(x), <float *>P(h0), <float *>pc0, <float *>P(Wx), <float *>P(Wh),
                       <float *>P(b), <float *>P(h), <float *>P(xt), <float *>P(hs), <float *>P(c), <float *>P(tc),
                       <float *>P(A), <float *>zero, L)
        else:
            lstm_fwd_k(N, T, D, H, <double *>P(x), <double *>P(h0), <double *>pc0, <double *>P(Wx), <double *>P(Wh),
                       <double *>P(b), <double *>P(h), <double *>P(xt), <double *>P(hs), <double *>P(c),
                       <double *>P(tc), <double *>P(A), <double *>zero, L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return h, (xt, Wx, Wh, hs, c0, c, tc, A)


cdef tuple lstm_bwd(object dh, object dhT, object dcT, tuple cache):
    """-> (dx, dh0, dc0, dWx, dWh, db)."""
    cdef cnp.ndarray xt, Wx, Wh, hs, c, tc, A
    cdef object c0
    xt, Wx, Wh, hs, c0, c, tc, A = cache
    cdef int tn = float_type(xt)
    check(xt, tn, 3)
    cdef intp T = xt.shape[0], N = xt.shape[1], D = xt.shape[2], H = Wh.shape[0] if Wh.ndim == 2 else -1
    cdef intp G = 4 * H
    check(Wx, tn, 2, D, G)
    check(Wh, tn, 2, H, G)
    check(hs, tn, 3, T, N, H)
    if c0 is not None:
        check(c0, tn, 2, N, H)
    check(c, tn, 3, T, N, H)
    check(tc, tn, 3, T, N, H)
    check(A, tn, 3, T, N, G)
    if dh is not None:
        check(dh, tn, 3, N, T, H)
    for g in (dhT, dcT):
        if g is not None:
            check(g, tn, 2, N, H)
    blas_sizes(N * T, D, G)
    cdef cnp.ndarray dx = empty(3, N, T, D, tn), dh0 = empty(2, N, H, 0, tn), dc0 = empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = empty(2, D, G, 0, tn), dWh = empty(2, H, G, 0, tn), db = empty(1, G, 0, 0, tn)
    cdef size_t item = cnp.PyArray_ITEMSIZE(xt), o1 = up64(T * N * G * item), o2 = o1 + up64(T * N * D * item)
    cdef size_t o3 = o2 + up64(N * H * item), o4 = o3 + up64(H * item)
    cdef Layer layer
    cdef Layer *L = NULL
    cdef size_t carry = 0
    if use_team(N, T, H, 4, tn):
        layer_setup(&layer, N, T, D, H, 4, tn)
        L = &layer
        carry = own_pages(L, max(2 * N * H, G) * item)  # dprev and dc (split by units), or db's part (by rows)
    cdef size_t o5 = o4 + (layer_scratch(L, G, 1, tn) if L != NULL else 0)
    cdef cnp.ndarray work = scratch(o5 + carry)
    cdef char *dA = <char *>P(work)
    cdef char *dxt = dA + o1
    cdef char *dprev = dA + o2
    cdef char *zero = dA + o3
    cdef void *pdh = P_or_null(dh)
    cdef void *pdhT = P_or_null(dhT)
    cdef void *pc0 = P_or_null(c0)
    memset(zero, 0, H * item)
    if L != NULL:
        layer_place(L, dA + o4, G, 1, tn)
        place_own_pages(L, dA + o5, carry)
    if dcT is None:  # dc, carried through the loop in dc0, starts from the final cell state's gradient
        memset(P(dc0), 0, N * H * item)
    else:
        memcpy(P(dc0), P_or_null(dcT), N * H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_bwd_k(N, T, D, H, <float *>pdh, <float *>pdhT, <float *>P(xt), <float *>P(Wx), <float *>P(Wh),
                       <float *>P(hs), <float *>pc0, <float *>P(c), <float *>P(tc), <float *>P(A), <float *>P(dx),
                       <float *>P(dh0), <float *>P(dWx), <float *>P(dWh), <float *>P(db), <float *>dA,
                       <float *>dxt, <float *>dprev, <float *>P(dc0), <float *>zero, L)
        else:
            lstm_bwd_k(N, T, D, H, <double *>pdh, <double *>pdhT, <double *>P(xt), <double *>P(Wx),
                       <double *>P(Wh), <double *>P(hs), <double *>pc0, <double *>P(c), <double *>P(tc),
                       <double *>P(A), <double *>P(dx), <double *>P(dh0), <double *>P(dWx), <double *>P(dWh),
                       <double *>P(db), <double *>dA, <double *>dxt, <double *>dprev, <double *>P(dc0),
                       <double *>zero, L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return dx, dh0, dc0, dWx, dWh, db


def lstm_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                 cnp.ndarray Wh not None, cnp.ndarray b not None, *, cnp.ndarray c0=None):
    """LSTM over a sequence from c0 (zeros when None): x (N, T, D), h0 (N, H) -> (h (N, T, H), cache)."""
    return lstm_fwd(x, h0, c0, Wx, Wh, b)


def lstm_forward_state(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray c0, cnp.ndarray Wx not None,
                       cnp.ndarray Wh not None, cnp.ndarray b not None):
    """lstm_forward that also returns the final states: -> (h, hT, cT, cache); same cache."""
    h, cache = lstm_fwd(x, h0, c0, Wx, Wh, b)
    cdef intp last = x.shape[1] - 1
    return h, h[:, last].copy(), cache[5][last].copy(), cache  # h_{T-1} (a strided column of h), c_{T-1}


def lstm_backward(cnp.ndarray dh not None, tuple cache not None):
    """BPTT for lstm_forward: dh (N, T, H) -> (dx, dh0, dWx, dWh, db)."""
    dx, dh0, _, dWx, dWh, db = lstm_bwd(dh, None, None, cache)
    return dx, dh0, dWx, dWh, db


def lstm_backward_state(cnp.ndarray dh, cnp.ndarray dhT, cnp.ndarray dcT, tuple cache not None):
    """BPTT with the final states' gradients dhT, dcT (N, H); each may be None -> (dx, dh0, dc0, dWx, dWh, db)."""
    return lstm_bwd(dh, dhT, dcT, cache)


# ------------------------------------------------------------------------------------------ GRU

cdef void gru_fwd_k(intp N, intp T, intp D, intp H, const floating *x, const floating *h0,
                    const floating *Wx, const floating *Wh, const floating *b, const floating *bhn,
                    floating *h, floating *xt, floating *hs, floating *A, floating *hn, floating *R,
                    Layer *L) noexcept nogil:
    """hs (T, N, H): hs[0] = h0, hs[t] = h_{t-1} (the h stack); A (T, N, 3H) gets the activated r, z, n;
    hn (T, N, H) = h_{t-1} Wh_n + bhn.  L: run as a team job (L set up by the caller; R unused), or NULL:
    on BLAS, where R (N, 3H) is scratch for h_{t-1} Wh, apart from A because n needs its recurrent part
    apart from its input part."""
    cdef intp t, G = 3 * H, NH = N * H, NG = N * 3 * H
    swap01(N, T, D, x, xt)
    memcpy(hs, h0, NH * sizeof(floating))
    if L != NULL:
        L.xt, L.Wx, L.Wh, L.b, L.bhn, L.A, L.hs, L.hn, L.h = xt, Wx, Wh, b, bhn, A, hs, hn, h
        fr_team_run(gru_fwd_task_f if floating is float else gru_fwd_task_d, L, L.threads)
        return
    fill_rows(T * N, G, b, A, G)
    mm(False, False, T * N, G, D, xt, D, Wx, G, 1, A, G)
    for t in range(T):
        mm(False, False, N, G, H, hs + t * NH, H, Wh, G, 0, R, G)
        if floating is float:
            fr_gru_fwd_f(N, H, A + t * NG, G, R, G, bhn, hs + t * NH, H, hn + t * NH, H, h + t * H, T * H,
                         hs + (t + 1) * NH if t + 1 < T else NULL, H)
        else:
            fr_gru_fwd_d(N, H, A + t * NG, G, R, G, bhn, hs + t * NH, H, hn + t * NH, H, h + t * H, T * H,
                         hs + (t + 1) * NH if t + 1 < T else NULL, H)


cdef void gru_bwd_k(intp N, intp T, intp D, intp H, const floating *dh, const floating *xt,
                    const floating *Wx, const floating *Wh, const floating *hs, const floating *A,
                    const floating *hn, floating *dx, floating *dh0, floating *dWx, floating *dWh, floating *db,
                    floating *dbhn, floating *dA, floating *dxt, floating *WhT, const floating *zero,
                    Layer *L) noexcept nogil:
    """dh (N, T, H) may be NULL (zeros).  dh0 (N, H) carries the gradient of each step's h: it holds the
    final state's on entry and h0's on return.  dA (T, N, 4H) = [dr, dz, dhn, dn] of every step: columns
    [0, 3H) are the gradient of h_{t-1} Wh, [dr, dz] and dn that of x Wx + b.  L: as in gru_fwd_k.  On
    BLAS, WhT (3H, H): scratch to multiply by Wh transposed once, or NULL to multiply by Wh^T (see gru_bwd)."""
    cdef intp t, G = 3 * H, F = 4 * H, NH = N * H, NF = N * 4 * H
    for t in range(G):
        db[t] = 0
    for t in range(H):
        dbhn[t] = 0
    if L != NULL:
        L.xt, L.Wx, L.Wh, L.dh, L.zero = xt, Wx, Wh, dh, zero
        L.A, L.hs, L.hn = <void *>A, <void *>hs, <void *>hn  # read only in the backward
        L.dA, L.dxt, L.dx, L.dh0, L.dWx, L.dWh, L.db, L.dbhn = dA, dxt, dx, dh0, dWx, dWh, db, dbhn
        fr_team_run(gru_bwd_task_f if floating is float else gru_bwd_task_d, L, L.threads)
        return
    if WhT != NULL:
        transpose(H, G, Wh, WhT)
    for t in range(T - 1, -1, -1):
        if floating is float:
            fr_gru_bwd_f(N, H, H, dh + t * H if dh != NULL else zero, T * H if dh != NULL else 0, dh0, H,
                         A + t * N * G, G, hn + t * NH, H, hs + t * NH, H, dA + t * NF, F, db, dbhn)
        else:
            fr_gru_bwd_d(N, H, H, dh + t * H if dh != NULL else zero, T * H if dh != NULL else 0, dh0, H,
                         A + t * N * G, G, hn + t * NH, H, hs + t * NH, H, dA + t * NF, F, db, dbhn)
        if WhT != NULL:
            mm(False, False, N, H, G, dA + t * NF, F, WhT, H, 1, dh0, H)
        else:
            mm(False, True, N, H, G, dA + t * NF, F, Wh, G, 1, dh0, H)
    mm(False, True, T * N, D, 2 * H, dA, F, Wx, G, 0, dxt, D)
    mm(False, True, T * N, D, H, dA + 3 * H, F, Wx + 2 * H, G, 1, dxt, D)
    swap01(T, N, D, dxt, dx)
    mm(True, False, D, 2 * H, T * N, xt, D, dA, F, 0, dWx, G)
    mm(True, False, D, H, T * N, xt, D, dA + 3 * H, F, 0, dWx + 2 * H, G)
    mm(True, False, H, G, T * N, hs, H, dA, F, 0, dWh, G)


cdef tuple gru_fwd(cnp.ndarray x, cnp.ndarray h0, cnp.ndarray Wx, cnp.ndarray Wh, cnp.ndarray b, cnp.ndarray bhn,
                   bint step=False):
    """-> (h, cache); cache = (xt, Wx, Wh, hs, A, hn).  step: a single step's call (see step_empty)."""
    cdef int tn = float_type(x)
    check(x, tn, 3)
    cdef intp N = x.shape[0], T = x.shape[1], D = x.shape[2], H = h0.shape[1] if h0.ndim == 2 else -1
    check(h0, tn, 2, N, H)
    check(Wx, tn, 2, D, 3 * H)
    check(Wh, tn, 2, H, 3 * H)
    check(b, tn, 1, 3 * H)
    check(bhn, tn, 1, H)
    blas_sizes(N * T, D, 3 * H)
    cdef cnp.ndarray h = layer_empty(step, 3, N, T, H, tn), xt = layer_empty(step, 3, T, N, D, tn)
    cdef cnp.ndarray hs = layer_empty(step, 3, T, N, H, tn), A = layer_empty(step, 3, T, N, 3 * H, tn)
    cdef cnp.ndarray hn = layer_empty(step, 3, T, N, H, tn)
    cdef Layer layer
    cdef Layer *L = NULL
    cdef cnp.ndarray work
    if use_team(N, T, H, 3, tn):  # Wh packed as its r, z blocks and its n block: 3 gate blocks in all
        layer_setup(&layer, N, T, D, H, 3, tn)
        work = scratch(layer_scratch(&layer, H, 3, tn))
        layer_place(&layer, <char *>P(work), H, 3, tn)
        L = &layer
    else:
        work = scratch(N * 3 * H * cnp.PyArray_ITEMSIZE(x))
    cdef void *R = P(work)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            gru_fwd_k(N, T, D, H, <float *>P(x), <float *>P(h0), <float *>P(Wx), <float *>P(Wh), <float *>P(b),
                      <float *>P(bhn), <float *>P(h), <float *>P(xt), <float *>P(hs), <float *>P(A), <float *>P(hn),
                      <float *>R, L)
        else:
            gru_fwd_k(N, T, D, H, <double *>P(x), <double *>P(h0), <double *>P(Wx), <double *>P(Wh),
                      <double *>P(b), <double *>P(bhn), <double *>P(h), <double *>P(xt), <double *>P(hs),
                      <double *>P(A), <double *>P(hn), <double *>R, L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return h, (xt, Wx, Wh, hs, A, hn)


cdef tuple gru_bwd(object dh, object dhT, tuple cache, bint step=False):
    """-> (dx, dh0, dWx, dWh, db, dbhn).  step: a single step's call (see step_empty)."""
    cdef cnp.ndarray xt, Wx, Wh, hs, A, hn
    xt, Wx, Wh, hs, A, hn = cache
    cdef int tn = float_type(xt)
    check(xt, tn, 3)
    cdef intp T = xt.shape[0], N = xt.shape[1], D = xt.shape[2], H = Wh.shape[0] if Wh.ndim == 2 else -1
    cdef intp G = 3 * H
    check(Wx, tn, 2, D, G)
    check(Wh, tn, 2, H, G)
    check(hs, tn, 3, T, N, H)
    check(A, tn, 3, T, N, G)
    check(hn, tn, 3, T, N, H)
    if dh is not None:
        check(dh, tn, 3, N, T, H)
    if dhT is not None:
        check(dhT, tn, 2, N, H)
    blas_sizes(N * T, D, 4 * H)
    cdef cnp.ndarray dx = layer_empty(step, 3, N, T, D, tn), dh0 = layer_empty(step, 2, N, H, 0, tn)
    cdef cnp.ndarray dWx = layer_empty(step, 2, D, G, 0, tn), dWh = layer_empty(step, 2, H, G, 0, tn)
    cdef cnp.ndarray db = layer_empty(step, 1, G, 0, 0, tn), dbhn = layer_empty(step, 1, H, 0, 0, tn)
    cdef Layer layer
    cdef Layer *L = NULL
    if use_team(N, T, H, 3, tn):
        layer_setup(&layer, N, T, D, H, 3, tn)
        L = &layer
    # On BLAS in float32, OpenBLAS multiplies by a transposed operand slower than by a copy transposed once
    # (measured here: 16 steps of dA_t Wh^T, 11.0 against 9.8 ms at (100, 16, 256, 512), 115 against 101 ms at
    # (64, 64, 512, 1024)); the copy pays from a few steps on (the Numba backend's rule).  In float64 it does
    # not: the whole small/medium backward took 22.1/65 ms with the copy against 18.8/60 ms without.
    cdef bint transposed = L == NULL and T > 1 and N * T >= 256 and tn == cnp.NPY_FLOAT32
    cdef size_t item = cnp.PyArray_ITEMSIZE(xt), o1 = up64(T * N * 4 * H * item), o2 = o1 + up64(T * N * D * item)
    cdef size_t o3 = o2 + (up64(G * H * item) if transposed else 0), o4 = o3 + up64(H * item)
    cdef size_t own = own_pages(L, (G + H) * item) if L != NULL else 0  # db's and dbhn's parts (split by rows)
    cdef size_t o5 = o4 + (layer_scratch(L, G, 1, tn) if L != NULL else 0)
    cdef cnp.ndarray work = scratch(o5 + own)
    cdef char *dA = <char *>P(work)
    cdef char *dxt = dA + o1
    cdef char *WhT = dA + o2 if transposed else NULL
    cdef char *zero = dA + o3
    cdef void *pdh = P_or_null(dh)
    memset(zero, 0, H * item)
    if L != NULL:
        layer_place(L, dA + o4, G, 1, tn)
        place_own_pages(L, dA + o5, own)
    if dhT is None:  # the carried gradient, in dh0, starts from the final state's
        memset(P(dh0), 0, N * H * item)
    else:
        memcpy(P(dh0), P_or_null(dhT), N * H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            gru_bwd_k(N, T, D, H, <float *>pdh, <float *>P(xt), <float *>P(Wx), <float *>P(Wh), <float *>P(hs),
                      <float *>P(A), <float *>P(hn), <float *>P(dx), <float *>P(dh0), <float *>P(dWx),
                      <float *>P(dWh), <float *>P(db), <float *>P(dbhn), <float *>dA, <float *>dxt, <float *>WhT,
                      <float *>zero, L)
        else:
            gru_bwd_k(N, T, D, H, <double *>pdh, <double *>P(xt), <double *>P(Wx), <double *>P(Wh),
                      <double *>P(hs), <double *>P(A), <double *>P(hn), <double *>P(dx), <double *>P(dh0),
                      <double *>P(dWx), <double *>P(dWh), <double *>P(db), <double *>P(dbhn), <double *>dA,
                      <double *>dxt, <double *>WhT, <double *>zero, L)
    if L != NULL and L.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return dx, dh0, dWx, dWh, db, dbhn


def gru_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                cnp.ndarray Wh not None, cnp.ndarray b not None, cnp.ndarray bhn not None):
    """GRU over a sequence: x (N, T, D), h0 (N, H) -> (h (N, T, H), cache)."""
    return gru_fwd(x, h0, Wx, Wh, b, bhn)


def gru_forward_state(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                      cnp.ndarray Wh not None, cnp.ndarray b not None, cnp.ndarray bhn not None):
    """gru_forward that also returns the final state: -> (h, hT (N, H), cache); same cache."""
    h, cache = gru_fwd(x, h0, Wx, Wh, b, bhn)
    cdef intp last = x.shape[1] - 1
    return h, h[:, last].copy(), cache


def gru_backward(cnp.ndarray dh not None, tuple cache not None):
    """BPTT for gru_forward: dh (N, T, H) -> (dx, dh0, dWx, dWh, db, dbhn)."""
    return gru_bwd(dh, None, cache)


def gru_backward_state(cnp.ndarray dh, cnp.ndarray dhT, tuple cache not None):
    """BPTT with the final state's gradient dhT (N, H); dh and dhT may be None -> (dx, dh0, dWx, dWh, db, dbhn)."""
    return gru_bwd(dh, dhT, cache)


def gru_step_forward(cnp.ndarray x not None, cnp.ndarray prev_h not None, cnp.ndarray Wx not None,
                     cnp.ndarray Wh not None, cnp.ndarray b not None, cnp.ndarray bhn not None):
    """One GRU step: the sequence kernel with T = 1 -> (next_h (N, H), cache)."""
    if x.ndim != 2:
        raise ValueError(f"gru_step_forward: x of shape {shape_of(x)}")
    h, cache = gru_fwd(x.reshape(x.shape[0], 1, x.shape[1]), prev_h, Wx, Wh, b, bhn, True)
    return h.reshape(h.shape[0], h.shape[2]), cache


def gru_step_backward(cnp.ndarray dnext_h not None, tuple cache not None):
    """-> (dx, dprev_h, dWx, dWh, db, dbhn) for gru_step_forward."""
    if dnext_h.ndim != 2:
        raise ValueError(f"gru_step_backward: dnext_h of shape {shape_of(dnext_h)}")
    dx, dprev_h, dWx, dWh, db, dbhn = gru_bwd(dnext_h.reshape(dnext_h.shape[0], 1, dnext_h.shape[1]), None, cache, True)
    return dx.reshape(dx.shape[0], dx.shape[2]), dprev_h, dWx, dWh, db, dbhn


# ------------------------------------------------------------------------------------------ single steps

cdef void rnn_step_fwd_k(intp N, intp D, intp H, const floating *x, const floating *prev_h,
                         const floating *Wx, const floating *Wh, const floating *b,
                         floating *next_h) noexcept nogil:
    mm(False, False, N, H, D, x, D, Wx, H, 0, next_h, H)
    mm(False, False, N, H, H, prev_h, H, Wh, H, 1, next_h, H)
    if floating is float:
        fr_rnn_fwd_f(N, H, next_h, H, b, NULL, 0)
    else:
        fr_rnn_fwd_d(N, H, next_h, H, b, NULL, 0)


cdef void step_grads_k(intp N, intp D, intp H, intp G, const floating *dA, const floating *x,
                       const floating *prev_h, const floating *Wx, const floating *Wh,
                       floating *dx, floating *dprev_h, floating *dWx, floating *dWh) noexcept nogil:
    """The four GEMMs of a step's backward pass, from dA (N, G)."""
    mm(False, True, N, D, G, dA, G, Wx, G, 0, dx, D)
    mm(False, True, N, H, G, dA, G, Wh, G, 0, dprev_h, H)
    mm(True, False, D, G, N, x, D, dA, G, 0, dWx, G)
    mm(True, False, H, G, N, prev_h, H, dA, G, 0, dWh, G)


cdef void rnn_step_bwd_k(intp N, intp D, intp H, const floating *dnext_h, const floating *x,
                         const floating *prev_h, const floating *Wx, const floating *Wh,
                         const floating *next_h, floating *dx, floating *dprev_h, floating *dWx,
                         floating *dWh, floating *db, floating *dA, const floating *zero) noexcept nogil:
    cdef intp j
    for j in range(H):
        db[j] = 0
    if floating is float:
        fr_rnn_bwd_f(N, H, dnext_h, H, zero, 0, next_h, H, dA, H, db, 0)
    else:
        fr_rnn_bwd_d(N, H, dnext_h, H, zero, 0, next_h, H, dA, H, db, 0)
    step_grads_k(N, D, H, H, dA, x, prev_h, Wx, Wh, dx, dprev_h, dWx, dWh)


def rnn_step_forward(cnp.ndarray x not None, cnp.ndarray prev_h not None, cnp.ndarray Wx not None,
                     cnp.ndarray Wh not None, cnp.ndarray b not None):
    """One vanilla RNN step: next_h = tanh(x Wx + prev_h Wh + b) -> (next_h, cache)."""
    cdef int tn = float_type(x)
    check(x, tn, 2)
    cdef intp N = x.shape[0], D = x.shape[1], H = prev_h.shape[1] if prev_h.ndim == 2 else -1
    check(prev_h, tn, 2, N, H)
    check(Wx, tn, 2, D, H)
    check(Wh, tn, 2, H, H)
    check(b, tn, 1, H)
    blas_sizes(N, D, H)
    cdef cnp.ndarray next_h = step_empty(2, N, H, 0, tn)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_step_fwd_k(N, D, H, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(prev_h), <float *>cnp.PyArray_DATA(Wx),
                           <float *>cnp.PyArray_DATA(Wh), <float *>cnp.PyArray_DATA(b), <float *>cnp.PyArray_DATA(next_h))
        else:
            rnn_step_fwd_k(N, D, H, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(prev_h), <double *>cnp.PyArray_DATA(Wx),
                           <double *>cnp.PyArray_DATA(Wh), <double *>cnp.PyArray_DATA(b), <double *>cnp.PyArray_DATA(next_h))
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(cnp.ndarray dnext_h not None, tuple cache not None):
    """-> (dx, dprev_h, dWx, dWh, db) for rnn_step_forward."""
    cdef cnp.ndarray x, prev_h, Wx, Wh, next_h
    x, prev_h, Wx, Wh, next_h = cache
    cdef int tn = float_type(x)
    check(x, tn, 2)
    cdef intp N = x.shape[0], D = x.shape[1], H = Wh.shape[0] if Wh.ndim == 2 else -1
    check(prev_h, tn, 2, N, H)
    check(Wx, tn, 2, D, H)
    check(Wh, tn, 2, H, H)
    check(next_h, tn, 2, N, H)
    check(dnext_h, tn, 2, N, H)
    blas_sizes(N, D, H)
    cdef cnp.ndarray dx = step_empty(2, N, D, 0, tn), dprev_h = step_empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = step_empty(2, D, H, 0, tn), dWh = step_empty(2, H, H, 0, tn), db = step_empty(1, H, 0, 0, tn)
    cdef size_t item = cnp.PyArray_ITEMSIZE(x), o1 = up64(N * H * item)
    cdef cnp.ndarray work = scratch(o1 + H * item)
    cdef char *dA = <char *>P(work)
    cdef char *zero = dA + o1
    memset(zero, 0, H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_step_bwd_k(N, D, H, <float *>cnp.PyArray_DATA(dnext_h), <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(prev_h),
                           <float *>cnp.PyArray_DATA(Wx), <float *>cnp.PyArray_DATA(Wh), <float *>cnp.PyArray_DATA(next_h), <float *>cnp.PyArray_DATA(dx),
                           <float *>cnp.PyArray_DATA(dprev_h), <float *>cnp.PyArray_DATA(dWx), <float *>cnp.PyArray_DATA(dWh), <float *>cnp.PyArray_DATA(db),
                           <float *>dA, <float *>zero)
        else:
            rnn_step_bwd_k(N, D, H, <double *>cnp.PyArray_DATA(dnext_h), <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(prev_h),
                           <double *>cnp.PyArray_DATA(Wx), <double *>cnp.PyArray_DATA(Wh), <double *>cnp.PyArray_DATA(next_h), <double *>cnp.PyArray_DATA(dx),
                           <double *>cnp.PyArray_DATA(dprev_h), <double *>cnp.PyArray_DATA(dWx), <double *>cnp.PyArray_DATA(dWh), <double *>cnp.PyArray_DATA(db),
                           <double *>dA, <double *>zero)
    return dx, dprev_h, dWx, dWh, db


cdef void lstm_step_fwd_k(intp N, intp D, intp H, const floating *x, const floating *prev_h,
                          const floating *prev_c, const floating *Wx, const floating *Wh,
                          const floating *b, floating *next_h, floating *next_c, floating *A,
                          floating *tc) noexcept nogil:
    cdef intp G = 4 * H
    mm(False, False, N, G, D, x, D, Wx, G, 0, A, G)
    mm(False, False, N, G, H, prev_h, H, Wh, G, 1, A, G)
    if floating is float:
        fr_lstm_fwd_f(N, H, H, A, G, b, prev_c, H, next_c, H, tc, H, next_h, H, NULL, 0, 0)
    else:
        fr_lstm_fwd_d(N, H, H, A, G, b, prev_c, H, next_c, H, tc, H, next_h, H, NULL, 0, 0)


cdef void lstm_step_bwd_k(intp N, intp D, intp H, const floating *dnext_h, const floating *dnext_c,
                          const floating *x, const floating *prev_h, const floating *prev_c,
                          const floating *Wx, const floating *Wh, const floating *gates,
                          const floating *tc, floating *dx, floating *dprev_h, floating *dprev_c,
                          floating *dWx, floating *dWh, floating *db, floating *dA,
                          const floating *zero) noexcept nogil:
    cdef intp j, G = 4 * H
    for j in range(G):
        db[j] = 0
    memcpy(dprev_c, dnext_c, N * H * sizeof(floating))  # the kernel turns dc into dc * f in place
    if floating is float:
        fr_lstm_bwd_f(N, H, H, dnext_h, H, zero, 0, dprev_c, H, gates, G, tc, H, prev_c, H, dA, G, db, 0)
    else:
        fr_lstm_bwd_d(N, H, H, dnext_h, H, zero, 0, dprev_c, H, gates, G, tc, H, prev_c, H, dA, G, db, 0)
    step_grads_k(N, D, H, G, dA, x, prev_h, Wx, Wh, dx, dprev_h, dWx, dWh)


def lstm_step_forward(cnp.ndarray x not None, cnp.ndarray prev_h not None, cnp.ndarray prev_c not None,
                      cnp.ndarray Wx not None, cnp.ndarray Wh not None, cnp.ndarray b not None):
    """One LSTM step (gates i, f, o, g) -> (next_h, next_c, cache)."""
    cdef int tn = float_type(x)
    check(x, tn, 2)
    cdef intp N = x.shape[0], D = x.shape[1], H = prev_h.shape[1] if prev_h.ndim == 2 else -1
    check(prev_h, tn, 2, N, H)
    check(prev_c, tn, 2, N, H)
    check(Wx, tn, 2, D, 4 * H)
    check(Wh, tn, 2, H, 4 * H)
    check(b, tn, 1, 4 * H)
    blas_sizes(N, D, 4 * H)
    cdef cnp.ndarray next_h = step_empty(2, N, H, 0, tn), next_c = step_empty(2, N, H, 0, tn)
    cdef cnp.ndarray A = step_empty(2, N, 4 * H, 0, tn), tc = step_empty(2, N, H, 0, tn)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_step_fwd_k(N, D, H, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(prev_h), <float *>cnp.PyArray_DATA(prev_c),
                            <float *>cnp.PyArray_DATA(Wx), <float *>cnp.PyArray_DATA(Wh), <float *>cnp.PyArray_DATA(b), <float *>cnp.PyArray_DATA(next_h),
                            <float *>cnp.PyArray_DATA(next_c), <float *>cnp.PyArray_DATA(A), <float *>cnp.PyArray_DATA(tc))
        else:
            lstm_step_fwd_k(N, D, H, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(prev_h), <double *>cnp.PyArray_DATA(prev_c),
                            <double *>cnp.PyArray_DATA(Wx), <double *>cnp.PyArray_DATA(Wh), <double *>cnp.PyArray_DATA(b), <double *>cnp.PyArray_DATA(next_h),
                            <double *>cnp.PyArray_DATA(next_c), <double *>cnp.PyArray_DATA(A), <double *>cnp.PyArray_DATA(tc))
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, A, tc)


def lstm_step_backward(cnp.ndarray dnext_h not None, cnp.ndarray dnext_c not None, tuple cache not None):
    """-> (dx, dprev_h, dprev_c, dWx, dWh, db) for lstm_step_forward."""
    cdef cnp.ndarray x, prev_h, prev_c, Wx, Wh, A, tc
    x, prev_h, prev_c, Wx, Wh, A, tc = cache
    cdef int tn = float_type(x)
    check(x, tn, 2)
    cdef intp N = x.shape[0], D = x.shape[1], H = Wh.shape[0] if Wh.ndim == 2 else -1
    cdef intp G = 4 * H
    check(prev_h, tn, 2, N, H)
    check(prev_c, tn, 2, N, H)
    check(Wx, tn, 2, D, G)
    check(Wh, tn, 2, H, G)
    check(A, tn, 2, N, G)
    check(tc, tn, 2, N, H)
    check(dnext_h, tn, 2, N, H)
    check(dnext_c, tn, 2, N, H)
    blas_sizes(N, D, G)
    cdef cnp.ndarray dx = step_empty(2, N, D, 0, tn), dprev_h = step_empty(2, N, H, 0, tn), dprev_c = step_empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = step_empty(2, D, G, 0, tn), dWh = step_empty(2, H, G, 0, tn), db = step_empty(1, G, 0, 0, tn)
    cdef size_t item = cnp.PyArray_ITEMSIZE(x), o1 = up64(N * G * item)
    cdef cnp.ndarray work = scratch(o1 + H * item)
    cdef char *dA = <char *>P(work)
    cdef char *zero = dA + o1
    memset(zero, 0, H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_step_bwd_k(N, D, H, <float *>cnp.PyArray_DATA(dnext_h), <float *>cnp.PyArray_DATA(dnext_c), <float *>cnp.PyArray_DATA(x),
                            <float *>cnp.PyArray_DATA(prev_h), <float *>cnp.PyArray_DATA(prev_c), <float *>cnp.PyArray_DATA(Wx), <float *>cnp.PyArray_DATA(Wh),
                            <float *>cnp.PyArray_DATA(A), <float *>cnp.PyArray_DATA(tc), <float *>cnp.PyArray_DATA(dx), <float *>cnp.PyArray_DATA(dprev_h),
                            <float *>cnp.PyArray_DATA(dprev_c), <float *>cnp.PyArray_DATA(dWx), <float *>cnp.PyArray_DATA(dWh), <float *>cnp.PyArray_DATA(db),
                            <float *>dA, <float *>zero)
        else:
            lstm_step_bwd_k(N, D, H, <double *>cnp.PyArray_DATA(dnext_h), <double *>cnp.PyArray_DATA(dnext_c), <double *>cnp.PyArray_DATA(x),
                            <double *>cnp.PyArray_DATA(prev_h), <double *>cnp.PyArray_DATA(prev_c), <double *>cnp.PyArray_DATA(Wx), <double *>cnp.PyArray_DATA(Wh),
                            <double *>cnp.PyArray_DATA(A), <double *>cnp.PyArray_DATA(tc), <double *>cnp.PyArray_DATA(dx), <double *>cnp.PyArray_DATA(dprev_h),
                            <double *>cnp.PyArray_DATA(dprev_c), <double *>cnp.PyArray_DATA(dWx), <double *>cnp.PyArray_DATA(dWh), <double *>cnp.PyArray_DATA(db),
                            <double *>dA, <double *>zero)
    return dx, dprev_h, dprev_c, dWx, dWh, db


# ------------------------------------------------------------------------------------------ affine layers

# The affine layers run on the team too (when fastrnn._native is there), so that a model never mixes
# BLAS's threads with the team's.  Each product is split between the threads along the dimension whose
# split makes every thread pack the smaller operand.
cdef struct Dense:
    intp R, D, M
    size_t work
    int64_t threads
    const void *x
    const void *w
    const void *b
    const void *dout
    void *out
    void *dx
    void *dw
    void *db
    void *W
    int failed


cdef inline void dense_setup(Dense *d, intp R, intp D, intp M, int tn) noexcept nogil:
    """d's sizes and threads; its gemm work covers every product of dense_fwd_body and dense_bwd_body (rows
    up to max(R, D), columns up to max(D, M), depth up to max(R, D, M))."""
    memset(d, 0, sizeof(Dense))
    d.R, d.D, d.M = R, D, M
    # a thread per DENSE_MIN_FLOPS, or per DENSE_MIN_BYTES of w when that gives more: a product of few
    # rows (a sampled word's scores) is bound by reading w, which two cores read faster
    d.threads = team_threads(max(2.0 * R * D * M, <double>D * M * (4 if tn == cnp.NPY_FLOAT32 else 8)
                                 * (DENSE_MIN_FLOPS / DENSE_MIN_BYTES)), DENSE_MIN_FLOPS, 64)
    d.work = up64((fr_gemm_work_s if tn == cnp.NPY_FLOAT32 else fr_gemm_work_d)(max(R, D), max(D, M), max(R, max(D, M)), 1))


cdef void dense_fwd_body(floating *kind, Dense *d, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """out = x w + b: this thread's rows (every thread packs w) or columns (every thread packs x)."""
    cdef intp r, a, e, R = d.R, D = d.D, M = d.M
    cdef floating *out = <floating *>d.out
    cdef const floating *x = <const floating *>d.x
    cdef const floating *b = <const floating *>d.b
    cdef Work wk = thread_work(d.W, d.work, tid, &d.failed)
    cdef Work *work = &wk
    if M <= R:
        share(R, tid, nth, &a, &e)
        for r in range(a, e):
            memcpy(out + r * M, b, M * sizeof(floating))
        if e > a:
            pgemm(e - a, D, x + a * D, D, 0, <const floating *>d.w, M, 0, M, 1, 0, M, out + a * M, M, 1, work)
    else:
        share(M, tid, nth, &a, &e)
        for r in range(R):
            memcpy(out + r * M + a, b + a, (e - a) * sizeof(floating))
        pgemm(R, D, x, D, 0, <const floating *>d.w, M, 0, M, 1, a, e, out, M, 1, work)


cdef void dense_bwd_body(floating *kind, Dense *d, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    """dx = dout w^T, dw = x^T dout, db = column sums of dout: this thread's share of each."""
    cdef intp j, a, e, R = d.R, D = d.D, M = d.M
    cdef const floating *dout = <const floating *>d.dout
    cdef const floating *x = <const floating *>d.x
    cdef const floating *w = <const floating *>d.w
    cdef floating *db = <floating *>d.db
    cdef Work wk = thread_work(d.W, d.work, tid, &d.failed)
    cdef Work *work = &wk
    if D <= R:  # dx by rows (every thread packs w^T) or by columns (every thread packs dout)
        share(R, tid, nth, &a, &e)
        if e > a:
            pgemm(e - a, M, dout + a * M, M, 0, w, M, 1, D, 1, 0, D, <floating *>d.dx + a * D, D, 0, work)
    else:
        share(D, tid, nth, &a, &e)
        pgemm(R, M, dout, M, 0, w, M, 1, D, 1, a, e, <floating *>d.dx, D, 0, work)
    if D <= M:  # dw by columns (every thread packs x^T) or by rows (every thread packs dout)
        share(M, tid, nth, &a, &e)
        pgemm(D, R, x, D, 1, dout, M, 0, M, 1, a, e, <floating *>d.dw, M, 0, work)
    else:
        share(D, tid, nth, &a, &e)
        if e > a:
            pgemm(e - a, R, x + a, D, 1, dout, M, 0, M, 1, 0, M, <floating *>d.dw + a * M, M, 0, work)
    share(M, tid, nth, &a, &e)
    for j in range(a, e):
        db[j] = 0
    if e > a:
        if floating is float:
            fr_colsum_f(R, e - a, dout + a, M, db + a)
        else:
            fr_colsum_d(R, e - a, dout + a, M, db + a)


cdef void dense_fwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    dense_fwd_body(<float *>NULL, <Dense *>arg, sync, tid, nth)


cdef void dense_fwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    dense_fwd_body(<double *>NULL, <Dense *>arg, sync, tid, nth)


cdef void dense_bwd_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    dense_bwd_body(<float *>NULL, <Dense *>arg, sync, tid, nth)


cdef void dense_bwd_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    dense_bwd_body(<double *>NULL, <Dense *>arg, sync, tid, nth)


cdef void affine_fwd_k(intp R, intp D, intp M, const floating *x, const floating *w, const floating *b,
                       floating *out, Dense *d) noexcept nogil:
    if resident(R, M, D, x, D, w, M, out, M, 0, b) == 0:  # w packed once for this loop
        return
    if d != NULL:
        d.x, d.w, d.b, d.out = x, w, b, out
        fr_team_run(dense_fwd_task_f if floating is float else dense_fwd_task_d, d, d.threads)
        return
    fill_rows(R, M, b, out, M)
    mm(False, False, R, M, D, x, D, w, M, 1, out, M)


cdef void affine_bwd_k(intp R, intp D, intp M, const floating *dout, const floating *x, const floating *w,
                       floating *dx, floating *dw, floating *db, Dense *d) noexcept nogil:
    cdef intp j
    if d != NULL:
        d.dout, d.x, d.w, d.dx, d.dw, d.db = dout, x, w, dx, dw, db
        fr_team_run(dense_bwd_task_f if floating is float else dense_bwd_task_d, d, d.threads)
        return
    mm(False, True, R, D, M, dout, M, w, M, 0, dx, D)
    mm(True, False, D, M, R, x, D, dout, M, 0, dw, M)
    for j in range(M):
        db[j] = 0
    if floating is float:
        fr_colsum_f(R, M, dout, M, db)
    else:
        fr_colsum_d(R, M, dout, M, db)


cdef tuple affine_fwd(cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, intp R, cnp.ndarray out):
    cdef int tn = cnp.PyArray_TYPE(x)
    if R < 1:
        raise ValueError(f"affine layer on x of shape {shape_of(x)}")
    cdef intp D = cnp.PyArray_SIZE(x) // R, M = w.shape[1] if w.ndim == 2 else -1
    check(w, tn, 2, D, M)
    check(b, tn, 1, M)
    check(out, tn, cnp.PyArray_NDIM(out))
    if cnp.PyArray_SIZE(out) != R * M:
        raise ValueError("affine output of the wrong size")
    blas_sizes(R, D, M)
    cdef Dense dense
    cdef Dense *d = NULL
    cdef cnp.ndarray work
    if fr_team_run != NULL:
        dense_setup(&dense, R, D, M, tn)
        work = scratch(dense.threads * dense.work)
        dense.W = P(work)
        d = &dense
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            affine_fwd_k(R, D, M, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(w), <float *>cnp.PyArray_DATA(b), <float *>cnp.PyArray_DATA(out), d)
        else:
            affine_fwd_k(R, D, M, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(w), <double *>cnp.PyArray_DATA(b), <double *>cnp.PyArray_DATA(out), d)
    if d != NULL and d.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return out, (x, w)


cdef tuple affine_bwd(cnp.ndarray dout, cnp.ndarray x, cnp.ndarray w, intp R):
    cdef int tn = float_type(x)
    if R < 1:
        raise ValueError(f"affine layer on x of shape {shape_of(x)}")
    check(x, tn, cnp.PyArray_NDIM(x))
    cdef intp D = cnp.PyArray_SIZE(x) // R, M = w.shape[1] if w.ndim == 2 else -1
    check(w, tn, 2, D, M)
    check(dout, tn, cnp.PyArray_NDIM(dout))
    if cnp.PyArray_SIZE(dout) != R * M or cnp.PyArray_SIZE(x) != R * D:
        raise ValueError(f"dout of shape {shape_of(dout)} does not match the cache")
    blas_sizes(R, D, M)
    cdef cnp.ndarray dx = pooled_empty(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), tn)
    cdef cnp.ndarray dw = empty(2, D, M, 0, tn), db = empty(1, M, 0, 0, tn)
    cdef Dense dense
    cdef Dense *d = NULL
    cdef cnp.ndarray work
    if fr_team_run != NULL:
        dense_setup(&dense, R, D, M, tn)
        work = scratch(dense.threads * dense.work)
        dense.W = P(work)
        d = &dense
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            affine_bwd_k(R, D, M, <float *>cnp.PyArray_DATA(dout), <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(w), <float *>cnp.PyArray_DATA(dx),
                         <float *>cnp.PyArray_DATA(dw), <float *>cnp.PyArray_DATA(db), d)
        else:
            affine_bwd_k(R, D, M, <double *>cnp.PyArray_DATA(dout), <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(w), <double *>cnp.PyArray_DATA(dx),
                         <double *>cnp.PyArray_DATA(dw), <double *>cnp.PyArray_DATA(db), d)
    if d != NULL and d.failed:
        raise MemoryError("fastrnn: no memory for a product's work buffer")
    return dx, dw, db


def affine_forward(cnp.ndarray x not None, cnp.ndarray w not None, cnp.ndarray b not None):
    """x (N, d_1, ..., d_k) flattened to (N, D); w (D, M), b (M,) -> (out (N, M), cache)."""
    cdef int tn = float_type(x)
    check(x, tn, cnp.PyArray_NDIM(x))
    if cnp.PyArray_NDIM(x) < 1 or x.shape[0] < 1 or w.ndim != 2:
        raise ValueError(f"affine_forward: x of shape {shape_of(x)} with w of shape {shape_of(w)}")
    cdef intp N = x.shape[0]
    return affine_fwd(x, w, b, N, empty(2, N, w.shape[1], 0, tn))


def affine_backward(cnp.ndarray dout not None, tuple cache not None):
    """-> (dx, dw, db) for affine_forward; dx has the shape of x."""
    cdef cnp.ndarray x, w
    x, w = cache
    if cnp.PyArray_NDIM(x) < 1 or x.shape[0] < 1:
        raise ValueError(f"affine_backward: x of shape {shape_of(x)}")
    return affine_bwd(dout, x, w, x.shape[0])


def temporal_affine_forward(cnp.ndarray x not None, cnp.ndarray w not None, cnp.ndarray b not None):
    """x (N, T, D), w (D, M), b (M,) -> (out (N, T, M), cache)."""
    cdef int tn = float_type(x)
    check(x, tn, 3)
    if w.ndim != 2:
        raise ValueError(f"temporal_affine_forward: w of shape {shape_of(w)}")
    return affine_fwd(x, w, b, x.shape[0] * x.shape[1], empty(3, x.shape[0], x.shape[1], w.shape[1], tn))


def temporal_affine_backward(cnp.ndarray dout not None, tuple cache not None):
    """-> (dx, dw, db) for temporal_affine_forward."""
    cdef cnp.ndarray x, w
    x, w = cache
    if cnp.PyArray_NDIM(x) != 3:
        raise ValueError(f"temporal_affine_backward: x of shape {shape_of(x)}")
    return affine_bwd(dout, x, w, x.shape[0] * x.shape[1])


# ------------------------------------------------------------------------------------------ words, scores, sigmoid

cdef int embed_fwd_k(intp n, intp V, intp D, const intp *x, const floating *W, floating *out) noexcept nogil:
    cdef intp i, k
    for i in range(n):
        k = x[i]
        if k < 0 or k >= V:
            return -1
        memcpy(out + i * D, W + k * D, D * sizeof(floating))
    return 0


cdef int embed_bwd_k(intp n, intp V, intp D, const intp *x, const floating *dout, floating *dW) noexcept nogil:
    """dW[x[i]] += dout[i] in index order, like np.add.at."""
    cdef intp i, j, k
    cdef floating *row
    cdef const floating *src
    for i in range(n):
        k = x[i]
        if k < 0 or k >= V:
            return -1
        row = dW + k * D
        src = dout + i * D
        for j in range(D):
            row[j] += src[j]
    return 0


def word_embedding_forward(cnp.ndarray x not None, cnp.ndarray W not None):
    """Integer x of any shape, W (V, D) -> (W[x] of shape x.shape + (D,), cache)."""
    cdef int tn = float_type(W)
    check(W, tn, 2)
    check_index(x)
    cdef intp V = W.shape[0], D = W.shape[1], n = cnp.PyArray_SIZE(x), k
    cdef int nd = cnp.PyArray_NDIM(x)
    if nd > 31:
        raise ValueError("x has too many dimensions")
    cdef intp dims[32]
    for k in range(nd):
        dims[k] = x.shape[k]
    dims[nd] = D
    cdef cnp.ndarray out = pooled_empty(nd + 1, dims, tn)
    cdef int status
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            status = embed_fwd_k(n, V, D, <intp *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(W), <float *>cnp.PyArray_DATA(out))
        else:
            status = embed_fwd_k(n, V, D, <intp *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(W), <double *>cnp.PyArray_DATA(out))
    if status:
        raise IndexError(f"x holds a word index outside [0, V) = [0, {V})")
    return out, (x, V)


def word_embedding_backward(cnp.ndarray dout not None, tuple cache not None):
    """-> dW (V, D) for word_embedding_forward; rows of repeated indices are summed."""
    cdef cnp.ndarray x = cache[0]
    cdef intp V = cache[1]
    check_index(x)
    cdef int tn = float_type(dout)
    cdef int nd = cnp.PyArray_NDIM(x)
    check(dout, tn, nd + 1)
    cdef intp n = cnp.PyArray_SIZE(x), D = dout.shape[nd], k
    for k in range(nd):
        if dout.shape[k] != x.shape[k]:
            raise ValueError(f"dout of shape {shape_of(dout)} does not match x of shape {shape_of(x)}")
    cdef cnp.ndarray dW = zeros(2, V, D, tn)
    cdef int status
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            status = embed_bwd_k(n, V, D, <intp *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(dout), <float *>cnp.PyArray_DATA(dW))
        else:
            status = embed_bwd_k(n, V, D, <intp *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(dout), <double *>cnp.PyArray_DATA(dW))
    if status:
        raise IndexError(f"x holds a word index outside [0, V) = [0, {V})")
    return dW


def sigmoid(cnp.ndarray x not None):
    """Numerically stable logistic function, elementwise; any shape."""
    cdef int tn = float_type(x)
    if not cnp.PyArray_ISCARRAY_RO(x):
        raise ValueError("the Cython kernels take C-contiguous arrays (fastrnn.layers makes them so)")
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), tn, 0)
    cdef intp n = cnp.PyArray_SIZE(x)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            fr_sigmoid_loop_f(n, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(out))
        else:
            fr_sigmoid_loop_d(n, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(out))
    return out


# The softmax loss as a team job: each thread its share of the rows, and its part of the loss (summed
# in thread order afterwards, so a given thread count always gives the same loss).
cdef struct Softmax:
    intp R, V
    const void *x
    const intp *y
    const void *mask
    double inv_n
    float inv_nf  # 1/N as the serial float32 kernel takes it
    void *dx
    double loss[64]  # per thread (fastrnn/_native/team.h's FR_TEAM_MAX)


cdef void softmax_body(floating *kind, Softmax *s, int64_t tid, int64_t nth) noexcept nogil:
    cdef intp a, e
    share(s.R, tid, nth, &a, &e)
    s.loss[tid] = 0
    if e <= a:
        return
    if floating is float:
        s.loss[tid] = fr_softmax_loss_f(e - a, s.V, <const float *>s.x + a * s.V, s.y + a,
                                        <const float *>s.mask + a, s.inv_nf, <float *>s.dx + a * s.V)
    else:
        s.loss[tid] = fr_softmax_loss_d(e - a, s.V, <const double *>s.x + a * s.V, s.y + a,
                                        <const double *>s.mask + a, s.inv_n, <double *>s.dx + a * s.V)


cdef void softmax_task_f(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    softmax_body(<float *>NULL, <Softmax *>arg, tid, nth)


cdef void softmax_task_d(void *arg, void *sync, int64_t tid, int64_t nth) noexcept nogil:
    softmax_body(<double *>NULL, <Softmax *>arg, tid, nth)


def temporal_softmax_loss(cnp.ndarray x not None, cnp.ndarray y not None, cnp.ndarray mask not None,
                          verbose=False):
    """Masked softmax cross-entropy over x (N, T, V), targets y (N, T), mask (N, T) -> (loss, dx).

    One fused pass per row (max, exp and sum, log-sum-exp, loss, gradient); loss divided by N.  With
    fastrnn._native and enough rows, a team job (a share of the rows per thread)."""
    cdef int tn = float_type(x)
    check(x, tn, 3)
    cdef intp N = x.shape[0], T = x.shape[1], V = x.shape[2], R = N * T, r
    check_index(y)
    if cnp.PyArray_NDIM(y) != 2 or y.shape[0] != N or y.shape[1] != T:
        raise ValueError(f"y of shape {shape_of(y)} does not match x of shape {shape_of(x)}")
    check(mask, tn, 2, N, T)
    cdef const intp *py = <intp *>cnp.PyArray_DATA(y)
    for r in range(R):
        if py[r] < 0 or py[r] >= V:
            raise IndexError(f"y holds word index {py[r]}, outside [0, V) = [0, {V})")
    cdef cnp.ndarray dx = empty(3, N, T, V, tn)
    cdef double loss = 0
    cdef Softmax sm
    cdef int64_t threads = team_threads(<double>R * <double>V, SOFTMAX_MIN_SCORES, R) if fr_team_run != NULL else 1
    cdef int64_t k
    with nogil:
        if threads > 1:
            sm.R, sm.V, sm.x, sm.y, sm.mask, sm.dx = R, V, cnp.PyArray_DATA(x), py, cnp.PyArray_DATA(mask), cnp.PyArray_DATA(dx)
            sm.inv_n, sm.inv_nf = 1.0 / <double>N, <float>1 / <float>N
            threads = fr_team_run(softmax_task_f if tn == cnp.NPY_FLOAT32 else softmax_task_d, &sm, threads)
            for k in range(threads):
                loss += sm.loss[k]
        elif tn == cnp.NPY_FLOAT32:
            loss = fr_softmax_loss_f(R, V, <float *>cnp.PyArray_DATA(x), py, <float *>cnp.PyArray_DATA(mask), <float>1 / <float>N,
                                     <float *>cnp.PyArray_DATA(dx))
        else:
            loss = fr_softmax_loss_d(R, V, <double *>cnp.PyArray_DATA(x), py, <double *>cnp.PyArray_DATA(mask), 1.0 / <double>N,
                                     <double *>cnp.PyArray_DATA(dx))
    if verbose:
        print("dx_flat: ", (R, V))
    return (x.dtype.type(loss / N), dx)
