/* fastrnn._native._native: the packed-weight micro-kernels (packed.h), the thread team (team.h), the
 * array pool (pool.h) and single products on the team (product.h), compiled once and shared by both
 * compiled backends.  Python sees the
 * kernels' addresses only (symbols()), which the Cython kernels call through function pointers and
 * the Numba kernels bind by name, the way both already call BLAS; the pool is a NumPy memory handler
 * (pool_handler) that the backends make current while they allocate their arrays; resident_add and
 * resident_remove keep weights packed for a loop (resident.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <numpy/arrayobject.h>

#include "fma.h"
#include "packed.h"
#include "pool.h"
#include "product.h"
#include "resident.h"
#include "roundtrip.h"
#include "team.h"

static PyDataMem_Handler fr_pool_handler = {
    "fastrnn_pool",
    1,
    {NULL, fr_pool_malloc, fr_pool_calloc, fr_pool_realloc, fr_pool_free},
};

static PyObject *symbols(PyObject *self, PyObject *unused)
{
    struct { const char *name; void *address; } table[] = {
        {"fr_mm_s", (void *)fr_mm_s},
        {"fr_mm_d", (void *)fr_mm_d},
        {"fr_mm_part_s", (void *)fr_mm_part_s},
        {"fr_mm_part_d", (void *)fr_mm_part_d},
        {"fr_gemm_s", (void *)fr_gemm_s},
        {"fr_gemm_d", (void *)fr_gemm_d},
        {"fr_gemm_prev_s", (void *)fr_gemm_prev_s},
        {"fr_gemm_prev_d", (void *)fr_gemm_prev_d},
        {"fr_gemm_work_s", (void *)fr_gemm_work_s},
        {"fr_gemm_work_d", (void *)fr_gemm_work_d},
        {"fr_pack_s", (void *)fr_pack_s},
        {"fr_pack_d", (void *)fr_pack_d},
        {"fr_product_s", (void *)fr_product_s},
        {"fr_product_d", (void *)fr_product_d},
        {"fr_resident_product_s", (void *)fr_resident_product_s},
        {"fr_resident_product_d", (void *)fr_resident_product_d},
        {"fr_team_run", (void *)fr_team_run},
        {"fr_sync", (void *)fr_sync},
        {"fr_sync_arrive", (void *)fr_sync_arrive},
        {"fr_sync_wait", (void *)fr_sync_wait},
    };
    PyObject *out = PyDict_New();
    if (!out)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        PyObject *address = PyLong_FromVoidPtr(table[i].address);
        if (!address || PyDict_SetItemString(out, table[i].name, address) < 0) {
            Py_XDECREF(address);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(address);
    }
    return out;
}

static PyObject *layout(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("{s:s,s:L,s:L}", "isa", fr_impl.isa, "nr_float32", (long long)fr_impl.nr_s,
                         "nr_float64", (long long)fr_impl.nr_d);
}

static PyObject *pool_stats(PyObject *self, PyObject *unused)
{
    pthread_mutex_lock(&fr_pool.lock);
    PyObject *out = Py_BuildValue("{s:n,s:n,s:i,s:n,s:n}", "held_bytes", (Py_ssize_t)fr_pool.held, "cap_bytes",
                                  (Py_ssize_t)fr_pool.cap, "blocks", fr_pool.n, "reused", (Py_ssize_t)fr_pool.reused,
                                  "mapped", (Py_ssize_t)fr_pool.mapped);
    pthread_mutex_unlock(&fr_pool.lock);
    return out;
}

static PyObject *pool_release(PyObject *self, PyObject *unused)
{
    return PyLong_FromSize_t(fr_pool_release());
}

static PyObject *pool_set_cap(PyObject *self, PyObject *arg)
{
    Py_ssize_t cap = PyLong_AsSsize_t(arg);
    if (cap == -1 && PyErr_Occurred())
        return NULL;
    if (cap < 0) {
        PyErr_SetString(PyExc_ValueError, "the pool's cap must be at least 0 bytes");
        return NULL;
    }
    return PyLong_FromSize_t(fr_pool_set_cap((size_t)cap));
}

static PyObject *team_stats(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("{s:i,s:K,s:K,s:K,s:L}", "threads_started", fr_team.started,
                         "jobs", (unsigned long long)atomic_load(&fr_team.jobs),
                         "alone_because_busy", (unsigned long long)atomic_load(&fr_team.alone_busy),
                         "moved_off_callers_cpu", (unsigned long long)atomic_load(&fr_team.moved),
                         "last_job_threads", (long long)atomic_load(&fr_team.last));
}

static PyObject *fma_run(PyObject *self, PyObject *args)
{
    /* fma_run(double, iters, threads): fma.h's loops, iters rounds on each of up to `threads` threads */
    int dbl;
    long long iters, nth;
    double seconds, flops;
    int64_t ran;
    if (!PyArg_ParseTuple(args, "pLL", &dbl, &iters, &nth))
        return NULL;
    if (iters < 1 || nth < 1) {
        PyErr_SetString(PyExc_ValueError, "fma_run needs iters >= 1 and threads >= 1");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    ran = fr_fma_run(dbl, (int64_t)iters, (int64_t)nth, &seconds, &flops);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("{s:d,s:d,s:L}", "seconds", seconds, "flops", flops, "threads", (long long)ran);
}

static PyObject *round_trip(PyObject *self, PyObject *arg)
{
    /* round_trip(iters): ns per round trip of a cache line between two team threads (roundtrip.h), or None */
    long long iters = PyLong_AsLongLong(arg);
    double ns;
    if (iters == -1 && PyErr_Occurred())
        return NULL;
    if (iters < 1) {
        PyErr_SetString(PyExc_ValueError, "round_trip needs iters >= 1");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    ns = fr_round_trip((int64_t)iters);
    Py_END_ALLOW_THREADS
    if (ns < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(ns);
}

static PyObject *set_handler(PyObject *self, PyObject *handler)
{
    /* makes `handler` (a "mem_handler" capsule; None: NumPy's default) NumPy's current memory handler in
     * this context; returns the previous one */
    return PyDataMem_SetHandler(handler == Py_None ? NULL : handler);
}

static PyObject *set_blas_threads(PyObject *self, PyObject *address)
{
    /* the address of BLAS's get_num_threads (0: none), which fr_product asks for its thread limit */
    void *fn = PyLong_AsVoidPtr(address);
    if (fn == NULL && PyErr_Occurred())
        return NULL;
    fr_product_set_threads((int (*)(void))fn);
    Py_RETURN_NONE;
}

/* The matrix `obj` as resident.h takes it: a 2-D float32/float64 ndarray, rows contiguous and aligned.
 * Returns 1 (filled in), 0 (another kind of array: not one to keep resident) or -1 (not an array). */
static int resident_matrix(PyObject *obj, int *dbl, const void **B, ptrdiff_t *ldb, ptrdiff_t *K, ptrdiff_t *N)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "resident weights must be NumPy arrays, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    const int type = PyArray_TYPE(a);
    if (PyArray_NDIM(a) != 2 || (type != NPY_FLOAT32 && type != NPY_FLOAT64) || !PyArray_ISALIGNED(a)
        || PyArray_SIZE(a) == 0)
        return 0;
    const npy_intp item = PyArray_ITEMSIZE(a), *dims = PyArray_DIMS(a), *strides = PyArray_STRIDES(a);
    if ((strides[1] != item && dims[1] > 1) || strides[0] % item != 0 || (dims[0] > 1 && strides[0] / item < dims[1]))
        return 0;
    *dbl = type == NPY_FLOAT64, *B = PyArray_DATA(a), *K = dims[0], *N = dims[1];
    *ldb = dims[0] > 1 ? strides[0] / item : dims[1];
    return 1;
}

/* resident_add (add = 1: packs obj and records it for this thread) and resident_remove (add = 0): True when
 * done, False for an array that is not kept (or, adding, when the record is full or memory short). */
static PyObject *resident_change(PyObject *obj, int add)
{
    int dbl, status;
    const void *B;
    ptrdiff_t ldb, K, N;
    const int ok = resident_matrix(obj, &dbl, &B, &ldb, &K, &N);
    if (ok < 0)
        return NULL;
    if (ok == 0)
        Py_RETURN_FALSE;
    if (add) {
        Py_BEGIN_ALLOW_THREADS
        status = fr_resident_add(dbl, B, ldb, K, N);
        Py_END_ALLOW_THREADS
    } else {
        status = fr_resident_remove(dbl, B, ldb, K, N);
    }
    if (status != 0)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyObject *resident_add(PyObject *self, PyObject *obj) { return resident_change(obj, 1); }

static PyObject *resident_remove(PyObject *self, PyObject *obj) { return resident_change(obj, 0); }

static PyObject *resident_stats(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("{s:i,s:K}", "held_here", fr_resident_n, "products",
                         (unsigned long long)atomic_load(&fr_resident_hits));
}

static PyMethodDef methods[] = {
    {"symbols", symbols, METH_NOARGS, "name -> address of every exported C function"},
    {"layout", layout, METH_NOARGS, "the selected ISA and the panel width NR per dtype"},
    {"pool_stats", pool_stats, METH_NOARGS, "bytes kept by the array pool, its cap, blocks, reuses and new mappings"},
    {"pool_release", pool_release, METH_NOARGS, "unmaps every block the array pool keeps; returns the bytes"},
    {"pool_set_cap", pool_set_cap, METH_O, "sets the most bytes the array pool keeps; returns the previous cap"},
    {"round_trip", round_trip, METH_O,
     "round_trip(iters): ns per round trip of a cache line between two team threads, or None"},
    {"team_stats", team_stats, METH_NOARGS,
     "worker threads started, team jobs, calls run alone, workers moved off the caller's CPU, last job's threads"},
    {"fma_run", fma_run, METH_VARARGS,
     "fma_run(double, iters, threads): seconds, FLOPs and threads of fma.h's register-only multiply-add loops"},
    {"set_handler", set_handler, METH_O, "makes a memory handler NumPy's current one here; returns the previous"},
    {"resident_add", resident_add, METH_O,
     "packs a 2-D float matrix once and keeps it for this thread's products by it; False: not kept"},
    {"resident_remove", resident_remove, METH_O, "drops a matrix resident_add kept; False: it was not kept"},
    {"resident_stats", resident_stats, METH_NOARGS,
     "matrices kept resident on this thread, and products served from resident panels on every thread"},
    {"set_blas_threads", set_blas_threads, METH_O, "the address of BLAS's get_num_threads, fr_product's thread limit"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void)
{
    import_array();
    fr_init();
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    PyObject *handler = PyCapsule_New(&fr_pool_handler, "mem_handler", NULL);
    if (!handler || PyModule_AddObject(m, "pool_handler", handler) < 0) {
        Py_XDECREF(handler);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
