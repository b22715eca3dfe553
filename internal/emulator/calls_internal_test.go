package emulator

import (
	"testing"
	"time"
)

func TestCallLogKeepsTheLastDay(t *testing.T) {
	c := newCallLog()
	start := time.Unix(1_000_000, 0)
	c.add(MethodGetOperation, start)
	c.add(MethodGetOperation, start.Add(time.Hour))
	c.add(MethodGetOperation, start.Add(callHistorySeconds*time.Second))
	if n := len(c.snapshot().Seconds); n != 2 {
		t.Fatalf("%d seconds kept, want 2: the first is a day old", n)
	}
	c.add(MethodCancelOperation, start.Add(time.Hour+callHistorySeconds*time.Second))
	h := c.snapshot()
	if len(h.Seconds) != 2 || !h.Seconds[0].Time.Equal(start.Add(callHistorySeconds*time.Second)) {
		t.Fatalf("histogram %+v, want the last two seconds", h)
	}
}
