// bench/seed_go.go - issue 6's "seed" shape with goroutines: start every
// (foo, bar) pair first, then gather the 2N goroutines with a WaitGroup
// (Go's usual gather); a future is a channel of capacity 1, foo receives
// the value its bar sends. The result is the sum of foo's values,
// 1 + 2 + ... + N. The same work as pairs_go.go; -c is cold.
package main

import "sync"

func seed(n int64) int64 {
	results := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(2 * n))
	for i := int64(0); i < n; i++ {
		fut := make(chan int64, 1)
		go func(i int64) { // foo
			results[i] = <-fut
			wg.Done()
		}(i)
		go func(v int64) { // bar
			fut <- v
			wg.Done()
		}(i + 1)
	}
	wg.Wait()
	var sum int64
	for _, v := range results {
		sum += v
	}
	return sum
}

func main() {
	benchMain("seed", 100000, seed, func(n int64) int64 { return n * (n + 1) / 2 })
}
