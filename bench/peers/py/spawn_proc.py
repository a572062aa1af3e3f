#!/usr/bin/env python3
"""spawn_proc: the asyncio peer of `weft-bench spawn_proc` - spawn /bin/true
with asyncio.create_subprocess_exec and await its exit, one at a time (300
per repetition). Prints weft-bench's line format:

    spawn_proc asyncio us_per_proc V us workers=1,reps=R,...

    spawn_proc.py [--reps R]
"""
import argparse
import asyncio
import statistics
import time

N = 300


async def main(reps):
    v = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        for _ in range(N):
            p = await asyncio.create_subprocess_exec("/bin/true")
            assert await p.wait() == 0
        if r:
            v.append((time.perf_counter() - t0) * 1e6 / N)
    return statistics.median(v)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)  # accepted, ignored: one loop thread
    a = ap.parse_args()
    m = asyncio.run(main(a.reps))
    print(f"spawn_proc asyncio us_per_proc {m:.2f} us workers=1,reps={a.reps},procs={N},prog=/bin/true"
          if m < 100 else
          f"spawn_proc asyncio us_per_proc {m:.0f} us workers=1,reps={a.reps},procs={N},prog=/bin/true")
