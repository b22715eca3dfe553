package budget

import (
	"testing"
	"time"
)

// TestBudgetBurstOnePolls: --api-burst=1 is accepted, and polls must still be served. With
// burst 1 the poll reserve (burst/4 = 0.25) makes a poll need 1.25 tokens from a bucket that
// never holds more than 1, so every poll is denied forever.
func TestBudgetBurstOnePolls(t *testing.T) {
	for _, qps := range []float64{1, 5} {
		b, clk := newTestBudget(qps, 1)
		grants := 0
		for clk.elapsed() < time.Minute {
			wait, ok := b.Take("only", Poll)
			if ok {
				grants++
				clk.advance(time.Duration(float64(time.Second) / qps))
				continue
			}
			clk.advance(wait)
		}
		if want := int(0.5 * qps * 60); grants < want {
			t.Errorf("qps %v burst 1: %d polls granted in a minute, want at least %d: "+
				"the reserve leaves a poll needing %.2f tokens from a bucket of 1", qps, grants, want, 1+b.reserve)
		}
	}
}
