//! mpmc: 4 producers, 4 consumers, one channel of capacity 1024, 10,000,000
//! items; count and sum checked (weft-bench mpmc, bench/bench_sync.c).
//! Tokio's channels have one receiver: several consumers share it the way
//! Tokio users do, behind a tokio::sync::Mutex (there is no MPMC channel in
//! Tokio, and async-channel is not packaged in Debian). A consumer holds the
//! lock across its await on recv, so the consumers take turns; the
//! producers' sends are Tokio's bounded mpsc, lock-free until it is full.
#[path = "harness/mod.rs"]
mod harness;

use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Mutex};

const P: i64 = 4;
const C: usize = 4;
const CAP: usize = 1024;
const ITEMS: i64 = 10_000_000;

fn main() {
    let o = harness::opts();
    let rt = harness::runtime(&o);
    let mut v = Vec::new();
    for r in 0..=o.reps {
        let rate = rt.block_on(harness::in_task(async {
            let (tx, rx) = mpsc::channel::<i64>(CAP);
            let rx = Arc::new(Mutex::new(rx));
            let t0 = Instant::now();
            let mut consumers = Vec::new();
            for _ in 0..C {
                let rx = rx.clone();
                consumers.push(tokio::spawn(async move {
                    let (mut n, mut s) = (0i64, 0i64);
                    loop {
                        let x = rx.lock().await.recv().await;
                        match x {
                            Some(x) => {
                                n += 1;
                                s += x;
                            }
                            None => return (n, s), // every sender gone, drained
                        }
                    }
                }));
            }
            let mut producers = Vec::new();
            for p in 0..P {
                let tx = tx.clone();
                producers.push(tokio::spawn(async move {
                    let first = p * (ITEMS / P);
                    for i in 1..=ITEMS / P {
                        tx.send(first + i).await.expect("send");
                    }
                }));
            }
            drop(tx);
            for p in producers {
                p.await.expect("producer");
            }
            let (mut n, mut s) = (0, 0);
            for c in consumers {
                let (cn, cs) = c.await.expect("consumer");
                n += cn;
                s += cs;
            }
            let el = t0.elapsed();
            harness::check(n == ITEMS, format!("count {}", n));
            harness::check(s == ITEMS * (ITEMS + 1) / 2, format!("sum {}", s));
            ITEMS as f64 / el.as_secs_f64()
        }));
        if r > 0 {
            v.push(rate);
        }
    }
    harness::report("mpmc", "items_per_s", harness::median(&mut v), "items/s", &o,
        "producers=4,consumers=4,capacity=1024,items=10000000");
}
