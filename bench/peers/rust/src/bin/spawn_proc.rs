// spawn_proc: the Tokio peer of `weft-bench spawn_proc` - spawn /bin/true
// with tokio::process::Command and await its exit, one at a time (300 per
// repetition). Prints weft-bench's line format:
//     spawn_proc tokio us_per_proc V us workers=N,reps=R,...
//
//   spawn_proc [--workers N] [--reps R]
use std::time::Instant;

const N: u32 = 300;

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
    let mut workers: usize = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
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
                eprintln!("usage: spawn_proc [--workers N] [--reps R]");
                std::process::exit(64);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    let mut v = Vec::new();
    rt.block_on(async {
        for r in 0..=reps {
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
    println!(
        "spawn_proc tokio us_per_proc {} us workers={},reps={},procs={},prog=/bin/true",
        fmt(median(&mut v)),
        workers,
        reps,
        N
    );
}
