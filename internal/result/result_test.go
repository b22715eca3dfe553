package result_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/result"
)

func owner() *opsv1.OptimizationOperation {
	o := &opsv1.OptimizationOperation{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "nightly", UID: "uid-1"}}
	o.Spec.ResultTo = &opsv1.ResultTarget{Name: "nightly-result"}
	return o
}

// response has n routes, each with a label of labelBytes random characters (random, so that
// compression cannot shrink it much).
func response(t *testing.T, n, labelBytes int) (*routeoptimizationpb.OptimizeToursResponse, *anypb.Any) {
	t.Helper()
	resp := &routeoptimizationpb.OptimizeToursResponse{RequestLabel: "test",
		Metrics: &routeoptimizationpb.OptimizeToursResponse_Metrics{TotalCost: 12.5, UsedVehicleCount: int32(n)}}
	for i := range n {
		b := make([]byte, labelBytes*3/4)
		_, _ = rand.Read(b)
		resp.Routes = append(resp.Routes, &routeoptimizationpb.ShipmentRoute{VehicleIndex: int32(i),
			VehicleLabel: fmt.Sprintf("van-%d-%s", i, base64.RawURLEncoding.EncodeToString(b))})
	}
	a, err := anypb.New(resp)
	if err != nil {
		t.Fatal(err)
	}
	return resp, a
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name       string
		routes     int
		labelBytes int
		key        string
	}{
		{"small, as is", 3, 10, opsv1.ResultKeyJSON},
		{"large, compressed", 2000, 200, opsv1.ResultKeyGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, a := response(t, tc.routes, tc.labelBytes)
			e, err := result.Encode(a)
			if err != nil {
				t.Fatal(err)
			}
			if e.Key != tc.key {
				t.Fatalf("key %s, want %s (%d bytes of JSON)", e.Key, tc.key, e.JSONBytes)
			}
			cm := result.ConfigMap(owner(), "operations/1", e)
			if cm.Immutable == nil || !*cm.Immutable {
				t.Error("the ConfigMap is not immutable")
			}
			ref := metav1.GetControllerOf(cm)
			if ref == nil || ref.UID != "uid-1" || ref.Kind != "OptimizationOperation" || ref.BlockOwnerDeletion != nil {
				t.Errorf("owner reference %+v, want the resource as controller, not blocking its deletion", cm.OwnerReferences)
			}
			if got := len(cm.Data) + len(cm.BinaryData); got != 1 {
				t.Errorf("%d keys, want 1", got)
			}
			got, err := result.Decode(cm)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Error("the decoded response differs from the one encoded")
			}
			if c := result.Check(cm, "uid-1"); c != result.Complete {
				t.Errorf("Check = %d, want Complete", c)
			}
			if c := result.Check(cm, "uid-2"); c != result.Foreign {
				t.Errorf("Check for another resource = %d, want Foreign", c)
			}
			cut := cm.DeepCopy()
			if e.Compressed() {
				cut.BinaryData[e.Key] = cut.BinaryData[e.Key][:len(cut.BinaryData[e.Key])/2]
			} else {
				cut.Data[e.Key] = cut.Data[e.Key][:len(cut.Data[e.Key])/2]
			}
			if c := result.Check(cut, "uid-1"); c != result.Incomplete {
				t.Errorf("Check of a cut value = %d, want Incomplete", c)
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	_, a := response(t, 6000, 300) // about 1.8 MB of random text
	_, err := result.Encode(a)
	var tooLarge *result.TooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("Encode = %v, want a TooLargeError", err)
	}
	if tooLarge.CompressedBytes <= opsv1.ResultMaxBytes {
		t.Errorf("compressed to %d bytes, which fits", tooLarge.CompressedBytes)
	}
	t.Log(err)
}

func TestEncodeNotTours(t *testing.T) {
	a, err := anypb.New(&routeoptimizationpb.BatchOptimizeToursResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := result.Encode(a); !errors.Is(err, result.ErrNotTours) {
		t.Errorf("Encode = %v, want ErrNotTours", err)
	}
}
