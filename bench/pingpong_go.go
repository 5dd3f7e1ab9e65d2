// bench/pingpong_go.go - round trips between two goroutines over two fresh
// one-shot channels per round (futures complete only once, so the heist and
// asyncio versions need two new futures a round, and so does this one):
// ping sends (pong channel, next ping channel) and waits on pong; pong
// receives and answers with the round's number plus one, which ping
// checks. The result is the sum of the round numbers pong received.
package main

type pingMsg struct {
	round int64
	pong  chan int64
	next  chan pingMsg
}

func pingpong(rounds int64) int64 {
	first := make(chan pingMsg, 1)
	answered := make(chan int64, 1)
	go func(ping chan pingMsg) { // pong
		var sum int64
		for r := int64(0); r < rounds; r++ {
			m := <-ping
			sum += m.round
			m.pong <- m.round + 1
			ping = m.next
		}
		answered <- sum
	}(first)
	ping := first
	for r := int64(0); r < rounds; r++ {
		m := pingMsg{r, make(chan int64, 1), make(chan pingMsg, 1)}
		ping <- m
		if <-m.pong != r+1 {
			panic("ping: a wrong answer")
		}
		ping = m.next
	}
	return <-answered
}

func main() {
	benchMain("pingpong", 100000, pingpong,
		func(n int64) int64 { return n * (n - 1) / 2 })
}
