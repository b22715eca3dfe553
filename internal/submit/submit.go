// Package submit builds the Route Optimization request that an OptimizationOperation's
// spec.submit describes, and decides, from the recorded status, whether it may be sent.
//
// Everything here is a pure function: the caller reads the ConfigMap a request names and the
// clock, and sends the request through remote.Submitter. The order the reconciler follows:
//
//  1. Decide: Track, Send, Uncertain or NotSubmitted (spec.cancel before anything was sent).
//  2. For Send: Build the request (an *InvalidRequestError is reported as InvalidRequest, and
//     nothing is sent), then record status.submit.attemptedAt (AttemptTime), requestHash
//     (Request.Hash), attempts+1 and an empty outcome in the API server, and only then send.
//  3. Classify a failure with policy.ClassifySubmit: not started (outcome NotStarted; retry or
//     stop by its Retry) or maybe started (outcome Uncertain). A name: outcome Submitted,
//     status.operationName, submittedAt.
package submit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	rpb "cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
	"github.com/routeopt/routeopt-operator/internal/policy"
)

// Method names: the RPC names, as the emulator's counters and the operator's metrics use them.
const (
	MethodOptimizeToursURI         = "OptimizeToursUri"
	MethodBatchOptimizeTours       = "BatchOptimizeTours"
	MethodOptimizeToursLongRunning = "OptimizeToursLongRunning"
)

// Size limits of an OptimizeToursRequest body, in bytes of JSON.
const (
	// MaxInlineBytes bounds spec.submit.optimizeToursLongRunning.inline: the request is stored in
	// the resource, and every list and watch of OptimizationOperations carries it.
	MaxInlineBytes = 64 << 10
	// MaxConfigMapBytes bounds a ConfigMap's value; the API server caps a whole ConfigMap near
	// this size anyway.
	MaxConfigMapBytes = 1 << 20
)

// Request is a request ready to send.
type Request struct {
	// Method is one of the Method constants.
	Method string
	// Message is *rpb.OptimizeToursUriRequest, *rpb.BatchOptimizeToursRequest or
	// *rpb.OptimizeToursRequest, with Parent set from spec.submit.parent.
	Message proto.Message
	// Hash is Hash(Message): what status.submit.requestHash records.
	Hash string
}

// InvalidRequestError says why no valid request could be built. Nothing was sent; the
// reconciler reports it as InvalidRequest (Stalled) until the spec or the ConfigMap changes.
type InvalidRequestError struct {
	// Source is where the request came from: "spec.submit.batchOptimizeTours",
	// "spec.submit.optimizeToursLongRunning.inline", "ConfigMap default/model key request.json".
	Source string
	// Field is the JSON path of the offending field inside the request, such as
	// model.shipments[2].deliveries[0].duration; empty when the problem is not one field's.
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *InvalidRequestError) Error() string {
	if e.Field == "" {
		return e.Source + ": " + e.Reason
	}
	return e.Source + ": " + e.Field + ": " + e.Reason
}

// ConfigMapRef is the ConfigMap key spec.submit reads the request from, or nil.
func ConfigMapRef(s *opsv1.SubmitSpec) *opsv1.ConfigMapKeySelector {
	if s == nil || s.OptimizeToursLongRunning == nil {
		return nil
	}
	return s.OptimizeToursLongRunning.ConfigMapKeyRef
}

// Build builds the request of obj's spec.submit. cm is the ConfigMap ConfigMapRef names, read
// by the caller from obj's namespace (nil when it does not exist, or when the request names
// none). Errors that are about the request are *InvalidRequestError.
func Build(obj *opsv1.OptimizationOperation, cm *corev1.ConfigMap) (Request, error) {
	s := obj.Spec.Submit
	if s == nil {
		return Request{}, &InvalidRequestError{Source: "spec", Reason: "spec.submit is not set"}
	}
	var (
		method string
		msg    proto.Message
		err    error
	)
	switch methods := countMethods(s); {
	case methods != 1:
		return Request{}, &InvalidRequestError{Source: "spec.submit",
			Reason: fmt.Sprintf("set exactly one method (optimizeToursUri, batchOptimizeTours or optimizeToursLongRunning), not %d", methods)}
	case s.OptimizeToursURI != nil:
		method, msg, err = MethodOptimizeToursURI, uriRequest(s), nil
	case s.BatchOptimizeTours != nil:
		method = MethodBatchOptimizeTours
		msg, err = batchRequest(s)
	default:
		method = MethodOptimizeToursLongRunning
		msg, err = toursRequest(obj.Namespace, s, cm)
	}
	if err != nil {
		return Request{}, err
	}
	h, err := Hash(msg)
	if err != nil {
		return Request{}, err
	}
	return Request{Method: method, Message: msg, Hash: h}, nil
}

func countMethods(s *opsv1.SubmitSpec) int {
	n := 0
	for _, set := range []bool{s.OptimizeToursURI != nil, s.BatchOptimizeTours != nil, s.OptimizeToursLongRunning != nil} {
		if set {
			n++
		}
	}
	return n
}

// Hash is the SHA-256, in hex, of m's deterministic protobuf encoding. Two requests with the
// same content have the same hash in a given build of the operator; the emulator counts the
// solves it starts by the same hash.
func Hash(m proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode the request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func uriRequest(s *opsv1.SubmitSpec) *rpb.OptimizeToursUriRequest {
	return &rpb.OptimizeToursUriRequest{
		Parent: s.Parent,
		Input:  &rpb.Uri{Uri: s.OptimizeToursURI.Input.URI},
		Output: &rpb.Uri{Uri: s.OptimizeToursURI.Output.URI},
	}
}

func batchRequest(s *opsv1.SubmitSpec) (*rpb.BatchOptimizeToursRequest, error) {
	req := &rpb.BatchOptimizeToursRequest{Parent: s.Parent}
	for i, c := range s.BatchOptimizeTours.ModelConfigs {
		field := fmt.Sprintf("modelConfigs[%d]", i)
		in, err := dataFormat(c.InputConfig.DataFormat, field+".inputConfig.dataFormat")
		if err != nil {
			return nil, err
		}
		out, err := dataFormat(c.OutputConfig.DataFormat, field+".outputConfig.dataFormat")
		if err != nil {
			return nil, err
		}
		req.ModelConfigs = append(req.ModelConfigs, &rpb.BatchOptimizeToursRequest_AsyncModelConfig{
			DisplayName: c.DisplayName,
			InputConfig: &rpb.InputConfig{
				Source:     &rpb.InputConfig_GcsSource{GcsSource: &rpb.GcsSource{Uri: c.InputConfig.GCSSource.URI}},
				DataFormat: in,
			},
			OutputConfig: &rpb.OutputConfig{
				Destination: &rpb.OutputConfig_GcsDestination{GcsDestination: &rpb.GcsDestination{Uri: c.OutputConfig.GCSDestination.URI}},
				DataFormat:  out,
			},
		})
	}
	if len(req.ModelConfigs) == 0 {
		return nil, &InvalidRequestError{Source: "spec.submit.batchOptimizeTours", Field: "modelConfigs", Reason: "at least one model config is required"}
	}
	return req, nil
}

func dataFormat(f opsv1.DataFormat, field string) (rpb.DataFormat, error) {
	switch f {
	case opsv1.DataFormatJSON:
		return rpb.DataFormat_JSON, nil
	case opsv1.DataFormatProtoText:
		return rpb.DataFormat_PROTO_TEXT, nil
	}
	return 0, &InvalidRequestError{Source: "spec.submit.batchOptimizeTours", Field: field,
		Reason: fmt.Sprintf("%q is not a data format (want JSON or PROTO_TEXT)", f)}
}

// decodeOptions decode strictly: an unknown field is an error, as Google's frontends answer
// it, but found before anything is sent.
var decodeOptions = protojson.UnmarshalOptions{}

func toursRequest(namespace string, s *opsv1.SubmitSpec, cm *corev1.ConfigMap) (*rpb.OptimizeToursRequest, error) {
	body, source, err := toursBody(namespace, s.OptimizeToursLongRunning, cm)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, &InvalidRequestError{Source: source, Reason: "the request must be a JSON object (an OptimizeToursRequest)"}
	}
	req := &rpb.OptimizeToursRequest{}
	if err := decodeOptions.Unmarshal(body, req); err != nil {
		field, reason := explain(req.ProtoReflect().Descriptor(), body, err)
		return nil, &InvalidRequestError{Source: source, Field: field, Reason: reason}
	}
	if req.GetParent() != "" && req.GetParent() != s.Parent {
		return nil, &InvalidRequestError{Source: source, Field: "parent",
			Reason: fmt.Sprintf("%q differs from spec.submit.parent %q; leave it out of the request", policy.Bound(req.GetParent(), 200), s.Parent)}
	}
	req.Parent = s.Parent
	return req, nil
}

// toursBody returns the JSON of the OptimizeToursRequest and a description of where it is.
func toursBody(namespace string, r *opsv1.OptimizeToursLongRunningRequest, cm *corev1.ConfigMap) ([]byte, string, error) {
	const refField = "spec.submit.optimizeToursLongRunning.configMapKeyRef"
	switch {
	case (r.ConfigMapKeyRef != nil) == (r.Inline != nil):
		return nil, "", &InvalidRequestError{Source: "spec.submit.optimizeToursLongRunning",
			Reason: "set exactly one of configMapKeyRef and inline"}
	case r.Inline != nil:
		const source = "spec.submit.optimizeToursLongRunning.inline"
		if len(r.Inline.Raw) > MaxInlineBytes {
			return nil, "", &InvalidRequestError{Source: source, Reason: fmt.Sprintf(
				"the request is %d bytes of JSON, more than the %d allowed inline; put it in a ConfigMap (configMapKeyRef)", len(r.Inline.Raw), MaxInlineBytes)}
		}
		return r.Inline.Raw, source, nil
	}
	ref := r.ConfigMapKeyRef
	name := namespace + "/" + ref.Name
	if cm == nil {
		return nil, "", &InvalidRequestError{Source: refField, Reason: fmt.Sprintf("ConfigMap %s does not exist", name)}
	}
	if cm.Name != ref.Name || (cm.Namespace != "" && cm.Namespace != namespace) {
		return nil, "", fmt.Errorf("submit: got ConfigMap %s/%s for %s", cm.Namespace, cm.Name, name)
	}
	source := fmt.Sprintf("ConfigMap %s key %s", name, ref.Key)
	var body []byte
	if v, ok := cm.Data[ref.Key]; ok {
		body = []byte(v)
	} else if v, ok := cm.BinaryData[ref.Key]; ok {
		body = v
	} else {
		return nil, "", &InvalidRequestError{Source: refField, Reason: fmt.Sprintf("ConfigMap %s has no key %q (its keys: %s)", name, ref.Key, keysOf(cm))}
	}
	if len(body) > MaxConfigMapBytes {
		return nil, "", &InvalidRequestError{Source: source, Reason: fmt.Sprintf("the request is %d bytes, more than %d", len(body), MaxConfigMapBytes)}
	}
	return body, source, nil
}

// keysOf lists a ConfigMap's keys for a message, at most ten of them.
func keysOf(cm *corev1.ConfigMap) string {
	var keys []string
	for k := range cm.Data {
		keys = append(keys, k)
	}
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return "none"
	}
	slices.Sort(keys)
	if len(keys) > 10 {
		return strings.Join(keys[:10], ", ") + fmt.Sprintf(" and %d more", len(keys)-10)
	}
	return strings.Join(keys, ", ")
}
