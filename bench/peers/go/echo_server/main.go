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
// Standard library only; it builds offline with Go >= 1.19:
//
//	cd bench/peers/go/echo_server && GO111MODULE=off go build -o DIR/echo_server .
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// bufSize is the read buffer of a connection; the weft and Tokio servers
// use the same.
const bufSize = 4096

// conns is the set of open connections, so that a stop can shut down
// their read sides. A connection leaves it before it is closed, under the
// same lock, so the stop never touches a closed one.
type conns struct {
	mu  sync.Mutex
	set map[*net.TCPConn]struct{}
	wg  sync.WaitGroup
}

func (s *conns) add(c *net.TCPConn) {
	s.mu.Lock()
	s.set[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
}

func (s *conns) remove(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.set, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// stop shuts down the read side of every open connection and waits for the
// handlers to return, at most until the deadline. It reports whether they
// all did.
func (s *conns) stop(limit time.Duration) bool {
	s.mu.Lock()
	for c := range s.set {
		c.CloseRead()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

func serve(c *net.TCPConn, s *conns) {
	defer s.remove(c)
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
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0: the kernel picks)")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: one per CPU)")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_server:", err)
		os.Exit(1)
	}
	// Register for the signals before saying we are ready, so a signal sent
	// right after the ready line cannot kill the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	fmt.Printf("listening on %s\n", l.Addr()) // stdout is unbuffered in Go

	s := &conns{set: make(map[*net.TCPConn]struct{})}
	stopping := make(chan struct{})
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				select {
				case <-stopping:
					return
				default:
				}
				// EMFILE and the like: back off briefly, as net/http's
				// Server.Serve does, rather than spin or die.
				fmt.Fprintln(os.Stderr, "echo_server: accept:", err)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			tc := c.(*net.TCPConn)
			s.add(tc)
			go serve(tc, s)
		}
	}()

	<-sig
	close(stopping)
	l.Close()
	<-accepted // no add after this: stop sees every connection
	if !s.stop(5 * time.Second) {
		fmt.Fprintln(os.Stderr, "echo_server: connections still open after 5 s; exiting")
	}
}
