// bench/forkwait_go.go - forkwait's Go peer: main starts N goroutines that
// each sleep 10 us, sleeps 10 us itself, then waits for them all
// (WaitGroup). Child i stores i + 1; the result is their sum.
package main

import (
	"sync"
	"time"
)

const napTime = 10 * time.Microsecond

func forkwait(n int64) int64 {
	res := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			time.Sleep(napTime)
			res[i] = i + 1
			wg.Done()
		}(i)
	}
	time.Sleep(napTime)
	wg.Wait()
	var sum int64
	for _, v := range res {
		sum += v
	}
	return sum
}

func main() {
	benchMain("forkwait", 3000, forkwait, func(n int64) int64 { return n * (n + 1) / 2 })
}
