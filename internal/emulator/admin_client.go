package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// AdminClient calls the emulator's admin API. The zero HTTPClient means
// http.DefaultClient.
type AdminClient struct {
	BaseURL    string // like "http://127.0.0.1:8085"
	HTTPClient *http.Client
}

// AdminError is a non-2xx answer of the admin API.
type AdminError struct {
	StatusCode int    // HTTP status
	Status     string // google.rpc code name, e.g. "NOT_FOUND"
	Message    string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("emulator admin: %d %s: %s", e.StatusCode, e.Status, e.Message)
}

// CreateOperation creates an operation and returns its name.
func (c *AdminClient) CreateOperation(ctx context.Context, req CreateOperationRequest) (string, error) {
	var in OperationInfo
	if err := c.do(ctx, http.MethodPost, "operations", req, &in); err != nil {
		return "", err
	}
	return in.Name, nil
}

// GetOperation describes one operation.
func (c *AdminClient) GetOperation(ctx context.Context, name string) (OperationInfo, error) {
	var in OperationInfo
	err := c.do(ctx, http.MethodGet, "operations/"+name, nil, &in)
	return in, err
}

// ListOperations describes every live operation, in creation order.
func (c *AdminClient) ListOperations(ctx context.Context) ([]OperationInfo, error) {
	var out struct {
		Operations []OperationInfo `json:"operations"`
	}
	if err := c.do(ctx, http.MethodGet, "operations", nil, &out); err != nil {
		return nil, err
	}
	return out.Operations, nil
}

// Expire drops an operation now, as if its retention had passed: a GET then
// answers 404.
func (c *AdminClient) Expire(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "operations/"+name+":expire", nil, nil)
}

// Finish completes a running operation now with its planned outcome.
func (c *AdminClient) Finish(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "operations/"+name+":finish", nil, nil)
}

// Counters returns the per-method request counters by HTTP status.
func (c *AdminClient) Counters(ctx context.Context) (Counters, error) {
	var out Counters
	err := c.do(ctx, http.MethodGet, "counters", nil, &out)
	return out, err
}

// Calls returns the /v1 calls per second of the emulator's clock, by method.
func (c *AdminClient) Calls(ctx context.Context) (CallHistogram, error) {
	var out CallHistogram
	err := c.do(ctx, http.MethodGet, "calls", nil, &out)
	return out, err
}

// Solves returns the solves the submit methods started, by method, request
// hash and label.
func (c *AdminClient) Solves(ctx context.Context) (SolveCounters, error) {
	var out SolveCounters
	err := c.do(ctx, http.MethodGet, "solves", nil, &out)
	return out, err
}

// SetFaults replaces the fault configuration.
func (c *AdminClient) SetFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, http.MethodPut, "faults", f, nil)
}

// Faults returns the fault configuration (FailNext counts what remains).
func (c *AdminClient) Faults(ctx context.Context) (Faults, error) {
	var out Faults
	err := c.do(ctx, http.MethodGet, "faults", nil, &out)
	return out, err
}

// SetConfig applies a partial configuration change (nil fields unchanged).
func (c *AdminClient) SetConfig(ctx context.Context, cfg Config) error {
	return c.do(ctx, http.MethodPut, "config", cfg, nil)
}

// Config returns the full current configuration.
func (c *AdminClient) Config(ctx context.Context) (Config, error) {
	var out Config
	err := c.do(ctx, http.MethodGet, "config", nil, &out)
	return out, err
}

// Reset clears operations, counters (solves included) and faults and
// restores the startup configuration.
func (c *AdminClient) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "reset", nil, nil)
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	u := strings.TrimRight(c.BaseURL, "/") + adminPrefix + (&url.URL{Path: path}).EscapedPath()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emulator admin %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("emulator admin %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("emulator admin %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &AdminError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		var env envelope
		if json.Unmarshal(b, &env) == nil && env.Error.Status != "" {
			ae.Status, ae.Message = env.Error.Status, env.Error.Message
		}
		return fmt.Errorf("emulator admin %s %s: %w", method, path, ae)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("emulator admin %s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// IsNotFound reports whether err is an admin NOT_FOUND answer.
func IsNotFound(err error) bool {
	var ae *AdminError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// CallRecords returns the latest /v1 calls one by one, in order of arrival,
// with when each arrived and how it ended.
func (c *AdminClient) CallRecords(ctx context.Context) (CallRecords, error) {
	var out CallRecords
	err := c.do(ctx, http.MethodGet, "callRecords", nil, &out)
	return out, err
}

// SetProjectFaults replaces the fault configuration with faults that apply to
// the calls of one project only.
func (c *AdminClient) SetProjectFaults(ctx context.Context, project string, byMethod map[string]MethodFault) error {
	return c.SetFaults(ctx, Faults{Projects: map[string]map[string]MethodFault{project: byMethod}})
}
