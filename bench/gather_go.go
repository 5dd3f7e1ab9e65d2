// bench/gather_go.go - start N trivial goroutines and gather them with a
// WaitGroup; goroutine i stores i+1, and the result is their sum.
package main

import "sync"

func gather(n int64) int64 {
	results := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			results[i] = i + 1
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum int64
	for _, v := range results {
		sum += v
	}
	return sum
}

func main() {
	benchMain("gather", 1000000, gather, func(n int64) int64 { return n * (n + 1) / 2 })
}
