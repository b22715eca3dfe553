package emulator

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// sequenceIn is sequence for the calls of one project.
func sequenceIn(fi *faultInjector, project, method string, n int) []codes.Code {
	out := make([]codes.Code, n)
	for i := range out {
		switch v := fi.decideFor(project, method); {
		case v.err != nil:
			out[i] = v.err.code
		case v.hang:
			out[i] = hangs
		}
	}
	return out
}

func TestProjectOf(t *testing.T) {
	for name, want := range map[string]string{
		"projects/p1/locations/global/operations/42": "p1",
		"projects/p2":                        "p2",
		"projects/p3/locations/europe-west1": "p3",
		"projects/p4/locations/l/":           "p4", // a list's name prefix
		"operations/42":                      "",
		"":                                   "", // a list of every operation
	} {
		if got := projectOf(name); got != want {
			t.Errorf("projectOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// A project's entries win over the global ones, for its calls only; within a project, as
// globally, a method's own entry wins over "*"; FailAll still fails everything.
func TestProjectFaultPrecedence(t *testing.T) {
	fi := newFaultInjector(1, Faults{
		Methods: map[string]MethodFault{
			AllMethods:         {Internal: 1},
			MethodGetOperation: {Latency: time.Second},
		},
		Projects: map[string]map[string]MethodFault{
			"p1": {MethodGetOperation: {ResourceExhausted: 1, RetryDelay: 20 * time.Second, Latency: 2 * time.Second}},
			"p2": {AllMethods: {FailNext: 1}},
		},
	})
	for _, tc := range []struct {
		project, method string
		want            []codes.Code
		latency         time.Duration
	}{
		{"p1", MethodGetOperation, []codes.Code{codes.ResourceExhausted, codes.ResourceExhausted}, 2 * time.Second},
		// p1 has no entry for cancels, and no "*": the global ones apply.
		{"p1", MethodCancelOperation, []codes.Code{codes.Internal, codes.Internal}, 0},
		{"p2", MethodGetOperation, []codes.Code{codes.Unavailable, codes.OK, codes.OK}, 0},
		{"p3", MethodGetOperation, []codes.Code{codes.OK}, time.Second},
		{"", MethodCancelOperation, []codes.Code{codes.Internal}, 0},
	} {
		lat := fi.latencyFor(tc.project, tc.method)
		if got := sequenceIn(fi, tc.project, tc.method, len(tc.want)); !equalCodes(got, tc.want) || lat != tc.latency {
			t.Errorf("%s in project %q: %v after %s, want %v after %s", tc.method, tc.project, got, lat, tc.want, tc.latency)
		}
	}
	if err := fi.decideFor("p1", MethodGetOperation).err; err == nil || !strings.Contains(string(err.encode()), `"retryDelay": "20s"`) {
		t.Errorf("p1's RESOURCE_EXHAUSTED does not carry its retryDelay of 20s: %s", err.encode())
	}
	// FailNext counted down in p2's own entry, not in the global one.
	got := fi.get()
	if left := got.Projects["p2"][AllMethods].FailNext; left != 0 {
		t.Errorf("p2's FailNext left = %d, want 0", left)
	}
	if _, ok := got.Methods[AllMethods]; !ok || len(got.Methods) != 2 {
		t.Errorf("global entries changed: %+v", got.Methods)
	}
	fi.set(Faults{FailAll: true, Projects: map[string]map[string]MethodFault{"p1": {AllMethods: {}}}})
	if err := fi.decideFor("p1", MethodGetOperation).err; err == nil || err.code != codes.Unavailable {
		t.Errorf("FailAll with a quiet p1 entry = %v, want UNAVAILABLE", err)
	}
	fi.set(Faults{Projects: map[string]map[string]MethodFault{"p1": {AllMethods: {Unavailable: 1}}}})
	if got := sequenceIn(fi, "p2", MethodGetOperation, 2); !equalCodes(got, []codes.Code{codes.OK, codes.OK}) {
		t.Errorf("p2 with only p1's faults = %v, want OK", got)
	}
}

// A project's random stream depends on the seed and that project's calls only.
func TestProjectFaultsDeterministicUnderSeed(t *testing.T) {
	f := Faults{
		Methods:  map[string]MethodFault{AllMethods: {Unavailable: 0.5}},
		Projects: map[string]map[string]MethodFault{"p1": {AllMethods: {Unavailable: 0.3, ResourceExhausted: 0.3}}},
	}
	a, b := newFaultInjector(7, f), newFaultInjector(7, f)
	sequenceIn(b, "", MethodGetOperation, 17)
	sequenceIn(b, "p2", MethodGetOperation, 5)
	sa, sb := sequenceIn(a, "p1", MethodGetOperation, 200), sequenceIn(b, "p1", MethodGetOperation, 200)
	if !equalCodes(sa, sb) {
		t.Fatal("p1's sequence moved with traffic of other projects")
	}
	// The global stream is the one the method had before projects existed.
	global := sequence(newFaultInjector(7, Faults{Methods: f.Methods}), MethodGetOperation, 50)
	if got := sequenceIn(newFaultInjector(7, f), "p9", MethodGetOperation, 50); !equalCodes(got, global) {
		t.Error("a project without entries does not get the global sequence")
	}
}

func TestProjectFaultsValidate(t *testing.T) {
	for _, tc := range []struct {
		f    Faults
		want string
	}{
		{Faults{Projects: map[string]map[string]MethodFault{"p/1": {}}}, "not a valid project ID"},
		{Faults{Projects: map[string]map[string]MethodFault{"": {}}}, "not a valid project ID"},
		{Faults{Projects: map[string]map[string]MethodFault{"p1": {"Nope": {}}}}, `project p1: unknown method "Nope"`},
		{Faults{Projects: map[string]map[string]MethodFault{"p1": {AllMethods: {Unavailable: 0.6, Internal: 0.6}}}}, "project p1: *: rates sum"},
		{Faults{Projects: map[string]map[string]MethodFault{"p1": {MethodGetOperation: {FailNext: -1}}}}, "project p1: GetOperation: negative"},
	} {
		err := tc.f.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", tc.f, err, tc.want)
		}
	}
	ok := Faults{Projects: map[string]map[string]MethodFault{"p1": {MethodGetOperation: {ResourceExhausted: 1}}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

func TestCallRecordsDropTheOldestHalf(t *testing.T) {
	r := newCallRecords(4)
	at := time.Unix(1_000_000, 0)
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, r.arrive(MethodGetOperation, "projects/p/locations/l/operations/1", at.Add(time.Duration(i)*time.Second)))
	}
	r.answer(seqs[0], 200, at) // dropped already: nothing to do
	r.answer(seqs[4], 429, at.Add(5*time.Second))
	s := r.snapshot()
	if s.FirstSeq != 3 || len(s.Calls) != 3 || s.Calls[0].Seq != 3 || s.Calls[2].Seq != 5 {
		t.Fatalf("after 5 calls with room for 4: %+v, want calls 3..5", s)
	}
	if c := s.Calls[2]; c.Status != 429 || c.InFlight() || c.Project != "p" {
		t.Errorf("last call %+v, want answered 429 in project p", c)
	}
	if !s.Calls[0].InFlight() {
		t.Errorf("call 3 was never answered: %+v", s.Calls[0])
	}
}
