// peer_combinators.go - the Go peers of bench/bench_combinators.c:
//
//	gather     1,000 rounds of: start 1,000 goroutines that each hand back
//	           their index, then wait for them all, failing fast on the
//	           first error (what asyncio.gather / wf_gather do), written
//	           the way Go does it: a WaitGroup, a results slice, and the
//	           first error kept with a sync.Once.
//	taskgroup  the same through a minimal errgroup (golang.org/x/sync's
//	           errgroup.WithContext, rebuilt on the standard library: a
//	           WaitGroup, a context cancelled by the first error, the error
//	           kept with a sync.Once).
//
// Both report nanoseconds per task, spawn included; every round checks
// every result outside the timed part, as the weft side does.
package main

import (
	"context"
	"sync"
	"time"
)

const (
	comboTasks  = 1000
	comboRounds = 1000
)

func init() {
	benches = append(benches,
		bench{"gather", "1,000 gathers of 1,000 empty goroutines (WaitGroup, first error)", benchGather},
		bench{"taskgroup", "1,000 errgroups of 1,000 empty goroutines (WaitGroup + context)", benchTaskgroup},
	)
}

func benchGather(o opts) {
	results := make([]int, comboTasks)
	v := timed(o, func() float64 {
		var busy time.Duration
		for k := 0; k < comboRounds; k++ {
			t0 := time.Now()
			var wg sync.WaitGroup
			var once sync.Once
			var firstErr error
			wg.Add(comboTasks)
			for i := 0; i < comboTasks; i++ {
				go func(i int) {
					defer wg.Done()
					var err error // an empty task never fails
					results[i] = i
					if err != nil {
						once.Do(func() { firstErr = err })
					}
				}(i)
			}
			wg.Wait()
			busy += time.Since(t0)
			check(firstErr == nil, "gather: %v", firstErr)
			for i, x := range results {
				check(x == i, "goroutine %d returned %d", i, x)
				results[i] = -1
			}
		}
		return float64(busy.Nanoseconds()) / (comboRounds * comboTasks)
	})
	report("gather", "ns_per_task", v, "ns", o, "tasks=1000,gathers=1000")
}

// errGroup is errgroup.Group with WithContext, from the standard library.
type errGroup struct {
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

func withContext(ctx context.Context) (*errGroup, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &errGroup{cancel: cancel}, ctx
}

func (g *errGroup) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.errOnce.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	}()
}

func (g *errGroup) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

func benchTaskgroup(o opts) {
	slots := make([]int, comboTasks)
	v := timed(o, func() float64 {
		var busy time.Duration
		for k := 0; k < comboRounds; k++ {
			for i := range slots {
				slots[i] = -1
			}
			t0 := time.Now()
			g, _ := withContext(context.Background())
			for i := 0; i < comboTasks; i++ {
				i := i
				g.Go(func() error {
					slots[i] = i
					return nil
				})
			}
			err := g.Wait()
			busy += time.Since(t0)
			check(err == nil, "taskgroup: %v", err)
			for i, x := range slots {
				check(x == i, "goroutine %d wrote %d", i, x)
			}
		}
		return float64(busy.Nanoseconds()) / (comboRounds * comboTasks)
	})
	report("taskgroup", "ns_per_task", v, "ns", o, "tasks=1000,groups=1000")
}
