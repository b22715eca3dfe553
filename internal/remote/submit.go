package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	routeoptimization "cloud.google.com/go/maps/routeoptimization/apiv1"
	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/protobuf/proto"
)

// Submitter starts solves: BatchOptimizeTours, OptimizeToursLongRunning and OptimizeToursUri.
//
// It is an interface of its own rather than more methods on Operations: every resource reads
// and cancels, few submit, and a submit is the one call that must never be repeated by
// accident (it starts, and bills, a solve that no name may ever point to). Keeping it apart
// keeps the reconciler's read path, and the fakes of its tests, unchanged, and makes every
// place that can start a solve easy to find.
type Submitter interface {
	// Submit sends req once and returns the name of the operation the server started. req is
	// *rpb.OptimizeToursUriRequest, *rpb.BatchOptimizeToursRequest or *rpb.OptimizeToursRequest
	// (sent with OptimizeToursLongRunning), with Parent set. Nothing retries: a failure is
	// returned as it came, to be judged by policy.ClassifySubmit.
	Submit(ctx context.Context, req proto.Message) (Started, error)
}

// Started is what the answer to a submit says of the operation it started.
type Started struct {
	// Name is the operation's name.
	Name string
	// MetadataType is the @type URL of the answer's metadata ("" when it carried none).
	MetadataType string
}

// ErrNoOperationName is returned when the server answered a submit without an operation name:
// it may have started a solve, which cannot be tracked.
var ErrNoOperationName = errors.New("the server answered without an operation name")

// submitter sends submits through the official routeoptimization REST client. It makes
// exactly one HTTP request per call: a submit whose answer was lost and that is sent again
// starts a second solve, so the client's call options are cleared (see noSubmitRetry), and Go's
// transport does not resend a POST once any of it was written.
type submitter struct {
	c *routeoptimization.Client
	// timeout bounds each call through its context; the client's own gax timeouts are
	// cleared with its retries.
	timeout time.Duration
}

func (s *submitter) Submit(ctx context.Context, req proto.Message) (Started, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	started, err := s.send(ctx, req)
	if err == nil && started.Name == "" {
		err = ErrNoOperationName
	}
	if err != nil {
		return Started{}, fmt.Errorf("%s: %w", submitMethod(req), err)
	}
	return started, nil
}

func (s *submitter) send(ctx context.Context, req proto.Message) (Started, error) {
	switch r := req.(type) {
	case *rpb.OptimizeToursRequest:
		return startedOf[*rpb.OptimizeToursLongRunningMetadata](s.c.OptimizeToursLongRunning(ctx, r))
	case *rpb.BatchOptimizeToursRequest:
		return startedOf[*rpb.BatchOptimizeToursMetadata](s.c.BatchOptimizeTours(ctx, r))
	case *rpb.OptimizeToursUriRequest:
		return startedOf[*rpb.OptimizeToursUriMetadata](s.c.OptimizeToursUri(ctx, r))
	}
	return Started{}, fmt.Errorf("cannot submit a %T", req)
}

// startedOf reads the client's operation handle: its name, and the type of the metadata it
// came with, which the first read would otherwise have to write to status on its own.
func startedOf[M proto.Message, T interface {
	Name() string
	Metadata() (M, error)
}](op T, err error) (Started, error) {
	if err != nil {
		return Started{}, err
	}
	s := Started{Name: op.Name()}
	// Metadata of another type is an error here, and says nothing of the operation's state:
	// the type is then left to the first read.
	if md, err := op.Metadata(); err == nil && md.ProtoReflect().IsValid() {
		s.MetadataType = "type.googleapis.com/" + string(md.ProtoReflect().Descriptor().FullName())
	}
	return s, nil
}

// noSubmitRetry clears the client's call options for the methods that start solves. With
// cloud.google.com/go/maps v1.45.0 this changes nothing on the wire: the REST client's defaults
// for these methods are empty, and its BatchOptimizeTours, OptimizeToursLongRunning and
// OptimizeToursUri do not even read CallOptions (only OptimizeTours, which retries UNAVAILABLE,
// and GetOperation do); gax retries only what call options ask for, and submitter passes none
// per call. They are cleared so that a later client that reads them, with OptimizeTours'
// defaults, cannot resend a submit. TestSubmitIsSentOnceOn503 proves one request per 503.
func noSubmitRetry(c *routeoptimization.Client) {
	c.CallOptions.BatchOptimizeTours = []gax.CallOption{}
	c.CallOptions.OptimizeToursLongRunning = []gax.CallOption{}
	c.CallOptions.OptimizeToursUri = []gax.CallOption{}
}

// submitMethod is the metric label of a submit of req.
func submitMethod(req proto.Message) string {
	switch req.(type) {
	case *rpb.OptimizeToursRequest:
		return "OptimizeToursLongRunning"
	case *rpb.BatchOptimizeToursRequest:
		return "BatchOptimizeTours"
	case *rpb.OptimizeToursUriRequest:
		return "OptimizeToursUri"
	}
	return "Submit"
}

// observedSubmitter reports every submit to an Observer.
type observedSubmitter struct {
	next Submitter
	obs  Observer
}

func (o *observedSubmitter) Submit(ctx context.Context, req proto.Message) (Started, error) {
	start := time.Now()
	started, err := o.next.Submit(ctx, req)
	o.obs(submitMethod(req), err, time.Since(start))
	return started, err
}
