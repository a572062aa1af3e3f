// peer_chan.go - the Go peer of weft-bench's skynet_chan (bench/bench_core.c):
// skynet with every sum sent up to its parent through one channel per
// parent, as atemerev/skynet's Go version does it. The first figure uses
// channels of capacity 1 (the definition every peer shares; Tokio has no
// rendezvous channel), the second unbuffered channels (make(chan int), the
// original).
package main

import "time"

func init() {
	benches = append(benches,
		bench{"skynet_chan", "skynet with each sum sent up through a channel per parent (capacity 1; unbuffered)", benchSkynetChan},
	)
}

func skynetChan(c chan int, num, size, div, capacity int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int, capacity)
	var sum int
	for i := 0; i < div; i++ {
		subNum := num + i*(size/div)
		go skynetChan(rc, subNum, size/div, div, capacity)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func benchSkynetChan(o opts) {
	for _, capacity := range []int{1, 0} {
		v := timed(o, func() float64 {
			c := make(chan int, capacity)
			t0 := time.Now()
			go skynetChan(c, 0, 1000000, 10, capacity)
			result := <-c
			el := time.Since(t0)
			check(result == 499999500000, "sum %d", result)
			return float64(el.Nanoseconds()) / 1e6
		})
		if capacity == 1 {
			report("skynet_chan", "wall_ms", v, "ms", o, "leaves=1000000,channel=1")
		} else {
			report("skynet_chan", "rendezvous_wall_ms", v, "ms", o, "leaves=1000000,channel=rendezvous")
		}
	}
}
