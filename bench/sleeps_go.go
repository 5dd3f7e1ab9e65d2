// bench/sleeps_go.go - N concurrent 10 ms sleeps in N goroutines, gathered
// with a WaitGroup. Each checks that it slept at least 10 ms; the result is
// the number that did.
package main

import (
	"sync"
	"sync/atomic"
	"time"
)

const sleepTime = 10 * time.Millisecond

func sleeps(n int64) int64 {
	var ok int64
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			t0 := time.Now()
			time.Sleep(sleepTime)
			if time.Since(t0) >= sleepTime {
				atomic.AddInt64(&ok, 1)
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return ok
}

func main() {
	benchMain("sleeps", 10000, sleeps, func(n int64) int64 { return n })
}
