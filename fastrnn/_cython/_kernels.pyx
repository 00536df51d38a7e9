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
* time-major (T, N, .) internal buffers: every step's slice (gates, h, c, dA) is one contiguous block,
  which the per-step GEMMs run measurably faster on than on the (N, T, .) rows strided by T*G (up to
  25% for the LSTM: power-of-two strides make the rows collide in cache); the user's batch-major x is
  transposed once on the way in and dx once on the way out (N*T*D copies, cheap next to the GEMMs), and
  the pointwise pass writes h straight into the batch-major output.  The h stack (h0, h_0 ... h_{T-2})
  is then a contiguous (T*N, H) matrix: the Hprev of the single dWh GEMM.

The sequence layers come in two forms with the same cache: cs231n's, and *_state, which also returns the
final state(s) and whose backward takes their gradients (dhT, dcT) and returns dc0; the optional inputs
(c0, dh, dhT, dcT) may be None, which the kernels read as a row of zeros with a leading dimension of 0.

Caches are flat tuples of contiguous arrays (fastrnn.layers may cast them all to float64 and call the
backward with float64 everything, so a backward works from its tuple alone, in either dtype):
  rnn:  (xt, Wx, Wh, hh)              xt = x as (T, N, D); hh (T+1, N, H) = h0, h_0, ..., h_{T-1}: hh[1:]
                                      is the (activated) gate buffer and hh[:T] the h stack
  lstm: (xt, Wx, Wh, hs, c0, c, tc, A)  hs (T, N, H) the h stack, c0 (N, H) or None (zeros), c and
                                      tc = tanh(c) (T, N, H), A (T, N, 4H) the activated gates i, f, o, g
  rnn_step:  (x, prev_h, Wx, Wh, next_h)       lstm_step: (x, prev_h, prev_c, Wx, Wh, gates, tc)
  affine, temporal_affine: (x, w)              word_embedding: (x, V)

fastrnn.layers validates shapes, dtypes and word indices before calling here; the cheap structural
checks below (dtype, contiguity, shapes that must agree, 32-bit BLAS sizes, index range) keep every
memory access in bounds even when a function is called directly.
"""

cimport numpy as cnp
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from fastrnn import _workspace

cnp.import_array()

ctypedef cnp.npy_intp intp

cdef extern from "pointwise.h" nogil:
    void fr_rnn_fwd_f(intp N, intp H, float *A, intp lda, float *hs, intp lds)
    void fr_rnn_fwd_d(intp N, intp H, double *A, intp lda, double *hs, intp lds)
    void fr_lstm_fwd_f(intp N, intp H, float *A, intp lda, const float *cprev, intp ldcp,
                       float *c, intp ldc, float *tc, intp ldtc, float *h, intp ldh, float *hs, intp lds)
    void fr_lstm_fwd_d(intp N, intp H, double *A, intp lda, const double *cprev, intp ldcp,
                       double *c, intp ldc, double *tc, intp ldtc, double *h, intp ldh, double *hs, intp lds)
    void fr_rnn_bwd_f(intp N, intp H, const float *dh, intp lddh, const float *dhp, intp lddhp,
                      const float *h, intp ldh, float *dA, intp ldda, float *db)
    void fr_rnn_bwd_d(intp N, intp H, const double *dh, intp lddh, const double *dhp, intp lddhp,
                      const double *h, intp ldh, double *dA, intp ldda, double *db)
    void fr_lstm_bwd_f(intp N, intp H, const float *dh, intp lddh, const float *dhp, intp lddhp,
                       float *dc, intp lddc, const float *gates, intp ldg, const float *tc, intp ldtc,
                       const float *cprev, intp ldcp, float *dA, intp ldda, float *db)
    void fr_lstm_bwd_d(intp N, intp H, const double *dh, intp lddh, const double *dhp, intp lddhp,
                       double *dc, intp lddc, const double *gates, intp ldg, const double *tc, intp ldtc,
                       const double *cprev, intp ldcp, double *dA, intp ldda, double *db)
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


cdef inline void mm(bint ta, bint tb, intp m, intp n, intp k, const floating *A, intp lda,
                    const floating *B, intp ldb, floating beta, floating *C, intp ldc) noexcept nogil:
    """Row-major C (m, n) = op(A) op(B) + beta C (see gemm); small GEMMs in single-threaded pieces."""
    cdef double mnk = <double>m * <double>n * <double>k
    cdef intp i, step
    if mnk <= SERIAL_GEMM or mnk > SMALL_GEMM:
        gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)
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


cdef inline cnp.ndarray empty(int nd, intp d0, intp d1, intp d2, int tn):
    cdef intp dims[3]
    dims[0] = d0
    dims[1] = d1
    dims[2] = d2
    return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, tn, 0)


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


# ------------------------------------------------------------------------------------------ vanilla RNN

cdef void rnn_fwd_k(intp N, intp T, intp D, intp H, const floating *x, const floating *h0,
                    const floating *Wx, const floating *Wh, const floating *b, floating *h,
                    floating *xt, floating *hh) noexcept nogil:
    """hh (T+1, N, H): hh[0] = h0 and hh[t+1] = h_t, so hh[1:] is the gate buffer and hh[:T] the h stack."""
    cdef intp t, NH = N * H
    swap01(N, T, D, x, xt)
    memcpy(hh, h0, NH * sizeof(floating))
    fill_rows(T * N, H, b, hh + NH, H)
    mm(False, False, T * N, H, D, xt, D, Wx, H, 1, hh + NH, H)
    for t in range(T):
        mm(False, False, N, H, H, hh + t * NH, H, Wh, H, 1, hh + (t + 1) * NH, H)
        if floating is float:
            fr_rnn_fwd_f(N, H, hh + (t + 1) * NH, H, h + t * H, T * H)
        else:
            fr_rnn_fwd_d(N, H, hh + (t + 1) * NH, H, h + t * H, T * H)


cdef void rnn_bwd_k(intp N, intp T, intp D, intp H, const floating *dh, const floating *dhT,
                    const floating *xt, const floating *Wx, const floating *Wh, const floating *hh,
                    floating *dx, floating *dh0, floating *dWx, floating *dWh, floating *db, floating *dA,
                    floating *dxt, floating *dprev, const floating *zero) noexcept nogil:
    """dh (N, T, H), the gradient of every step's h, and dhT (N, H), that of the final state (added to the
    last step's), may each be NULL: zeros (the zero row, leading dimension 0)."""
    cdef intp t, NH = N * H, lddhp
    cdef const floating *dht
    cdef const floating *dhp
    for t in range(H):
        db[t] = 0
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
            fr_rnn_bwd_f(N, H, dht, T * H if dh != NULL else 0, dhp, lddhp, hh + (t + 1) * NH, H, dA + t * NH, H, db)
        else:
            fr_rnn_bwd_d(N, H, dht, T * H if dh != NULL else 0, dhp, lddhp, hh + (t + 1) * NH, H, dA + t * NH, H, db)
        mm(False, True, N, H, H, dA + t * NH, H, Wh, H, 0, dh0 if t == 0 else dprev, H)
    mm(False, True, T * N, D, H, dA, H, Wx, H, 0, dxt, D)
    swap01(T, N, D, dxt, dx)
    mm(True, False, D, H, T * N, xt, D, dA, H, 0, dWx, H)
    mm(True, False, H, H, T * N, hh, H, dA, H, 0, dWh, H)


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
    cdef cnp.ndarray h = empty(3, N, T, H, tn), xt = empty(3, T, N, D, tn), hh = empty(3, T + 1, N, H, tn)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_fwd_k(N, T, D, H, <float *>P(x), <float *>P(h0), <float *>P(Wx), <float *>P(Wh), <float *>P(b),
                      <float *>P(h), <float *>P(xt), <float *>P(hh))
        else:
            rnn_fwd_k(N, T, D, H, <double *>P(x), <double *>P(h0), <double *>P(Wx), <double *>P(Wh),
                      <double *>P(b), <double *>P(h), <double *>P(xt), <double *>P(hh))
    return h, (xt, Wx, Wh, hh)


cdef tuple rnn_bwd(object dh, object dhT, tuple cache):
    cdef cnp.ndarray xt, Wx, Wh, hh
    xt, Wx, Wh, hh = cache
    cdef int tn = float_type(xt)
    check(xt, tn, 3)
    cdef intp T = xt.shape[0], N = xt.shape[1], D = xt.shape[2], H = Wh.shape[0] if Wh.ndim == 2 else -1
    check(Wx, tn, 2, D, H)
    check(Wh, tn, 2, H, H)
    check(hh, tn, 3, T + 1, N, H)
    if dh is not None:
        check(dh, tn, 3, N, T, H)
    if dhT is not None:
        check(dhT, tn, 2, N, H)
    blas_sizes(N * T, D, H)
    cdef cnp.ndarray dx = empty(3, N, T, D, tn), dh0 = empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = empty(2, D, H, 0, tn), dWh = empty(2, H, H, 0, tn), db = empty(1, H, 0, 0, tn)
    cdef size_t item = cnp.PyArray_ITEMSIZE(xt), o1 = up64(T * N * H * item), o2 = o1 + up64(T * N * D * item)
    cdef size_t o3 = o2 + up64(N * H * item)
    cdef cnp.ndarray work = scratch(o3 + H * item)
    cdef char *dA = <char *>P(work)
    cdef char *dxt = dA + o1
    cdef char *dprev = dA + o2
    cdef char *zero = dA + o3
    cdef void *pdh = P_or_null(dh)
    cdef void *pdhT = P_or_null(dhT)
    memset(zero, 0, H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            rnn_bwd_k(N, T, D, H, <float *>pdh, <float *>pdhT, <float *>P(xt), <float *>P(Wx), <float *>P(Wh),
                      <float *>P(hh), <float *>P(dx), <float *>P(dh0), <float *>P(dWx), <float *>P(dWh),
                      <float *>P(db), <float *>dA, <float *>dxt, <float *>dprev, <float *>zero)
        else:
            rnn_bwd_k(N, T, D, H, <double *>pdh, <double *>pdhT, <double *>P(xt), <double *>P(Wx), <double *>P(Wh),
                      <double *>P(hh), <double *>P(dx), <double *>P(dh0), <double *>P(dWx), <double *>P(dWh),
                      <double *>P(db), <double *>dA, <double *>dxt, <double *>dprev, <double *>zero)
    return dx, dh0, dWx, dWh, db


def rnn_forward(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                cnp.ndarray Wh not None, cnp.ndarray b not None):
    """Vanilla RNN over a sequence: x (N, T, D), h0 (N, H) -> (h (N, T, H), cache)."""
    return rnn_fwd(x, h0, Wx, Wh, b)


def rnn_forward_state(cnp.ndarray x not None, cnp.ndarray h0 not None, cnp.ndarray Wx not None,
                      cnp.ndarray Wh not None, cnp.ndarray b not None):
    """rnn_forward that also returns the final state: -> (h, hT (N, H), cache); same cache."""
    h, cache = rnn_fwd(x, h0, Wx, Wh, b)
    return h, cache[3][x.shape[1]].copy(), cache  # hh[T] = h_{T-1}, contiguous


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
                     const floating *zero) noexcept nogil:
    """hs (T, N, H): hs[0] = h0, hs[t] = h_{t-1} (the h stack); c, tc = tanh(c) (T, N, H); A (T, N, 4H).
    c0 (N, H) may be NULL: zeros."""
    cdef intp t, G = 4 * H, NH = N * H, NG = N * 4 * H, ldcp
    cdef const floating *cprev
    swap01(N, T, D, x, xt)
    memcpy(hs, h0, NH * sizeof(floating))
    fill_rows(T * N, G, b, A, G)
    mm(False, False, T * N, G, D, xt, D, Wx, G, 1, A, G)
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
            fr_lstm_fwd_f(N, H, A + t * NG, G, cprev, ldcp, c + t * NH, H, tc + t * NH, H, h + t * H, T * H,
                          hs + (t + 1) * NH if t + 1 < T else NULL, H)
        else:
            fr_lstm_fwd_d(N, H, A + t * NG, G, cprev, ldcp, c + t * NH, H, tc + t * NH, H, h + t * H, T * H,
                          hs + (t + 1) * NH if t + 1 < T else NULL, H)


cdef void lstm_bwd_k(intp N, intp T, intp D, intp H, const floating *dh, const floating *dhT,
                     const floating *xt, const floating *Wx, const floating *Wh, const floating *hs,
                     const floating *c0, const floating *c, const floating *tc, const floating *A,
                     floating *dx, floating *dh0, floating *dWx, floating *dWh, floating *db, floating *dA,
                     floating *dxt, floating *dprev, floating *dc, const floating *zero) noexcept nogil:
    """dh (N, T, H), dhT and c0 (N, H) may be NULL (zeros).  dc (N, H) holds the gradient of the final cell
    state on entry and that of c0 on return."""
    cdef intp t, G = 4 * H, NH = N * H, NG = N * 4 * H, lddhp, ldcp
    cdef const floating *dht
    cdef const floating *dhp
    cdef const floating *cprev
    for t in range(G):
        db[t] = 0
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
            fr_lstm_bwd_f(N, H, dht, T * H if dh != NULL else 0, dhp, lddhp, dc, H, A + t * NG, G, tc + t * NH, H,
                          cprev, ldcp, dA + t * NG, G, db)
        else:
            fr_lstm_bwd_d(N, H, dht, T * H if dh != NULL else 0, dhp, lddhp, dc, H, A + t * NG, G, tc + t * NH, H,
                          cprev, ldcp, dA + t * NG, G, db)
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
    cdef cnp.ndarray work = scratch(H * cnp.PyArray_ITEMSIZE(x))
    cdef void *zero = P(work)
    cdef void *pc0 = P_or_null(c0)
    memset(zero, 0, H * cnp.PyArray_ITEMSIZE(x))
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_fwd_k(N, T, D, H, <float *>P(x), <float *>P(h0), <float *>pc0, <float *>P(Wx), <float *>P(Wh),
                       <float *>P(b), <float *>P(h), <float *>P(xt), <float *>P(hs), <float *>P(c), <float *>P(tc),
                       <float *>P(A), <float *>zero)
        else:
            lstm_fwd_k(N, T, D, H, <double *>P(x), <double *>P(h0), <double *>pc0, <double *>P(Wx), <double *>P(Wh),
                       <double *>P(b), <double *>P(h), <double *>P(xt), <double *>P(hs), <double *>P(c),
                       <double *>P(tc), <double *>P(A), <double *>zero)
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
    cdef size_t o3 = o2 + up64(N * H * item)
    cdef cnp.ndarray work = scratch(o3 + H * item)
    cdef char *dA = <char *>P(work)
    cdef char *dxt = dA + o1
    cdef char *dprev = dA + o2
    cdef char *zero = dA + o3
    cdef void *pdh = P_or_null(dh)
    cdef void *pdhT = P_or_null(dhT)
    cdef void *pc0 = P_or_null(c0)
    memset(zero, 0, H * item)
    if dcT is None:  # dc, carried through the loop in dc0, starts from the final cell state's gradient
        memset(P(dc0), 0, N * H * item)
    else:
        memcpy(P(dc0), P_or_null(dcT), N * H * item)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            lstm_bwd_k(N, T, D, H, <float *>pdh, <float *>pdhT, <float *>P(xt), <float *>P(Wx), <float *>P(Wh),
                       <float *>P(hs), <float *>pc0, <float *>P(c), <float *>P(tc), <float *>P(A), <float *>P(dx),
                       <float *>P(dh0), <float *>P(dWx), <float *>P(dWh), <float *>P(db), <float *>dA,
                       <float *>dxt, <float *>dprev, <float *>P(dc0), <float *>zero)
        else:
            lstm_bwd_k(N, T, D, H, <double *>pdh, <double *>pdhT, <double *>P(xt), <double *>P(Wx),
                       <double *>P(Wh), <double *>P(hs), <double *>pc0, <double *>P(c), <double *>P(tc),
                       <double *>P(A), <double *>P(dx), <double *>P(dh0), <double *>P(dWx), <double *>P(dWh),
                       <double *>P(db), <double *>dA, <double *>dxt, <double *>dprev, <double *>P(dc0),
                       <double *>zero)
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


# ------------------------------------------------------------------------------------------ single steps

cdef void rnn_step_fwd_k(intp N, intp D, intp H, const floating *x, const floating *prev_h,
                         const floating *Wx, const floating *Wh, const floating *b,
                         floating *next_h) noexcept nogil:
    fill_rows(N, H, b, next_h, H)
    mm(False, False, N, H, D, x, D, Wx, H, 1, next_h, H)
    mm(False, False, N, H, H, prev_h, H, Wh, H, 1, next_h, H)
    if floating is float:
        fr_rnn_fwd_f(N, H, next_h, H, NULL, 0)
    else:
        fr_rnn_fwd_d(N, H, next_h, H, NULL, 0)


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
        fr_rnn_bwd_f(N, H, dnext_h, H, zero, 0, next_h, H, dA, H, db)
    else:
        fr_rnn_bwd_d(N, H, dnext_h, H, zero, 0, next_h, H, dA, H, db)
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
    cdef cnp.ndarray next_h = empty(2, N, H, 0, tn)
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
    cdef cnp.ndarray dx = empty(2, N, D, 0, tn), dprev_h = empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = empty(2, D, H, 0, tn), dWh = empty(2, H, H, 0, tn), db = empty(1, H, 0, 0, tn)
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
    fill_rows(N, G, b, A, G)
    mm(False, False, N, G, D, x, D, Wx, G, 1, A, G)
    mm(False, False, N, G, H, prev_h, H, Wh, G, 1, A, G)
    if floating is float:
        fr_lstm_fwd_f(N, H, A, G, prev_c, H, next_c, H, tc, H, next_h, H, NULL, 0)
    else:
        fr_lstm_fwd_d(N, H, A, G, prev_c, H, next_c, H, tc, H, next_h, H, NULL, 0)


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
        fr_lstm_bwd_f(N, H, dnext_h, H, zero, 0, dprev_c, H, gates, G, tc, H, prev_c, H, dA, G, db)
    else:
        fr_lstm_bwd_d(N, H, dnext_h, H, zero, 0, dprev_c, H, gates, G, tc, H, prev_c, H, dA, G, db)
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
    cdef cnp.ndarray next_h = empty(2, N, H, 0, tn), next_c = empty(2, N, H, 0, tn)
    cdef cnp.ndarray A = empty(2, N, 4 * H, 0, tn), tc = empty(2, N, H, 0, tn)
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
    cdef cnp.ndarray dx = empty(2, N, D, 0, tn), dprev_h = empty(2, N, H, 0, tn), dprev_c = empty(2, N, H, 0, tn)
    cdef cnp.ndarray dWx = empty(2, D, G, 0, tn), dWh = empty(2, H, G, 0, tn), db = empty(1, G, 0, 0, tn)
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

cdef void affine_fwd_k(intp R, intp D, intp M, const floating *x, const floating *w, const floating *b,
                       floating *out) noexcept nogil:
    fill_rows(R, M, b, out, M)
    mm(False, False, R, M, D, x, D, w, M, 1, out, M)


cdef void affine_bwd_k(intp R, intp D, intp M, const floating *dout, const floating *x, const floating *w,
                       floating *dx, floating *dw, floating *db) noexcept nogil:
    cdef intp j
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
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            affine_fwd_k(R, D, M, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(w), <float *>cnp.PyArray_DATA(b), <float *>cnp.PyArray_DATA(out))
        else:
            affine_fwd_k(R, D, M, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(w), <double *>cnp.PyArray_DATA(b), <double *>cnp.PyArray_DATA(out))
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
    cdef cnp.ndarray dx = <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), tn, 0)
    cdef cnp.ndarray dw = empty(2, D, M, 0, tn), db = empty(1, M, 0, 0, tn)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            affine_bwd_k(R, D, M, <float *>cnp.PyArray_DATA(dout), <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(w), <float *>cnp.PyArray_DATA(dx),
                         <float *>cnp.PyArray_DATA(dw), <float *>cnp.PyArray_DATA(db))
        else:
            affine_bwd_k(R, D, M, <double *>cnp.PyArray_DATA(dout), <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(w), <double *>cnp.PyArray_DATA(dx),
                         <double *>cnp.PyArray_DATA(dw), <double *>cnp.PyArray_DATA(db))
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
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(nd + 1, dims, tn, 0)
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


def temporal_softmax_loss(cnp.ndarray x not None, cnp.ndarray y not None, cnp.ndarray mask not None,
                          verbose=False):
    """Masked softmax cross-entropy over x (N, T, V), targets y (N, T), mask (N, T) -> (loss, dx).

    One fused pass per row (max, exp and sum, log-sum-exp, loss, gradient); loss divided by N."""
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
    cdef double loss
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            loss = fr_softmax_loss_f(R, V, <float *>cnp.PyArray_DATA(x), py, <float *>cnp.PyArray_DATA(mask), <float>1 / <float>N,
                                     <float *>cnp.PyArray_DATA(dx))
        else:
            loss = fr_softmax_loss_d(R, V, <double *>cnp.PyArray_DATA(x), py, <double *>cnp.PyArray_DATA(mask), 1.0 / <double>N,
                                     <double *>cnp.PyArray_DATA(dx))
    if verbose:
        print("dx_flat: ", (R, V))
    return (x.dtype.type(loss / N), dx)
