// Package remote talks to the Route Optimization API with the transport, credentials and error
// types of Google's official REST clients (long-running operations, and routeoptimization for
// the submits). The reconciler sees only the small Operations and Submitter interfaces; how
// endpoints, credentials and clients are chosen stays here.
package remote

import (
	"context"
	"fmt"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"github.com/googleapis/gax-go/v2"

	// Registers the Route Optimization metadata and response types, so that their Any fields
	// decode into the real messages (other types are kept by type URL only, see getter).
	_ "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
)

// Operations is what the reconciler needs of the remote API.
type Operations interface {
	// Get reads the operation (GET /v1/{name}).
	Get(ctx context.Context, name string) (*longrunningpb.Operation, error)
	// Cancel asks for a best-effort cancel (POST /v1/{name}:cancel).
	Cancel(ctx context.Context, name string) error
}

// lroOperations makes exactly one HTTP request per call: nothing retries, because every
// request must pass through the operator's shared budget and its backoff policy.
//
// Get is not the official client's GetOperation: that one decodes with the global type
// registry, and an operation whose metadata, response or error detail has a type this build
// does not know (Google adds types) would fail to decode on every read, for good. The client
// offers no hook for the decoder, so getter sends the same request through the same
// *http.Client and decodes tolerantly. Cancel has no body to decode and stays the client's.
type lroOperations struct {
	c   *lroauto.OperationsClient
	get *getter
	// timeout bounds each call through its context. The REST client's CancelOperation never
	// reads CallOptions.CancelOperation, so a gax timeout there would not apply.
	timeout time.Duration
}

func (o *lroOperations) Get(ctx context.Context, name string) (*longrunningpb.Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	op, err := o.get.operation(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get operation %s: %w", name, err)
	}
	return op, nil
}

func (o *lroOperations) Cancel(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := o.c.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name}); err != nil {
		return fmt.Errorf("cancel operation %s: %w", name, err)
	}
	return nil
}

// noRetry clears the client's default call options (retry 503 for up to 10 s); the deadline
// comes from the context instead.
func noRetry(c *lroauto.OperationsClient) {
	c.CallOptions.GetOperation = []gax.CallOption{}
	c.CallOptions.CancelOperation = []gax.CallOption{}
}
