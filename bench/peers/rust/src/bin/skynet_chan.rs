//! skynet_chan: skynet (atemerev/skynet) with every sum flowing up to its
//! parent through one channel of capacity 1 per parent, as weft-bench's
//! skynet_chan does it (Tokio's bounded mpsc needs a capacity of at least 1:
//! it has no rendezvous channel). 1,000,000 leaves; the total is checked.
#[path = "harness/mod.rs"]
mod harness;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use tokio::sync::mpsc;

fn skynet(tx: mpsc::Sender<i64>, num: i64, size: i64, div: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            tx.send(num).await.expect("send");
            return;
        }
        let (rtx, mut rrx) = mpsc::channel(1);
        for i in 0..div {
            let sub = num + i * (size / div);
            tokio::spawn(skynet(rtx.clone(), sub, size / div, div));
        }
        drop(rtx);
        let mut sum = 0;
        for _ in 0..div {
            sum += rrx.recv().await.expect("recv");
        }
        tx.send(sum).await.expect("send");
    })
}

fn main() {
    let o = harness::opts();
    let rt = harness::runtime(&o);
    let mut v = Vec::new();
    for r in 0..=o.reps {
        let ms = rt.block_on(harness::in_task(async {
            let (tx, mut rx) = mpsc::channel(1);
            let t0 = Instant::now();
            tokio::spawn(skynet(tx, 0, 1_000_000, 10));
            let sum = rx.recv().await.expect("root");
            let el = t0.elapsed();
            harness::check(sum == 499_999_500_000, format!("sum {}", sum));
            el.as_secs_f64() * 1e3
        }));
        if r > 0 {
            v.push(ms);
        }
    }
    harness::report("skynet_chan", "wall_ms", harness::median(&mut v), "ms", &o, "leaves=1000000,channel=1");
}
