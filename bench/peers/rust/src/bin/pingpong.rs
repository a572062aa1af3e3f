//! pingpong: a token bounced between two tasks through two channels of
//! capacity 1, 1,000,000 round trips (weft-bench pingpong, bench/bench_sync.c).
#[path = "harness/mod.rs"]
mod harness;

use std::time::Instant;
use tokio::sync::mpsc;

const N: i64 = 1_000_000;

fn main() {
    let o = harness::opts();
    let rt = harness::runtime(&o);
    let mut v = Vec::new();
    for r in 0..=o.reps {
        let ns = rt.block_on(harness::in_task(async {
            let (ping_tx, mut ping_rx) = mpsc::channel::<i64>(1);
            let (pong_tx, mut pong_rx) = mpsc::channel::<i64>(1);
            let peer = tokio::spawn(async move {
                for _ in 0..N {
                    let x = ping_rx.recv().await.expect("ping");
                    pong_tx.send(x + 1).await.expect("pong");
                }
            });
            let t0 = Instant::now();
            let mut token = 0;
            for _ in 0..N {
                ping_tx.send(token).await.expect("send");
                token = pong_rx.recv().await.expect("recv") + 1;
            }
            let el = t0.elapsed();
            peer.await.expect("peer");
            harness::check(token == 2 * N, format!("token {}", token));
            harness::nanos(el) / N as f64
        }));
        if r > 0 {
            v.push(ns);
        }
    }
    harness::report("pingpong", "ns_per_roundtrip", harness::median(&mut v), "ns", &o, "roundtrips=1000000,queues=2x1");
}
