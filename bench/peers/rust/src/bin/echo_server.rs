//! echo_server - the Tokio peer of weft's examples/echo_server.c, measured by
//! `weft-bench echo --impl tokio` (bench/bench_net.c). It obeys the contract
//! of bench/peers/HTTP.md, "Both servers" and "echo_server":
//!
//!     echo_server [--host H] [--port N] [--workers N]
//!
//! - `--host` (default 127.0.0.1), `--port` (default 0: the kernel picks),
//!   `--workers` sets the multi-thread runtime's worker_threads (default:
//!   one per CPU);
//! - raises its RLIMIT_NOFILE soft limit to the hard limit (Go does that
//!   itself at start-up; here it is libc::setrlimit);
//! - prints exactly one line `listening on HOST:PORT` once it accepts;
//! - one task (tokio::spawn) per connection, TCP_NODELAY set on it (Go sets
//!   it by default; with one message outstanding per connection, echo is
//!   latency bound and Nagle's algorithm would measure the delayed-ACK
//!   timer), a 4 KiB buffer: read what has arrived, write all of it back
//!   (`stream.read(&mut buf)`, `stream.write_all(&buf[..n])`), close on end
//!   of file or an error;
//! - on SIGINT or SIGTERM (tokio::signal): drop the listener, shut down the
//!   read side of every connection (each task sees end of file and ends),
//!   wait up to 5 s for them, exit 0.
//!
//! Written the way a Tokio user writes it. Built offline against Debian's
//! librust-tokio-dev: `cargo build --release` in bench/peers/rust.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// The read buffer of a connection; the weft and Go servers use the same.
const BUF_SIZE: usize = 4096;

struct Opts {
    host: String,
    port: u16,
    workers: usize,
}

fn usage() -> ! {
    eprintln!("usage: echo_server [--host H] [--port N] [--workers N]");
    std::process::exit(64);
}

/// `--name value` or `--name=value`, as Go's flag package takes them.
fn parse_args() -> Opts {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 0,
        workers: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let value = inline.or_else(|| args.next()).unwrap_or_else(|| usage());
        match name.as_str() {
            "--host" | "-host" => o.host = value,
            "--port" | "-port" => o.port = value.parse().unwrap_or_else(|_| usage()),
            "--workers" | "-workers" => o.workers = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    o
}

/// Raise the soft limit on open files to the hard limit, as Go does at
/// start-up, so that 10,000 connections fit.
fn raise_nofile_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// The open connections, by fd, so that a stop can shut down their read
/// sides. A task takes its fd out before it drops (closes) its stream, under
/// the same lock, so the stop never touches a closed (or reused) fd.
#[derive(Default)]
struct Conns {
    fds: Mutex<HashSet<RawFd>>,
    empty: Notify,
}

impl Conns {
    fn add(&self, fd: RawFd) {
        self.fds.lock().unwrap().insert(fd);
    }

    fn remove(&self, fd: RawFd) {
        let mut fds = self.fds.lock().unwrap();
        fds.remove(&fd);
        if fds.is_empty() {
            // notify_one keeps a permit when nobody waits yet: no lost wake-up.
            self.empty.notify_one();
        }
    }

    /// Shut down the read side of every connection and wait, at most
    /// `limit`, until their tasks have ended; says whether they did.
    async fn stop(&self, limit: Duration) -> bool {
        for &fd in self.fds.lock().unwrap().iter() {
            // SAFETY: fd is open: its task removes it before closing it.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
        let all_ended = async {
            while !self.fds.lock().unwrap().is_empty() {
                self.empty.notified().await;
            }
        };
        tokio::time::timeout(limit, all_ended).await.is_ok()
    }
}

async fn serve(mut stream: TcpStream, conns: Arc<Conns>) {
    let fd = stream.as_raw_fd();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    conns.remove(fd);
    drop(stream);
}

async fn run(o: Opts) -> std::io::Result<()> {
    let listener = TcpListener::bind((o.host.as_str(), o.port)).await?;
    // Register for the signals before saying we are ready, so a signal sent
    // right after the ready line cannot kill the process.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;

    let conns = Arc::new(Conns::default());
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.add(stream.as_raw_fd());
                    tokio::spawn(serve(stream, conns.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: back off briefly rather than spin.
                    eprintln!("echo_server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    if !conns.stop(Duration::from_secs(5)).await {
        eprintln!("echo_server: connections still open after 5 s; exiting");
    }
    Ok(())
}

fn main() {
    let o = parse_args();
    raise_nofile_limit();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if o.workers > 0 {
        b.worker_threads(o.workers);
    }
    let rt = b.enable_all().build().expect("echo_server: tokio runtime");
    if let Err(e) = rt.block_on(run(o)) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
