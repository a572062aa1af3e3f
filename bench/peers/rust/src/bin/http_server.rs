//! http_server - the Tokio peer of weft's examples/http_server.c, measured by
//! `weft-bench http --impl tokio` and `weft-bench conns --impl tokio`
//! (bench/bench_net.c): HTTP/1.1 keep-alive "Hello, World!" on tokio::net,
//! one task per connection.
//!
//!     http_server [--host H] [--port N] [--workers N]
//!
//! It obeys bench/peers/HTTP.md, which the weft and Go servers follow too;
//! in short:
//!
//! - `--host` (default 127.0.0.1), `--port` (default 0: the kernel picks),
//!   `--workers` sets worker_threads (default: one per CPU); raises its
//!   RLIMIT_NOFILE soft limit to the hard limit; prints exactly one line
//!   `listening on HOST:PORT` once it accepts; sets TCP_NODELAY on every
//!   connection (Go's default); on SIGINT or SIGTERM drops the listener,
//!   shuts down the read side of every connection, waits up to 5 s for them
//!   and exits 0.
//! - A request is a head (request line, header lines, empty line, at most
//!   8192 bytes, else 431) and a Content-Length body (digits only, at most
//!   1 MiB, else 413; duplicates that disagree: 400) that is read and thrown
//!   away. Lines end in CRLF; a bare LF or a stray CR is 400. The request
//!   line is METHOD SP TARGET SP HTTP/1.0|HTTP/1.1; a header line is
//!   Name:OWS value OWS with a token name; anything else is 400.
//!   Transfer-Encoding: 501. The first problem in byte order decides. Every
//!   error is answered "HTTP/1.1 NNN Reason", Content-Length: 0,
//!   Connection: close, and the connection closes.
//! - Every complete request gets "HTTP/1.1 200 OK", Content-Type:
//!   text/plain, Content-Length: 13, "Hello, World!" (no body for HEAD),
//!   plus Connection: close when it closes the connection (HTTP/1.1 with
//!   Connection: close; HTTP/1.0 without Connection: keep-alive), or
//!   Connection: keep-alive for an HTTP/1.0 request that keeps it.
//! - An 8 KiB read buffer and a 4 KiB write buffer per connection, as Go's
//!   bufio.Reader and bufio.Writer. Pipelined requests are answered in
//!   order; the responses to every complete request already buffered go out
//!   in one write: the write buffer is written out when no complete request
//!   is left in the read buffer (or when a response does not fit). A
//!   connection never holds more than that, whatever the client sends. To
//!   close after a response, it shuts down its write side and reads what
//!   the client still sends (at most 1 s and 64 KiB) before closing, so no
//!   reset destroys the responses.
//!
//! Written the way a Tokio user writes it (tokio::spawn per connection,
//! AsyncReadExt::read, AsyncWriteExt::write_all). Built offline against
//! Debian's librust-tokio-dev: `cargo build --release` in bench/peers/rust.

#[path = "server/mod.rs"]
mod server;

use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use server::Conns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request head, so a whole head fits in the read buffer.
const READ_BUF_SIZE: usize = 8192;
/// Responses are written out when one would not fit.
const WRITE_BUF_SIZE: usize = 4096;
/// Request line + headers + the empty line, CRLFs included.
const MAX_HEAD: usize = 8192;
/// The largest Content-Length accepted.
const MAX_BODY: usize = 1 << 20;

// --- the parser (bench/peers/HTTP.md, "Parsing a request") -------------------

/// What the server needs from a parsed head.
#[derive(Default, Clone, Copy)]
struct Request {
    /// Bytes of the head, its final empty line included.
    head_len: usize,
    /// Content-Length (0 without one).
    body_len: usize,
    /// A HEAD request: the response has no body.
    is_head: bool,
    /// Close the connection after the response.
    close: bool,
    /// An HTTP/1.0 request that keeps the connection.
    keep10: bool,
}

enum Parsed {
    /// The head is not all there yet.
    NeedMore,
    Head(Request),
    /// The HTTP status of the first problem in byte order.
    Error(u16),
}

/// Token characters (RFC 9110, 5.6.2).
const fn tchar_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}
static TCHAR: [bool; 256] = tchar_table();

fn token_len(b: &[u8]) -> usize {
    b.iter()
        .position(|&c| !TCHAR[c as usize])
        .unwrap_or(b.len())
}

fn is_ows(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [c, rest @ ..] = b {
        if !is_ows(*c) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., c] = b {
        if !is_ows(*c) {
            break;
        }
        b = rest;
    }
    b
}

/// METHOD SP TARGET SP VERSION; fills r.is_head and gives the version
/// (true for HTTP/1.1), or None when the line is malformed.
fn request_line(ln: &[u8], r: &mut Request) -> Option<bool> {
    let m = token_len(ln);
    if m == 0 || ln.get(m) != Some(&b' ') {
        return None;
    }
    r.is_head = &ln[..m] == b"HEAD";
    let rest = &ln[m + 1..];
    let t = rest
        .iter()
        .position(|&c| !(0x21..=0x7e).contains(&c))
        .unwrap_or(rest.len());
    if t == 0 || rest.get(t) != Some(&b' ') {
        return None;
    }
    match &rest[t + 1..] {
        b"HTTP/1.1" => Some(true),
        b"HTTP/1.0" => Some(false),
        _ => None,
    }
}

/// Look for one request head at the start of b. Keeps no state between
/// calls: the head is parsed again from its start when more bytes arrive
/// (at most 8 KiB).
fn parse(b: &[u8]) -> Parsed {
    let mut r = Request::default();
    let limit = b.len().min(MAX_HEAD);
    let (mut v11, mut saw_close, mut saw_keep) = (false, false, false);
    // The first Content-Length, leading zeros stripped.
    let mut cl: Option<&[u8]> = None;
    let mut pos = 0;
    let mut line = 0;
    loop {
        let lf = match b[pos..limit].iter().position(|&c| c == b'\n') {
            Some(i) => pos + i,
            None if b.len() >= MAX_HEAD => return Parsed::Error(431),
            None => return Parsed::NeedMore,
        };
        if lf == pos || b[lf - 1] != b'\r' {
            return Parsed::Error(400); // a bare LF
        }
        let ln = &b[pos..lf - 1];
        pos = lf + 1;
        if ln.contains(&b'\r') {
            return Parsed::Error(400); // a stray CR
        }
        line += 1;
        if line == 1 {
            match request_line(ln, &mut r) {
                Some(v) => v11 = v,
                None => return Parsed::Error(400),
            }
            continue;
        }
        if ln.is_empty() {
            // The end of the head.
            r.head_len = pos;
            if v11 {
                r.close = saw_close;
            } else {
                r.keep10 = saw_keep && !saw_close;
                r.close = !r.keep10;
            }
            return Parsed::Head(r);
        }
        let n = token_len(ln);
        if n == 0 || ln.get(n) != Some(&b':') {
            return Parsed::Error(400);
        }
        let (name, value) = (&ln[..n], trim_ows(&ln[n + 1..]));
        if value
            .iter()
            .any(|&c| c != b'\t' && c != b' ' && (c < 0x21 || c == 0x7f))
        {
            return Parsed::Error(400);
        }
        if name.eq_ignore_ascii_case(b"Content-Length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Parsed::Error(400);
            }
            let mut v = value;
            while v.len() > 1 && v[0] == b'0' {
                v = &v[1..];
            }
            if matches!(cl, Some(old) if old != v) {
                return Parsed::Error(400);
            }
            cl = Some(v);
            // Eight digits or more is at least 10,000,000: over the limit,
            // and no overflow to think about.
            if v.len() > 7 {
                return Parsed::Error(413);
            }
            let n = v.iter().fold(0usize, |n, &c| n * 10 + (c - b'0') as usize);
            if n > MAX_BODY {
                return Parsed::Error(413);
            }
            r.body_len = n;
        } else if name.eq_ignore_ascii_case(b"Transfer-Encoding") {
            return Parsed::Error(501);
        } else if name.eq_ignore_ascii_case(b"Connection") {
            for tok in value.split(|&c| c == b',') {
                let tok = trim_ows(tok);
                if tok.eq_ignore_ascii_case(b"close") {
                    saw_close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    saw_keep = true;
                }
            }
        }
    }
}

// --- responses ---------------------------------------------------------------

macro_rules! ok_head {
    () => {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
    };
}

/// RESPONSES[is_head][conn]: conn 0 keeps an HTTP/1.1 connection, 1 closes,
/// 2 keeps an HTTP/1.0 connection.
static RESPONSES: [[&[u8]; 3]; 2] = [
    [
        concat!(ok_head!(), "\r\nHello, World!").as_bytes(),
        concat!(ok_head!(), "Connection: close\r\n\r\nHello, World!").as_bytes(),
        concat!(ok_head!(), "Connection: keep-alive\r\n\r\nHello, World!").as_bytes(),
    ],
    [
        concat!(ok_head!(), "\r\n").as_bytes(),
        concat!(ok_head!(), "Connection: close\r\n\r\n").as_bytes(),
        concat!(ok_head!(), "Connection: keep-alive\r\n\r\n").as_bytes(),
    ],
];

fn error_response(status: u16) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Not Implemented",
    };
    format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Append p to out, writing out first when p does not fit.
async fn put(stream: &mut TcpStream, out: &mut Vec<u8>, p: &[u8]) -> std::io::Result<()> {
    if out.len() + p.len() > WRITE_BUF_SIZE && !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    out.extend_from_slice(p);
    Ok(())
}

/// Append the response to r; says whether the connection stays open.
async fn respond(stream: &mut TcpStream, out: &mut Vec<u8>, r: &Request) -> bool {
    let conn = if r.close {
        1
    } else if r.keep10 {
        2
    } else {
        0
    };
    put(stream, out, RESPONSES[r.is_head as usize][conn])
        .await
        .is_ok()
        && !r.close
}

// --- connections -------------------------------------------------------------

/// Serve one connection with the read buffer buf until end of file or an
/// error (false), or until a response closes the connection (true: the
/// caller lingers, then closes).
async fn serve_conn(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BUF_SIZE);
    // The unread bytes are buf[start..end].
    let (mut start, mut end) = (0, 0);
    let mut req = Request::default();
    let mut discard = 0; // body bytes of req still to throw away
    loop {
        // Answer every complete request already buffered.
        loop {
            if discard > 0 {
                let n = discard.min(end - start);
                start += n;
                discard -= n;
                if discard > 0 {
                    break;
                }
                if !respond(stream, &mut out, &req).await {
                    return stream.write_all(&out).await.is_ok();
                }
                continue;
            }
            if start == end {
                break;
            }
            match parse(&buf[start..end]) {
                Parsed::NeedMore => break,
                Parsed::Error(status) => {
                    return put(stream, &mut out, &error_response(status)).await.is_ok()
                        && stream.write_all(&out).await.is_ok();
                }
                Parsed::Head(r) => {
                    req = r;
                    start += r.head_len;
                    if r.body_len > 0 {
                        discard = r.body_len;
                        continue;
                    }
                    if !respond(stream, &mut out, &req).await {
                        return stream.write_all(&out).await.is_ok();
                    }
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return false;
            }
            out.clear();
        }
        // Move what is left to the front (as bufio does) and read once more.
        // There is room: an unfinished head is shorter than the buffer.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        match stream.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => end += n,
        }
    }
}

/// What a closing connection reads and throws away after its last response,
/// at most (HTTP.md, "Closing after a response").
const LINGER_LIMIT: usize = 64 << 10;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Closing with unread bytes would reset the connection and could destroy
/// the last responses: send end of file, then wait for the client's.
async fn linger(stream: &mut TcpStream, buf: &mut [u8]) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut left = LINGER_LIMIT;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn serve(mut stream: TcpStream, conns: Arc<Conns>) {
    let fd = stream.as_raw_fd();
    // On the heap, as bufio's buffer: the task itself stays small.
    let mut buf = vec![0u8; READ_BUF_SIZE];
    if serve_conn(&mut stream, &mut buf).await {
        linger(&mut stream, &mut buf).await;
    }
    conns.remove(fd);
    drop(stream);
}

fn main() {
    server::main("http_server", serve);
}
