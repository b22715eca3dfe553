package emulator

import (
	"fmt"
	"strings"
)

// faultSlot locates the entry of a Faults configuration that a call used:
// the global Methods (project "") or one project's, under key (a method name
// or AllMethods). Counting faults (FailNext, HangNext) count down there.
type faultSlot struct {
	project, key string
}

// stream names the random stream of a call of method that drew from this
// slot. Global entries keep the method's name as their stream, so that a seed
// gives the sequences it gave before projects had faults of their own; a
// project's entries draw from a stream of their own, untouched by the
// traffic of other projects.
func (s faultSlot) stream(method string) string {
	if s.project == "" {
		return method
	}
	return "projects/" + s.project + "/" + method
}

// store writes back an entry whose counters changed; fi.mu must be held.
func (fi *faultInjector) store(at faultSlot, mf MethodFault) {
	if at.project == "" {
		fi.faults.Methods[at.key] = mf
		return
	}
	fi.faults.Projects[at.project][at.key] = mf
}

// projectOf returns the project a /v1 call addresses: the {p} of an
// operation name projects/{p}/locations/{l}/operations/{id}, of a submit
// method's parent projects/{p}[/locations/{l}], or of a list's collection.
// Names under operations/** belong to no project (""), and only global faults
// apply to them.
func projectOf(name string) string {
	rest, ok := strings.CutPrefix(name, "projects/")
	if !ok {
		return ""
	}
	p, _, _ := strings.Cut(rest, "/")
	return p
}

// validateProjects checks Faults.Projects as Validate checks Methods.
func validateProjects(projects map[string]map[string]MethodFault) error {
	for p, byMethod := range projects {
		if !validSegment(p) {
			return fmt.Errorf("faults: project %q is not a valid project ID", clip(p))
		}
		if err := (Faults{Methods: byMethod}).Validate(); err != nil {
			return fmt.Errorf("faults: project %s: %s", p, strings.TrimPrefix(err.Error(), "faults: "))
		}
	}
	return nil
}

func cloneProjects(projects map[string]map[string]MethodFault) map[string]map[string]MethodFault {
	if projects == nil {
		return nil
	}
	c := make(map[string]map[string]MethodFault, len(projects))
	for p, byMethod := range projects {
		m := make(map[string]MethodFault, len(byMethod))
		for k, v := range byMethod {
			m[k] = v
		}
		c[p] = m
	}
	return c
}
