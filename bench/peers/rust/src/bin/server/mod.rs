//! What the two Tokio servers (echo_server.rs, http_server.rs) share around
//! their connection handler, through `#[path = "server/mod.rs"] mod server;`:
//! the command line, the descriptor limit, the ready line, the accept loop
//! (a task per connection, TCP_NODELAY) and the stop on SIGINT/SIGTERM of
//! bench/peers/HTTP.md, "Both servers".

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

pub struct Opts {
    host: String,
    port: u16,
    workers: usize,
}

fn usage(prog: &str) -> ! {
    eprintln!("usage: {prog} [--host H] [--port N] [--workers N]");
    std::process::exit(64);
}

/// `--name value` or `--name=value`, as Go's flag package takes them.
fn parse_args(prog: &str) -> Opts {
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
        let value = inline.or_else(|| args.next()).unwrap_or_else(|| usage(prog));
        match name.as_str() {
            "--host" | "-host" => o.host = value,
            "--port" | "-port" => o.port = value.parse().unwrap_or_else(|_| usage(prog)),
            "--workers" | "-workers" => o.workers = value.parse().unwrap_or_else(|_| usage(prog)),
            _ => usage(prog),
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
pub struct Conns {
    fds: Mutex<HashSet<RawFd>>,
    empty: Notify,
}

impl Conns {
    fn add(&self, fd: RawFd) {
        self.fds.lock().unwrap().insert(fd);
    }

    pub fn remove(&self, fd: RawFd) {
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

async fn run<F, Fut>(name: &'static str, o: Opts, serve: F) -> std::io::Result<()>
where
    F: Fn(TcpStream, Arc<Conns>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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
                    eprintln!("{name}: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    if !conns.stop(Duration::from_secs(5)).await {
        eprintln!("{name}: connections still open after 5 s; exiting");
    }
    Ok(())
}

/// The whole server: `serve` handles one connection and removes its fd from
/// `Conns` before it closes the stream.
pub fn main<F, Fut>(name: &'static str, serve: F)
where
    F: Fn(TcpStream, Arc<Conns>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let o = parse_args(name);
    raise_nofile_limit();
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if o.workers > 0 {
        b.worker_threads(o.workers);
    }
    let rt = b.enable_all().build().unwrap_or_else(|e| {
        eprintln!("{name}: tokio runtime: {e}");
        std::process::exit(1);
    });
    if let Err(e) = rt.block_on(run(name, o, serve)) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
