// bench/pingpong_go.go - round trips between two goroutines over two fresh
// one-shot channels per round (futures complete only once, so the heist and
// asyncio versions need two new futures a round, and so does this one):
// ping sends (pong channel, next ping channel) and waits on pong; pong
// receives and answers. The result is the number of rounds pong answered.
package main

type pingMsg struct {
	pong chan struct{}
	next chan pingMsg
}

func pingpong(rounds int64) int64 {
	first := make(chan pingMsg, 1)
	answered := make(chan int64, 1)
	go func(ping chan pingMsg) { // pong
		var n int64
		for r := int64(0); r < rounds; r++ {
			m := <-ping
			m.pong <- struct{}{}
			ping = m.next
			n++
		}
		answered <- n
	}(first)
	ping := first
	for r := int64(0); r < rounds; r++ {
		m := pingMsg{make(chan struct{}, 1), make(chan pingMsg, 1)}
		ping <- m
		<-m.pong
		ping = m.next
	}
	return <-answered
}

func main() {
	benchMain("pingpong", 100000, pingpong, func(n int64) int64 { return n })
}
