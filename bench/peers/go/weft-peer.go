// weft-peer - the Go peer of weft-bench: the same benchmarks, the same
// workload sizes and the same methodology, written the way a Go programmer
// would write them, so that the two can be compared line by line.
//
//	weft-peer NAME [--workers N] [--reps R]
//	weft-peer list
//
// --workers sets runtime.GOMAXPROCS (default: one per CPU); --reps the number
// of timed repetitions (default 5). Every benchmark checks its own result
// (a wrong result exits 2) and prints one line per figure, exactly:
//
//	NAME go METRIC VALUE UNIT workers=N,reps=R[,key=value...]
//
// Unless a benchmark says otherwise, a figure is the median of R timed
// repetitions after one untimed warm-up, as in bench/bench_core.c.
//
// Standard library only; it builds offline with Go >= 1.19:
//
//	cd bench/peers/go && GO111MODULE=off go build -o DIR/weft-peer .
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type opts struct {
	workers int
	reps    int
}

type bench struct {
	name string
	what string
	run  func(o opts)
}

// The benchmarks, in weft-bench's order. `weft-peer list` and the switch on
// NAME in main both come from this table. Other files of the package (one
// per subsystem: peer_sync.go, peer_combinators.go) append their rows in an
// init function.
var benches = []bench{
	{"yield", "1,000 goroutines each calling runtime.Gosched 1,000 times", benchYield},
	{"spawn", "start 1,000,000 empty goroutines, then wait for them all", benchSpawn},
	{"skynet", "skynet (atemerev/skynet): 10-ary tree of goroutines, 1,000,000 leaves", benchSkynet},
	{"sleepers", "100,000 goroutines sleeping 1 s at once", benchSleepers},
	{"timers", "1,000,000 time.AfterFunc timers: armed, half stopped, rest fired", benchTimers},
}

// --- harness ----------------------------------------------------------------

func check(cond bool, format string, args ...interface{}) {
	if !cond {
		fmt.Fprintf(os.Stderr, "weft-peer: check failed: "+format+"\n", args...)
		os.Exit(2)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// report prints one line formatted as bench_print does: two decimals below
// 100, none from 100 up.
func report(name, metric string, value float64, unit string, o opts, extra string) {
	prec := 0
	if value < 100 {
		prec = 2
	}
	if extra != "" {
		extra = "," + extra
	}
	fmt.Printf("%s go %s %.*f %s workers=%d,reps=%d%s\n", name, metric, prec, value, unit,
		o.workers, o.reps, extra)
}

// timed runs one untimed warm-up and o.reps timed repetitions of rep, which
// returns its own measurement; it gives back their median.
func timed(o opts, rep func() float64) float64 {
	v := make([]float64, 0, o.reps)
	for r := 0; r <= o.reps; r++ {
		x := rep()
		if r > 0 {
			v = append(v, x)
		}
	}
	return median(v)
}

// rssKiB reads the resident set size from /proc/self/statm, as
// bench_rss_kib does.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize()) / 1024
}

// --- yield: 1,000 goroutines x 1,000 runtime.Gosched ------------------------

const (
	yieldGoroutines = 1000
	yields          = 1000
)

func benchYield(o opts) {
	v := timed(o, func() float64 {
		var wg sync.WaitGroup
		var done int64
		t0 := time.Now()
		wg.Add(yieldGoroutines)
		for i := 0; i < yieldGoroutines; i++ {
			go func() {
				n := 0
				for j := 0; j < yields; j++ {
					runtime.Gosched()
					n++
				}
				atomic.AddInt64(&done, int64(n))
				wg.Done()
			}()
		}
		wg.Wait()
		el := time.Since(t0)
		check(done == yieldGoroutines*yields, "yields %d", done)
		return float64(el.Nanoseconds()) / (yieldGoroutines * yields)
	})
	report("yield", "ns_per_yield", v, "ns", o, "goroutines=1000,yields=1000")
}

// --- spawn: 1,000,000 empty goroutines, then wait for them all --------------

const spawnN = 1000 * 1000

func benchSpawn(o opts) {
	// Each weft task hands back its argument through wf_join; each goroutine
	// stores its index, and a WaitGroup (Go's join) waits for them all.
	out := make([]int, spawnN)
	v := timed(o, func() float64 {
		for i := range out {
			out[i] = -1
		}
		var wg sync.WaitGroup
		t0 := time.Now()
		wg.Add(spawnN)
		for i := 0; i < spawnN; i++ {
			go func(i int) {
				out[i] = i
				wg.Done()
			}(i)
		}
		wg.Wait()
		el := time.Since(t0)
		for i, x := range out {
			check(x == i, "goroutine %d returned %d", i, x)
		}
		return float64(el.Nanoseconds()) / spawnN
	})
	report("spawn", "ns_per_task", v, "ns", o, "tasks=1000000")
}

// --- skynet: github.com/atemerev/skynet, go/skynet.go -----------------------

func skynet(c chan int, num int, size int, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	var sum int
	for i := 0; i < div; i++ {
		subNum := num + i*(size/div)
		go skynet(rc, subNum, size/div, div)
	}
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func benchSkynet(o opts) {
	v := timed(o, func() float64 {
		c := make(chan int)
		t0 := time.Now()
		go skynet(c, 0, 1000000, 10)
		result := <-c
		el := time.Since(t0)
		check(result == 499999500000, "sum %d", result)
		return float64(el.Nanoseconds()) / 1e6
	})
	report("skynet", "wall_ms", v, "ms", o, "leaves=1000000")
}

// --- sleepers: 100,000 goroutines sleeping 1 s at once -----------------------

const sleepers = 100 * 1000

func benchSleepers(o opts) {
	// As in weft-bench: no warm-up, the median wall time of all o.reps runs,
	// and the resident memory per goroutine from the first, cold, run.
	wall := make([]float64, 0, o.reps)
	var rssPerTask float64
	for r := 0; r < o.reps; r++ {
		var asleep, woke int64
		var wg sync.WaitGroup
		rss0 := rssKiB()
		t0 := time.Now()
		wg.Add(sleepers)
		for i := 0; i < sleepers; i++ {
			go func() {
				atomic.AddInt64(&asleep, 1)
				time.Sleep(time.Second)
				atomic.AddInt64(&woke, 1)
				wg.Done()
			}()
		}
		// Wait until every goroutine is asleep, then read the resident size.
		for atomic.LoadInt64(&asleep) < sleepers {
			time.Sleep(time.Millisecond)
		}
		rss1 := rssKiB()
		wg.Wait()
		el := time.Since(t0)
		check(woke == sleepers, "woke %d", woke)
		check(el >= time.Second, "slept only %v", el)
		wall = append(wall, float64(el.Nanoseconds())/1e6)
		if r == 0 {
			rssPerTask = float64(rss1-rss0) / sleepers
		}
	}
	report("sleepers", "wall_ms", median(wall), "ms", o, "goroutines=100000,sleep=1s")
	report("sleepers", "rss_kib_per_task", rssPerTask, "KiB", o, "goroutines=100000,run=cold")
}

// --- timers: 1,000,000 armed, half stopped, the rest fired ------------------

const timers = 1000 * 1000

func benchTimers(o opts) {
	// As weft-bench: deadlines timerLead ahead, spread over one millisecond
	// in mixed order, so that arming and stopping finish before any fires;
	// the figure counts arming, stopping, and first deadline to last
	// callback, not the idle wait between.
	const timerLead = 1000 * time.Millisecond
	tm := make([]*time.Timer, timers)
	hits := make([]uint8, timers)
	var fired int64
	var lastStopped int64
	v := timed(o, func() float64 {
		for i := range hits {
			hits[i] = 0
		}
		atomic.StoreInt64(&fired, 0)
		stopped := int64(0)
		t0 := time.Now()
		// AfterFunc takes a duration: each deadline is turned into one
		// against a clock read every 64 timers (off by a few microseconds).
		var el time.Duration
		for i := 0; i < timers; i++ {
			if i&63 == 0 {
				el = time.Since(t0)
			}
			d := timerLead + time.Duration((i*7919)%1000)*time.Microsecond - el
			i := i
			tm[i] = time.AfterFunc(d, func() {
				hits[i]++
				atomic.AddInt64(&fired, 1)
			})
		}
		for i := 0; i < timers; i += 2 {
			if tm[i].Stop() {
				stopped++
				hits[i] = 2 // must never fire now
			}
		}
		t1 := time.Now()
		if wait := t0.Add(timerLead).Sub(t1); wait > 0 {
			time.Sleep(wait)
		}
		t2 := time.Now()
		for atomic.LoadInt64(&fired)+stopped < timers {
			time.Sleep(20 * time.Microsecond)
		}
		t3 := time.Now()
		for i, h := range hits {
			check(h == 1 || h == 2, "timer %d hit %d times", i, h)
		}
		for i := range tm {
			tm[i] = nil
		}
		lastStopped = stopped
		active := t1.Sub(t0) + t3.Sub(t2)
		return float64(active.Nanoseconds()) / timers
	})
	report("timers", "ns_per_timer", v, "ns", o, fmt.Sprintf("timers=1000000,cancelled=%d", lastStopped))
}

// --- main -------------------------------------------------------------------

func usage() {
	fmt.Fprintf(os.Stderr, "usage: weft-peer NAME [--workers N] [--reps R]\n       weft-peer list\n")
	os.Exit(64)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	name := os.Args[1]
	if name == "list" {
		for _, b := range benches {
			fmt.Printf("%-12s %s\n", b.name, b.what)
		}
		return
	}
	o := opts{workers: runtime.NumCPU(), reps: 5}
	args := os.Args[2:]
	for i := 0; i < len(args); i++ {
		if i+1 >= len(args) {
			usage()
		}
		n, err := strconv.Atoi(args[i+1])
		if err != nil {
			usage()
		}
		switch args[i] {
		case "--workers":
			if n > 0 { // 0: one per CPU, as in weft-bench
				o.workers = n
			}
		case "--reps":
			o.reps = n
		default:
			usage()
		}
		i++
	}
	if o.reps < 1 || o.reps > 101 {
		usage()
	}
	runtime.GOMAXPROCS(o.workers)
	for _, b := range benches {
		if b.name == name {
			b.run(o)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "weft-peer: no benchmark named '%s' (try: weft-peer list)\n", name)
	os.Exit(64)
}
