// echo_server - the Go peer of weft's examples/echo_server.c, measured by
// `weft-bench echo --impl go` (bench/bench_net.c). It obeys the contract
// of bench/peers/HTTP.md, "Both servers" and "echo_server":
//
//	echo_server [--host H] [--port N] [--workers N]
//
// In short:
//
//   - --host (default 127.0.0.1), --port (default 0: the kernel picks),
//     --workers sets GOMAXPROCS (default: one per CPU);
//   - prints exactly one line "listening on HOST:PORT" once it accepts;
//   - one goroutine per connection, a 4 KiB buffer: read what has arrived,
//     write all of it back, close on end of file or an error;
//   - on SIGINT or SIGTERM: close the listener, shut down the read side of
//     every connection (each handler sees end of file and returns), wait up
//     to 5 s for them, exit 0.
//
// Written the way a Go user writes it: standard library net only. Go sets
// TCP_NODELAY on every TCP connection by default (net.TCPConn.SetNoDelay's
// documentation), which the weft and Tokio servers set explicitly: with one
// message outstanding per connection, echo is latency bound. Go 1.19 raises
// the RLIMIT_NOFILE soft limit to the hard limit itself at start-up (package
// os, init), so there is nothing to do here for it.
//
// Standard library only. Its command line, accept loop and stop come from
// ../peerserver, shared with the other Go server and imported by that
// relative path, which the go command takes in GOPATH mode only; it
// builds offline with Go >= 1.19:
//
//	cd bench/peers/go/echo_server && GO111MODULE=off go build -o DIR/echo_server .
package main

import (
	"net"

	"../peerserver"
)

// bufSize is the read buffer of a connection; the weft and Tokio servers
// use the same.
const bufSize = 4096

// serve echoes until end of file or an error; peerserver closes c.
func serve(c *net.TCPConn) {
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	peerserver.Main("echo_server", serve)
}
