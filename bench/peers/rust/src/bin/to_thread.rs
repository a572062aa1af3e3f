// to_thread: the Tokio peer of `weft-bench to_thread` - an empty blocking
// call's round trip through tokio::task::spawn_blocking, awaited by one task
// (100,000 calls, one at a time) and by 64 tasks at once (5,000 calls each).
// Prints weft-bench's line format:
//     to_thread tokio us_per_call V us workers=N,reps=R,...
//
//   to_thread [--workers N] [--reps R]     (workers: runtime worker threads;
//                                           default one per CPU)
use std::time::Instant;

const ONE: u64 = 100_000;
const FIBERS: u64 = 64;
const PER_FIBER: u64 = 5_000;

fn median(v: &mut Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt(x: f64) -> String {
    if x < 100.0 {
        format!("{:.2}", x)
    } else {
        format!("{:.0}", x)
    }
}

fn main() {
    let mut workers: usize = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut reps: usize = 5;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--workers" if i + 1 < args.len() => {
                let w: usize = args[i + 1].parse().expect("workers");
                if w > 0 {
                    workers = w;
                }
                i += 2;
            }
            "--reps" if i + 1 < args.len() => {
                reps = args[i + 1].parse().expect("reps");
                i += 2;
            }
            _ => {
                eprintln!("usage: to_thread [--workers N] [--reps R]");
                std::process::exit(64);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let (mut one, mut many) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for r in 0..=reps {
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
    println!(
        "to_thread tokio us_per_call {} us workers={},reps={},calls={},fibers=1",
        fmt(median(&mut one)),
        workers,
        reps,
        ONE
    );
    println!(
        "to_thread tokio us_per_call_64 {} us workers={},reps={},calls={},fibers={}",
        fmt(median(&mut many)),
        workers,
        reps,
        FIBERS * PER_FIBER,
        FIBERS
    );
}
