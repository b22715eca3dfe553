package emulator

import (
	"bytes"
	"encoding/json"
	"testing"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestSolve(t *testing.T) {
	penalty := 5.0
	tests := []struct {
		name                   string
		req                    *rpb.OptimizeToursRequest
		routes, skipped, usedV int
		wantCost               bool
	}{
		{"empty", &rpb.OptimizeToursRequest{}, 0, 0, 0, false},
		{"sample", sampleRequest(), 2, 0, 2, true},
		{"no vehicles", &rpb.OptimizeToursRequest{Model: &rpb.ShipmentModel{
			Shipments: []*rpb.Shipment{{PenaltyCost: &penalty}, {}},
		}}, 0, 2, 0, true},
		{"more vehicles than shipments", &rpb.OptimizeToursRequest{Model: &rpb.ShipmentModel{
			Vehicles:  []*rpb.Vehicle{{FixedCost: 10}, {}, {}},
			Shipments: []*rpb.Shipment{{Deliveries: []*rpb.Shipment_VisitRequest{{}}}},
		}}, 3, 0, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := solve(tc.req)
			if len(resp.GetRoutes()) != tc.routes || len(resp.GetSkippedShipments()) != tc.skipped ||
				int(resp.GetMetrics().GetUsedVehicleCount()) != tc.usedV || (resp.GetMetrics().GetTotalCost() > 0) != tc.wantCost {
				t.Fatalf("solve = routes %d skipped %d used %d cost %v",
					len(resp.GetRoutes()), len(resp.GetSkippedShipments()), resp.GetMetrics().GetUsedVehicleCount(), resp.GetMetrics().GetTotalCost())
			}
			// Every shipment is accounted for exactly once.
			seen := map[int32]int{}
			for _, r := range resp.GetRoutes() {
				for _, v := range r.GetVisits() {
					if !v.GetIsPickup() || len(tc.req.GetModel().GetShipments()[v.GetShipmentIndex()].GetDeliveries()) == 0 {
						seen[v.GetShipmentIndex()]++
					}
				}
			}
			for _, s := range resp.GetSkippedShipments() {
				seen[s.GetIndex()]++
			}
			for i := range tc.req.GetModel().GetShipments() {
				if seen[int32(i)] != 1 {
					t.Errorf("shipment %d accounted %d times", i, seen[int32(i)])
				}
			}
			// The response survives the wire.
			b, err := protojson.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			back := &rpb.OptimizeToursResponse{}
			if err := protojson.Unmarshal(b, back); err != nil || !proto.Equal(back, resp) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// TestMarshalJSONStable checks the encoding is canonical two-space JSON, not
// protojson's deliberately build-dependent whitespace.
func TestMarshalJSONStable(t *testing.T) {
	b, err := marshalJSON(solve(sampleRequest()), false)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := json.Indent(&again, bytes.TrimSpace(b), "", "  "); err != nil {
		t.Fatal(err)
	}
	if again.String()+"\n" != string(b) {
		t.Fatalf("not canonical:\n%s", b)
	}
	if !bytes.Contains(b, []byte("\n  \"routes\": [\n")) {
		t.Fatalf("unexpected layout:\n%s", b)
	}
}
