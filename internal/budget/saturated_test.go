package budget

import (
	"container/heap"
	"fmt"
	"testing"
	"time"
)

// visit is a caller coming back to Take at a time.
type visit struct {
	at  time.Time
	key string
	p   Priority
}

type visits []visit

func (v visits) Len() int           { return len(v) }
func (v visits) Less(i, j int) bool { return v[i].at.Before(v[j].at) }
func (v visits) Swap(i, j int)      { v[i], v[j] = v[j], v[i] }
func (v *visits) Push(x any)        { *v = append(*v, x.(visit)) }
func (v *visits) Pop() any {
	old := *v
	x := old[len(old)-1]
	*v = old[:len(old)-1]
	return x
}

// TestUrgentNotDelayedByWaitingPolls: a burst of cancels arrives while a thousand polls wait
// for the saturated budget. Every caller comes back when Take tells it to; polls that are
// granted come back a poll interval later. The cancels must be served at about the budget's
// rate (100 at 5 calls/s: about 20 s), not spread over the time the waiting polls need.
func TestUrgentNotDelayedByWaitingPolls(t *testing.T) {
	for _, polls := range []int{1000, 10000} {
		t.Run(fmt.Sprintf("%d polls", polls), func(t *testing.T) {
			const qps, urgent = 5.0, 100
			b, clk := newTestBudget(qps, 10, -1)
			q := &visits{}
			for i := range polls {
				heap.Push(q, visit{at: epoch, key: fmt.Sprintf("poll-%d", i), p: Poll})
			}
			arrive := epoch.Add(time.Minute) // the polls have saturated the budget by then
			for i := range urgent {
				heap.Push(q, visit{at: arrive, key: fmt.Sprintf("cancel-%d", i), p: Urgent})
			}
			var last time.Time
			served := 0
			for q.Len() > 0 && served < urgent {
				v := heap.Pop(q).(visit)
				clk.t = v.at
				wait, ok := b.Take(v.key, v.p)
				switch {
				case !ok:
					heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p})
				case v.p == Urgent:
					served++
					last = v.at
				default:
					heap.Push(q, visit{at: v.at.Add(time.Second), key: v.key, p: Poll})
				}
			}
			took := last.Sub(arrive)
			t.Logf("%d cancels among %d waiting polls: the last granted %s after they arrived", urgent, polls, took)
			if limit := time.Duration(1.5 * urgent / qps * float64(time.Second)); took > limit {
				t.Errorf("the last of %d cancels was granted %s after they arrived, want within %s (%d calls at %v/s)",
					urgent, took, limit, urgent, qps)
			}
		})
	}
}
