package emulator

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// Google adds message types to its APIs; a client built before a type existed
// still has to read operations that carry one in metadata, response or
// error.details. The emulator makes such types up on request (see
// CreateOperationRequest.MetadataTypeURL): each has two fields, "note"
// (string) and "progressPercent" (int32).
//
// They live in a registry of the emulator's own, consulted when it encodes
// JSON. Registered globally they would be known to every client in the same
// process, which is exactly what they must not be.
type madeUpTypes struct {
	mu    sync.RWMutex
	types map[protoreflect.FullName]protoreflect.MessageType
}

var unregistered = &madeUpTypes{types: map[protoreflect.FullName]protoreflect.MessageType{}}

// jsonResolver resolves the made-up types first, then the global registry.
type jsonResolver struct{ *protoregistry.Types }

func (r jsonResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt := unregistered.find(name); mt != nil {
		return mt, nil
	}
	return r.Types.FindMessageByName(name)
}

func (r jsonResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt := unregistered.find(fullNameOf(url)); mt != nil {
		return mt, nil
	}
	return r.Types.FindMessageByURL(url)
}

var encodeResolver = jsonResolver{protoregistry.GlobalTypes}

// fullNameOf is the message name of a type URL: what follows the last '/'.
func fullNameOf(typeURL string) protoreflect.FullName {
	return protoreflect.FullName(typeURL[strings.LastIndexByte(typeURL, '/')+1:])
}

func (u *madeUpTypes) find(name protoreflect.FullName) protoreflect.MessageType {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.types[name]
}

// get returns the made-up type of name, creating it on first use.
func (u *madeUpTypes) get(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt := u.find(name); mt != nil {
		return mt, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if mt := u.types[name]; mt != nil {
		return mt, nil
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("emulator/unregistered/" + string(name) + ".proto"),
		Package: proto.String(string(name.Parent())),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String(string(name.Name())),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("note"), JsonName: proto.String("note"), Number: proto.Int32(1),
					Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
				{Name: proto.String("progress_percent"), JsonName: proto.String("progressPercent"), Number: proto.Int32(2),
					Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
			},
		}},
	}, nil)
	if err != nil {
		return nil, err
	}
	mt := dynamicpb.NewMessageType(fd.Messages().Get(0))
	u.types[name] = mt
	return mt, nil
}

// unregisteredAny returns an Any of typeURL holding a made-up message with
// sample values, or an INVALID_ARGUMENT naming field.
func unregisteredAny(field, typeURL string) (*anypb.Any, *apiError) {
	slash := strings.LastIndexByte(typeURL, '/')
	name := fullNameOf(typeURL)
	if slash <= 0 || !name.IsValid() || name.Parent() == "" {
		return nil, errBadField(field, fmt.Sprintf("want a type URL such as \"type.googleapis.com/google.maps.routeoptimization.v2.FutureMetadata\", got %q", clip(typeURL)))
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
		return nil, errBadField(field, fmt.Sprintf("%s is a known type; name one that no client has", name))
	}
	mt, err := unregistered.get(name)
	if err != nil {
		return nil, errBadField(field, fmt.Sprintf("cannot make up type %s: %v", name, err))
	}
	m := mt.New()
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("note"), protoreflect.ValueOfString("a message of a type the client does not know"))
	m.Set(fields.ByName("progress_percent"), protoreflect.ValueOfInt32(42))
	b, err := proto.Marshal(m.Interface())
	if err != nil {
		return nil, newError(codes.Internal, "encode %s: %v", name, err)
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}, nil
}
