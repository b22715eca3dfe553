package controllers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/emulator"
)

// withBeforeStatusWrite runs before on every status write, then lets it through.
func withBeforeStatusWrite(before func(*opsv1.OptimizationOperation)) harnessOption {
	return func(h *harness, _ *emulator.Options) {
		h.wrap = func(c client.Client) client.Client { return heldStatus{Client: c, before: before} }
	}
}

type heldStatus struct {
	client.Client
	before func(*opsv1.OptimizationOperation)
}

func (c heldStatus) Status() client.SubResourceWriter {
	return heldStatusWriter{SubResourceWriter: c.Client.Status(), before: c.before}
}

type heldStatusWriter struct {
	client.SubResourceWriter
	before func(*opsv1.OptimizationOperation)
}

func (w heldStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if o, ok := obj.(*opsv1.OptimizationOperation); ok {
		w.before(o)
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func TestStatusNeverLandsOnARecreatedResource(t *testing.T) {
	// The write that records an operation's end is held while the resource is deleted and
	// created anew under the same name for another operation, as a GitOps tool replacing it
	// would: what was read of the old operation must not land on the new resource.
	var (
		h        *harness
		replaced atomic.Bool
		second   string
	)
	h = newHarness(t, withBeforeStatusWrite(func(o *opsv1.OptimizationOperation) {
		if o.Name != "x" || !o.Status.Done || !replaced.CompareAndSwap(false, true) {
			return
		}
		old := &opsv1.OptimizationOperation{}
		must(t, k8s.Get(h.ctx, client.ObjectKeyFromObject(o), old))
		must(t, k8s.Delete(h.ctx, old))
		for {
			if err := k8s.Get(h.ctx, client.ObjectKeyFromObject(o), &opsv1.OptimizationOperation{}); apierrors.IsNotFound(err) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.apply("x", second)
	}))
	second = h.createOperation(emulator.CreateOperationRequest{Duration: longSolve})
	h.apply("x", h.createOperation(emulator.CreateOperationRequest{}))

	o := h.waitFor("x", "the new resource read", func(o *opsv1.OptimizationOperation) bool {
		return replaced.Load() && o.Status.StartTime != nil
	})
	if o.Status.Done || o.Status.Result != nil || o.Status.OperationName != second {
		t.Errorf("the new resource carries the old one's status: %s", describe(o))
	}
	h.waitState("x", opsv1.ReasonRunning)
}
