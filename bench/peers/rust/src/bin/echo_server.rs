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

#[path = "server/mod.rs"]
mod server;

use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use server::Conns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The read buffer of a connection; the weft and Go servers use the same.
const BUF_SIZE: usize = 4096;

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

fn main() {
    server::main("echo_server", serve);
}
