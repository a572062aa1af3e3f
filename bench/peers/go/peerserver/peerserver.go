// Package peerserver is what the two Go servers (echo_server, http_server)
// share around their connection handler: the command line, the ready line,
// the accept loop (a goroutine per connection) and the stop on SIGINT or
// SIGTERM of bench/peers/HTTP.md, "Both servers". The Tokio servers share
// theirs the same way (bench/peers/rust/src/bin/server/mod.rs).
//
// The servers are built in GOPATH mode (GO111MODULE=off; scripts/netbench),
// each from its own directory, which lies outside any GOPATH workspace: there
// the go command takes a relative import path, so they import this package as
// "../peerserver" and their build commands stay as they are. Standard
// library only.
package peerserver

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

// Main is the whole server: it parses --host, --port and --workers, listens,
// prints "listening on HOST:PORT", and runs serve in a goroutine of its own
// for every connection it accepts, closing the connection once serve
// returns. On SIGINT or SIGTERM it closes the listener, shuts down the read
// side of every open connection, waits up to 5 s for their handlers and
// returns. name starts its messages on stderr; a failure to listen exits 1.
func Main(name string, serve func(c *net.TCPConn)) {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on (0: the kernel picks)")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: one per CPU)")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
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
				fmt.Fprintln(os.Stderr, name+": accept:", err)
				time.Sleep(5 * time.Millisecond)
				continue
			}
			tc := c.(*net.TCPConn)
			s.add(tc)
			go func() {
				defer s.remove(tc)
				serve(tc)
			}()
		}
	}()

	<-sig
	close(stopping)
	l.Close()
	<-accepted // no add after this: stop sees every connection
	if !s.stop(5 * time.Second) {
		fmt.Fprintln(os.Stderr, name+": connections still open after 5 s; exiting")
	}
}
