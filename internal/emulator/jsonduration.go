package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// strictUnmarshal decodes JSON rejecting unknown fields, so that a typo in
// an admin request ("unavailableRate") is an error rather than silently ignored.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// The admin API writes durations as Go duration strings ("2s", "1m30s",
// "3.5s") so that JSON written by hand or by curl reads naturally. A bare
// number would be ambiguous (seconds? nanoseconds?) and is rejected.

// jsonDuration is a time.Duration with string JSON encoding.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	*d = jsonDuration(v)
	return nil
}

func durPtr(d *time.Duration) *jsonDuration { return (*jsonDuration)(d) }

type configJSON struct {
	CancelMode          *CancelMode   `json:"cancelMode,omitempty"`
	CancelDelay         *jsonDuration `json:"cancelDelay,omitempty"`
	BatchDuration       *jsonDuration `json:"batchDuration,omitempty"`
	LongRunningDuration *jsonDuration `json:"longRunningDuration,omitempty"`
	Retention           *jsonDuration `json:"retention,omitempty"`
	RequireToken        *bool         `json:"requireToken,omitempty"`
	// A pointer so that an explicitly empty list survives the round trip
	// (it means "accept any token"), while nil means "unchanged".
	AcceptedTokens *[]string `json:"acceptedTokens,omitempty"`
}

// MarshalJSON writes durations as strings.
func (c Config) MarshalJSON() ([]byte, error) {
	j := configJSON{
		CancelMode:          c.CancelMode,
		CancelDelay:         durPtr(c.CancelDelay),
		BatchDuration:       durPtr(c.BatchDuration),
		LongRunningDuration: durPtr(c.LongRunningDuration),
		Retention:           durPtr(c.Retention),
		RequireToken:        c.RequireToken,
	}
	if c.AcceptedTokens != nil {
		j.AcceptedTokens = &c.AcceptedTokens
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations written as strings.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*c = Config{
		CancelMode:          j.CancelMode,
		CancelDelay:         (*time.Duration)(j.CancelDelay),
		BatchDuration:       (*time.Duration)(j.BatchDuration),
		LongRunningDuration: (*time.Duration)(j.LongRunningDuration),
		Retention:           (*time.Duration)(j.Retention),
		RequireToken:        j.RequireToken,
	}
	if j.AcceptedTokens != nil {
		c.AcceptedTokens = *j.AcceptedTokens
		if c.AcceptedTokens == nil {
			c.AcceptedTokens = []string{}
		}
	}
	return nil
}

type methodFaultJSON struct {
	Unavailable       float64      `json:"unavailable,omitempty"`
	ResourceExhausted float64      `json:"resourceExhausted,omitempty"`
	Internal          float64      `json:"internal,omitempty"`
	PermissionDenied  float64      `json:"permissionDenied,omitempty"`
	Cancelled         float64      `json:"cancelled,omitempty"`
	RequestTimeout    float64      `json:"requestTimeout,omitempty"`
	NoStatus          bool         `json:"noStatus,omitempty"`
	RetryDelay        jsonDuration `json:"retryDelay,omitzero"`
	Latency           jsonDuration `json:"latency,omitzero"`
	FailNext          int          `json:"failNext,omitempty"`
	Hang              float64      `json:"hang,omitempty"`
	HangNext          int          `json:"hangNext,omitempty"`
}

// MarshalJSON writes durations as strings.
func (f MethodFault) MarshalJSON() ([]byte, error) {
	return json.Marshal(methodFaultJSON{
		Unavailable: f.Unavailable, ResourceExhausted: f.ResourceExhausted,
		Internal: f.Internal, PermissionDenied: f.PermissionDenied,
		Cancelled: f.Cancelled, RequestTimeout: f.RequestTimeout, NoStatus: f.NoStatus,
		RetryDelay: jsonDuration(f.RetryDelay), Latency: jsonDuration(f.Latency), FailNext: f.FailNext,
		Hang: f.Hang, HangNext: f.HangNext,
	})
}

// UnmarshalJSON reads durations written as strings.
func (f *MethodFault) UnmarshalJSON(b []byte) error {
	var j methodFaultJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*f = MethodFault{
		Unavailable: j.Unavailable, ResourceExhausted: j.ResourceExhausted,
		Internal: j.Internal, PermissionDenied: j.PermissionDenied,
		Cancelled: j.Cancelled, RequestTimeout: j.RequestTimeout, NoStatus: j.NoStatus,
		RetryDelay: time.Duration(j.RetryDelay), Latency: time.Duration(j.Latency), FailNext: j.FailNext,
		Hang: j.Hang, HangNext: j.HangNext,
	}
	return nil
}
