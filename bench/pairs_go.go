// bench/pairs_go.go - the seed's foo/bar pair, N times over, with
// goroutines: a future is a channel of capacity 1 (one value, one reader),
// and main gathers the 2N goroutines with a WaitGroup, Go's usual gather.
// foo stores the value bar sent; the result is their sum, 1 + 2 + ... + N.
package main

import "sync"

func pairs(n int64) int64 {
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
	benchMain("pairs", 100000, pairs, func(n int64) int64 { return n * (n + 1) / 2 })
}
