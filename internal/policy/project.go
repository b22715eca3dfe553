package policy

import "strings"

// ProjectOf is the project a resource name or parent names: p in "projects/p/..." ("" when
// it names none, as "operations/..." does). Quota is counted per project, so the reactions to
// RESOURCE_EXHAUSTED and the submit cap are kept per project.
func ProjectOf(name string) string {
	rest, ok := strings.CutPrefix(name, "projects/")
	if !ok {
		return ""
	}
	project, _, _ := strings.Cut(rest, "/")
	return project
}
