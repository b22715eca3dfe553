package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// percentile is the nearest-rank percentile of sorted values (p in [0,1]); zero when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencies summarises durations as "p50 … p99 … max …".
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration {
		if d >= 10*time.Second {
			return d.Round(100 * time.Millisecond)
		}
		return d.Round(time.Millisecond)
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s", r(percentile(s, 0.5)), r(percentile(s, 0.99)), r(s[len(s)-1]))
}

// countDistribution writes how many objects had each count, e.g. "1 write: 990, 2 writes: 10".
func countDistribution(counts []int, unit string) string {
	if len(counts) == 0 {
		return "no objects"
	}
	by := map[int]int{}
	for _, c := range counts {
		by[c]++
	}
	keys := make([]int, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		u := unit
		if k != 1 {
			u += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s: %d", k, u, by[k]))
	}
	return strings.Join(parts, ", ")
}

// mean of counts.
func mean(counts []int) float64 {
	if len(counts) == 0 {
		return 0
	}
	t := 0
	for _, c := range counts {
		t += c
	}
	return float64(t) / float64(len(counts))
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
