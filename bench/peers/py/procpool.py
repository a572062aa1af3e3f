#!/usr/bin/env python3
"""procpool: the asyncio peer of weft-bench's procpool_* benchmarks -
loop.run_in_executor(ProcessPoolExecutor(), fn, arg), as asyncio users
offload CPU-bound work. Prints weft-bench's line format:

    procpool_rtt asyncio us_per_job V us ...      an empty job, 64 tasks in flight
    procpool_rtt asyncio us_per_job_1 V us ...    one task, one job at a time
    procpool_scale asyncio speedup V x ...        primes by trial division, 1 vs N workers
    procpool_big asyncio gib_per_s V GiB/s ...    64 MiB inputs echoed back

    procpool.py [rtt|scale|big ...] [--reps R] [--workers N]

Python is far slower per job than weft, so it makes fewer jobs (the figure
is per job all the same), and its prime count stops lower (pure Python
trial division is about 50 times slower than C): the speedup compares the
same kind of work, 64 chunks on 1 worker and on N. The pool's workers are
started before the timing (a warm-up job each), as weft-bench warms its
pool. The default start method of Debian's Python 3.11 is fork.
"""
import argparse
import asyncio
import concurrent.futures
import os
import statistics
import time

ONE = 2_000
TASKS = 64
PER_TASK = 50
SC_LIMIT = 240_000  # weft counts below 3,600,000
SC_PRIMES = 21_221   # primes below 240,000
SC_CHUNKS = 64
BIG = 64 << 20
BIG_JOBS = 4


def empty():
    return None


def echo(b):
    return b


def primes(lo, hi):
    c = 0
    for k in range(max(lo, 2), hi):
        d = 2
        prime = True
        while d * d <= k:
            if k % d == 0:
                prime = False
                break
            d += 1
        c += prime
    return c


def fmt(x):
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def warm(ex, n):
    list(ex.map(time.sleep, [0.01] * n))


async def rtt_round(ex):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for _ in range(ONE):
        await loop.run_in_executor(ex, empty)
    one = (time.perf_counter() - t0) * 1e6 / ONE

    async def task():
        for _ in range(PER_TASK):
            await loop.run_in_executor(ex, empty)

    t0 = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(TASKS)))
    many = (time.perf_counter() - t0) * 1e6 / (TASKS * PER_TASK)
    return one, many


async def scale_pass(workers):
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ex:
        warm(ex, workers)
        bounds = [SC_LIMIT * i // SC_CHUNKS for i in range(SC_CHUNKS + 1)]
        t0 = time.perf_counter()
        # The costliest ranges first, as weft-bench does.
        counts = await asyncio.gather(*(loop.run_in_executor(ex, primes, bounds[i], bounds[i + 1])
                                        for i in reversed(range(SC_CHUNKS))))
        t = time.perf_counter() - t0
    assert sum(counts) == SC_PRIMES, sum(counts)
    return t


async def big_round(ex, data):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for _ in range(BIG_JOBS):
        out = await loop.run_in_executor(ex, echo, data)
        assert len(out) == BIG and out[-1] == data[-1] and out[12345] == data[12345]
    return BIG * BIG_JOBS / (1 << 30) / (time.perf_counter() - t0)


async def main(names, reps, workers):
    lines = []
    if "rtt" in names:
        one, many = [], []
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ex:
            warm(ex, workers)
            for r in range(reps + 1):
                o, m = await rtt_round(ex)
                if r:
                    one.append(o)
                    many.append(m)
        lines.append(f"procpool_rtt asyncio us_per_job {fmt(statistics.median(many))} us "
                     f"workers=1,reps={reps},procs={workers},jobs={TASKS * PER_TASK},fibers={TASKS}")
        lines.append(f"procpool_rtt asyncio us_per_job_1 {fmt(statistics.median(one))} us "
                     f"workers=1,reps={reps},procs={workers},jobs={ONE},fibers=1")
    if "scale" in names:
        sp, t1s = [], []
        for r in range(reps + 1):
            t1 = await scale_pass(1)
            tn = await scale_pass(workers)
            if r:
                sp.append(t1 / tn)
                t1s.append(t1)
        lines.append(f"procpool_scale asyncio speedup {fmt(statistics.median(sp))} x "
                     f"workers=1,reps={reps},procs=1_vs_{workers},primes_below={SC_LIMIT},chunks={SC_CHUNKS}")
        lines.append(f"procpool_scale asyncio s_one_worker {fmt(statistics.median(t1s))} s "
                     f"workers=1,reps={reps},procs=1")
    if "big" in names:
        data = bytes((i * 131 + (i >> 12)) & 0xff for i in range(1 << 16)) * (BIG >> 16)
        v = []
        with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:
            warm(ex, 1)
            for r in range(reps + 1):
                g = await big_round(ex, data)
                if r:
                    v.append(g)
        lines.append(f"procpool_big asyncio gib_per_s {fmt(statistics.median(v))} GiB/s "
                     f"workers=1,reps={reps},procs=1,input=64MiB,echoed,jobs={BIG_JOBS}")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=["rtt", "scale", "big"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    for name in a.names:
        if name not in ("rtt", "scale", "big"):
            ap.error(f"unknown benchmark {name}")
    for line in asyncio.run(main(a.names, a.reps, a.workers)):
        print(line, flush=True)
