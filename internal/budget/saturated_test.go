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
	// first is when the caller first came (zero: at).
	first time.Time
}

func firstOf(v visit) time.Time {
	if v.first.IsZero() {
		return v.at
	}
	return v.first
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
			b, clk := newTestBudget(qps, 10)
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

// TestFirstReadsBeforeRereads: operations never read go before re-reads of the others, and
// after cancels. 1,000 polls keep the budget saturated; 500 new operations arrive, and 20
// cancels after them.
func TestFirstReadsBeforeRereads(t *testing.T) {
	const qps, polls, firsts, urgent = 5.0, 1000, 500, 20
	b, clk := newTestBudget(qps, 10)
	q := &visits{}
	for i := range polls {
		heap.Push(q, visit{at: epoch, key: fmt.Sprintf("poll-%d", i), p: Poll})
	}
	arrive := epoch.Add(time.Minute)
	for i := range firsts {
		heap.Push(q, visit{at: arrive, key: fmt.Sprintf("new-%d", i), p: First})
	}
	cancelsAt := arrive.Add(10 * time.Second)
	for i := range urgent {
		heap.Push(q, visit{at: cancelsAt, key: fmt.Sprintf("cancel-%d", i), p: Urgent})
	}
	var lastFirst, lastUrgent time.Time
	servedFirst, servedUrgent, pollsBetween := 0, 0, 0
	for q.Len() > 0 && servedFirst < firsts {
		v := heap.Pop(q).(visit)
		if v.at.Sub(arrive) > 30*time.Minute {
			break // starved: reported below
		}
		clk.t = v.at
		wait, ok := b.Take(v.key, v.p)
		switch {
		case !ok:
			heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p})
		case v.p == First:
			servedFirst++
			lastFirst = v.at
		case v.p == Urgent:
			servedUrgent++
			lastUrgent = v.at
		default:
			if !v.at.Before(arrive) {
				pollsBetween++
			}
			heap.Push(q, visit{at: v.at.Add(time.Second), key: v.key, p: Poll})
		}
	}
	took := lastFirst.Sub(arrive)
	t.Logf("%d first reads among %d waiting polls: the last granted %s after they arrived; %d re-reads granted meanwhile; the last of %d cancels %s after they arrived",
		firsts, polls, took, pollsBetween, urgent, lastUrgent.Sub(cancelsAt))
	if limit := time.Duration(1.2 * (firsts + urgent) / qps * float64(time.Second)); took > limit {
		t.Errorf("the last of %d first reads was granted %s after they arrived, want within %s", firsts, took, limit)
	}
	// A few polls may slip in while the first readers are not yet all denied once.
	if pollsBetween > 10 {
		t.Errorf("%d re-reads were granted while operations never read waited, want at most 10", pollsBetween)
	}
	if servedUrgent != urgent || lastUrgent.Sub(cancelsAt) > time.Duration(1.5*urgent/qps*float64(time.Second)) {
		t.Errorf("%d of %d cancels granted, the last %s after they arrived: first reads must not delay cancels",
			servedUrgent, urgent, lastUrgent.Sub(cancelsAt))
	}
}

// TestDeadlinesBeforeSubmits: a burst of 1,000 submits holds the budget for 200 s; reads of
// operations whose deadline passed go before the submits still waiting, in the order they
// came, and routine polls wait for both.
func TestDeadlinesBeforeSubmits(t *testing.T) {
	const qps, submits, due, polls = 5.0, 1000, 20, 100
	b, clk := newTestBudget(qps, 10)
	q := &visits{}
	for i := range submits {
		heap.Push(q, visit{at: epoch, key: fmt.Sprintf("submit-%d", i), p: Submit})
	}
	for i := range polls {
		heap.Push(q, visit{at: epoch, key: fmt.Sprintf("poll-%d", i), p: Poll})
	}
	arrive := epoch.Add(time.Minute)
	for i := range due {
		// One deadline a second, as solves submitted one after another end.
		heap.Push(q, visit{at: arrive.Add(time.Duration(i) * time.Second), key: fmt.Sprintf("due-%d", i), p: Due})
	}
	var worstDue time.Duration
	servedSubmits, servedDue, pollsBeforeSubmits := 0, 0, 0
	for q.Len() > 0 && servedSubmits < submits {
		v := heap.Pop(q).(visit)
		if v.at.Sub(epoch) > time.Hour {
			break // starved: reported below
		}
		clk.t = v.at
		wait, ok := b.Take(v.key, v.p)
		if !ok {
			// A denied caller comes back when told, keeping its first arrival for the report.
			heap.Push(q, visit{at: v.at.Add(wait), key: v.key, p: v.p, first: firstOf(v)})
			continue
		}
		switch v.p {
		case Submit:
			servedSubmits++
		case Due:
			servedDue++
			worstDue = max(worstDue, v.at.Sub(firstOf(v)))
		case Poll:
			pollsBeforeSubmits++
		}
	}
	t.Logf("%d submits, %d deadlines among them: the longest a deadline waited %s; %d polls granted before the submits were through",
		submits, due, worstDue, pollsBeforeSubmits)
	if servedDue != due || worstDue > time.Duration(2/qps*float64(time.Second)) {
		t.Errorf("%d of %d deadlines granted, the longest after %s: want each within two tokens of its arrival", servedDue, due, worstDue)
	}
	// A few polls may slip in before the submits are all denied once.
	if pollsBeforeSubmits > 10 {
		t.Errorf("%d routine polls were granted while submits waited, want at most 10", pollsBeforeSubmits)
	}
}
