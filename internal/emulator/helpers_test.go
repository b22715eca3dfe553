package emulator_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	routeoptimization "cloud.google.com/go/maps/routeoptimization/apiv1"
	"google.golang.org/api/option"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// t0 is the fake clock's starting point in every test.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is an emulator behind a loopback HTTP server, with Google's REST
// clients and the admin client pointed at it.
type env struct {
	srv   *emulator.Server
	clock *emulator.FakeClock
	url   string
	ro    *routeoptimization.Client
	lro   *lroauto.OperationsClient
	admin *emulator.AdminClient
}

func newEnv(t *testing.T, opts emulator.Options) *env {
	t.Helper()
	clock := emulator.NewFakeClock(t0)
	opts.Clock = clock
	srv := emulator.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	ctx := context.Background()
	// The endpoint form that works for the REST clients: a full URL with
	// scheme, host and port and no path.
	clientOpts := []option.ClientOption{option.WithEndpoint(hs.URL), option.WithoutAuthentication()}
	ro, err := routeoptimization.NewRESTClient(ctx, clientOpts...)
	if err != nil {
		t.Fatalf("routeoptimization.NewRESTClient: %v", err)
	}
	t.Cleanup(func() { ro.Close() })
	lro, err := lroauto.NewOperationsRESTClient(ctx, clientOpts...)
	if err != nil {
		t.Fatalf("NewOperationsRESTClient: %v", err)
	}
	t.Cleanup(func() { lro.Close() })
	return &env{
		srv: srv, clock: clock, url: hs.URL, ro: ro, lro: lro,
		admin: &emulator.AdminClient{BaseURL: hs.URL, HTTPClient: hs.Client()},
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
