package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// maxRequestBytes is the production request size limit (100 MB).
const maxRequestBytes = 100 << 20

// List paging bounds.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// decodeOptions decode request bodies strictly, like Google's frontends: an
// unknown field is an INVALID_ARGUMENT, not silently dropped.
var decodeOptions = protojson.UnmarshalOptions{DiscardUnknown: false}

// statusWriter remembers the status written, for counters and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) serveGoogle(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r.Method, r.URL.Path)
	if rt == nil {
		writeError(w, newError(codes.NotFound, "The requested URL %s was not found on this server.", clip(r.URL.Path)))
		return
	}
	start := time.Now()
	// Arrival, not completion, is when a client spent the call: injected
	// latency must not move it into a later second.
	arrived := s.now()
	s.calls.add(rt.method, arrived)
	rec := s.records.arrive(rt.method, rt.name, arrived)
	sw := &statusWriter{ResponseWriter: w}
	hung := s.handleGoogle(sw, r, rt)
	switch {
	case hung:
		sw.status = StatusNoAnswer
	case sw.status == 0:
		sw.status = http.StatusOK
	}
	s.counters.add(rt.method, sw.status)
	s.records.answer(rec, sw.status, s.now())

	level := slog.LevelInfo
	if rt.method == MethodGetOperation || rt.method == MethodListOperations {
		level = slog.LevelDebug // polling traffic
	}
	s.log.LogAttrs(r.Context(), level, "request",
		slog.String("method", rt.method), slog.String("name", rt.name),
		slog.Int("status", sw.status), slog.Duration("elapsed", time.Since(start)))
	if hung {
		// Close the connection without an answer (net/http neither logs nor
		// answers a handler aborted so).
		panic(http.ErrAbortHandler)
	}
}

// StatusNoAnswer is the status under which Counters count the calls the hang
// fault served and never answered.
const StatusNoAnswer = 0

// handleGoogle runs the stages every /v1 call goes through: injected
// latency, authentication, injected faults, request validation, then the
// method itself. It reports whether the call hung: it was served, its answer
// dropped, and held until the client gave up.
func (s *Server) handleGoogle(w http.ResponseWriter, r *http.Request, rt *route) (hung bool) {
	cfg := s.settings.Load()
	project := projectOf(rt.name)
	if d := s.faults.latencyFor(project, rt.method); d > 0 {
		sleep(r.Context(), d)
	}
	if err := authorize(r, cfg, rt.method); err != nil {
		writeError(w, err)
		return false
	}
	v := s.faults.decideFor(project, rt.method)
	if v.err != nil {
		writeError(w, v.err)
		return false
	}
	if v.hang {
		s.serveMethod(&droppedAnswer{header: http.Header{}}, r, rt, cfg)
		// Read what the method left of the body: net/http notices that the client
		// went away (and ends r.Context()) only once the body is consumed.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBytes))
		sleep(r.Context(), MaxHang)
		return true
	}
	s.serveMethod(w, r, rt, cfg)
	return false
}

// droppedAnswer is a ResponseWriter that drops the answer.
type droppedAnswer struct{ header http.Header }

func (d *droppedAnswer) Header() http.Header         { return d.header }
func (d *droppedAnswer) Write(b []byte) (int, error) { return len(b), nil }
func (d *droppedAnswer) WriteHeader(int)             {}

// serveMethod validates the route and serves the method.
func (s *Server) serveMethod(w http.ResponseWriter, r *http.Request, rt *route, cfg *settings) {
	if rt.invalid != nil {
		writeError(w, rt.invalid)
		return
	}
	var err *apiError
	switch rt.method {
	case MethodGetOperation:
		err = s.getOperation(w, r, rt.name, cfg)
	case MethodCancelOperation:
		err = s.cancelOperation(w, r, rt.name, cfg)
	case MethodDeleteOperation:
		err = s.deleteOperation(w, rt.name, cfg)
	case MethodListOperations:
		err = s.listOperations(w, r, rt.name, cfg)
	case MethodOptimizeTours:
		err = s.optimizeTours(w, r)
	default:
		err = s.createFromRequest(w, r, rt, cfg)
	}
	if err != nil {
		writeError(w, err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// wantEnumNumbers reports whether the caller asked for enums as numbers, as
// Google's Go REST clients do with "$alt=json;enum-encoding=int".
func wantEnumNumbers(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	return strings.Contains(r.URL.Query().Get("$alt"), "enum-encoding=int")
}

// lockLive returns the named operation, advanced to now and locked, or
// NOT_FOUND when it does not exist or is past retention (in which case it is
// dropped). The caller must unlock op.mu.
func (s *Server) lockLive(name string, now time.Time, retention time.Duration) (*operation, *apiError) {
	op := s.store.get(name)
	if op == nil {
		return nil, errNotFound(name)
	}
	op.mu.Lock()
	op.advance(now)
	if op.expired(now, retention) {
		op.mu.Unlock()
		s.store.remove(op)
		return nil, errNotFound(name)
	}
	return op, nil
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request, name string, cfg *settings) *apiError {
	now := s.now()
	op, aerr := s.lockLive(name, now, cfg.retention)
	if aerr != nil {
		return aerr
	}
	op.reads.note(now)
	b, err := op.render(wantEnumNumbers(r))
	op.mu.Unlock()
	if err != nil {
		return newError(codes.Internal, "%v", err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

var emptyJSON = []byte("{}\n")

func errMethodUnimplemented(method string) *apiError {
	return newError(codes.Unimplemented, "Method %s is not implemented.", rpcName(method))
}

func (s *Server) cancelOperation(w http.ResponseWriter, r *http.Request, name string, cfg *settings) *apiError {
	// The REST binding declares an empty body, but Google's Go client sends
	// {"name": "..."}; accept both, strictly otherwise.
	body, aerr := readBody(w, r)
	if aerr != nil {
		return aerr
	}
	req := &longrunningpb.CancelOperationRequest{}
	if aerr := decodeBody(body, req); aerr != nil {
		return aerr
	}
	if req.GetName() != "" && req.GetName() != name {
		return errBadField("name", "body name \""+clip(req.GetName())+"\" does not match the URL")
	}
	if cfg.cancelMode == CancelUnimplemented {
		return errMethodUnimplemented(MethodCancelOperation)
	}
	if cfg.cancelMode == CancelNotFound && strings.HasPrefix(name, "projects/") {
		return newError(codes.NotFound, "Operation %s not found.", clip(name))
	}
	now := s.now()
	op, aerr := s.lockLive(name, now, cfg.retention)
	if aerr != nil {
		return aerr
	}
	op.cancels.note(now)
	// Cancelling a finished operation succeeds and changes nothing.
	if !op.done {
		op.cancelRequested = true
		if cfg.cancelMode == CancelSupported && op.cancelAt.IsZero() {
			op.cancelAt = now.Add(cfg.cancelDelay)
			op.advance(now) // with no delay the operation is done right away
		}
	}
	op.mu.Unlock()
	writeJSON(w, http.StatusOK, emptyJSON)
	return nil
}

func (s *Server) deleteOperation(w http.ResponseWriter, name string, cfg *settings) *apiError {
	if cfg.cancelMode != CancelSupported {
		return errMethodUnimplemented(MethodDeleteOperation)
	}
	op, aerr := s.lockLive(name, s.now(), cfg.retention)
	if aerr != nil {
		return aerr
	}
	op.mu.Unlock()
	s.store.remove(op)
	writeJSON(w, http.StatusOK, emptyJSON)
	return nil
}

// listQuery is a parsed ListOperations query string.
type listQuery struct {
	pageSize int
	after    uint64 // sequence number of the last operation already returned
	done     *bool  // filter on done; nil for no filter
}

func parseListQuery(r *http.Request) (listQuery, *apiError) {
	q := r.URL.Query()
	lq := listQuery{pageSize: defaultPageSize}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return lq, errBadField("page_size", "must be a non-negative integer, got \""+clip(v)+"\"")
		}
		if n > 0 {
			lq.pageSize = int(min(n, maxPageSize))
		}
	}
	if v := q.Get("pageToken"); v != "" {
		after, ok := decodePageToken(v)
		if !ok {
			return lq, errBadField("page_token", "invalid page token")
		}
		lq.after = after
	}
	if v := q.Get("returnPartialSuccess"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return lq, errBadField("return_partial_success", "must be true or false")
		}
	}
	done, ok := parseDoneFilter(q.Get("filter"))
	if !ok {
		return lq, errBadField("filter", "only \"done=true\" and \"done=false\" are supported, got \""+clip(q.Get("filter"))+"\"")
	}
	lq.done = done
	return lq, nil
}

// parseDoneFilter accepts "", "done=true" and "done=false", with optional
// spaces around '=' and either ':' (AIP-160 has) as the comparator.
func parseDoneFilter(f string) (*bool, bool) {
	f = strings.TrimSpace(f)
	if f == "" {
		return nil, true
	}
	field, value, ok := strings.Cut(f, "=")
	if !ok {
		field, value, ok = strings.Cut(f, ":")
	}
	if !ok || strings.TrimSpace(field) != "done" {
		return nil, false
	}
	switch strings.TrimSpace(value) {
	case "true":
		v := true
		return &v, true
	case "false":
		v := false
		return &v, true
	}
	return nil, false
}

const pageTokenPrefix = "after:"

func encodePageToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatUint(seq, 10)))
}

func decodePageToken(tok string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	v, ok := strings.CutPrefix(string(b), pageTokenPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request, prefix string, cfg *settings) *apiError {
	if cfg.cancelMode != CancelSupported {
		return errMethodUnimplemented(MethodListOperations)
	}
	lq, aerr := parseListQuery(r)
	if aerr != nil {
		return aerr
	}
	now := s.now()
	resp := &longrunningpb.ListOperationsResponse{}
	var last uint64
	for _, op := range s.store.all() {
		if op.seq <= lq.after || !strings.HasPrefix(op.name, prefix) {
			continue
		}
		op.mu.Lock()
		op.advance(now)
		expired := op.expired(now, cfg.retention)
		var p *longrunningpb.Operation
		if !expired && (lq.done == nil || *lq.done == op.done) {
			p = op.proto()
		}
		op.mu.Unlock()
		if expired {
			s.store.remove(op)
			continue
		}
		if p == nil {
			continue
		}
		if len(resp.Operations) == lq.pageSize {
			resp.NextPageToken = encodePageToken(last)
			break
		}
		resp.Operations = append(resp.Operations, p)
		last = op.seq
	}
	return writeProto(w, resp, wantEnumNumbers(r))
}

func writeProto(w http.ResponseWriter, m proto.Message, enumNumbers bool) *apiError {
	b, err := marshalJSON(m, enumNumbers)
	if err != nil {
		return newError(codes.Internal, "encode response: %v", err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// readBody reads a request body up to the production size limit.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return nil, newError(codes.InvalidArgument, "Request payload size exceeds the limit: %d bytes.", maxRequestBytes)
		}
		return nil, newError(codes.InvalidArgument, "Cannot read request body: %v", err)
	}
	return b, nil
}

// decodeBody decodes a JSON request body into m. An empty body is an empty
// message, as with HTTP transcoding.
func decodeBody(body []byte, m proto.Message) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := decodeOptions.Unmarshal(body, m); err != nil {
		msg := "Invalid JSON payload received. " + err.Error()
		return newError(codes.InvalidArgument, "%s", msg).
			withDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Description: msg}}})
	}
	return nil
}

// optimizeTours serves the synchronous method: the emulated solve is
// answered at once.
func (s *Server) optimizeTours(w http.ResponseWriter, r *http.Request) *apiError {
	body, aerr := readBody(w, r)
	if aerr != nil {
		return aerr
	}
	req := &rpb.OptimizeToursRequest{}
	if aerr := decodeBody(body, req); aerr != nil {
		return aerr
	}
	if aerr := validateOptimizeTours(req); aerr != nil {
		return aerr
	}
	resp := solve(req)
	if _, err := protojson.Marshal(resp); err != nil {
		return errBadField("model", "the model yields times outside the representable range: "+err.Error())
	}
	return writeProto(w, resp, wantEnumNumbers(r))
}

// createFromRequest serves the three LRO-creating methods.
func (s *Server) createFromRequest(w http.ResponseWriter, r *http.Request, rt *route, cfg *settings) *apiError {
	body, aerr := readBody(w, r)
	if aerr != nil {
		return aerr
	}
	p, _ := parseParent(rt.name) // validated by parseRoute

	var (
		kind     string
		duration time.Duration
		response proto.Message
		request  proto.Message // for the solve counters
		labels   []string
	)
	switch rt.method {
	case MethodOptimizeToursLongRunning:
		req := &rpb.OptimizeToursRequest{}
		if aerr := decodeBody(body, req); aerr != nil {
			return aerr
		}
		if aerr := validateOptimizeTours(req); aerr != nil {
			return aerr
		}
		kind, duration, response = KindOptimizeToursLongRunning, cfg.longRunningDuration, solve(req)
		if t := req.GetTimeout(); t != nil {
			duration = s.solveTime(cfg, t.AsDuration())
		}
		req.Parent, request, labels = rt.name, req, []string{req.GetLabel()}
	case MethodBatchOptimizeTours:
		req := &rpb.BatchOptimizeToursRequest{}
		if aerr := decodeBody(body, req); aerr != nil {
			return aerr
		}
		if aerr := validateBatch(req); aerr != nil {
			return aerr
		}
		kind, duration, response = KindBatchOptimizeTours, cfg.batchDuration, &rpb.BatchOptimizeToursResponse{}
		req.Parent, request = rt.name, req
		for _, c := range req.GetModelConfigs() {
			labels = append(labels, c.GetDisplayName())
		}
	case MethodOptimizeToursURI:
		req := &rpb.OptimizeToursUriRequest{}
		if aerr := decodeBody(body, req); aerr != nil {
			return aerr
		}
		if aerr := validateURI(req); aerr != nil {
			return aerr
		}
		kind, duration = KindOptimizeToursURI, cfg.longRunningDuration
		response = &rpb.OptimizeToursUriResponse{Output: &rpb.Uri{Uri: req.GetOutput().GetUri()}}
		req.Parent, request = rt.name, req
	default:
		return newError(codes.Internal, "no handler for %s", rt.method)
	}
	// Catch responses protojson cannot encode (timestamps out of range)
	// now, as a bad request, rather than failing every later GET.
	if _, err := protojson.Marshal(response); err != nil {
		return errBadField("model", "the model yields times outside the representable range: "+err.Error())
	}

	op, aerr := s.createOperation("", p, kind, nil, duration, outcome{response: mustAny(response)})
	if aerr != nil {
		return aerr
	}
	s.solves.add(rt.method, requestHash(request), labels)
	op.mu.Lock()
	b, err := op.render(wantEnumNumbers(r))
	op.mu.Unlock()
	if err != nil {
		return newError(codes.Internal, "%v", err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// createOperation stores a new operation. An empty name is generated under
// p; a given name must be free (ALREADY_EXISTS otherwise). A nil metadata
// means the kind's.
func (s *Server) createOperation(name string, p parent, kind string, metadata *anypb.Any, duration time.Duration, planned outcome) (*operation, *apiError) {
	kt, ok := kinds[kind]
	if !ok {
		return nil, errBadField("kind", "unknown operation kind \""+clip(kind)+"\"")
	}
	if metadata == nil {
		metadata = mustAny(kt.metadata)
	}
	now := s.now()
	op := &operation{
		kind: kind, createTime: now, metadata: metadata, planned: planned,
		solveEnd: now.Add(duration),
	}
	if name != "" {
		op.name = name
		if !s.store.insert(op) {
			// The name may belong to an operation past retention that no
			// read has dropped yet; it is free again.
			if old, aerr := s.lockLive(name, now, s.settings.Load().retention); aerr == nil {
				old.mu.Unlock()
				return nil, newError(codes.AlreadyExists, "Operation %s already exists.", name)
			}
			if !s.store.insert(op) {
				return nil, newError(codes.AlreadyExists, "Operation %s already exists.", name)
			}
		}
	} else {
		for {
			op.name = p.operationName(s.newID())
			if s.store.insert(op) {
				break
			}
		}
	}
	op.mu.Lock()
	op.advance(now) // a zero duration is done at once
	op.mu.Unlock()
	s.maybeSweep()
	return op, nil
}
