package emulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse hammers one Server from many goroutines with every kind
// of call while the clock moves; run with -race it checks the locking.
func TestConcurrentUse(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	s := New(Options{Clock: clock, Retention: 30 * time.Second, CancelDelay: time.Second})
	do := func(method, target, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
		return rec
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				name := fmt.Sprintf("projects/p/locations/l/operations/g%d-%d", g, i)
				do("POST", "/emulator/v1/operations", fmt.Sprintf(`{"name":%q,"duration":"%ds"}`, name, i%5))
				do("POST", "/v1/projects/p:optimizeToursLongRunning", `{"model":{"vehicles":[{}],"shipments":[{}]},"timeout":"3s"}`)
				do("GET", "/v1/"+name, "")
				if i%3 == 0 {
					do("POST", "/v1/"+name+":cancel", "")
				}
				if i%7 == 0 {
					do("DELETE", "/v1/"+name, "")
				}
				if i%10 == 0 {
					do("GET", "/v1/operations?pageSize=7&filter=done%3Dtrue", "")
					do("GET", "/emulator/v1/operations", "")
					do("PUT", "/emulator/v1/config", `{"cancelDelay":"2s"}`)
					s.Sweep()
				}
				clock.Advance(time.Second)
			}
		})
	}
	wg.Wait()
	if got := s.Counters()[MethodGetOperation][http.StatusOK] + s.Counters()[MethodGetOperation][http.StatusNotFound]; got != 400 {
		t.Errorf("GetOperation answered %d times, want 400", got)
	}
}
