/* A NumPy memory handler (NEP 49) that keeps freed large blocks for the next allocation of about the
 * same size.
 *
 * Why: a layer call allocates tens of MiB of outputs and cache (gate buffers, cell states, gradients),
 * and a training loop frees them and asks for the same sizes again at every step.  glibc maps blocks
 * that large afresh each time (its mmap threshold only rises to the size of the last freed block, and
 * a request of that same size is mapped again), so every step pays a page fault per 4 KiB and the
 * kernel zeroing the page: measured, 3,400 faults per LSTM forward at (100, 16, 256, 512) float32, a
 * fifth of its time.  Blocks kept here come back already mapped.
 *
 * Blocks below FR_POOL_MIN go to malloc; larger ones are mmap'ed (huge pages advised from 4 MiB, as
 * NumPy's own allocator does) and, when freed, kept up to the pool's cap (settable; 0 keeps nothing).
 * A request takes the smallest kept block that fits without wasting more than a quarter, and of blocks
 * of that size the one freed last: its lines are the likeliest to be still in cache.  (Taking the
 * oldest, a caller that keeps a few results of one size alive, as the benchmark's checks do, cycled
 * through them and wrote every call's arrays into the coldest: rnn_step small float32 fwd+bwd, its
 * gradients pooled then, in ``fastrnn bench`` on the Intel Xeon, one thread, 0.87-0.98 ms -> 0.71-0.77.)
 * The kept blocks are ordered by when they were freed, and a freed block that would not fit pushes out the
 * oldest ones (least recently used): the blocks a loop is cycling through stay, those of work done
 * before it go.  (Keeping the first blocks instead and unmapping the newcomer, a pool filled by a few
 * large layer calls served none of a later model's blocks: the LSTM CaptioningRNN.loss at N=100 then
 * mapped 11 fresh blocks a call and ran 7-15 % slower.)  fr_pool_release() unmaps every kept block.
 * Every block carries a 64-byte header (size and origin), so realloc and free need nothing from the
 * caller.  Thread-safe (a mutex around the kept list only).  The backends use this handler only while
 * they allocate their own arrays; NumPy remembers the handler of each array and frees it here whatever
 * is active then.
 */
#ifndef FASTRNN_POOL_H
#define FASTRNN_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define FR_POOL_MIN ((size_t)256 * 1024) /* smaller blocks: malloc */
#define FR_POOL_SLOTS 64
#define FR_POOL_HEADER 64
#define FR_POOL_MAGIC 0x66726e6e706f6f6cull /* "frnnpool" */

typedef struct {
    uint64_t magic;
    uint64_t mapped; /* bytes of the mapping (header included), or 0: from malloc */
    uint64_t size;   /* bytes asked for */
} fr_block;

typedef struct {
    size_t bytes;
    void *base;
} fr_kept;

static struct {
    pthread_mutex_t lock;
    size_t cap;   /* most bytes kept */
    size_t held;  /* bytes kept now */
    size_t reused, mapped;  /* allocations served from the kept blocks / by new mappings */
    int n;
    fr_kept slot[FR_POOL_SLOTS]; /* the oldest first */
} fr_pool = {PTHREAD_MUTEX_INITIALIZER, (size_t)512 << 20}; /* fastrnn._native sets it from the workspace setting */

static size_t fr_pool_round(size_t n) { return (n + 65535) & ~(size_t)65535; }

/* With the lock held: takes the oldest kept blocks out (into out[*count ...]) until the pool holds at
 * most `bytes` bytes in at most `blocks` blocks.  The caller unmaps them once it has let go of the lock. */
static void fr_pool_evict(size_t bytes, int blocks, fr_kept *out, int *count)
{
    int k = 0;
    while (k < fr_pool.n && (fr_pool.held > bytes || fr_pool.n - k > blocks)) {
        out[(*count)++] = fr_pool.slot[k];
        fr_pool.held -= fr_pool.slot[k].bytes;
        k++;
    }
    fr_pool.n -= k;
    memmove(&fr_pool.slot[0], &fr_pool.slot[k], (size_t)fr_pool.n * sizeof fr_pool.slot[0]);
}

static void *fr_pool_malloc(void *ctx, size_t size)
{
    (void)ctx;
    size_t total = size + FR_POOL_HEADER;
    fr_block *b = NULL;
    if (total < size)
        return NULL;
    if (total < FR_POOL_MIN) {
        b = (fr_block *)malloc(total);
        if (!b)
            return NULL;
        b->mapped = 0;
    } else {
        size_t need = fr_pool_round(total);
        int best = -1;
        pthread_mutex_lock(&fr_pool.lock);
        for (int i = fr_pool.n - 1; i >= 0; i--)  /* the newest first: of equal blocks, the last freed wins */
            if (fr_pool.slot[i].bytes >= need && fr_pool.slot[i].bytes - need <= need / 4
                && (best < 0 || fr_pool.slot[i].bytes < fr_pool.slot[best].bytes))
                best = i;
        if (best >= 0) {
            b = (fr_block *)fr_pool.slot[best].base;
            need = fr_pool.slot[best].bytes;
            fr_pool.held -= need;
            fr_pool.n--;
            memmove(&fr_pool.slot[best], &fr_pool.slot[best + 1], (size_t)(fr_pool.n - best) * sizeof fr_pool.slot[0]);
            fr_pool.reused++;
        } else {
            fr_pool.mapped++;
        }
        pthread_mutex_unlock(&fr_pool.lock);
        if (!b) {
            void *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
#ifdef MADV_HUGEPAGE
            if (need >= ((size_t)4 << 20))
                madvise(p, need, MADV_HUGEPAGE);
#endif
            b = (fr_block *)p;
        }
        b->mapped = need;
    }
    b->magic = FR_POOL_MAGIC;
    b->size = size;
    return (char *)b + FR_POOL_HEADER;
}

static void fr_pool_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx, (void)size;
    if (!ptr)
        return;
    fr_block *b = (fr_block *)((char *)ptr - FR_POOL_HEADER);
    if (!b->mapped) {
        free(b);
        return;
    }
    size_t bytes = b->mapped;
    int evicted = 0;
    fr_kept out[FR_POOL_SLOTS];
    pthread_mutex_lock(&fr_pool.lock);
    if (bytes <= fr_pool.cap) {
        fr_pool_evict(fr_pool.cap - bytes, FR_POOL_SLOTS - 1, out, &evicted);
        fr_pool.slot[fr_pool.n].bytes = bytes;
        fr_pool.slot[fr_pool.n].base = b;
        fr_pool.n++;
        fr_pool.held += bytes;
        b = NULL;
    }
    pthread_mutex_unlock(&fr_pool.lock);
    for (int i = 0; i < evicted; i++)  /* the system calls outside the lock */
        munmap(out[i].base, out[i].bytes);
    if (b)
        munmap(b, bytes);
}

static void *fr_pool_calloc(void *ctx, size_t n, size_t elsize)
{
    if (elsize && n > SIZE_MAX / elsize)
        return NULL;
    void *p = fr_pool_malloc(ctx, n * elsize);
    if (p)
        memset(p, 0, n * elsize);
    return p;
}

static void *fr_pool_realloc(void *ctx, void *ptr, size_t size)
{
    if (!ptr)
        return fr_pool_malloc(ctx, size);
    fr_block *b = (fr_block *)((char *)ptr - FR_POOL_HEADER);
    if (!b->mapped && size + FR_POOL_HEADER < FR_POOL_MIN && size + FR_POOL_HEADER > size) {
        fr_block *nb = (fr_block *)realloc(b, size + FR_POOL_HEADER);
        if (!nb)
            return NULL;
        nb->size = size;
        return (char *)nb + FR_POOL_HEADER;
    }
    if (b->mapped && size + FR_POOL_HEADER <= b->mapped) {
        b->size = size;
        return ptr;
    }
    void *p = fr_pool_malloc(ctx, size);
    if (!p)
        return NULL;
    memcpy(p, ptr, b->size < size ? b->size : size);
    fr_pool_free(ctx, ptr, b->size);
    return p;
}

/* Unmaps every kept block; returns the bytes given back. */
static size_t fr_pool_release(void)
{
    size_t freed = 0;
    pthread_mutex_lock(&fr_pool.lock);
    for (int i = 0; i < fr_pool.n; i++) {
        munmap(fr_pool.slot[i].base, fr_pool.slot[i].bytes);
        freed += fr_pool.slot[i].bytes;
    }
    fr_pool.n = 0;
    fr_pool.held = 0;
    pthread_mutex_unlock(&fr_pool.lock);
    return freed;
}

/* Sets the most bytes kept (dropping kept blocks beyond it); returns the previous cap. */
static size_t fr_pool_set_cap(size_t cap)
{
    int evicted = 0;
    fr_kept out[FR_POOL_SLOTS];
    pthread_mutex_lock(&fr_pool.lock);
    size_t old = fr_pool.cap;
    fr_pool.cap = cap;
    fr_pool_evict(cap, FR_POOL_SLOTS, out, &evicted);  /* the oldest first */
    pthread_mutex_unlock(&fr_pool.lock);
    for (int i = 0; i < evicted; i++)
        munmap(out[i].base, out[i].bytes);
    return old;
}

#endif
