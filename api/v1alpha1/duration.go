package v1alpha1

import (
	"fmt"
	"time"
)

// Duration is a Go duration string such as 30s, 5m or 1h30m.
//
// It is a plain string, not metav1.Duration, so that decoding an object never fails: a value
// the API server stored but Go cannot represent (one written before today's validation rules,
// kept by validation ratcheting) is then reported on that object alone by Parse, instead of
// breaking the operator's watch, and so its work, for every object in the namespace.
// +kubebuilder:validation:Type=string
type Duration string

// Parse returns the duration, or an error that names the value.
func (d Duration) Parse() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a Go duration such as 30s, 5m or 1h30m: %w", string(d), err)
	}
	if v <= 0 {
		return 0, fmt.Errorf("%q is not positive", string(d))
	}
	return v, nil
}

// DurationOf formats d for a spec field.
func DurationOf(d time.Duration) *Duration {
	s := Duration(d.String())
	return &s
}
