// to_thread: the Tokio peer of `weft-bench to_thread` - an empty blocking
// call's round trip through tokio::task::spawn_blocking, awaited by one task
// (100,000 calls, one at a time) and by 64 tasks at once (5,000 calls each).
// Prints weft-bench's line format:
//     to_thread tokio us_per_call V us workers=N,reps=R,...
//
//   to_thread [--workers N] [--reps R]     (workers: runtime worker threads;
//                                           default one per CPU)
#[path = "harness/mod.rs"]
mod harness;

use std::time::Instant;

const ONE: u64 = 100_000;
const FIBERS: u64 = 64;
const PER_FIBER: u64 = 5_000;

fn main() {
    let o = harness::opts();
    let rt = harness::runtime(&o);
    let (mut one, mut many) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for r in 0..=o.reps {
            let t0 = Instant::now();
            let mut s = 0u64;
            for i in 1..=ONE {
                s += tokio::task::spawn_blocking(move || i).await.unwrap();
            }
            let d1 = t0.elapsed();
            assert_eq!(s, ONE * (ONE + 1) / 2);
            let t2 = Instant::now();
            let mut hs = Vec::new();
            for _ in 0..FIBERS {
                hs.push(tokio::spawn(async {
                    let mut s = 0u64;
                    for i in 1..=PER_FIBER {
                        s += tokio::task::spawn_blocking(move || i).await.unwrap();
                    }
                    s
                }));
            }
            let mut total = 0u64;
            for h in hs {
                total += h.await.unwrap();
            }
            let d2 = t2.elapsed();
            assert_eq!(total, FIBERS * PER_FIBER * (PER_FIBER + 1) / 2);
            if r > 0 {
                one.push(d1.as_secs_f64() * 1e6 / ONE as f64);
                many.push(d2.as_secs_f64() * 1e6 / (FIBERS * PER_FIBER) as f64);
            }
        }
    });
    harness::report(
        "to_thread",
        "us_per_call",
        harness::median(&mut one),
        "us",
        &o,
        &format!("calls={},fibers=1", ONE),
    );
    harness::report(
        "to_thread",
        "us_per_call_64",
        harness::median(&mut many),
        "us",
        &o,
        &format!("calls={},fibers={}", FIBERS * PER_FIBER, FIBERS),
    );
}
