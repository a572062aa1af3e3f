// http_server - the Go peer of weft's examples/http_server.c, measured by
// `weft-bench http --impl go` and `weft-bench conns --impl go`
// (bench/bench_net.c): HTTP/1.1 keep-alive "Hello, World!" on the standard
// library's net and bufio (not net/http), one goroutine per connection.
//
//	http_server [--host H] [--port N] [--workers N]
//
// It obeys bench/peers/HTTP.md, which the weft and Tokio servers follow too;
// in short:
//
//   - --host (default 127.0.0.1), --port (default 0: the kernel picks),
//     --workers sets GOMAXPROCS (default: one per CPU); prints exactly one
//     line "listening on HOST:PORT" once it accepts; on SIGINT or SIGTERM
//     closes the listener, shuts down the read side of every connection,
//     waits up to 5 s for them and exits 0. Go sets TCP_NODELAY on every
//     TCP connection by default and raises RLIMIT_NOFILE to the hard limit
//     at start-up (1.19), which the other servers do explicitly.
//   - A request is a head (request line, header lines, empty line, at most
//     8192 bytes, else 431) and a Content-Length body (digits only, at most
//     1 MiB, else 413; duplicates that disagree: 400) that is read and
//     thrown away. Lines end in CRLF; a bare LF or a stray CR is 400. The
//     request line is METHOD SP TARGET SP HTTP/1.0|HTTP/1.1; a header line
//     is Name:OWS value OWS with a token name; anything else is 400.
//     Transfer-Encoding: 501. The first problem in byte order decides.
//     Every error is answered "HTTP/1.1 NNN Reason", Content-Length: 0,
//     Connection: close, and the connection closes.
//   - Every complete request gets "HTTP/1.1 200 OK", Content-Type:
//     text/plain, Content-Length: 13, "Hello, World!" (no body for HEAD),
//     plus Connection: close when it closes the connection (HTTP/1.1 with
//     Connection: close; HTTP/1.0 without Connection: keep-alive), or
//     Connection: keep-alive for an HTTP/1.0 request that keeps it.
//   - An 8 KiB bufio.Reader and a 4 KiB bufio.Writer per connection.
//     Pipelined requests are answered in order; the responses to every
//     complete request already buffered go out in one write: the writer is
//     flushed when no complete request is left in the reader (or when a
//     response does not fit). A connection never holds more than that,
//     whatever the client sends. To close after a response, it shuts down
//     its write side and reads what the client still sends (at most 1 s
//     and 64 KiB) before closing, so no reset destroys the responses.
//
// Standard library only. Its command line, accept loop and stop come from
// ../peerserver, shared with the other Go server and imported by that
// relative path, which the go command takes in GOPATH mode only; it
// builds offline with Go >= 1.19:
//
//	cd bench/peers/go/http_server && GO111MODULE=off go build -o DIR/http_server .
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"../peerserver"
)

const (
	readBufSize  = 8192    // the largest request head, so a whole head fits
	writeBufSize = 4096    // responses are written out when one would not fit
	maxHead      = 8192    // request line + headers + the empty line, CRLFs included
	maxBody      = 1 << 20 // the largest Content-Length accepted
)

// --- the parser (bench/peers/HTTP.md, "Parsing a request") --------------------

// The answers of parse besides a complete head: the HTTP status of an
// error, or needMore.
const (
	needMore        = 0
	headOK          = 200
	badRequest      = 400
	contentTooLarge = 413
	headTooLarge    = 431
	notImplemented  = 501
)

// request is what the server needs from a parsed head.
type request struct {
	headLen int  // bytes of the head, its final empty line included
	bodyLen int  // Content-Length (0 without one)
	isHead  bool // a HEAD request: the response has no body
	close   bool // close the connection after the response
	keep10  bool // an HTTP/1.0 request that keeps the connection
}

// tchar[c] says whether c is a token character (RFC 9110, 5.6.2).
var tchar [256]bool

func init() {
	for c := 0; c < 256; c++ {
		tchar[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		tchar[c] = true
	}
}

func tokenLen(b []byte) int {
	n := 0
	for n < len(b) && tchar[b[n]] {
		n++
	}
	return n
}

var (
	nameContentLength    = []byte("Content-Length")
	nameTransferEncoding = []byte("Transfer-Encoding")
	nameConnection       = []byte("Connection")
	tokenClose           = []byte("close")
	tokenKeepAlive       = []byte("keep-alive")
)

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// requestLine checks METHOD SP TARGET SP VERSION and fills r; it reports
// whether the line is well formed.
func requestLine(ln []byte, r *request, v11 *bool) bool {
	m := tokenLen(ln)
	if m == 0 || m >= len(ln) || ln[m] != ' ' {
		return false
	}
	r.isHead = string(ln[:m]) == "HEAD"
	rest := ln[m+1:]
	t := 0
	for t < len(rest) && rest[t] >= 0x21 && rest[t] <= 0x7e {
		t++
	}
	if t == 0 || t >= len(rest) || rest[t] != ' ' {
		return false
	}
	switch string(rest[t+1:]) {
	case "HTTP/1.1":
		*v11 = true
	case "HTTP/1.0":
		*v11 = false
	default:
		return false
	}
	return true
}

// parse looks for one request head at the start of b. It answers needMore
// (the head is not all there yet), headOK with r filled in, or the status
// of the first problem in byte order. It keeps no state between calls: the
// head is parsed again from its start when more bytes arrive (at most 8 KiB).
func parse(b []byte, r *request) int {
	*r = request{}
	limit := len(b)
	if limit > maxHead {
		limit = maxHead
	}
	var v11, sawClose, sawKeep bool
	var cl []byte // the first Content-Length, leading zeros stripped
	for pos, line := 0, 0; ; line++ {
		i := bytes.IndexByte(b[pos:limit], '\n')
		if i < 0 {
			if len(b) >= maxHead {
				return headTooLarge
			}
			return needMore
		}
		lf := pos + i
		if lf == pos || b[lf-1] != '\r' { // a bare LF
			return badRequest
		}
		ln := b[pos : lf-1]
		pos = lf + 1
		if bytes.IndexByte(ln, '\r') >= 0 { // a stray CR
			return badRequest
		}
		if line == 0 {
			if !requestLine(ln, r, &v11) {
				return badRequest
			}
			continue
		}
		if len(ln) == 0 { // the end of the head
			r.headLen = pos
			if v11 {
				r.close = sawClose
			} else {
				r.keep10 = sawKeep && !sawClose
				r.close = !r.keep10
			}
			return headOK
		}
		n := tokenLen(ln)
		if n == 0 || n >= len(ln) || ln[n] != ':' {
			return badRequest
		}
		name, value := ln[:n], trimOWS(ln[n+1:])
		for _, c := range value {
			if c != '\t' && c != ' ' && (c < 0x21 || c == 0x7f) {
				return badRequest
			}
		}
		switch {
		case bytes.EqualFold(name, nameContentLength):
			if len(value) == 0 {
				return badRequest
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return badRequest
				}
			}
			for len(value) > 1 && value[0] == '0' {
				value = value[1:]
			}
			if cl != nil && !bytes.Equal(cl, value) {
				return badRequest
			}
			cl = value
			// Eight digits or more is at least 10,000,000: over the limit,
			// and no overflow to think about.
			if len(value) > 7 {
				return contentTooLarge
			}
			v, _ := strconv.Atoi(string(value))
			if v > maxBody {
				return contentTooLarge
			}
			r.bodyLen = v
		case bytes.EqualFold(name, nameTransferEncoding):
			return notImplemented
		case bytes.EqualFold(name, nameConnection):
			for len(value) > 0 {
				tok := value
				if i := bytes.IndexByte(value, ','); i >= 0 {
					tok, value = value[:i], value[i+1:]
				} else {
					value = nil
				}
				tok = trimOWS(tok)
				if bytes.EqualFold(tok, tokenClose) {
					sawClose = true
				} else if bytes.EqualFold(tok, tokenKeepAlive) {
					sawKeep = true
				}
			}
		}
	}
}

// --- responses ---------------------------------------------------------------

const okHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"

// responses[isHead][conn]: conn 0 keeps an HTTP/1.1 connection, 1 closes,
// 2 keeps an HTTP/1.0 connection.
var responses [2][3][]byte

func init() {
	conn := [3]string{"", "Connection: close\r\n", "Connection: keep-alive\r\n"}
	for c := 0; c < 3; c++ {
		responses[0][c] = []byte(okHead + conn[c] + "\r\nHello, World!")
		responses[1][c] = []byte(okHead + conn[c] + "\r\n")
	}
}

func errorResponse(status int) []byte {
	reason := map[int]string{
		badRequest:      "Bad Request",
		contentTooLarge: "Content Too Large",
		headTooLarge:    "Request Header Fields Too Large",
		notImplemented:  "Not Implemented",
	}[status]
	return []byte(fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		status, reason))
}

// put appends p to w, writing w out first when p does not fit in it.
func put(w *bufio.Writer, p []byte) error {
	if w.Available() < len(p) && w.Buffered() > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(p)
	return err
}

// respond appends the response to r; it reports whether the connection
// stays open.
func respond(w *bufio.Writer, r *request) bool {
	h, c := 0, 0
	if r.isHead {
		h = 1
	}
	if r.close {
		c = 1
	} else if r.keep10 {
		c = 2
	}
	return put(w, responses[h][c]) == nil && !r.close
}

// --- connections ---------------------------------------------------------------

// serveConn serves one connection until end of file or an error (it
// returns false), or until a response closes the connection (true: the
// caller lingers, then closes).
func serveConn(c *net.TCPConn) bool {
	rd := bufio.NewReaderSize(c, readBufSize)
	w := bufio.NewWriterSize(c, writeBufSize)
	var req request
	discard := 0 // body bytes of req still to throw away
	for {
		// Answer every complete request already buffered.
		for {
			if discard > 0 {
				n := discard
				if n > rd.Buffered() {
					n = rd.Buffered()
				}
				rd.Discard(n)
				if discard -= n; discard > 0 {
					break
				}
				if !respond(w, &req) {
					return w.Flush() == nil
				}
				continue
			}
			if rd.Buffered() == 0 {
				break
			}
			b, _ := rd.Peek(rd.Buffered())
			st := parse(b, &req)
			if st == needMore {
				break
			}
			if st != headOK {
				return put(w, errorResponse(st)) == nil && w.Flush() == nil
			}
			rd.Discard(req.headLen)
			if req.bodyLen > 0 {
				discard = req.bodyLen
				continue
			}
			if !respond(w, &req) {
				return w.Flush() == nil
			}
		}
		if w.Buffered() > 0 {
			if w.Flush() != nil {
				return false
			}
		}
		// Wait for more input: asking for one byte more than is buffered
		// makes the reader read from the connection once.
		if _, err := rd.Peek(rd.Buffered() + 1); err != nil {
			return false
		}
	}
}

// lingerLimit and lingerTime bound what a closing connection reads and
// throws away after its last response (HTTP.md, "Closing after a
// response").
const (
	lingerLimit = 64 << 10
	lingerTime  = time.Second
)

// serve serves one connection (serveConn), lingering after a response that
// closes it; peerserver closes c.
func serve(c *net.TCPConn) {
	if serveConn(c) {
		// Closing with unread bytes would reset the connection and could
		// destroy the last responses: send end of file, wait for the
		// client's.
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(lingerTime))
		io.CopyN(io.Discard, c, lingerLimit)
	}
}

func main() {
	peerserver.Main("http_server", serve)
}
