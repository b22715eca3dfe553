package controllers

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/decide"
	"github.com/routeopt/routeopt-operator/internal/policy"
	"github.com/routeopt/routeopt-operator/internal/result"
)

// writeResult creates the ConfigMap of spec.resultTo with the finished operation's response:
// the one this process kept from the read that found the operation done, or, after a restart,
// the operation read again. A ConfigMap already there is checked instead: this resource's,
// whole, is the write of an earlier process whose status write was lost; any other is left
// alone.
func (r *OptimizationOperationReconciler) writeResult(ctx context.Context, ob *observation, d decide.Decision) decide.Outcome {
	var out decide.Outcome
	resp := ob.memo.response
	if resp == nil {
		// An earlier process may have written it already: then no call is needed.
		if w := r.existingResult(ctx, ob.Obj); w.Found || w.Err != nil {
			out.Write = &w
			return out
		}
		ops, err := r.ops(ob)
		if err != nil {
			return decide.Outcome{ReadErr: err}
		}
		if wait, ok := r.take(ob, d.Priority, 1); !ok {
			return decide.Outcome{Denied: true, Wait: wait}
		}
		op, err := r.get(ctx, ob, ops)
		if err != nil {
			return decide.Outcome{ReadErr: err}
		}
		out.Op, resp = op, op.GetResponse()
	}
	w := r.createResult(ctx, ob.Obj, resp)
	out.Write = &w
	return out
}

// createResult encodes resp and creates the ConfigMap; a name already taken is checked.
func (r *OptimizationOperationReconciler) createResult(ctx context.Context, obj *opsv1.OptimizationOperation, resp *anypb.Any) decide.ResultWrite {
	enc, err := result.Encode(resp)
	if tooLarge := (*result.TooLargeError)(nil); errors.As(err, &tooLarge) {
		return decide.ResultWrite{TooLarge: tooLarge}
	} else if errors.Is(err, result.ErrNotTours) {
		return decide.ResultWrite{NotTours: true}
	} else if err != nil {
		return decide.ResultWrite{Err: err}
	}
	err = r.Create(ctx, result.ConfigMap(obj, policy.TrackedName(obj), enc))
	switch {
	case err == nil:
		return decide.ResultWrite{Stored: true, Encoded: enc}
	case apierrors.IsAlreadyExists(err):
		w := r.existingResult(ctx, obj)
		if !w.Found && w.Err == nil {
			// Deleted between the two calls: the next try creates it.
			w.Err = fmt.Errorf("ConfigMap %s/%s was deleted while it was written", obj.Namespace, obj.Spec.ResultTo.Name)
		}
		return w
	}
	return decide.ResultWrite{Err: fmt.Errorf("create ConfigMap %s/%s: %w", obj.Namespace, obj.Spec.ResultTo.Name, err)}
}

// existingResult reads the ConfigMap of spec.resultTo, uncached (the cache holds ConfigMaps'
// metadata only), and says what it is to obj.
func (r *OptimizationOperationReconciler) existingResult(ctx context.Context, obj *opsv1.OptimizationOperation) decide.ResultWrite {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.ResultTo.Name}
	if err := r.APIReader.Get(ctx, key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return decide.ResultWrite{}
		}
		return decide.ResultWrite{Err: fmt.Errorf("read ConfigMap %s: %w", key, err)}
	}
	w := decide.ResultWrite{Found: true, InTheWay: result.Check(cm, obj.UID)}
	if w.InTheWay == result.Complete {
		w.Stored, w.Existing = true, true
	} else if ref := metav1.GetControllerOfNoCopy(cm); ref != nil && ref.UID != obj.UID {
		w.Owner = fmt.Sprintf("%s %s", ref.Kind, ref.Name)
	}
	return w
}

// resultToIndex indexes OptimizationOperations by the ConfigMap of spec.resultTo.
const resultToIndex = "spec.resultTo.name"

func resultToOf(o client.Object) []string {
	obj, ok := o.(*opsv1.OptimizationOperation)
	if !ok || obj.Spec.ResultTo == nil {
		return nil
	}
	return []string{obj.Spec.ResultTo.Name}
}

// blockedBy lists the resources whose response waits for the ConfigMap cm to go away: another
// object holds the name their spec.resultTo asks for.
func (r *OptimizationOperationReconciler) blockedBy(ctx context.Context, cm client.Object) ([]client.ObjectKey, error) {
	var list opsv1.OptimizationOperationList
	if err := r.List(ctx, &list, client.InNamespace(cm.GetNamespace()), client.MatchingFields{resultToIndex: cm.GetName()}); err != nil {
		return nil, err
	}
	var keys []client.ObjectKey
	for i := range list.Items {
		if o := &list.Items[i]; decide.ResultBlocked(o) {
			keys = append(keys, client.ObjectKeyFromObject(o))
		}
	}
	return keys, nil
}
