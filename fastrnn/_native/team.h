/* A small team of worker threads for the recurrence: one job at a time, one barrier per time step.
 *
 * Why not BLAS's threads or OpenMP: the recurrence needs the *same* threads for all T steps (each
 * keeps its slab of the packed weights in its own cache) and a barrier between steps, which a
 * fork/join per GEMM cannot give; and a second OpenMP runtime in a process that already has
 * OpenBLAS's and often PyTorch's pools would add a third set of spinning threads.
 *
 * fr_team_run(fn, arg, nth) runs fn(arg, sync, tid, nth) on nth threads (the caller is tid 0) and
 * returns when all are done; inside, fr_sync(sync) is a barrier of those nth threads.  When the team
 * is busy (another Python thread is inside fr_team_run) or nth is 1, fn runs on the caller alone
 * with nth = 1: never two jobs on the same cores, never a wait for the team.
 *
 * Waiting: a worker spins (pause) for the next job, then sleeps on a condition variable, so an idle
 * team costs nothing (OpenBLAS's and torch's threads, which run between our calls, get the cores).  It
 * spins 1 ms: long enough to span the Python between two layer calls of a loop (steps and affine layers
 * of a sampling loop, short jobs each).  A thread that sleeps is woken where its waker runs (Linux places
 * a wakee near its waker), and then the caller and its worker took turns on one core while the other
 * idled, and stayed so: measured, single steps at 1.0-1.6 ms instead of 0.41-0.45 ms after a pause.
 * With these spins (and 200 us at the end of a job) no job of such a loop sleeps; a worker that still
 * finds itself on its caller's CPU leaves it (fr_leave_cpu).  Both spins stay a hundredth of the ~0.1 s
 * OpenBLAS's threads spin after a call.
 * After a pause that was not enough (Zen 4, 2026-12-04): a 2-thread product of 0.7 ms took 2.8 ms, call
 * after call, once the team had slept.  The caller, asleep at the end of a job, was woken by the worker
 * onto the worker's CPU and waited there ~1 ms behind the worker's spin for the next job; the worker, woken
 * for that job onto the caller's CPU, moved off it, and the pair swapped CPUs at every call.  So now the
 * caller moves a worker that sleeps, or that waits on the caller's CPU, off that CPU before it publishes a
 * job (fr_narrow: a sleeper then wakes on another CPU), and a worker that had to wake the caller at the end
 * of a job sleeps at once instead of spinning on the CPU it just gave the caller.  Measured after pauses
 * of 0.05-0.5 s: 0.7-0.8 ms a call from the second call on.  (Yielding in the spins instead fixed the
 * pauses but made a job right after a 2-thread OpenBLAS call wait a whole 4 ms tick behind OpenBLAS's
 * spinning thread, which yields too.)
 * Barrier waits inside a job spin for a few tens of microseconds, then sleep on a futex: on a busy
 * machine a spinning thread would keep the descheduled thread it waits for off the core for a whole
 * time slice, at every step (measured: 18 ms instead of 0.1 ms per call with a third busy process on 2
 * cores).
 *
 * Workers block every signal (Python handles signals on its main thread) and are forgotten in a
 * forked child (pthread_atfork), which starts a new team when it needs one.
 */
#ifndef FASTRNN_TEAM_H
#define FASTRNN_TEAM_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FR_PAUSE() _mm_pause()
#else
#define FR_PAUSE() ((void)0)
#endif

#define FR_TEAM_MAX 64          /* threads in a team, the caller included */
#define FR_JOB_NTH_SPAN 256     /* the job word (fr_team.job): number * FR_JOB_NTH_SPAN + threads */
#define FR_SPIN_JOB_NS 1000000  /* a worker spins this long for the next job before sleeping */
#define FR_SPIN_SYNC_NS 50000   /* a thread spins this long at a step's barrier before sleeping */
#define FR_SPIN_END_NS 200000   /* ... and at the end of a job (the caller waiting for the workers) */

typedef void (*fr_task_fn)(void *arg, void *sync, int64_t tid, int64_t nth);

typedef struct {
    int64_t n;                                  /* threads that meet here */
    _Alignas(64) atomic_int_fast64_t count;     /* arrived in this round */
    _Alignas(64) atomic_uint round;             /* rounds completed (a futex word on Linux) */
    atomic_int sleepers;                        /* threads asleep on round */
    char pad[64 - sizeof(atomic_uint) - sizeof(atomic_int)];
    atomic_uint wakes;                          /* futex wakes issued here (a sleeper was waiting) */
} fr_barrier;

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
static void fr_futex_wait(atomic_uint *word, unsigned value)
{
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}
static void fr_futex_wake(atomic_uint *word) { syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0); }
#else /* no futex: waiting threads yield instead of sleeping */
static void fr_futex_wait(atomic_uint *word, unsigned value) { (void)word, (void)value; sched_yield(); }
static void fr_futex_wake(atomic_uint *word) { (void)word; }
#endif

static int64_t fr_now_ns(void);

/* Waits until b->round is no longer `round`: spins for spin_ns (the other threads are usually
 * a few microseconds behind), then sleeps, so that on a busy machine a waiting thread gives its core
 * to the thread it waits for instead of spinning through that thread's time slice. */
static void fr_wait_round(fr_barrier *b, unsigned round, int64_t spin_ns)
{
    int64_t start = 0;
    for (int i = 0; atomic_load_explicit(&b->round, memory_order_acquire) == round; i++) {
        FR_PAUSE();
        if ((i & 63) == 63) {
            int64_t now = fr_now_ns();
            if (!start)
                start = now;
            else if (now - start > spin_ns) {
                atomic_fetch_add_explicit(&b->sleepers, 1, memory_order_seq_cst);
                while (atomic_load_explicit(&b->round, memory_order_seq_cst) == round)
                    fr_futex_wait(&b->round, round);
                atomic_fetch_sub_explicit(&b->sleepers, 1, memory_order_relaxed);
                return;
            }
        }
    }
}

static struct {
    pthread_mutex_t busy;        /* held by the caller whose job the team runs */
    pthread_mutex_t lock;        /* guards sleeping and the condition variable */
    pthread_cond_t wake;
    int sleeping;
    int started;                 /* worker threads started (tids 1..started) */
    uint_fast64_t first_job[FR_TEAM_MAX];  /* per tid: the job number when it was started */
    fr_task_fn fn;
    void *arg;
    int caller_cpu;              /* the CPU the caller of the job runs on (-1: unknown) */
    _Atomic pid_t tids[FR_TEAM_MAX];  /* per tid: the worker's kernel thread id (0: not known yet) */
    atomic_int where[FR_TEAM_MAX];  /* per tid: the CPU the worker last saw itself on while it waited for a
                                     * job, -1 while it sleeps (or before it first looked) */
    /* the job word: the job's number times FR_JOB_NTH_SPAN plus its thread count, published after fn and arg.
     * A worker decides from this one word whether it takes part: a worker that read the job number and then
     * the field nth could read the next job's nth (its own job done without it, the next one published in
     * between), run that job under the old number, and run it again when it saw the new one -- after the
     * caller had returned, with its arguments gone (seen: a segfault once in 25-40 test runs going from 2
     * threads to 3 on 2 CPUs).  A worker that takes part reads fn and arg after the word: the caller cannot
     * change them before the job ends, which needs that worker. */
    _Alignas(64) atomic_uint_fast64_t job;
    fr_barrier bar;
    /* for fastrnn info and the tests: jobs run on several threads, calls run alone because the team was
     * busy, workers moved off the caller's CPU, the size of the last team job */
    atomic_uint_fast64_t jobs, alone_busy, moved;
    atomic_int_fast64_t last;
} fr_team = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

/* The barrier of the nth threads of a team job (a no-op for one thread), in two halves: fr_sync_arrive
 * publishes this thread's writes and returns a token, fr_sync_wait(token) waits for the others.  Between
 * them a thread may do work that needs only its own results of the step: a step's product starts on the
 * rows of h_t this thread wrote itself while the others finish theirs, and the wait absorbs their
 * lateness.  Every arrive must be followed by its wait before the thread arrives again. */
static int64_t fr_sync_arrive(void *sync)
{
    fr_barrier *b = (fr_barrier *)sync;
    if (b->n <= 1)
        return -1;
    unsigned round = atomic_load_explicit(&b->round, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->round, round + 1, memory_order_seq_cst);
        if (atomic_load_explicit(&b->sleepers, memory_order_seq_cst)) {
            atomic_fetch_add_explicit(&b->wakes, 1, memory_order_relaxed);
            fr_futex_wake(&b->round);
        }
        return -1;  /* the last to arrive: nothing to wait for */
    }
    return (int64_t)round;
}
static int fr_arrive(void *sync, int64_t spin_ns)  /* returns 1 for the thread that arrived last */
{
    const int64_t token = fr_sync_arrive(sync);
    if (token >= 0)
        fr_wait_round((fr_barrier *)sync, (unsigned)token, spin_ns);
    return token < 0;
}
static void fr_sync_wait(void *sync, int64_t token)
{
    if (token >= 0)
        fr_wait_round((fr_barrier *)sync, (unsigned)token, FR_SPIN_SYNC_NS);
}
static void fr_sync(void *sync) { fr_arrive(sync, FR_SPIN_SYNC_NS); }

/* The barrier that ends a job (every thread, the caller last to leave). */
static int fr_sync_end(void *sync) { return fr_arrive(sync, FR_SPIN_END_NS); }

static int64_t fr_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Moving a thread off a CPU without pinning it: narrowing its CPU set to the others moves it at once (or,
 * asleep, makes its next wake-up pick one of them); widening it again afterwards does not move it back.
 * fr_narrow(tid, cpu, all) narrows thread `tid` (a kernel thread id, 0: the calling thread) and keeps its set
 * in `all`; returns 1 when it did.  Only the team's workers are ever narrowed, never the caller of a job. */
#if defined(__linux__) && defined(CPU_SET)
typedef cpu_set_t fr_cpus;
static int fr_narrow(pid_t tid, int cpu, fr_cpus *all)
{
    cpu_set_t others;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(tid, sizeof *all, all) != 0 || !CPU_ISSET(cpu, all))
        return 0;
    others = *all;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0 || sched_setaffinity(tid, sizeof others, &others) != 0)
        return 0;
    atomic_fetch_add_explicit(&fr_team.moved, 1, memory_order_relaxed);
    return 1;
}
static void fr_widen(pid_t tid, const fr_cpus *all) { sched_setaffinity(tid, sizeof *all, all); }
static pid_t fr_gettid(void) { return (pid_t)syscall(SYS_gettid); }
#else
typedef int fr_cpus;
static int fr_narrow(pid_t tid, int cpu, fr_cpus *all) { (void)tid, (void)cpu, (void)all; return 0; }
static void fr_widen(pid_t tid, const fr_cpus *all) { (void)tid, (void)all; }
static pid_t fr_gettid(void) { return 0; }
#endif

static fr_cpus fr_team_saved[FR_TEAM_MAX]; /* fr_team_run: the CPU sets of the workers it narrowed for a
                                            * job's wake-up, restored once the job is published */

/* A worker that finds itself on the CPU of the job's caller leaves it. */
static void fr_leave_cpu(int cpu)
{
    fr_cpus all;
    if (fr_narrow(0, cpu, &all))
        fr_widen(0, &all);
}

static int fr_current_cpu(void)
{
#if defined(__linux__) && defined(CPU_SET)
    return sched_getcpu();
#else
    return -1;
#endif
}

static void *fr_worker(void *p)
{
    const int64_t tid = (int64_t)(intptr_t)p;
    /* Not the job number now: the job this thread was started for may be published already. */
    uint_fast64_t seen = fr_team.first_job[tid];
    atomic_store_explicit(&fr_team.tids[tid], fr_gettid(), memory_order_relaxed);
    int64_t spin_ns = FR_SPIN_JOB_NS;
    for (;;) {
        /* wait for the next job: spin a little, then sleep */
        int64_t start = fr_now_ns();
        uint_fast64_t job;
        for (int i = 0; (job = atomic_load_explicit(&fr_team.job, memory_order_acquire)) == seen; i++) {
            FR_PAUSE();
            if ((i & 255) != 255)
                continue;
            if (fr_now_ns() - start <= spin_ns) {
                atomic_store_explicit(&fr_team.where[tid], fr_current_cpu(), memory_order_relaxed);
            } else {
                atomic_store_explicit(&fr_team.where[tid], -1, memory_order_relaxed);
                pthread_mutex_lock(&fr_team.lock);
                fr_team.sleeping++;
                while ((job = atomic_load_explicit(&fr_team.job, memory_order_acquire)) == seen)
                    pthread_cond_wait(&fr_team.wake, &fr_team.lock);
                fr_team.sleeping--;
                pthread_mutex_unlock(&fr_team.lock);
                break;
            }
        }
        seen = job;
        const int64_t nth = (int64_t)(job % FR_JOB_NTH_SPAN);  /* the job's own, read with its number (see job) */
        if (tid < nth) {
            if (fr_team.caller_cpu >= 0 && fr_current_cpu() == fr_team.caller_cpu)
                fr_leave_cpu(fr_team.caller_cpu);
            atomic_store_explicit(&fr_team.where[tid], fr_current_cpu(), memory_order_relaxed);  /* awake */
            fr_team.fn(fr_team.arg, &fr_team.bar, tid, nth);
            const unsigned wakes = atomic_load_explicit(&fr_team.bar.wakes, memory_order_relaxed);
            const int last = fr_sync_end(&fr_team.bar);  /* the end of the job */
            /* This thread, last to arrive, woke the caller asleep there: Linux placed the caller on this
             * CPU, and a spin would hold the CPU from it, so sleep now (the next job moves this thread, see
             * fr_team_run).  A worker that was itself woken keeps its spin. */
            const int woke = last && atomic_load_explicit(&fr_team.bar.wakes, memory_order_relaxed) != wakes;
            spin_ns = woke ? 0 : FR_SPIN_JOB_NS;
        }
    }
    return NULL;
}

static void fr_team_forget(void)  /* in a forked child: the workers did not come along */
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    fr_team.busy = m;
    fr_team.lock = m;
    fr_team.wake = c;
    fr_team.sleeping = 0;
    fr_team.started = 0;
    for (int i = 0; i < FR_TEAM_MAX; i++)
        atomic_store_explicit(&fr_team.tids[i], 0, memory_order_relaxed);
}

static int fr_team_grow(int64_t nth)  /* starts workers up to tid nth - 1; returns the team size */
{
    static int atfork_done = 0;
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, fr_team_forget);
        atfork_done = 1;
    }
    while (fr_team.started < nth - 1) {
        pthread_t thread;
        pthread_attr_t attr;
        sigset_t all, old;
        sigfillset(&all);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1 << 20);
        fr_team.first_job[fr_team.started + 1] = atomic_load_explicit(&fr_team.job, memory_order_relaxed);
        atomic_store_explicit(&fr_team.tids[fr_team.started + 1], 0, memory_order_relaxed);
        atomic_store_explicit(&fr_team.where[fr_team.started + 1], -1, memory_order_relaxed);
        pthread_sigmask(SIG_BLOCK, &all, &old);  /* the new thread inherits the mask: no signals */
        int err = pthread_create(&thread, &attr, fr_worker, (void *)(intptr_t)(fr_team.started + 1));
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (err)
            break;
        fr_team.started++;
    }
    return fr_team.started + 1;
}

/* Runs fn on up to nth threads; returns the number it ran on. */
static int64_t fr_team_run(fr_task_fn fn, void *arg, int64_t nth)
{
    if (nth > FR_TEAM_MAX)
        nth = FR_TEAM_MAX;
    if (nth > 1 && pthread_mutex_trylock(&fr_team.busy) == 0) {
        int64_t size = fr_team_grow(nth);
        if (nth > size)
            nth = size;
        if (nth > 1) {
            fr_team.fn = fn;
            fr_team.arg = arg;
            const int cpu = fr_current_cpu();
            fr_team.caller_cpu = cpu;
            fr_team.bar.n = nth;
            /* Workers asleep, or waiting on this CPU, are moved off it first (see Waiting above) */
            uint64_t narrowed = 0;  /* bit w: worker w */
            for (int64_t w = 1; w < nth && cpu >= 0; w++) {
                const int at = atomic_load_explicit(&fr_team.where[w], memory_order_relaxed);
                const pid_t who = atomic_load_explicit(&fr_team.tids[w], memory_order_relaxed);
                if (who && (at < 0 || at == cpu) && fr_narrow(who, cpu, &fr_team_saved[w]))
                    narrowed |= (uint64_t)1 << w;
            }
            atomic_store_explicit(&fr_team.bar.count, 0, memory_order_relaxed);
            const uint_fast64_t number = atomic_load_explicit(&fr_team.job, memory_order_relaxed) / FR_JOB_NTH_SPAN;
            atomic_store_explicit(&fr_team.job, (number + 1) * FR_JOB_NTH_SPAN + (uint_fast64_t)nth,
                                  memory_order_release);  /* only the caller holding busy writes it */
            pthread_mutex_lock(&fr_team.lock);
            if (fr_team.sleeping)
                pthread_cond_broadcast(&fr_team.wake);
            pthread_mutex_unlock(&fr_team.lock);
            for (int64_t w = 1; w < nth && narrowed; w++)
                if (narrowed >> w & 1)
                    fr_widen(atomic_load_explicit(&fr_team.tids[w], memory_order_relaxed), &fr_team_saved[w]);
            fn(arg, &fr_team.bar, 0, nth);
            fr_sync_end(&fr_team.bar);  /* the end of the job: every worker is done with it */
            atomic_fetch_add_explicit(&fr_team.jobs, 1, memory_order_relaxed);
            atomic_store_explicit(&fr_team.last, nth, memory_order_relaxed);
            pthread_mutex_unlock(&fr_team.busy);
            return nth;
        }
        pthread_mutex_unlock(&fr_team.busy);
    } else if (nth > 1) {
        atomic_fetch_add_explicit(&fr_team.alone_busy, 1, memory_order_relaxed);
    }
    fr_barrier alone = {1};
    fn(arg, &alone, 0, 1);
    return 1;
}

#endif
