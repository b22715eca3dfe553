package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// getter sends GetOperation as Google's REST clients do: GET {endpoint}/v1/{name} with
// $alt=json;enum-encoding=int (as the Route Optimization client sends it), the routing and
// client headers, through the *http.Client the official client was built with (so auth,
// User-Agent and x-goog-user-project are the same), and reports failures as the same
// *apierror.APIError. It differs in one thing only: unknown Any types do not fail the decode.
type getter struct {
	hc       *http.Client
	endpoint string
}

// apiClientHeader identifies the library stack, like the generated clients' x-goog-api-client
// (without their gapic version, which this code is not).
var apiClientHeader = gax.XGoogHeader("gl-go", gax.GoVersion, "gax", gax.Version, "rest", "UNKNOWN")

func (g *getter) operation(ctx context.Context, name string) (*longrunningpb.Operation, error) {
	if err := gax.ValidatePathExpressions(name); err != nil {
		return nil, err
	}
	u, err := url.Parse(g.endpoint)
	if err != nil {
		return nil, fmt.Errorf("parse endpoint %q: %w", g.endpoint, err)
	}
	u.Path += "/v1/" + name
	u.RawQuery = url.Values{"$alt": {"json;enum-encoding=int"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header = gax.BuildHeaders(ctx,
		"x-goog-api-client", apiClientHeader,
		"x-goog-request-params", "name="+url.QueryEscape(name),
		"Content-Type", "application/json")
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	// The official client checks the answer with googleapi and gax.Invoke turns the error into
	// an *apierror.APIError; policy.Classify relies on exactly that shape.
	if err := googleapi.CheckResponseWithBody(resp, body); err != nil {
		if ae, ok := apierror.FromError(err); ok {
			return nil, ae
		}
		return nil, err
	}
	op := &longrunningpb.Operation{}
	if err := tolerantJSON.Unmarshal(body, op); err != nil {
		return nil, fmt.Errorf("decode the operation: %w", err)
	}
	return op, nil
}

// tolerantJSON decodes like the official client (AllowPartial, DiscardUnknown) except that an
// Any of an unknown type is kept with its type URL and an empty value instead of failing the
// whole operation: done, error.code, error.message and the @type strings stay readable.
var tolerantJSON = protojson.UnmarshalOptions{
	AllowPartial:   true,
	DiscardUnknown: true,
	Resolver:       tolerantResolver{protoregistry.GlobalTypes},
}

// tolerantResolver resolves type URLs through the global registry and answers unknown ones
// with opaqueType. protojson then decodes the Any's fields into that empty message, discarding
// them all, and stores the original type URL with an empty value.
type tolerantResolver struct{ *protoregistry.Types }

func (r tolerantResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	mt, err := r.Types.FindMessageByURL(url)
	if errors.Is(err, protoregistry.NotFound) {
		return opaqueType, nil
	}
	return mt, err
}

// opaqueType is an empty message that is not a well-known type. google.protobuf.Empty would
// not do: protojson reads an Any of a well-known type from a "value" field, and would fail
// on the unknown message's own fields.
var opaqueType = func() protoreflect.MessageType {
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        proto.String("routeopt/remote/opaque.proto"),
		Package:     proto.String("routeopt.remote"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Opaque")}},
	}, nil)
	if err != nil {
		panic(fmt.Sprintf("remote: build the opaque message type: %v", err))
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0))
}()
