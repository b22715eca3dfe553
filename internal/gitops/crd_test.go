package gitops_test

import (
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// upstreamDescriptions are the schema paths whose descriptions controller-gen copies from
// k8s.io/apimachinery's types (TypeMeta, metav1.Condition), whose comments this repository does
// not write.
var upstreamDescriptions = map[string]bool{
	".apiVersion": true,
	".kind":       true,
	".metadata":   true,
	".status.conditions[].lastTransitionTime": true,
	".status.conditions[].message":            true,
	".status.conditions[].observedGeneration": true,
	".status.conditions[].reason":             true,
	".status.conditions[].status":             true,
	".status.conditions[].type":               true,
}

// descriptions returns every description of the schema by its path.
func descriptions(path string, s *apiextensionsv1.JSONSchemaProps, out map[string]string) {
	if s == nil {
		return
	}
	if s.Description != "" {
		out[path] = s.Description
	}
	for name, p := range s.Properties {
		descriptions(path+"."+name, &p, out)
	}
	if s.Items != nil {
		descriptions(path+"[]", s.Items.Schema, out)
	}
	if s.AdditionalProperties != nil {
		descriptions(path+"{}", s.AdditionalProperties.Schema, out)
	}
}

// TestCRDDescriptionsHaveNoHardLineBreaks checks that kubectl explain can wrap every description
// the API's Go comments produce: controller-gen keeps a comment's line breaks, which kubectl
// explain prints as ragged breaks inside its own wrapping. A paragraph is one comment line;
// paragraphs are separated by an empty comment line ("\n\n"); only list items ("- ", "* ") may
// start a line of their own.
func TestCRDDescriptionsHaveNoHardLineBreaks(t *testing.T) {
	crd := readCRD(t)
	all := map[string]string{}
	descriptions("", crd.Spec.Versions[0].Schema.OpenAPIV3Schema, all)
	if len(all) < 50 {
		t.Fatalf("found %d descriptions in the CRD", len(all))
	}
	var paths []string
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	checked := 0
	for _, path := range paths {
		if upstreamDescriptions[path] {
			continue
		}
		checked++
		for para := range strings.SplitSeq(all[path], "\n\n") {
			lines := strings.Split(para, "\n")
			for _, l := range lines[1:] {
				if !strings.HasPrefix(l, "- ") && !strings.HasPrefix(l, "* ") {
					t.Errorf("%s: a line break inside a paragraph, before %q: write each paragraph of its Go comment on one line", path, l)
					break
				}
			}
			if strings.TrimSpace(para) == "" {
				t.Errorf("%s: an empty paragraph (more than one empty comment line)", path)
			}
		}
	}
	t.Logf("%d descriptions, %d written here and checked", len(all), checked)
}

// TestPollIntervalDescribesItsDefault checks that kubectl explain optop.spec.pollInterval tells
// what happens when it is not set.
func TestPollIntervalDescribesItsDefault(t *testing.T) {
	desc := readCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["pollInterval"].Description
	for _, want := range []string{"--max-poll-interval", "--min-poll-interval", "age"} {
		if !strings.Contains(desc, want) {
			t.Errorf("spec.pollInterval's description does not mention %s:\n%s", want, desc)
		}
	}
}
