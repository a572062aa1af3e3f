//! The Tokio peers' harness, shared by the binaries of src/bin/ through
//! `#[path = "harness/mod.rs"] mod harness;`: the same command line, the same
//! methodology and the same output line as weft-bench and bench/peers/go:
//!
//!     BIN [--workers N] [--reps R]
//!     NAME tokio METRIC VALUE UNIT workers=N,reps=R[,key=value...]
//!
//! --workers sets the multi-threaded runtime's worker_threads (default: one
//! per CPU); a figure is the median of R timed repetitions (default 5) after
//! one untimed warm-up. Every benchmark checks its own result (a wrong result
//! exits 2).
#![allow(dead_code)]

use std::time::Duration;

pub struct Opts {
    pub workers: usize,
    pub reps: usize,
}

fn usage(bin: &str) -> ! {
    eprintln!("usage: {} [--workers N] [--reps R]", bin);
    std::process::exit(64);
}

pub fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let bin = args.get(0).cloned().unwrap_or_default();
    let mut o = Opts { workers: 0, reps: 5 };
    let mut i = 1;
    while i < args.len() {
        if i + 1 >= args.len() {
            usage(&bin);
        }
        let n: usize = args[i + 1].parse().unwrap_or_else(|_| usage(&bin));
        match args[i].as_str() {
            "--workers" => o.workers = n,
            "--reps" => o.reps = n,
            _ => usage(&bin),
        }
        i += 2;
    }
    if o.reps < 1 || o.reps > 101 {
        usage(&bin);
    }
    if o.workers == 0 {
        o.workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    }
    o
}

pub fn runtime(o: &Opts) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Run one repetition as a task of the runtime (block_on's own future runs
/// on the calling thread, outside the workers): weft-bench's repetitions run
/// in its main task, on a worker, too.
pub async fn in_task<F, T>(f: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(f).await.expect("repetition task")
}

pub fn check(cond: bool, what: String) {
    if !cond {
        eprintln!("tokio peer: check failed: {}", what);
        std::process::exit(2);
    }
}

pub fn median(v: &mut Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One line, formatted as bench_print does: two decimals below 100, none
/// from 100 up.
pub fn report(name: &str, metric: &str, value: f64, unit: &str, o: &Opts, extra: &str) {
    let v = if value < 100.0 { format!("{:.2}", value) } else { format!("{:.0}", value) };
    let extra = if extra.is_empty() { String::new() } else { format!(",{}", extra) };
    println!("{} tokio {} {} {} workers={},reps={}{}", name, metric, v, unit, o.workers, o.reps, extra);
}

pub fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}
