package submit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// explain turns protojson's error for body into the JSON path of the field at fault and a
// reason. protojson names the field but not where it is ("unknown field \"lable\"" in a model of
// a thousand shipments); explain finds the deepest member of body that fails to decode on its
// own, and keeps protojson's text and the position it gave in the whole body.
func explain(md protoreflect.MessageDescriptor, body []byte, decodeErr error) (field, reason string) {
	pos, msg := splitProtoError(decodeErr.Error())
	if path, inner, ok := locate(md, body, ""); ok {
		field = path
		if inner != "" {
			_, msg = splitProtoError(inner)
		}
	}
	reason = msg
	if pos != "" {
		reason += " (" + pos + ")"
	}
	return field, policy.Bound(reason, policy.MaxMessageBytes)
}

// protoErrorPrefix matches protobuf-go's "proto: (line 3:17): " (with a space or, on purpose to
// discourage matching, a no-break space after the colon).
var protoErrorPrefix = regexp.MustCompile(`^proto:[ \x{00a0}]*(?:\((line \d+:\d+)\):[ \x{00a0}]*)?`)

func splitProtoError(s string) (pos, msg string) {
	m := protoErrorPrefix.FindStringSubmatch(s)
	if m == nil {
		return "", s
	}
	return m[1], s[len(m[0]):]
}

// locate returns the JSON path (below path) of the deepest member of the object raw, decoded as
// md, that protojson refuses on its own, with protojson's error for it. ok is false when raw is
// not an object or every member decodes alone (the fault is in their combination, like two
// members of one oneof).
func locate(md protoreflect.MessageDescriptor, raw []byte, path string) (field, inner string, ok bool) {
	members, isObject := objectMembers(raw)
	if !isObject {
		return "", "", false
	}
	for _, m := range members {
		p := join(path, m.key)
		fd := md.Fields().ByJSONName(m.key)
		if fd == nil {
			fd = md.Fields().ByTextName(m.key)
		}
		if fd == nil {
			return p, fmt.Sprintf("unknown field %q", m.key), true
		}
		err := decodeAlone(md, m.key, m.value)
		if err == nil {
			continue
		}
		if f, in, ok := locateIn(fd, m.value, p); ok {
			return f, in, true
		}
		return p, err.Error(), true
	}
	return "", "", false
}

// locateIn looks inside the value of field fd for the member at fault.
func locateIn(fd protoreflect.FieldDescriptor, raw []byte, path string) (string, string, bool) {
	switch {
	case fd.IsList():
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return "", "", false
		}
		for i, e := range elems {
			p := fmt.Sprintf("%s[%d]", path, i)
			if err := decodeAlone(fd.ContainingMessage(), fd.JSONName(), []byte("["+string(e)+"]")); err != nil {
				if f, in, ok := descend(fd.Message(), e, p); ok {
					return f, in, true
				}
				return p, err.Error(), true
			}
		}
	case fd.IsMap():
		members, isObject := objectMembers(raw)
		if !isObject {
			return "", "", false
		}
		for _, m := range members {
			p := fmt.Sprintf("%s[%s]", path, strconv.Quote(m.key))
			entry, _ := json.Marshal(map[string]json.RawMessage{m.key: m.value})
			if err := decodeAlone(fd.ContainingMessage(), fd.JSONName(), entry); err != nil {
				if f, in, ok := descend(fd.MapValue().Message(), m.value, p); ok {
					return f, in, true
				}
				return p, err.Error(), true
			}
		}
	default:
		return descend(fd.Message(), raw, path)
	}
	return "", "", false
}

// descend goes into a message value, unless it is not a message or one of the well-known types
// that protojson writes in a form of their own (Duration "30s", Timestamp, wrappers, Struct ...):
// those are leaves.
func descend(md protoreflect.MessageDescriptor, raw []byte, path string) (string, string, bool) {
	if md == nil || md.FullName().Parent() == "google.protobuf" {
		return "", "", false
	}
	return locate(md, raw, path)
}

// decodeAlone decodes {"key": value} as a message md.
func decodeAlone(md protoreflect.MessageDescriptor, key string, value []byte) error {
	k, _ := json.Marshal(key)
	doc := make([]byte, 0, len(k)+len(value)+3)
	doc = append(append(append(append(doc, '{'), k...), ':'), value...)
	doc = append(doc, '}')
	return protojson.UnmarshalOptions{}.Unmarshal(doc, dynamicpb.NewMessage(md))
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of a JSON object in document order.
func objectMembers(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key: key, value: v})
	}
	return out, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	if strings.ContainsAny(key, ".[]\" ") {
		return fmt.Sprintf("%s[%s]", path, strconv.Quote(key))
	}
	return path + "." + key
}
