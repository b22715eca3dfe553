package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// cancelledStatus is what a successfully cancelled operation carries: code 1
// inside Operation.error; the operation itself is not deleted.
func cancelledStatus() *spb.Status {
	return &spb.Status{Code: int32(codes.Canceled), Message: "Operation was cancelled."}
}

// outcome is how an operation ends: exactly one of response and err is set.
type outcome struct {
	response *anypb.Any
	err      *spb.Status
}

// operation is one emulated long-running operation. Its state is a function
// of the clock: advance moves it to done once the clock passes the planned
// end (or an effective cancel), so nothing has to run in the background.
type operation struct {
	name       string
	kind       string
	seq        uint64 // creation order, for listing and page tokens
	createTime time.Time
	metadata   *anypb.Any
	planned    outcome

	mu              sync.Mutex
	solveEnd        time.Time
	cancelRequested bool
	cancelAt        time.Time // when a supported cancel takes effect; zero if none
	done            bool
	finishTime      time.Time
	final           outcome
	// reads and cancels record the GetOperation and CancelOperation calls
	// that reached this operation, for clients that measure their own load.
	reads, cancels callRecord
	// rendered caches the Operation JSON of the current state, indexed by
	// enum encoding (0 names, 1 numbers). The state changes at most once
	// (running to done), so GETs are served from these bytes.
	rendered [2][]byte
}

// advance brings the state up to now. o.mu must be held.
func (o *operation) advance(now time.Time) {
	if o.done {
		return
	}
	end, res := o.solveEnd, o.planned
	if !o.cancelAt.IsZero() && o.cancelAt.Before(end) {
		end, res = o.cancelAt, outcome{err: cancelledStatus()}
	}
	if now.Before(end) {
		return
	}
	o.done, o.finishTime, o.final = true, end, res
	o.rendered = [2][]byte{}
}

// expired reports whether a finished operation is past retention. o.mu must
// be held and the state advanced.
func (o *operation) expired(now time.Time, retention time.Duration) bool {
	return o.done && !now.Before(o.finishTime.Add(retention))
}

// proto returns the google.longrunning.Operation of the current state.
// o.mu must be held.
func (o *operation) proto() *longrunningpb.Operation {
	p := &longrunningpb.Operation{Name: o.name, Metadata: o.metadata, Done: o.done}
	if o.done {
		if o.final.err != nil {
			p.Result = &longrunningpb.Operation_Error{Error: o.final.err}
		} else {
			p.Result = &longrunningpb.Operation_Response{Response: o.final.response}
		}
	}
	return p
}

// marshalJSON encodes m the way Google's frontends print JSON: two-space
// indentation, fields in proto order, lowerCamelCase names, enums as names or
// (when asked) numbers. protojson deliberately varies its whitespace between
// builds, so its compact output is re-indented with encoding/json to keep
// the bytes stable. Made-up types (see unregisteredAny) resolve here only.
func marshalJSON(m proto.Message, enumNumbers bool) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseEnumNumbers: enumNumbers, Resolver: encodeResolver}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/2)
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// render returns the Operation JSON of the current state. o.mu must be held.
func (o *operation) render(enumNumbers bool) ([]byte, error) {
	i := 0
	if enumNumbers {
		i = 1
	}
	if b := o.rendered[i]; b != nil {
		return b, nil
	}
	b, err := marshalJSON(o.proto(), enumNumbers)
	if err != nil {
		return nil, fmt.Errorf("encode operation %s: %w", o.name, err)
	}
	o.rendered[i] = b
	return b, nil
}

// OperationInfo describes an operation for the admin API.
type OperationInfo struct {
	Name            string    `json:"name"`
	Kind            string    `json:"kind"`
	Done            bool      `json:"done"`
	ErrorCode       int32     `json:"errorCode,omitempty"`
	ErrorMessage    string    `json:"errorMessage,omitempty"`
	CancelRequested bool      `json:"cancelRequested"`
	CreateTime      time.Time `json:"createTime"`
	// EndTime is when the operation finished, or when it is planned to.
	EndTime time.Time `json:"endTime"`
	// ExpireTime is when a finished operation stops being readable.
	ExpireTime *time.Time `json:"expireTime,omitempty"`
	// Reads is the number of GetOperation calls answered for this operation,
	// FirstReadTime and LastReadTime when the first and the last arrived
	// (absent before the first). Calls failed by injected faults or refused
	// before the lookup (auth, validation) never reach an operation and are
	// not counted here, only in the counters.
	Reads         int64      `json:"reads"`
	FirstReadTime *time.Time `json:"firstReadTime,omitempty"`
	LastReadTime  *time.Time `json:"lastReadTime,omitempty"`
	// CancelCalls and FirstCancelTime are the same for CancelOperation,
	// including cancels of an operation already done.
	CancelCalls     int64      `json:"cancelCalls"`
	FirstCancelTime *time.Time `json:"firstCancelTime,omitempty"`
}

// callRecord counts the calls of one method that reached an operation.
type callRecord struct {
	n           int64
	first, last time.Time
}

// note records a call at now. The operation's mu must be held.
func (c *callRecord) note(now time.Time) {
	if c.n == 0 {
		c.first = now
	}
	c.n++
	c.last = now
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// info describes the current state. o.mu must be held.
func (o *operation) info(retention time.Duration) OperationInfo {
	in := OperationInfo{
		Name: o.name, Kind: o.kind, Done: o.done, CancelRequested: o.cancelRequested,
		CreateTime: o.createTime, EndTime: o.solveEnd,
		Reads: o.reads.n, FirstReadTime: timePtr(o.reads.first), LastReadTime: timePtr(o.reads.last),
		CancelCalls: o.cancels.n, FirstCancelTime: timePtr(o.cancels.first),
	}
	if !o.cancelAt.IsZero() && o.cancelAt.Before(o.solveEnd) {
		in.EndTime = o.cancelAt
	}
	if o.done {
		in.EndTime = o.finishTime
		exp := o.finishTime.Add(retention)
		in.ExpireTime = &exp
		if o.final.err != nil {
			in.ErrorCode, in.ErrorMessage = o.final.err.Code, o.final.err.Message
		}
	}
	return in
}

// kindTypes binds an operation kind to its metadata and response messages.
type kindTypes struct {
	method   string
	metadata proto.Message
	response func() proto.Message
}

var kinds = map[string]kindTypes{
	KindOptimizeToursLongRunning: {
		method:   MethodOptimizeToursLongRunning,
		metadata: &routeoptimizationpb.OptimizeToursLongRunningMetadata{},
		response: func() proto.Message { return &routeoptimizationpb.OptimizeToursResponse{} },
	},
	KindBatchOptimizeTours: {
		method:   MethodBatchOptimizeTours,
		metadata: &routeoptimizationpb.BatchOptimizeToursMetadata{},
		response: func() proto.Message { return &routeoptimizationpb.BatchOptimizeToursResponse{} },
	},
	KindOptimizeToursURI: {
		method:   MethodOptimizeToursURI,
		metadata: &routeoptimizationpb.OptimizeToursUriMetadata{},
		response: func() proto.Message { return &routeoptimizationpb.OptimizeToursUriResponse{} },
	},
}

// mustAny packs a message the emulator built itself; the routeoptimization
// types are linked in, so this cannot fail.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("emulator: pack %T: %v", m, err))
	}
	return a
}
