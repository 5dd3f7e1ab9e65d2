// bench/chain_go.go - a chain of N goroutines: goroutine i receives from
// future i (a channel of capacity 1) and sends its value plus one on
// future i+1; main sends 0 on future 0 and receives from future N.
package main

func chain(n int64) int64 {
	futs := make([]chan int64, n+1)
	for i := range futs {
		futs[i] = make(chan int64, 1)
	}
	for i := int64(0); i < n; i++ {
		go func(in, out chan int64) {
			out <- <-in + 1
		}(futs[i], futs[i+1])
	}
	futs[0] <- 0
	return <-futs[n]
}

func main() {
	benchMain("chain", 100000, chain, func(n int64) int64 { return n })
}
