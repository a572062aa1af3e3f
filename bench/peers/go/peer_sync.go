// peer_sync.go - the Go peers of bench/bench_sync.c: the same workloads
// with channels, sync.Mutex and a goroutine generator, written the way a Go
// programmer would.
package main

import (
	"sync"
	"time"
)

func init() {
	benches = append(benches,
		bench{"pingpong", "a token between two goroutines through two channels of capacity 1, 1,000,000 round trips", benchPingpong},
		bench{"mpmc", "4 producers, 4 consumers, one channel of capacity 1024, 10,000,000 items", benchMPMC},
		bench{"pipeline", "4 stages through channels of capacity 4, ~1.7 us of work per stage and item; speedup over serial", benchPipeline},
		bench{"lock", "64 goroutines contending for one sync.Mutex; uncontended sync.Mutex beside", benchLock},
		bench{"generator", "10,000,000 values from a generator goroutine through an unbuffered channel", benchGenerator},
	)
}

// --- pingpong ---------------------------------------------------------------

const ppN = 1000 * 1000

func benchPingpong(o opts) {
	v := timed(o, func() float64 {
		ping := make(chan int, 1)
		pong := make(chan int, 1)
		done := make(chan bool)
		go func() {
			for i := 0; i < ppN; i++ {
				x := <-ping
				pong <- x + 1
			}
			done <- true
		}()
		t0 := time.Now()
		token := 0
		for i := 0; i < ppN; i++ {
			ping <- token
			token = <-pong + 1
		}
		el := time.Since(t0)
		<-done
		check(token == 2*ppN, "token %d", token)
		return float64(el.Nanoseconds()) / ppN
	})
	report("pingpong", "ns_per_roundtrip", v, "ns", o, "roundtrips=1000000,queues=2x1")
}

// --- mpmc -------------------------------------------------------------------

const (
	mpP     = 4
	mpC     = 4
	mpCap   = 1024
	mpItems = 10000000
)

func benchMPMC(o opts) {
	v := timed(o, func() float64 {
		ch := make(chan int64, mpCap)
		var pwg, cwg sync.WaitGroup
		counts := make([]int64, mpC)
		sums := make([]int64, mpC)
		t0 := time.Now()
		cwg.Add(mpC)
		for c := 0; c < mpC; c++ {
			go func(c int) {
				var n, s int64
				for x := range ch {
					n++
					s += x
				}
				counts[c], sums[c] = n, s
				cwg.Done()
			}(c)
		}
		pwg.Add(mpP)
		for p := 0; p < mpP; p++ {
			go func(p int) {
				first := int64(p) * (mpItems / mpP)
				for i := int64(1); i <= mpItems/mpP; i++ {
					ch <- first + i
				}
				pwg.Done()
			}(p)
		}
		pwg.Wait()
		close(ch) // the consumers drain what is left, then stop
		cwg.Wait()
		el := time.Since(t0)
		var n, s int64
		for c := 0; c < mpC; c++ {
			n += counts[c]
			s += sums[c]
		}
		check(n == mpItems, "count %d", n)
		check(s == int64(mpItems)*(mpItems+1)/2, "sum %d", s)
		return mpItems / el.Seconds()
	})
	report("mpmc", "items_per_s", v, "items/s", o, "producers=4,consumers=4,capacity=1024,items=10000000")
}

// --- pipeline ---------------------------------------------------------------

const (
	pipeStages = 4
	pipeCap    = 4
	pipeItems  = 20000
	pipeRounds = 1000
)

func pipeWork(v uint64) uint64 {
	for i := 0; i < pipeRounds; i++ {
		v ^= v << 13
		v ^= v >> 7
		v ^= v << 17
	}
	return v | 1
}

func benchPipeline(o opts) {
	var speedups []float64
	v := timed(o, func() float64 {
		s0 := time.Now()
		var want uint64
		for i := uint64(1); i <= pipeItems; i++ {
			v := i
			for k := 0; k < pipeStages; k++ {
				v = pipeWork(v)
			}
			want += v
		}
		serial := time.Since(s0)
		t0 := time.Now()
		chans := make([]chan uint64, pipeStages)
		for k := range chans {
			chans[k] = make(chan uint64, pipeCap)
		}
		go func() {
			for i := uint64(1); i <= pipeItems; i++ {
				chans[0] <- pipeWork(i)
			}
		}()
		for k := 1; k < pipeStages; k++ {
			go func(in <-chan uint64, out chan<- uint64) {
				for i := 0; i < pipeItems; i++ {
					out <- pipeWork(<-in)
				}
			}(chans[k-1], chans[k])
		}
		var got uint64
		for i := 0; i < pipeItems; i++ {
			got += <-chans[pipeStages-1]
		}
		el := time.Since(t0)
		check(got == want, "checksum %x, want %x", got, want)
		speedups = append(speedups, serial.Seconds()/el.Seconds())
		return float64(el.Nanoseconds()) / pipeItems
	})
	extra := "stages=4,capacity=4,items=20000,xorshift_rounds=1000"
	report("pipeline", "ns_per_item", v, "ns", o, extra)
	report("pipeline", "speedup_vs_serial", median(speedups[1:]), "x", o, extra)
}

// --- lock -------------------------------------------------------------------

const (
	lkGoroutines  = 64
	lkEach        = 20000
	lkUncontended = 10000000
)

func benchLock(o opts) {
	var unc []float64
	v := timed(o, func() float64 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		counter := 0
		t0 := time.Now()
		wg.Add(lkGoroutines)
		for g := 0; g < lkGoroutines; g++ {
			go func() {
				for i := 0; i < lkEach; i++ {
					mu.Lock()
					counter++
					mu.Unlock()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		el := time.Since(t0)
		check(counter == lkGoroutines*lkEach, "counter %d", counter)
		// Uncontended: one goroutine, the same mutex.
		n := 0
		u0 := time.Now()
		for i := 0; i < lkUncontended; i++ {
			mu.Lock()
			n++
			mu.Unlock()
		}
		unc = append(unc, float64(time.Since(u0).Nanoseconds())/lkUncontended)
		check(n == lkUncontended, "n %d", n)
		return float64(el.Nanoseconds()) / (lkGoroutines * lkEach)
	})
	report("lock", "ns_per_op", v, "ns", o, "goroutines=64,ops=1280000")
	report("lock", "uncontended_ns_per_op", median(unc[1:]), "ns", o, "ops=10000000")
}

// --- generator --------------------------------------------------------------

const genN = 10000000

// count is the Go generator idiom: a goroutine feeding an unbuffered
// channel, with a done channel so the consumer can stop it early.
func count(n int, done <-chan struct{}) <-chan int {
	ch := make(chan int)
	go func() {
		defer close(ch)
		for i := 0; i < n; i++ {
			select {
			case ch <- i:
			case <-done:
				return
			}
		}
	}()
	return ch
}

func benchGenerator(o opts) {
	v := timed(o, func() float64 {
		done := make(chan struct{})
		t0 := time.Now()
		var n, sum int64
		for x := range count(genN, done) {
			n++
			sum += int64(x)
		}
		el := time.Since(t0)
		close(done)
		check(n == genN && sum == int64(genN)*(genN-1)/2, "n %d sum %d", n, sum)
		return float64(el.Nanoseconds()) / genN
	})
	report("generator", "ns_per_value", v, "ns", o, "values=10000000")
}
