package policy

import "testing"

func TestProjectOf(t *testing.T) {
	for parent, want := range map[string]string{
		"projects/my-project":                   "my-project",
		"projects/my-project/locations/global":  "my-project",
		"projects/123456789/locations/us-east1": "123456789",
		"projects/":                             "",
		"operations/abc":                        "",
		"":                                      "",
		"my-project":                            "",
	} {
		if got := ProjectOf(parent); got != want {
			t.Errorf("ProjectOf(%q) = %q, want %q", parent, got, want)
		}
	}
}
