/* The round trip of a cache line between two threads of the team: how far apart the cores are.
 *
 * Why: on a virtual machine the host may run the guest's CPUs on cores that share a last-level cache
 * or on cores of different dies (or sockets), and move them between the two while the guest runs.  On
 * the project's AMD EPYC (Zen 4) guest this came and went every 10-60 s: a cache line's round trip
 * between the two vCPUs took 50-70 ns, then 320-360 ns (2026-12-05), and while it did, the 2-thread
 * LSTM forward + backward ran 15 % slower (our team's calls; torch's about 4 %), every thread's stores
 * to memory a third slower.  Nothing else visible from inside the guest tells the two apart, so
 * `fastrnn bench` measures this before every visit of a thread pool and names the cases that met it.
 *
 * How: a team job of two threads passes a counter back and forth on one 64-byte line, each waiting
 * for the other's increment; thread 0 times `iters` round trips. */
#ifndef FASTRNN_ROUNDTRIP_H
#define FASTRNN_ROUNDTRIP_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "team.h"

#define FR_ROUND_TRIP_NS 20000000 /* at most 20 ms of round trips */

typedef struct {
    _Alignas(64) _Atomic int64_t ball; /* odd: thread 1's turn to answer; even: thread 0's */
    char pad[64 - sizeof(int64_t)];
    int64_t iters, done; /* round trips asked for, and made */
    int64_t t0, t1; /* CLOCK_MONOTONIC ns, taken by thread 0 around the round trips */
} fr_round_trip_job;

static void fr_round_trip_task(void *arg, void *sync, int64_t tid, int64_t nth)
{
    fr_round_trip_job *job = (fr_round_trip_job *)arg;
    fr_sync(sync);
    if (nth < 2 || tid > 1) {
        fr_sync(sync);
        return;
    }
    if (tid == 0) {
        /* at most FR_ROUND_TRIP_NS in all: two threads that share one CPU pass the line once a time slice */
        const int64_t t0 = fr_now_ns(), deadline = t0 + FR_ROUND_TRIP_NS;
        int64_t i = 0;
        for (; i < job->iters && (i % 16 || fr_now_ns() < deadline); i++) {
            atomic_store_explicit(&job->ball, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&job->ball, memory_order_acquire) != 2 * i + 2)
                FR_PAUSE();
        }
        job->t1 = fr_now_ns();
        job->t0 = t0;
        job->done = i;
        atomic_store_explicit(&job->ball, -1, memory_order_release); /* thread 1: stop */
    } else {
        for (int64_t i = 0;; i++) {
            int64_t b;
            while ((b = atomic_load_explicit(&job->ball, memory_order_acquire)) != 2 * i + 1 && b != -1)
                FR_PAUSE();
            if (b == -1)
                break;
            atomic_store_explicit(&job->ball, 2 * i + 2, memory_order_release);
        }
    }
    fr_sync(sync);
}

/* Nanoseconds per round trip over up to `iters` of them (fewer when they take over FR_ROUND_TRIP_NS), or
 * -1 when the team could not give two threads. */
static double fr_round_trip(int64_t iters)
{
    fr_round_trip_job job;
    memset(&job, 0, sizeof job);
    job.iters = iters;
    if (fr_team_run(fr_round_trip_task, &job, 2) < 2 || job.done < 1)
        return -1.0;
    return (double)(job.t1 - job.t0) / (double)job.done;
}

#endif
