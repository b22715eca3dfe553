// Package remote talks to the Route Optimization operations API through Google's official
// long-running operations REST client. The reconciler sees only the small Operations interface;
// how endpoints, credentials and clients are chosen stays here.
package remote

import (
	"context"
	"fmt"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"github.com/googleapis/gax-go/v2"

	// Registers the Route Optimization metadata and response types, so the client can decode
	// the Any fields of an Operation: protojson fails on an Any whose @type is unknown.
	_ "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
)

// Operations is what the reconciler needs of the remote API.
type Operations interface {
	// Get reads the operation (GET /v1/{name}).
	Get(ctx context.Context, name string) (*longrunningpb.Operation, error)
	// Cancel asks for a best-effort cancel (POST /v1/{name}:cancel).
	Cancel(ctx context.Context, name string) error
}

// lroOperations adapts the official client. Each method makes exactly one HTTP request: the
// client's built-in retries are switched off (see newLRO), because every request must pass
// through the operator's shared budget and its backoff policy.
type lroOperations struct {
	c *lroauto.OperationsClient
}

func (o *lroOperations) Get(ctx context.Context, name string) (*longrunningpb.Operation, error) {
	op, err := o.c.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("get operation %s: %w", name, err)
	}
	return op, nil
}

func (o *lroOperations) Cancel(ctx context.Context, name string) error {
	if err := o.c.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
		return fmt.Errorf("cancel operation %s: %w", name, err)
	}
	return nil
}

// noRetry replaces the client's default call options (retry 503 for up to 10 s). A timeout
// remains so a hung connection cannot hold a reconcile worker.
func noRetry(c *lroauto.OperationsClient, timeout gax.CallOption) {
	c.CallOptions.GetOperation = []gax.CallOption{timeout}
	c.CallOptions.CancelOperation = []gax.CallOption{timeout}
}
