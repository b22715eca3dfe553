package emulator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// BenchmarkGetOperation measures GetOperation over loopback HTTP against
// 10,000 live operations (half running, half done), the polling load an
// operator tracking many solves puts on the service. It reports requests
// per second as the "req/s" metric.
func BenchmarkGetOperation(b *testing.B) {
	const live = 10_000
	clock := emulator.NewFakeClock(t0)
	srv := emulator.New(emulator.Options{Clock: clock})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	admin := &emulator.AdminClient{BaseURL: hs.URL}
	ctx := context.Background()

	urls := make([]string, live)
	for i := range urls {
		d := time.Duration(0)
		if i%2 == 0 {
			d = time.Hour // still running
		}
		name, err := admin.CreateOperation(ctx, emulator.CreateOperationRequest{
			Name:     fmt.Sprintf("projects/bench/locations/global/operations/%d", i),
			Duration: d,
		})
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = hs.URL + "/v1/" + name + "?%24alt=json%3Benum-encoding%3Dint"
	}

	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Uint64
	b.SetParallelism(8) // several in-flight polls per core, like a controller's workers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := urls[next.Add(1)%live]
			resp, err := client.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET %s: %d", u, resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
