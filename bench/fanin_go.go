// bench/fanin_go.go - issue 6's "fanin" shape with goroutines: start N
// trivial goroutines (goroutine i stores i+1), then gather them with a
// WaitGroup; the result is their sum. The same work as gather_go.go; -c is
// cold.
package main

import "sync"

func fanin(n int64) int64 {
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
	benchMain("fanin", 100000, fanin, func(n int64) int64 { return n * (n + 1) / 2 })
}
