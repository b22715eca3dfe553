package controllers

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// received drains what rc woke, waiting for want keys.
func received(t *testing.T, rc *recovery, want int) []string {
	t.Helper()
	var got []string
	for len(got) < want {
		select {
		case ev := <-rc.wake:
			got = append(got, ev.Object.Namespace+"/"+ev.Object.Name)
		case <-time.After(10 * time.Second):
			t.Fatalf("woke %d of %d: %v", len(got), want, got)
		}
	}
	return got
}

func TestRecoveryWakesBackingOffResourcesOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rc := newRecovery()
	// Three resources fail, newest first; a fourth fails and then succeeds; a fifth fails
	// permanently (a retry cannot help it).
	for i, key := range []string{"ns/c", "ns/b", "ns/a", "ns/d"} {
		rc.failed(key, t0.Add(time.Duration(10-i)*time.Second), false)
	}
	rc.failed("ns/gone", t0.Add(time.Second), true)
	const tracked = 200 // twenty successes in a row are needed
	rc.succeeded("ns/d", t0.Add(20*time.Second), tracked)
	for i := range recoveredAfter(tracked) - 2 {
		rc.succeeded(fmt.Sprintf("ns/other-%d", i), t0.Add(21*time.Second), tracked)
	}
	if rc.woken("ns/a") || len(rc.wake) != 0 {
		t.Fatal("woken before the run of successes was complete")
	}
	rc.failed("ns/e", t0.Add(21*time.Second), false) // a failure breaks the run
	rc.succeeded("ns/e", t0.Add(22*time.Second), tracked)
	for i := range recoveredAfter(tracked) - 1 {
		rc.succeeded(fmt.Sprintf("ns/other-%d", i), t0.Add(23*time.Second), tracked)
	}
	got := received(t, rc, 3)
	if want := []string{"ns/a", "ns/b", "ns/c"}; !slices.Equal(got, want) {
		t.Errorf("woke %v, want %v (oldest failure first; nothing that succeeded since or failed permanently)", got, want)
	}
	for key, want := range map[string]bool{"ns/a": true, "ns/c": true, "ns/d": false, "ns/gone": false} {
		if rc.woken(key) != want {
			t.Errorf("woken(%s) = %v, want %v", key, !want, want)
		}
	}
	// ns/a fails again after its wake: it keeps its backoff, and a second outage and recovery
	// do not wake it again until it has succeeded once.
	rc.failed("ns/a", t0.Add(30*time.Second), false)
	if rc.woken("ns/a") {
		t.Error("a resource that failed after its wake still reads as woken")
	}
	rc.failed("ns/f", t0.Add(31*time.Second), false)
	for range recoveredAfter(tracked) {
		rc.succeeded("ns/other", t0.Add(40*time.Second), tracked)
	}
	if got := received(t, rc, 1); got[0] != "ns/f" {
		t.Errorf("second recovery woke %v, want only ns/f", got)
	}
	// More successes without a new failure wake nobody again.
	for range 40 {
		rc.succeeded("ns/other", t0.Add(50*time.Second), tracked)
	}
	time.Sleep(10 * time.Millisecond) // a wrongly started sender would have sent by now
	if n := len(rc.wake); n != 0 {
		t.Errorf("%d more wakes", n)
	}
}

func TestRecoveredAfterScalesWithResources(t *testing.T) {
	for tracked, want := range map[int]int{0: 1, 3: 1, 25: 2, 200: 20, 10000: 20} {
		if got := recoveredAfter(tracked); got != want {
			t.Errorf("recoveredAfter(%d) = %d, want %d", tracked, got, want)
		}
	}
}
