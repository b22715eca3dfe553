// Package shard splits the OptimizationOperations of a cluster across several managers by a
// label, the way Flux shards its controllers: each shard's manager watches only the resources
// whose shard label names it (--watch-label-selector=ops.routeopt.dev/shard=NAME), and the
// default manager those without the label (--watch-label-selector='!ops.routeopt.dev/shard').
//
// A resource labelled with a shard that no manager runs is then tracked by nobody. The default
// manager, told the shards that exist (--known-shards), counts such resources in
// routeopt_unselected_operations and logs when they appear and when they are gone.
package shard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// Label is the label whose value names the shard that tracks a resource. A resource without it
// belongs to the default manager.
const Label = "ops.routeopt.dev/shard"

// DefaultLeaderElectionID is the name of the Lease of a manager that watches every resource.
const DefaultLeaderElectionID = "routeopt-operator.ops.routeopt.dev"

// Flags are the manager's sharding flags as given on its command line.
type Flags struct {
	// WatchLabelSelector is --watch-label-selector; empty watches every resource.
	WatchLabelSelector string
	// LeaderElectionID is --leader-election-id (empty: DefaultLeaderElectionID), and
	// LeaderElectionIDGiven whether it was given rather than defaulted.
	LeaderElectionID      string
	LeaderElectionIDGiven bool
	// KnownShards is --known-shards, and KnownShardsGiven whether it was given (an empty list
	// given counts every labelled resource).
	KnownShards      string
	KnownShardsGiven bool
}

// Settings are what the flags mean for the manager.
type Settings struct {
	// Watch restricts the manager's cache of OptimizationOperations; nil watches all.
	Watch labels.Selector
	// LeaderElectionID names the manager's Lease.
	LeaderElectionID string
	// Unselected selects the resources that no known shard tracks; nil when --known-shards
	// was not given, and nothing is counted.
	Unselected labels.Selector
}

// Settings interprets the flags. A manager with a selector and no --leader-election-id gets
// an id of its own (LeaderElectionID), so that two shards never share a Lease.
func (f Flags) Settings() (Settings, error) {
	s := Settings{LeaderElectionID: f.LeaderElectionID}
	if s.LeaderElectionID == "" {
		s.LeaderElectionID = DefaultLeaderElectionID
	}
	if strings.TrimSpace(f.WatchLabelSelector) != "" {
		sel, err := labels.Parse(f.WatchLabelSelector)
		if err != nil {
			return Settings{}, fmt.Errorf("--watch-label-selector %q: %w", f.WatchLabelSelector, err)
		}
		if !sel.Empty() {
			s.Watch = sel
		}
	}
	if s.Watch != nil && !f.LeaderElectionIDGiven {
		s.LeaderElectionID = LeaderElectionID(s.LeaderElectionID, s.Watch)
	}
	if errs := validation.IsDNS1123Subdomain(s.LeaderElectionID); len(errs) > 0 {
		return Settings{}, fmt.Errorf("--leader-election-id %q is not a valid Lease name: %s", s.LeaderElectionID, strings.Join(errs, "; "))
	}
	if f.KnownShardsGiven {
		known, err := ParseKnown(f.KnownShards)
		if err != nil {
			return Settings{}, fmt.Errorf("--known-shards: %w", err)
		}
		if s.Unselected, err = UnselectedSelector(known); err != nil {
			return Settings{}, fmt.Errorf("--known-shards: %w", err)
		}
	}
	return s, nil
}

// ParseKnown parses --known-shards: comma-separated shard names, each a valid label value.
// Blanks around names and empty entries are dropped, and the result is sorted without repeats.
func ParseKnown(s string) ([]string, error) {
	var known []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if errs := validation.IsValidLabelValue(name); len(errs) > 0 {
			return nil, fmt.Errorf("shard name %q is not a valid label value: %s", name, strings.Join(errs, "; "))
		}
		known = append(known, name)
	}
	slices.Sort(known)
	return slices.Compact(known), nil
}

// UnselectedSelector selects the resources that carry the shard label with a value none of the
// known shards selects: "ops.routeopt.dev/shard,ops.routeopt.dev/shard notin (known...)", or
// every labelled resource when no shard is known. An empty value counts as unknown: the default
// manager does not select it either, since the label is present.
func UnselectedSelector(known []string) (labels.Selector, error) {
	has, err := labels.NewRequirement(Label, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	sel := labels.NewSelector().Add(*has)
	if len(known) == 0 {
		return sel, nil
	}
	notIn, err := labels.NewRequirement(Label, selection.NotIn, known)
	if err != nil {
		return nil, err
	}
	return sel.Add(*notIn), nil
}

// LeaderElectionID returns the id of the Lease of a manager that watches only sel: base with a
// short hash of the selector, so that managers with different selectors (shards) never share a
// Lease, and replicas of one shard always do. Equivalent spellings of one selector ("a=b" and
// "a = b") give the same id.
func LeaderElectionID(base string, sel labels.Selector) string {
	sum := sha256.Sum256([]byte(sel.String()))
	return base + "-" + hex.EncodeToString(sum[:5])
}

// maxExamples bounds the resources a log line names.
const maxExamples = 3

// +kubebuilder:rbac:groups=ops.routeopt.dev,resources=optimizationoperations,verbs=list

// Checker counts, on the leader, the resources that no shard selects: a manager.Runnable.
// It lists metadata only, page by page, straight from the API server (the manager's cache
// holds only what this manager selects).
type Checker struct {
	// Reader lists from the API server: the manager's API reader, not its cache.
	Reader client.Reader
	// Selector selects the unselected resources (UnselectedSelector).
	Selector labels.Selector
	// Namespaces limits the count to these namespaces (--watch-namespaces); empty counts in
	// all of them.
	Namespaces []string
	// Interval between two counts; the first runs at once.
	Interval time.Duration
	// PageSize is the number of resources a list request asks for.
	PageSize int64
	// Gauge is set to the count after each successful one.
	Gauge prometheus.Gauge

	last int // the count of the last successful check
}

// NeedLeaderElection makes only the leader count.
func (c *Checker) NeedLeaderElection() bool { return true }

// Start counts at once and then every Interval until ctx ends.
func (c *Checker) Start(ctx context.Context) error {
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithName("shard"))
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		c.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check counts once, sets the gauge and logs (to ctx's logger) when the count leaves zero or
// returns to it.
func (c *Checker) Check(ctx context.Context) {
	log := logf.FromContext(ctx)
	n, examples, err := c.count(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Error(err, "Cannot count the OptimizationOperations that no shard selects", "selector", c.Selector.String())
		}
		return
	}
	c.Gauge.Set(float64(n))
	switch {
	case n > 0 && c.last == 0:
		log.Info("OptimizationOperations carry a shard label that no known shard selects: no manager tracks them. "+
			"Relabel them, or run that shard and add it to --known-shards.",
			"count", n, "examples", examples, "selector", c.Selector.String())
	case n == 0 && c.last > 0:
		log.Info("Every OptimizationOperation with a shard label is selected by a known shard again", "selector", c.Selector.String())
	}
	c.last = n
}

// count lists the unselected resources' metadata and returns how many there are and the
// namespace/name of the first few.
func (c *Checker) count(ctx context.Context) (int, []string, error) {
	namespaces := c.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	n := 0
	var examples []string
	for _, ns := range namespaces {
		token := ""
		for {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(opsv1.GroupVersion.WithKind("OptimizationOperationList"))
			opts := []client.ListOption{
				client.MatchingLabelsSelector{Selector: c.Selector},
				client.Limit(c.PageSize), client.Continue(token),
			}
			if ns != metav1.NamespaceAll {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.Reader.List(ctx, list, opts...); err != nil {
				return 0, nil, fmt.Errorf("list OptimizationOperations (%s) in %q: %w", c.Selector, ns, err)
			}
			n += len(list.Items)
			for i := range list.Items {
				if len(examples) == maxExamples {
					break
				}
				examples = append(examples, list.Items[i].Namespace+"/"+list.Items[i].Name)
			}
			if token = list.Continue; token == "" {
				break
			}
		}
	}
	return n, examples, nil
}
