package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/internal/emulator"
	"github.com/routeopt/routeopt-operator/internal/testenv"
)

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testenv.LogBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--cancel-mode", "ignored", "--fault", "GetOperation:latency=1ms"}, &stdout, &stderr, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v (%s)", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not start")
	}
	want := "routeopt-emulator listening on http://" + addr + "\nexport ROUTEOPTIMIZATION_EMULATOR_HOST=" + addr + "\n"
	if stdout.String() != want || strings.HasSuffix(addr, ":0") {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}

	admin := &emulator.AdminClient{BaseURL: "http://" + addr}
	cfg, err := admin.Config(ctx)
	if err != nil || *cfg.CancelMode != emulator.CancelIgnored {
		t.Fatalf("Config = %+v, %v", cfg, err)
	}
	f, err := admin.Faults(ctx)
	if err != nil || f.Methods[emulator.MethodGetOperation].Latency != time.Millisecond {
		t.Fatalf("Faults = %+v, %v", f, err)
	}
	resp, err := http.Get("http://" + addr + "/v1/projects/p/locations/global/operations/1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown operation: %d", resp.StatusCode)
	}

	cancel() // as SIGTERM does through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not shut down")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, c *config)
	}{
		{name: "defaults", check: func(t *testing.T, c *config) {
			o := c.opts
			if c.listen != "127.0.0.1:8085" || o.CancelMode != emulator.CancelSupported || o.CancelDelay != 0 ||
				o.BatchDuration != 30*time.Second || o.LongRunningDuration != 10*time.Second || o.Retention != time.Hour || o.RequireToken {
				t.Errorf("defaults = %+v listen %s", o, c.listen)
			}
		}},
		{name: "faults and tokens", args: []string{
			"--fault", "*:unavailable=0.1,resourceExhausted=0.2,retryDelay=5s", "--fault", "GetOperation:failNext=2,latency=10ms",
			"--fault", "CancelOperation:permissionDenied=1", "--fail-all", "--require-token", "--accepted-tokens", "a, b", "--seed", "9",
		}, check: func(t *testing.T, c *config) {
			f := c.opts.Faults
			if !f.FailAll || f.Methods["*"].ResourceExhausted != 0.2 || f.Methods["*"].RetryDelay != 5*time.Second ||
				f.Methods["GetOperation"].FailNext != 2 || f.Methods["CancelOperation"].PermissionDenied != 1 || len(c.opts.AcceptedTokens) != 2 || c.opts.Seed != 9 {
				t.Errorf("parsed = %+v", c.opts)
			}
		}},
		{name: "499 and 408 faults", args: []string{
			"--fault", "CancelOperation:cancelled=0.5,requestTimeout=0.5,noStatus=true", "--fault", "GetOperation:cancelled=1",
		}, check: func(t *testing.T, c *config) {
			cancel, get := c.opts.Faults.Methods["CancelOperation"], c.opts.Faults.Methods["GetOperation"]
			if cancel.Cancelled != 0.5 || cancel.RequestTimeout != 0.5 || !cancel.NoStatus || get.Cancelled != 1 || get.NoStatus {
				t.Errorf("parsed = %+v", c.opts.Faults)
			}
		}},
		{name: "hang faults", args: []string{
			"--fault", "OptimizeToursLongRunning:hangNext=1", "--fault", "BatchOptimizeTours:hang=0.25,unavailable=0.5",
		}, check: func(t *testing.T, c *config) {
			lr, batch := c.opts.Faults.Methods["OptimizeToursLongRunning"], c.opts.Faults.Methods["BatchOptimizeTours"]
			if lr.HangNext != 1 || batch.Hang != 0.25 || batch.Unavailable != 0.5 {
				t.Errorf("parsed = %+v", c.opts.Faults)
			}
		}},
		{name: "hang rate over 1 with others", args: []string{"--fault", "*:hang=0.6,internal=0.6"}, wantErr: true},
		{name: "bad hangNext", args: []string{"--fault", "*:hangNext=-1"}, wantErr: true},
		{name: "499 and 408 rates over 1", args: []string{"--fault", "*:cancelled=0.6,requestTimeout=0.6"}, wantErr: true},
		{name: "bad noStatus", args: []string{"--fault", "*:noStatus=maybe"}, wantErr: true},
		{name: "bad cancel mode", args: []string{"--cancel-mode", "maybe"}, wantErr: true},
		{name: "bad fault method", args: []string{"--fault", "Teleport:internal=1"}, wantErr: true},
		{name: "bad fault rate", args: []string{"--fault", "*:internal=2"}, wantErr: true},
		{name: "bad fault key", args: []string{"--fault", "*:explode=1"}, wantErr: true},
		{name: "stray argument", args: []string{"serve"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
