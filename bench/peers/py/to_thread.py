#!/usr/bin/env python3
"""to_thread: the asyncio peer of `weft-bench to_thread` - an empty blocking
call's round trip through asyncio.to_thread (the loop's default
ThreadPoolExecutor), awaited by one task one call at a time, and by 64
tasks at once. Prints weft-bench's line format:

    to_thread asyncio us_per_call V us workers=1,reps=R,...

    to_thread.py [--reps R]

Python is about a hundred times slower per call than weft and Tokio, so it
makes fewer calls (10,000 one at a time, 64 x 200 in flight); the figure is
per call all the same. asyncio runs one event loop thread: workers=1.
"""
import argparse
import asyncio
import statistics
import time

ONE = 10_000
FIBERS = 64
PER_FIBER = 200


def empty(i):
    return i


async def fiber():
    s = 0
    for i in range(1, PER_FIBER + 1):
        s += await asyncio.to_thread(empty, i)
    return s


async def main(reps):
    one, many = [], []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        s = 0
        for i in range(1, ONE + 1):
            s += await asyncio.to_thread(empty, i)
        d1 = time.perf_counter() - t0
        assert s == ONE * (ONE + 1) // 2
        t2 = time.perf_counter()
        total = sum(await asyncio.gather(*(fiber() for _ in range(FIBERS))))
        d2 = time.perf_counter() - t2
        assert total == FIBERS * PER_FIBER * (PER_FIBER + 1) // 2
        if r:
            one.append(d1 * 1e6 / ONE)
            many.append(d2 * 1e6 / (FIBERS * PER_FIBER))
    return statistics.median(one), statistics.median(many)


def fmt(x):
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)  # accepted, ignored: one loop thread
    a = ap.parse_args()
    one, many = asyncio.run(main(a.reps))
    print(f"to_thread asyncio us_per_call {fmt(one)} us workers=1,reps={a.reps},calls={ONE},fibers=1")
    print(f"to_thread asyncio us_per_call_64 {fmt(many)} us workers=1,reps={a.reps},"
          f"calls={FIBERS * PER_FIBER},fibers={FIBERS}")
