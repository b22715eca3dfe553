package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationResubmit approves one more attempt to send spec.submit after an
// attempt whose outcome is unknown (state SubmitUncertain). Its value must
// be the status.submit.attemptedAt of that attempt, exactly as the status
// shows it (RFC 3339, for example "2026-05-04T10:11:12Z"; the operator
// compares the instants, so another RFC 3339 spelling of the same second
// works too):
//
//	kubectl annotate optop NAME ops.routeopt.dev/resubmit="$(kubectl get optop NAME -o jsonpath='{.status.submit.attemptedAt}')"
//
// Setting it accepts the risk that the earlier attempt did start a solve,
// which then runs (and is billed) next to the new one and cannot be found
// through the API. Naming the attempt makes the approval single-use: the new
// attempt records a later attemptedAt, so the same annotation (kept in Git,
// or copied into another manifest) never approves a further attempt. Any
// other value approves nothing. Removing the annotation afterwards is not
// needed.
const AnnotationResubmit = "ops.routeopt.dev/resubmit"

// SubmitSpec is the request that starts a solve: where (parent) and exactly one method with its request, written like the method's request body in the Route Optimization REST reference.
// +kubebuilder:validation:XValidation:rule="[has(self.optimizeToursUri), has(self.batchOptimizeTours), has(self.optimizeToursLongRunning)].filter(m, m).size() == 1",message="set exactly one method in spec.submit: optimizeToursUri, batchOptimizeTours or optimizeToursLongRunning"
type SubmitSpec struct {
	// parent is the project, and optionally the location, that runs and bills the solve: projects/{project} or projects/{project}/locations/{location} (for example projects/my-project/locations/global). {project} is a project ID (6 to 30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen) or a project number; domain-scoped project IDs (example.com:my-project) are not accepted.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[1-9][0-9]{0,18})(/locations/[a-z]([a-z0-9-]{0,61}[a-z0-9])?)?$`
	Parent string `json:"parent"`

	// optimizeToursUri sends OptimizeToursUri: the model is read from a Cloud Storage object and the solution written to another.
	// +optional
	OptimizeToursURI *OptimizeToursURIRequest `json:"optimizeToursUri,omitempty"`

	// batchOptimizeTours sends BatchOptimizeTours: up to 100 models, each read from and written to Cloud Storage, solved as one operation.
	// +optional
	BatchOptimizeTours *BatchOptimizeToursRequest `json:"batchOptimizeTours,omitempty"`

	// optimizeToursLongRunning sends OptimizeToursLongRunning with an OptimizeToursRequest body (model, timeout, solvingMode, searchMode, label, ...) taken from a ConfigMap key or given inline.
	// +optional
	OptimizeToursLongRunning *OptimizeToursLongRunningRequest `json:"optimizeToursLongRunning,omitempty"`
}

// OptimizeToursURIRequest mirrors OptimizeToursUriRequest (without parent, which is spec.submit.parent).
type OptimizeToursURIRequest struct {
	// input is the Cloud Storage object that holds the OptimizeToursRequest.
	// +required
	Input CloudStorageFile `json:"input"`
	// output is the Cloud Storage object the OptimizeToursResponse is written to.
	// +required
	Output CloudStorageFile `json:"output"`
}

// CloudStorageFile mirrors google.maps.routeoptimization.v1.Uri for OptimizeToursUri, whose files are JSON or text-format protobuf chosen by their extension.
type CloudStorageFile struct {
	// uri is gs://{bucket}/{object}, where the object name ends in .json (JSON) or .txtpb (text protobuf); the extension chooses the format.
	// +required
	// +kubebuilder:validation:MaxLength=1252
	// +kubebuilder:validation:Pattern=`^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^\r\n]+$`
	// +kubebuilder:validation:XValidation:rule="self.endsWith('.json') || self.endsWith('.txtpb')",message="the object name must end in .json or .txtpb: OptimizeToursUri chooses the format by the extension"
	URI string `json:"uri"`
}

// BatchOptimizeToursRequest mirrors BatchOptimizeToursRequest (without parent, which is spec.submit.parent).
type BatchOptimizeToursRequest struct {
	// modelConfigs are the models to solve, 1 to 100 (the API's limit per request).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	ModelConfigs []AsyncModelConfig `json:"modelConfigs"`
}

// AsyncModelConfig mirrors BatchOptimizeToursRequest.AsyncModelConfig: one model of a batch. The REST reference also lists enableCheckpoints, which the official Go client (cloud.google.com/go/maps v1.45.0, the newest) cannot send; it is left out until the client has it.
type AsyncModelConfig struct {
	// displayName is a name of your choice for the model, to tell the models of a batch apart.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`
	// inputConfig says where the model is read from.
	// +required
	InputConfig InputConfig `json:"inputConfig"`
	// outputConfig says where the solution is written.
	// +required
	OutputConfig OutputConfig `json:"outputConfig"`
}

// InputConfig mirrors google.maps.routeoptimization.v1.InputConfig.
type InputConfig struct {
	// gcsSource is the Cloud Storage object that holds the model.
	// +required
	GCSSource CloudStorageObject `json:"gcsSource"`
	// dataFormat is the format of the object: JSON or PROTO_TEXT.
	// +required
	DataFormat DataFormat `json:"dataFormat"`
}

// OutputConfig mirrors google.maps.routeoptimization.v1.OutputConfig.
type OutputConfig struct {
	// gcsDestination is where the solution is written in Cloud Storage.
	// +required
	GCSDestination CloudStorageObject `json:"gcsDestination"`
	// dataFormat is the format the solution is written in: JSON or PROTO_TEXT.
	// +required
	DataFormat DataFormat `json:"dataFormat"`
}

// CloudStorageObject mirrors GcsSource and GcsDestination.
type CloudStorageObject struct {
	// uri is gs://{bucket}/{object}.
	// +required
	// +kubebuilder:validation:MaxLength=1252
	// +kubebuilder:validation:Pattern=`^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^\r\n]+$`
	URI string `json:"uri"`
}

// DataFormat mirrors google.maps.routeoptimization.v1.DataFormat.
// +kubebuilder:validation:Enum=JSON;PROTO_TEXT
type DataFormat string

const (
	// DataFormatJSON is JSON as protojson writes it.
	DataFormatJSON DataFormat = "JSON"
	// DataFormatProtoText is the protobuf text format.
	DataFormatProtoText DataFormat = "PROTO_TEXT"
)

// OptimizeToursLongRunningRequest says where the OptimizeToursRequest body comes from: exactly one of configMapKeyRef and inline.
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type OptimizeToursLongRunningRequest struct {
	// configMapKeyRef names a key of a ConfigMap in this resource's namespace whose value is the OptimizeToursRequest in JSON, exactly as the REST reference shows it (camelCase or snake_case field names, enums by name, durations such as "30s"). A parent field in it, if any, must equal spec.submit.parent. The value is read and checked (an unknown field or a bad value is reported as InvalidRequest, naming the field) just before the request is sent; changing the ConfigMap afterwards changes nothing. Exactly one of configMapKeyRef and inline is set.
	// +optional
	ConfigMapKeyRef *ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`

	// inline is the OptimizeToursRequest as a JSON object (in YAML, a mapping), with the same rules as the ConfigMap's value, for small models: it is stored in this resource, and at most 64 KiB of JSON is accepted (larger ones are InvalidRequest; use a ConfigMap, or optimizeToursUri for models beyond a ConfigMap's 1 MiB). Exactly one of configMapKeyRef and inline is set.
	// +optional
	Inline *apiextensionsv1.JSON `json:"inline,omitempty"`
}

// ConfigMapKeySelector selects a key of a ConfigMap in the same namespace.
type ConfigMapKeySelector struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// key in the ConfigMap's data (or binaryData) that holds the request.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SubmitOutcome is what the operator knows of the latest attempt to send spec.submit.
// +kubebuilder:validation:Enum=Submitted;NotStarted;Uncertain
type SubmitOutcome string

const (
	// SubmitSubmitted: the server answered with an operation name
	// (status.operationName).
	SubmitSubmitted SubmitOutcome = "Submitted"
	// SubmitNotStarted: the server answered the latest attempt without starting
	// a solve (RESOURCE_EXHAUSTED, UNAVAILABLE, INVALID_ARGUMENT, refused
	// credentials ...), or the request never left the operator. Another attempt
	// cannot start a second solve.
	SubmitNotStarted SubmitOutcome = "NotStarted"
	// SubmitUncertain: the latest attempt may have started a solve (a time-out
	// or a dropped connection after the request was sent, a 5xx answer other
	// than an explicit UNAVAILABLE). Nothing is sent again until
	// AnnotationResubmit names this attempt. An attempt recorded without an
	// outcome (the operator stopped before it recorded one) counts as uncertain
	// too.
	SubmitUncertain SubmitOutcome = "Uncertain"
)

// SubmitStatus records the attempts to send spec.submit. The operator writes attemptedAt and requestHash to the API server before each attempt, so a record of an attempt survives any restart of the operator.
type SubmitStatus struct {
	// attemptedAt is when the latest attempt was decided, written before the request is sent. Its value is what the annotation ops.routeopt.dev/resubmit must name to approve another attempt.
	// +optional
	AttemptedAt *metav1.Time `json:"attemptedAt,omitempty"`
	// requestHash is the SHA-256 (hex) of the request of the latest attempt, as sent: the deterministic protobuf encoding of the request message, parent included.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	RequestHash string `json:"requestHash,omitempty"`
	// attempts is the number of attempts recorded, including the latest.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	Attempts int32 `json:"attempts,omitempty"`
	// outcome is what the operator knows of the latest attempt; empty while it waits for the answer (and, after a restart, for an attempt whose answer was never recorded: treated as Uncertain).
	// +optional
	Outcome SubmitOutcome `json:"outcome,omitempty"`
	// submittedAt is when the server answered with the operation name now in status.operationName.
	// +optional
	SubmittedAt *metav1.Time `json:"submittedAt,omitempty"`
	// message explains the outcome.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}
