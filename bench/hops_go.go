// bench/hops_go.go - issue 6's "chain" shape with goroutines: create
// futures 0..N (channels of capacity 1), start N hops (hop i receives from
// future i and sends its value plus one on future i+1), send 0 on future 0,
// receive from future N (its value must be N), then gather the hops with a
// WaitGroup. -c is cold.
package main

import "sync"

func hops(n int64) int64 {
	futs := make([]chan int64, n+1)
	for i := range futs {
		futs[i] = make(chan int64, 1)
	}
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(in, out chan int64) {
			out <- <-in + 1
			wg.Done()
		}(futs[i], futs[i+1])
	}
	futs[0] <- 0
	v := <-futs[n]
	wg.Wait()
	return v
}

func main() {
	benchMain("hops", 100000, hops, func(n int64) int64 { return n })
}
