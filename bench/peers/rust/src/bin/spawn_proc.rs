// spawn_proc: the Tokio peer of `weft-bench spawn_proc` - spawn /bin/true
// with tokio::process::Command and await its exit, one at a time (300 per
// repetition). Prints weft-bench's line format:
//     spawn_proc tokio us_per_proc V us workers=N,reps=R,...
//
//   spawn_proc [--workers N] [--reps R]
#[path = "harness/mod.rs"]
mod harness;

use std::time::Instant;

const N: u32 = 300;

fn main() {
    let o = harness::opts();
    let rt = harness::runtime(&o);
    let mut v = Vec::new();
    rt.block_on(async {
        for r in 0..=o.reps {
            let t0 = Instant::now();
            for _ in 0..N {
                let st = tokio::process::Command::new("/bin/true").status().await.unwrap();
                assert!(st.success());
            }
            if r > 0 {
                v.push(t0.elapsed().as_secs_f64() * 1e6 / N as f64);
            }
        }
    });
    harness::report(
        "spawn_proc",
        "us_per_proc",
        harness::median(&mut v),
        "us",
        &o,
        &format!("procs={},prog=/bin/true", N),
    );
}
