// Package result turns the response of a finished solve into the ConfigMap spec.resultTo names,
// and tells a ConfigMap the operator wrote, whole, from any other. It does no I/O: the
// controller creates the ConfigMap, and reads it back when the name is taken.
package result

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"cloud.google.com/go/maps/routeoptimization/apiv1/routeoptimizationpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	opsv1 "github.com/routeopt/routeopt-operator/api/v1alpha1"
)

// Encoded is a response as the ConfigMap holds it.
type Encoded struct {
	// Key is opsv1.ResultKeyJSON (Value is the JSON) or opsv1.ResultKeyGzip (Value is the JSON
	// gzip-compressed).
	Key   string
	Value []byte
	// SHA256 is the hex SHA-256 of the JSON; JSONBytes its length.
	SHA256    string
	JSONBytes int
}

// Compressed reports whether the value is gzip-compressed (it then goes in binaryData).
func (e Encoded) Compressed() bool { return e.Key == opsv1.ResultKeyGzip }

// TooLargeError says that a response does not fit in one ConfigMap, even compressed.
type TooLargeError struct {
	JSONBytes, CompressedBytes int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the response is %s of JSON, %s gzip-compressed: more than the %s a ConfigMap holds",
		Size(e.JSONBytes), Size(e.CompressedBytes), Size(opsv1.ResultMaxBytes))
}

// ErrNotTours: the response is not an OptimizeToursResponse, so it has no routes to store.
var ErrNotTours = errors.New("the response is not an OptimizeToursResponse")

// Encode writes resp, which must hold an OptimizeToursResponse, as protojson: as is up to
// opsv1.ResultPlainLimit bytes, so that kubectl shows it; gzip-compressed above, since route
// JSON shrinks several times and every byte of a ConfigMap sits in etcd and in the watch
// caches of whatever watches ConfigMaps. A response that does not fit even then is a
// *TooLargeError.
func Encode(resp *anypb.Any) (Encoded, error) {
	tours := &routeoptimizationpb.OptimizeToursResponse{}
	if resp == nil || !resp.MessageIs(tours) {
		return Encoded{}, ErrNotTours
	}
	if err := resp.UnmarshalTo(tours); err != nil {
		return Encoded{}, fmt.Errorf("decode the OptimizeToursResponse: %w", err)
	}
	js, err := protojson.Marshal(tours)
	if err != nil {
		return Encoded{}, fmt.Errorf("encode the OptimizeToursResponse as JSON: %w", err)
	}
	sum := sha256.Sum256(js)
	e := Encoded{Key: opsv1.ResultKeyJSON, Value: js, SHA256: hex.EncodeToString(sum[:]), JSONBytes: len(js)}
	if len(js) <= opsv1.ResultPlainLimit {
		return e, nil
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(js); err != nil {
		return Encoded{}, fmt.Errorf("compress the response: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Encoded{}, fmt.Errorf("compress the response: %w", err)
	}
	if b.Len() > opsv1.ResultMaxBytes {
		return Encoded{}, &TooLargeError{JSONBytes: len(js), CompressedBytes: b.Len()}
	}
	e.Key, e.Value = opsv1.ResultKeyGzip, b.Bytes()
	return e, nil
}

// ConfigMap is the ConfigMap of obj's spec.resultTo holding e. It is immutable (written once;
// nobody can change it afterwards, only delete it) and controlled by obj, so the garbage
// collector deletes it with obj. The owner reference does not block the owner's deletion:
// that would need the permission to update the owner's finalizers, for no gain.
func ConfigMap(obj *opsv1.OptimizationOperation, operation string, e Encoded) *corev1.ConfigMap {
	yes := true
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: obj.Namespace,
			Name:      obj.Spec.ResultTo.Name,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "routeopt-operator"},
			Annotations: map[string]string{
				opsv1.AnnotationResultSHA256:    e.SHA256,
				opsv1.AnnotationResultOperation: operation,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: opsv1.GroupVersion.String(), Kind: "OptimizationOperation",
				Name: obj.Name, UID: obj.UID, Controller: &yes,
			}},
		},
		Immutable: &yes,
	}
	if e.Compressed() {
		cm.BinaryData = map[string][]byte{e.Key: e.Value}
	} else {
		cm.Data = map[string]string{e.Key: string(e.Value)}
	}
	return cm
}

// Ownership is what a ConfigMap found under spec.resultTo's name is to the resource.
type Ownership int

const (
	// Foreign: not created by the operator for this resource (another controller, another
	// resource, a person); it is never written over.
	Foreign Ownership = iota
	// Incomplete: controlled by this resource but without a whole response. Not one the
	// operator writes (a create is all or nothing), so something else changed it.
	Incomplete
	// Complete: the response this resource's operation answered, whole.
	Complete
)

// Check says what cm is to the resource with UID uid.
func Check(cm *corev1.ConfigMap, uid types.UID) Ownership {
	ref := metav1.GetControllerOfNoCopy(cm)
	if ref == nil || ref.UID != uid {
		return Foreign
	}
	js, err := JSON(cm)
	if err != nil {
		return Incomplete
	}
	sum := sha256.Sum256(js)
	if hex.EncodeToString(sum[:]) != cm.Annotations[opsv1.AnnotationResultSHA256] {
		return Incomplete
	}
	return Complete
}

// JSON returns the JSON a result ConfigMap holds, decompressed.
func JSON(cm *corev1.ConfigMap) ([]byte, error) {
	if v, ok := cm.Data[opsv1.ResultKeyJSON]; ok {
		return []byte(v), nil
	}
	z, ok := cm.BinaryData[opsv1.ResultKeyGzip]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s has neither data[%q] nor binaryData[%q]", cm.Namespace, cm.Name, opsv1.ResultKeyJSON, opsv1.ResultKeyGzip)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxJSON))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return js, nil
}

// maxJSON bounds what a compressed value may expand to when read back.
const maxJSON = 256 << 20

// Decode returns the OptimizeToursResponse a result ConfigMap holds.
func Decode(cm *corev1.ConfigMap) (*routeoptimizationpb.OptimizeToursResponse, error) {
	js, err := JSON(cm)
	if err != nil {
		return nil, err
	}
	resp := &routeoptimizationpb.OptimizeToursResponse{}
	if err := protojson.Unmarshal(js, resp); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return resp, nil
}

// Size writes n bytes for a person.
func Size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
