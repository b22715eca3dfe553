package emulator

import (
	"fmt"
	"time"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The emulated solver is deliberately trivial: it produces a small response
// that is structurally valid (what a client decodes and an operator stores),
// not a good plan. Every shipment goes to one vehicle, round-robin over the
// vehicles it may use; visits are spaced by fixed travel and visit times.
const (
	emulatedTravel       = 10 * time.Minute // between consecutive stops
	emulatedVisit        = 5 * time.Minute  // when a visit request sets no duration
	emulatedLegMeters    = 1000.0           // distance of every leg
	emulatedCostPerHour  = 1.0              // when a used vehicle has no cost at all
	maxEmulatedVisit     = 24 * time.Hour   // keeps emulated times representable
	maxSolveTimeout      = 1800 * time.Second
	maxLargeSolveTimeout = 3600 * time.Second
	maxBatchModelConfigs = 100
)

// validateOptimizeTours checks the parts of an OptimizeToursRequest the
// emulator relies on, with the limits the production API documents.
func validateOptimizeTours(req *rpb.OptimizeToursRequest) *apiError {
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return errBadField("timeout", err.Error())
		}
		d, limit := t.AsDuration(), maxSolveTimeout
		if req.GetAllowLargeDeadlineDespiteInterruptionRisk() {
			limit = maxLargeSolveTimeout
		}
		if d <= 0 || d > limit {
			return errBadField("timeout", fmt.Sprintf("must be in (0s, %v], got %v", limit, d))
		}
	}
	n := int32(len(req.GetModel().GetVehicles()))
	for i, s := range req.GetModel().GetShipments() {
		for _, v := range s.GetAllowedVehicleIndices() {
			if v < 0 || v >= n {
				return errBadField(fmt.Sprintf("model.shipments[%d].allowed_vehicle_indices", i),
					fmt.Sprintf("vehicle index %d out of range [0, %d)", v, n))
			}
		}
	}
	return nil
}

func validateBatch(req *rpb.BatchOptimizeToursRequest) *apiError {
	cfgs := req.GetModelConfigs()
	if len(cfgs) == 0 {
		return errBadField("model_configs", "at least one model config is required")
	}
	if len(cfgs) > maxBatchModelConfigs {
		return errBadField("model_configs", fmt.Sprintf("at most %d model configs per request, got %d", maxBatchModelConfigs, len(cfgs)))
	}
	for i, c := range cfgs {
		f := fmt.Sprintf("model_configs[%d]", i)
		switch {
		case c.GetInputConfig().GetGcsSource().GetUri() == "":
			return errBadField(f+".input_config.gcs_source.uri", "required")
		case c.GetInputConfig().GetDataFormat() == rpb.DataFormat_DATA_FORMAT_UNSPECIFIED:
			return errBadField(f+".input_config.data_format", "required")
		case c.GetOutputConfig().GetGcsDestination().GetUri() == "":
			return errBadField(f+".output_config.gcs_destination.uri", "required")
		case c.GetOutputConfig().GetDataFormat() == rpb.DataFormat_DATA_FORMAT_UNSPECIFIED:
			return errBadField(f+".output_config.data_format", "required")
		}
	}
	return nil
}

func validateURI(req *rpb.OptimizeToursUriRequest) *apiError {
	switch {
	case req.GetInput().GetUri() == "":
		return errBadField("input.uri", "required")
	case req.GetOutput().GetUri() == "":
		return errBadField("output.uri", "required")
	}
	return nil
}

// solve builds the emulated OptimizeToursResponse for req: one route per
// vehicle, every shipment either assigned or skipped with a reason, and the
// metrics filled in (metrics.totalCost is always positive when anything is
// performed).
func solve(req *rpb.OptimizeToursRequest) *rpb.OptimizeToursResponse {
	model := req.GetModel()
	vehicles := model.GetVehicles()
	start := time.Unix(0, 0).UTC()
	if t := model.GetGlobalStartTime(); t != nil && t.IsValid() {
		start = t.AsTime()
	}

	resp := &rpb.OptimizeToursResponse{RequestLabel: req.GetLabel()}
	assigned := make([][]int, len(vehicles))
	var active []int
	for i, v := range vehicles {
		if !v.GetIgnore() {
			active = append(active, i)
		}
	}
	next := 0
	var penalties float64
	for j, s := range model.GetShipments() {
		v, reason := pickVehicle(s, vehicles, active, &next)
		if reason != rpb.SkippedShipment_Reason_CODE_UNSPECIFIED {
			sk := &rpb.SkippedShipment{Index: int32(j), Label: s.GetLabel(),
				Reasons: []*rpb.SkippedShipment_Reason{{Code: reason}}}
			if s.PenaltyCost != nil && !s.GetIgnore() {
				sk.PenaltyCost = s.PenaltyCost
				penalties += s.GetPenaltyCost()
			}
			resp.SkippedShipments = append(resp.SkippedShipments, sk)
			continue
		}
		assigned[v] = append(assigned[v], j)
	}

	var (
		total    = &rpb.AggregatedMetrics{}
		costs    = map[string]float64{}
		used     int32
		earliest time.Time
		latest   time.Time
	)
	for i, v := range vehicles {
		route := &rpb.ShipmentRoute{VehicleIndex: int32(i), VehicleLabel: v.GetLabel()}
		resp.Routes = append(resp.Routes, route)
		if len(assigned[i]) == 0 {
			continue
		}
		used++
		var visits []*rpb.ShipmentRoute_Visit
		var visitTime time.Duration
		t := start
		for _, j := range assigned[i] {
			s := model.GetShipments()[j]
			for _, leg := range []struct {
				reqs   []*rpb.Shipment_VisitRequest
				pickup bool
			}{{s.GetPickups(), true}, {s.GetDeliveries(), false}} {
				if len(leg.reqs) == 0 {
					continue
				}
				t = t.Add(emulatedTravel)
				d := emulatedVisit
				if vd := leg.reqs[0].GetDuration(); vd != nil && vd.IsValid() && vd.AsDuration() >= 0 {
					d = min(vd.AsDuration(), maxEmulatedVisit)
				}
				visits = append(visits, &rpb.ShipmentRoute_Visit{
					ShipmentIndex: int32(j), IsPickup: leg.pickup, StartTime: timestamppb.New(t),
					ShipmentLabel: s.GetLabel(), VisitLabel: leg.reqs[0].GetLabel(),
				})
				t = t.Add(d)
				visitTime += d
			}
		}
		t = t.Add(emulatedTravel) // back to the end location
		legs := len(visits) + 1
		travel := time.Duration(legs) * emulatedTravel
		meters := float64(legs) * emulatedLegMeters

		route.VehicleStartTime, route.VehicleEndTime = timestamppb.New(start), timestamppb.New(t)
		route.Visits = visits
		route.Metrics = &rpb.AggregatedMetrics{
			PerformedShipmentCount: int32(len(assigned[i])),
			TravelDuration:         durationpb.New(travel),
			VisitDuration:          durationpb.New(visitTime),
			TotalDuration:          durationpb.New(t.Sub(start)),
			TravelDistanceMeters:   meters,
		}
		hours := t.Sub(start).Hours()
		perHour := v.GetCostPerHour()
		if v.GetCostPerHour() == 0 && v.GetCostPerKilometer() == 0 && v.GetCostPerTraveledHour() == 0 && v.GetFixedCost() == 0 {
			perHour = emulatedCostPerHour
		}
		rc := map[string]float64{}
		addCost(rc, "model.vehicles.fixed_cost", v.GetFixedCost())
		addCost(rc, "model.vehicles.cost_per_hour", perHour*hours)
		addCost(rc, "model.vehicles.cost_per_traveled_hour", v.GetCostPerTraveledHour()*travel.Hours())
		addCost(rc, "model.vehicles.cost_per_kilometer", v.GetCostPerKilometer()*meters/1000)
		var routeTotal float64
		for k, c := range rc {
			routeTotal += c
			costs[k] += c
		}
		route.RouteCosts, route.RouteTotalCost = rc, routeTotal

		total.PerformedShipmentCount += int32(len(assigned[i]))
		total.TravelDistanceMeters += meters
		total.TravelDuration = addDuration(total.TravelDuration, travel)
		total.VisitDuration = addDuration(total.VisitDuration, visitTime)
		total.TotalDuration = addDuration(total.TotalDuration, t.Sub(start))
		if earliest.IsZero() || start.Before(earliest) {
			earliest = start
		}
		if t.After(latest) {
			latest = t
		}
	}
	addCost(costs, "model.shipments.penalty_cost", penalties)

	m := &rpb.OptimizeToursResponse_Metrics{AggregatedRouteMetrics: total, UsedVehicleCount: used, Costs: costs}
	for _, c := range costs {
		m.TotalCost += c
	}
	for _, sk := range resp.SkippedShipments {
		if sk.PenaltyCost == nil && !model.GetShipments()[sk.Index].GetIgnore() {
			m.SkippedMandatoryShipmentCount++
		}
	}
	if used > 0 {
		m.EarliestVehicleStartTime, m.LatestVehicleEndTime = timestamppb.New(earliest), timestamppb.New(latest)
	}
	resp.Metrics = m
	return resp
}

// pickVehicle chooses the vehicle for shipment s, or the reason it is
// skipped. next is the round-robin cursor over active.
func pickVehicle(s *rpb.Shipment, vehicles []*rpb.Vehicle, active []int, next *int) (int, rpb.SkippedShipment_Reason_Code) {
	if s.GetIgnore() {
		return 0, rpb.SkippedShipment_Reason_SHIPMENT_IGNORED
	}
	if len(active) == 0 {
		return 0, rpb.SkippedShipment_Reason_NO_VEHICLE
	}
	if allowed := s.GetAllowedVehicleIndices(); len(allowed) > 0 {
		for _, v := range allowed {
			if int(v) < len(vehicles) && !vehicles[v].GetIgnore() {
				return int(v), rpb.SkippedShipment_Reason_CODE_UNSPECIFIED
			}
		}
		return 0, rpb.SkippedShipment_Reason_VEHICLE_NOT_ALLOWED
	}
	v := active[*next%len(active)]
	*next++
	return v, rpb.SkippedShipment_Reason_CODE_UNSPECIFIED
}

func addCost(m map[string]float64, key string, c float64) {
	if c != 0 {
		m[key] += c
	}
}

func addDuration(d *durationpb.Duration, add time.Duration) *durationpb.Duration {
	if d == nil {
		return durationpb.New(add)
	}
	return durationpb.New(d.AsDuration() + add)
}

// sampleRequest is the model behind admin-created OptimizeToursLongRunning
// operations that do not bring their own response: two vehicles, three
// shipments, so the response has routes, visits and costs.
func sampleRequest() *rpb.OptimizeToursRequest {
	visit := func(label string) []*rpb.Shipment_VisitRequest {
		return []*rpb.Shipment_VisitRequest{{Label: label}}
	}
	return &rpb.OptimizeToursRequest{
		Label: "emulator-sample",
		Model: &rpb.ShipmentModel{
			Vehicles: []*rpb.Vehicle{{Label: "vehicle-0", CostPerHour: 40}, {Label: "vehicle-1", CostPerHour: 40}},
			Shipments: []*rpb.Shipment{
				{Label: "shipment-0", Pickups: visit("pickup-0"), Deliveries: visit("delivery-0")},
				{Label: "shipment-1", Deliveries: visit("delivery-1")},
				{Label: "shipment-2", Deliveries: visit("delivery-2")},
			},
		},
	}
}
