package main

import (
	"strings"
	"testing"
	"time"

	"github.com/routeopt/routeopt-operator/controllers"
)

func TestValidate(t *testing.T) {
	valid := func() config {
		return config{apiQPS: 5, apiBurst: 10, requestTimeout: 15 * time.Second, opts: controllers.DefaultOptions}
	}
	tests := []struct {
		name    string
		mutate  func(*config)
		wantErr string // empty: valid
	}{
		{name: "defaults", mutate: func(*config) {}},
		{name: "zero qps", mutate: func(c *config) { c.apiQPS = 0 }, wantErr: "--api-qps"},
		{name: "zero burst", mutate: func(c *config) { c.apiBurst = 0 }, wantErr: "--api-burst"},
		{name: "zero min poll", mutate: func(c *config) { c.opts.Poll.Min = 0 }, wantErr: "--min-poll-interval"},
		{name: "max below min", mutate: func(c *config) { c.opts.Poll.Max = c.opts.Poll.Min / 2 }, wantErr: "--max-poll-interval"},
		{name: "no submits", mutate: func(c *config) { c.opts.MaxSubmitsPerMinute = 0 }, wantErr: "--max-submits-per-minute"},
		{name: "negative workers", mutate: func(c *config) { c.opts.MaxConcurrentReconciles = -1 }, wantErr: "--max-concurrent-reconciles"},
		{name: "workers sized from the budget", mutate: func(c *config) { c.opts.MaxConcurrentReconciles = 0 }},
		{name: "zero request timeout", mutate: func(c *config) { c.requestTimeout = 0 }, wantErr: "--request-timeout"},
		{name: "negative deletion timeout", mutate: func(c *config) { c.opts.DeletionCancelTimeout = -time.Second }, wantErr: "--deletion-cancel-timeout"},
		{name: "zero deletion timeout: no retries", mutate: func(c *config) { c.opts.DeletionCancelTimeout = 0 }},
		{name: "zero unavailable-after: at once", mutate: func(c *config) { c.opts.RemoteUnavailableAfter = 0 }},
		{name: "negative unavailable-after", mutate: func(c *config) { c.opts.RemoteUnavailableAfter = -time.Minute }, wantErr: "--remote-unavailable-after"},
		{name: "zero recheck", mutate: func(c *config) { c.opts.CredentialsRecheck = 0 }, wantErr: "--credentials-recheck-interval"},
		{name: "trusted token URIs", mutate: func(c *config) { c.trustedTokenURIs = "https://oauth2.example.test/token, http://127.0.0.1:8085/token" }},
		{name: "trusted token URI not absolute", mutate: func(c *config) { c.trustedTokenURIs = "oauth2/token" }, wantErr: "--trusted-token-uris"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate() = %v, want an error naming %s", err, tc.wantErr)
			}
		})
	}
}
