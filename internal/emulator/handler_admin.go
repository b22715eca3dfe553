package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
)

// The admin API lives under /emulator/v1/, never under /v1/, so it cannot
// collide with (or be mistaken for) anything Google serves.
const (
	adminPrefix    = "/emulator/v1/"
	maxAdminBody   = 16 << 20
	defaultProject = "demo-project"
)

// CreateOperationRequest asks the admin API for an operation with a chosen
// name, duration and outcome. In JSON: {"name", "project", "location",
// "kind", "duration": "10s", "errorCode", "errorMessage", "response",
// "metadataTypeUrl", "responseTypeUrl", "errorDetailTypeUrl"}.
type CreateOperationRequest struct {
	// Name is the full operation name; empty generates one under Project
	// (default "demo-project") and Location (default "global").
	Name     string
	Project  string
	Location string
	// Kind is KindOptimizeToursLongRunning (default), KindBatchOptimizeTours
	// or KindOptimizeToursURI; it selects the metadata and response types.
	Kind string
	// Duration until the operation is done; 0 means done at once.
	Duration time.Duration
	// ErrorCode 0 makes the operation succeed with a response of the kind's
	// type; otherwise it ends with this google.rpc code (1..16).
	ErrorCode    int32
	ErrorMessage string
	// Response optionally replaces the default response: protojson of the
	// kind's response message (for example an OptimizeToursResponse).
	Response json.RawMessage
	// MetadataTypeURL, ResponseTypeURL and ErrorDetailTypeURL put a message of
	// a type no client knows (as Google may add) into the metadata, the
	// response (instead of the kind's), or error.details (after the error;
	// needs ErrorCode). Each is a type URL such as
	// "type.googleapis.com/google.maps.routeoptimization.v2.FutureMetadata";
	// the message has the fields "note" and "progressPercent".
	MetadataTypeURL    string
	ResponseTypeURL    string
	ErrorDetailTypeURL string
}

type createOperationJSON struct {
	Name         string          `json:"name,omitempty"`
	Project      string          `json:"project,omitempty"`
	Location     string          `json:"location,omitempty"`
	Kind         string          `json:"kind,omitempty"`
	Duration     jsonDuration    `json:"duration,omitzero"`
	ErrorCode    int32           `json:"errorCode,omitempty"`
	ErrorMessage string          `json:"errorMessage,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"`

	MetadataTypeURL    string `json:"metadataTypeUrl,omitempty"`
	ResponseTypeURL    string `json:"responseTypeUrl,omitempty"`
	ErrorDetailTypeURL string `json:"errorDetailTypeUrl,omitempty"`
}

// MarshalJSON writes Duration as a string such as "10s".
func (c CreateOperationRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(createOperationJSON{c.Name, c.Project, c.Location, c.Kind,
		jsonDuration(c.Duration), c.ErrorCode, c.ErrorMessage, c.Response,
		c.MetadataTypeURL, c.ResponseTypeURL, c.ErrorDetailTypeURL})
}

// UnmarshalJSON reads Duration written as a string.
func (c *CreateOperationRequest) UnmarshalJSON(b []byte) error {
	var j createOperationJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*c = CreateOperationRequest{j.Name, j.Project, j.Location, j.Kind,
		time.Duration(j.Duration), j.ErrorCode, j.ErrorMessage, j.Response,
		j.MetadataTypeURL, j.ResponseTypeURL, j.ErrorDetailTypeURL}
	return nil
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	var err *apiError
	switch {
	case rest == "operations" && r.Method == http.MethodGet:
		err = s.adminListOperations(w)
	case rest == "operations" && r.Method == http.MethodPost:
		err = s.adminCreateOperation(w, r)
	case strings.HasPrefix(rest, "operations/"):
		err = s.adminOperation(w, r, strings.TrimPrefix(rest, "operations/"))
	case rest == "counters" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.Counters())
	case rest == "calls" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.Calls())
	case rest == "callRecords" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.CallRecords())
	case rest == "solves" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.Solves())
	case rest == "faults" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.faults.get())
	case rest == "faults" && r.Method == http.MethodPut:
		var f Faults
		if err = decodeAdmin(r, &f); err == nil {
			if e := s.SetFaults(f); e != nil {
				err = newError(codes.InvalidArgument, "%v", e)
			} else {
				err = writeAdminJSON(w, s.faults.get())
			}
		}
	case rest == "config" && r.Method == http.MethodGet:
		err = writeAdminJSON(w, s.settings.Load().config())
	case rest == "config" && r.Method == http.MethodPut:
		var c Config
		if err = decodeAdmin(r, &c); err == nil {
			if e := s.SetConfig(c); e != nil {
				err = newError(codes.InvalidArgument, "%v", e)
			} else {
				err = writeAdminJSON(w, s.settings.Load().config())
			}
		}
	case rest == "reset" && r.Method == http.MethodPost:
		s.Reset()
		writeJSON(w, http.StatusOK, emptyJSON)
	default:
		err = newError(codes.NotFound, "No admin method %s %s.", r.Method, clip(r.URL.Path))
	}
	if err != nil {
		writeError(w, err)
	}
}

// adminOperation serves GET operations/{name}, POST operations/{name}:finish
// and POST operations/{name}:expire.
func (s *Server) adminOperation(w http.ResponseWriter, r *http.Request, rest string) *apiError {
	name, verb := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		name, verb = rest[:i], rest[i+1:]
	}
	if !validOperationName(name) {
		return errInvalidName(name)
	}
	switch {
	case verb == "" && r.Method == http.MethodGet:
	case (verb == "finish" || verb == "expire") && r.Method == http.MethodPost:
	default:
		return newError(codes.NotFound, "No admin method %s %s.", r.Method, clip(r.URL.Path))
	}
	cfg := s.settings.Load()
	now := s.now()
	op, aerr := s.lockLive(name, now, cfg.retention)
	if aerr != nil {
		return aerr
	}
	switch verb {
	case "finish":
		// Complete with the planned outcome now, overriding a pending
		// delayed cancel.
		if !op.done {
			op.solveEnd, op.cancelAt = now, time.Time{}
			op.advance(now)
		}
	case "expire":
		op.mu.Unlock()
		s.store.remove(op)
		writeJSON(w, http.StatusOK, emptyJSON)
		return nil
	}
	in := op.info(cfg.retention)
	op.mu.Unlock()
	return writeAdminJSON(w, in)
}

func (s *Server) adminListOperations(w http.ResponseWriter) *apiError {
	cfg := s.settings.Load()
	now := s.now()
	out := struct {
		Operations []OperationInfo `json:"operations"`
	}{Operations: []OperationInfo{}}
	for _, op := range s.store.all() {
		op.mu.Lock()
		op.advance(now)
		expired := op.expired(now, cfg.retention)
		in := op.info(cfg.retention)
		op.mu.Unlock()
		if expired {
			s.store.remove(op)
			continue
		}
		out.Operations = append(out.Operations, in)
	}
	return writeAdminJSON(w, out)
}

func (s *Server) adminCreateOperation(w http.ResponseWriter, r *http.Request) *apiError {
	var req CreateOperationRequest
	if err := decodeAdmin(r, &req); err != nil {
		return err
	}
	in, err := s.createFromAdmin(req)
	if err != nil {
		return err
	}
	return writeAdminJSON(w, in)
}

// createFromAdmin creates an operation as the admin API describes it.
func (s *Server) createFromAdmin(req CreateOperationRequest) (OperationInfo, *apiError) {
	if req.Kind == "" {
		req.Kind = KindOptimizeToursLongRunning
	}
	kt, ok := kinds[req.Kind]
	if !ok {
		return OperationInfo{}, errBadField("kind", fmt.Sprintf("unknown kind %q (want %s, %s or %s)",
			clip(req.Kind), KindOptimizeToursLongRunning, KindBatchOptimizeTours, KindOptimizeToursURI))
	}
	if req.Duration < 0 {
		return OperationInfo{}, errBadField("duration", "must not be negative")
	}
	p := parent{project: req.Project, location: req.Location}
	if p.project == "" {
		p.project = defaultProject
	}
	if p.location == "" {
		p.location = defaultLocation
	}
	if req.Name != "" && !validOperationName(req.Name) {
		return OperationInfo{}, errInvalidName(req.Name)
	}
	if req.Name == "" && (!validSegment(p.project) || !validSegment(p.location)) {
		return OperationInfo{}, errBadField("project", "project and location must be valid name segments")
	}

	var planned outcome
	switch {
	case req.ErrorCode != 0 && req.ResponseTypeURL != "":
		return OperationInfo{}, errBadField("responseTypeUrl", "an operation ends with an error or a response, not both")
	case req.ErrorCode == 0 && req.ErrorDetailTypeURL != "":
		return OperationInfo{}, errBadField("errorDetailTypeUrl", "needs errorCode: details belong to the error")
	case len(req.Response) > 0 && req.ResponseTypeURL != "":
		return OperationInfo{}, errBadField("responseTypeUrl", "replaces the response; give response or responseTypeUrl, not both")
	case req.ErrorCode != 0:
		if req.ErrorCode < 1 || req.ErrorCode > 16 {
			return OperationInfo{}, errBadField("errorCode", fmt.Sprintf("must be a google.rpc.Code in 1..16, got %d", req.ErrorCode))
		}
		msg := req.ErrorMessage
		if msg == "" {
			msg = "Emulated failure: " + code.Code_name[req.ErrorCode]
			if req.ErrorCode == int32(codes.Canceled) {
				msg = cancelledStatus().Message
			}
		}
		planned.err = &spb.Status{Code: req.ErrorCode, Message: msg}
		if req.ErrorDetailTypeURL != "" {
			d, aerr := unregisteredAny("errorDetailTypeUrl", req.ErrorDetailTypeURL)
			if aerr != nil {
				return OperationInfo{}, aerr
			}
			planned.err.Details = append(planned.err.Details, d)
		}
	case req.ResponseTypeURL != "":
		r, aerr := unregisteredAny("responseTypeUrl", req.ResponseTypeURL)
		if aerr != nil {
			return OperationInfo{}, aerr
		}
		planned.response = r
	case len(req.Response) > 0:
		m := kt.response()
		if err := decodeOptions.Unmarshal(req.Response, m); err != nil {
			return OperationInfo{}, errBadField("response", fmt.Sprintf("not a valid %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
		}
		if _, err := protojson.Marshal(m); err != nil {
			return OperationInfo{}, errBadField("response", err.Error())
		}
		planned.response = mustAny(m)
	default:
		planned.response = mustAny(defaultResponse(req.Kind))
	}
	var metadata *anypb.Any
	if req.MetadataTypeURL != "" {
		var aerr *apiError
		if metadata, aerr = unregisteredAny("metadataTypeUrl", req.MetadataTypeURL); aerr != nil {
			return OperationInfo{}, aerr
		}
	}

	op, aerr := s.createOperation(req.Name, p, req.Kind, metadata, req.Duration, planned)
	if aerr != nil {
		return OperationInfo{}, aerr
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.info(s.settings.Load().retention), nil
}

// defaultResponse is the success response of admin-created operations.
func defaultResponse(kind string) proto.Message {
	switch kind {
	case KindBatchOptimizeTours:
		return kinds[kind].response()
	case KindOptimizeToursURI:
		return &rpb.OptimizeToursUriResponse{Output: &rpb.Uri{Uri: "gs://emulator-bucket/output.json"}}
	default:
		return solve(sampleRequest())
	}
}

func decodeAdmin(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(codes.InvalidArgument, "Invalid admin request body: %v", err)
	}
	return nil
}

func writeAdminJSON(w http.ResponseWriter, v any) *apiError {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return newError(codes.Internal, "encode admin response: %v", err)
	}
	writeJSON(w, http.StatusOK, append(b, '\n'))
	return nil
}
