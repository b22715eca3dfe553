package emulator_test

import (
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"

	"github.com/routeopt/routeopt-operator/internal/emulator"
)

const (
	futureMetadata = "type.googleapis.com/google.maps.routeoptimization.v2.FutureMetadata"
	futureResponse = "type.googleapis.com/google.maps.routeoptimization.v2.FutureResponse"
	futureDetail   = "type.googleapis.com/google.rpc.FutureDetail"
)

// TestUnregisteredTypesOnTheWire: the admin API puts messages of types no client knows into
// metadata, response and error.details, encoded like any other Any (@type plus fields).
func TestUnregisteredTypesOnTheWire(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	tests := []struct {
		name  string
		req   emulator.CreateOperationRequest
		field func(op map[string]any) map[string]any
		want  string
	}{
		{"metadata", emulator.CreateOperationRequest{MetadataTypeURL: futureMetadata, Duration: time.Hour},
			func(op map[string]any) map[string]any { m, _ := op["metadata"].(map[string]any); return m }, futureMetadata},
		{"response", emulator.CreateOperationRequest{ResponseTypeURL: futureResponse},
			func(op map[string]any) map[string]any { m, _ := op["response"].(map[string]any); return m }, futureResponse},
		{"error detail", emulator.CreateOperationRequest{ErrorCode: 9, ErrorMessage: "input not found", ErrorDetailTypeURL: futureDetail},
			func(op map[string]any) map[string]any {
				errObj, _ := op["error"].(map[string]any)
				d := asSlice(errObj["details"])
				if len(d) != 1 {
					return nil
				}
				m, _ := d[0].(map[string]any)
				return m
			}, futureDetail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, err := e.admin.CreateOperation(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			code, _, op := call(t, "GET", e.url+"/v1/"+name, "")
			if code != 200 {
				t.Fatalf("GET: HTTP %d %v", code, op)
			}
			got := tc.field(op)
			if got["@type"] != tc.want || got["note"] == nil || got["progressPercent"] != float64(42) {
				t.Errorf("%s = %v, want @type %s with note and progressPercent", tc.name, got, tc.want)
			}
			// What makes such an operation a test case: the official client cannot decode it.
			if _, err := e.lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: name}); err == nil {
				t.Errorf("the official client decoded an operation with an unknown %s type", tc.name)
			}
		})
	}
}

func TestUnregisteredTypesValidation(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	ctx := testContext(t)
	for _, tc := range []struct {
		name string
		req  emulator.CreateOperationRequest
	}{
		{"a known type", emulator.CreateOperationRequest{MetadataTypeURL: "type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse"}},
		{"not a type URL", emulator.CreateOperationRequest{MetadataTypeURL: "FutureMetadata"}},
		{"no package", emulator.CreateOperationRequest{ResponseTypeURL: "type.googleapis.com/Future"}},
		{"bad name", emulator.CreateOperationRequest{ResponseTypeURL: "type.googleapis.com/a..b"}},
		{"detail without error", emulator.CreateOperationRequest{ErrorDetailTypeURL: futureDetail}},
		{"response with error", emulator.CreateOperationRequest{ErrorCode: 3, ResponseTypeURL: futureResponse}},
		{"two responses", emulator.CreateOperationRequest{Response: []byte(`{}`), ResponseTypeURL: futureResponse}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.CreateOperation(ctx, tc.req)
			var ae *emulator.AdminError
			if !errors.As(err, &ae) || ae.StatusCode != 400 {
				t.Errorf("CreateOperation = %v, want 400 INVALID_ARGUMENT", err)
			}
		})
	}
}
