package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what deleting an OptimizationOperation does to the remote operation.
// +kubebuilder:validation:Enum=Orphan;Cancel
type DeletionPolicy string

const (
	// DeletionPolicyOrphan stops tracking only; the remote operation keeps running.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
	// DeletionPolicyCancel sends one best-effort cancel for a still-running operation before the
	// resource goes away. Deletion never waits for the remote operation to finish.
	DeletionPolicyCancel DeletionPolicy = "Cancel"
)

// OptimizationOperationSpec names a remote google.longrunning.Operation, or the request that starts one, and what to do with it.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",message="spec.cancel is a one-way latch: once true it cannot be set back to false or removed. To run the work again, create a new OptimizationOperation for a new remote operation"
// +kubebuilder:validation:XValidation:rule="has(self.operationName) != has(self.submit)",message="set exactly one of spec.operationName (track an operation started elsewhere) and spec.submit (start a solve)"
// +kubebuilder:validation:XValidation:rule="has(self.operationName) == has(oldSelf.operationName)",message="operationName is immutable: it cannot be added or removed; create a new OptimizationOperation to track another operation"
// +kubebuilder:validation:XValidation:rule="has(self.submit) == has(oldSelf.submit)",message="submit is immutable: it cannot be added or removed; create a new OptimizationOperation to start another solve"
// +kubebuilder:validation:XValidation:rule="has(self.resultTo) == has(oldSelf.resultTo)",message="resultTo is immutable: it cannot be added or removed"
// +kubebuilder:validation:XValidation:rule="!has(self.resultTo) || !has(self.submit) || has(self.submit.optimizeToursLongRunning)",message="resultTo needs an OptimizeToursResponse: batchOptimizeTours and optimizeToursUri write their results to Cloud Storage (status.result.outputs)"
// +kubebuilder:validation:XValidation:rule="!has(self.resultTo) || !has(self.submit) || !has(self.submit.optimizeToursLongRunning) || !has(self.submit.optimizeToursLongRunning.configMapKeyRef) || self.resultTo.name != self.submit.optimizeToursLongRunning.configMapKeyRef.name",message="resultTo must name another ConfigMap than the request's (spec.submit.optimizeToursLongRunning.configMapKeyRef)"
type OptimizationOperationSpec struct {
	// operationName is the full resource name of a remote long-running operation started elsewhere, as returned by batchOptimizeTours, optimizeToursLongRunning or OptimizeToursUri: projects/{project}/locations/{location}/operations/{id} (or operations/{id}). Exactly one of operationName and submit is set. It cannot be changed, added or removed; create a new resource to track another operation.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^(projects/[A-Za-z0-9][A-Za-z0-9_.~-]*/locations/[A-Za-z0-9][A-Za-z0-9_.~-]*/operations/[A-Za-z0-9][A-Za-z0-9_.~-]*|operations/[A-Za-z0-9][A-Za-z0-9_.~-]*(/[A-Za-z0-9][A-Za-z0-9_.~-]*)*)$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="operationName is immutable: create a new OptimizationOperation to track another operation"
	// +kubebuilder:validation:XValidation:rule="!self.contains('..')",message="operationName must not contain '..'"
	OperationName string `json:"operationName,omitempty"`

	// submit is the request that starts the solve this resource tracks: the operator sends it once, records the operation name the server answers in status.operationName, and then tracks that operation like one named by spec.operationName. Exactly one of operationName and submit is set.
	//
	// Route Optimization requests carry no request id, so a request whose answer is lost (a time-out, a dropped connection) may have started a solve that cannot be looked up. The operator never sends such a request again on its own: the resource goes to state SubmitUncertain, and the annotation ops.routeopt.dev/resubmit, set to the value of status.submit.attemptedAt, allows exactly one more attempt.
	//
	// It is immutable: it cannot be changed, added or removed (to run another request, create a new OptimizationOperation). A ConfigMap it names may change without effect once the request was sent: status.submit.requestHash records what was sent.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="submit is immutable: the request may already have been sent; create a new OptimizationOperation to start another solve"
	Submit *SubmitSpec `json:"submit,omitempty"`

	// cancel requests a best-effort cancellation of the remote operation. It is a one-way latch: once true it cannot be set back to false or removed. The outcome is reported in status.cancel and in the Succeeded condition (Cancelling, Cancelled, CancelUnsupported, CompletedDespiteCancel).
	// +optional
	// +kubebuilder:default=false
	Cancel bool `json:"cancel,omitempty"`

	// deletionPolicy says what deleting this resource does to a still-running remote operation: Orphan (default) stops tracking only; Cancel sends a cancel first (best effort, never blocks deletion for longer than the operator's --deletion-cancel-timeout).
	// +optional
	// +kubebuilder:default=Orphan
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// credentialsSecretRef names a key of a Secret in this resource's namespace that holds a Google service-account JSON key. When absent the operator's own Application Default Credentials are used (Workload Identity on GKE).
	// +optional
	CredentialsSecretRef *SecretKeySelector `json:"credentialsSecretRef,omitempty"`

	// The pattern is Go's syntax, not the apiserver's looser "duration" format, which accepts
	// values (1d) the operator could not decode. The rule checks the pattern before it parses, so
	// it never fails to evaluate (numbers of at most five digits cannot overflow a Go duration):
	// a rule that fails to evaluate would refuse every later write of an object stored before it.

	// pollInterval caps the time between two reads of this operation. Unset, the cap is the operator's --max-poll-interval (5m by default).
	//
	// Within the cap, reads are spaced by the operation's age: about a fifth of the time it has run (a solve running for 10 minutes is read about every 2 minutes), never closer together than the operator's --min-poll-interval (1s by default), whatever this says. After an accepted cancel, reads follow the answer closely (about 1s, 2s, 4s ... after it); when the solve's deadline is known (status.expectedEndTime), one read comes a second after it and reads follow closely for 30s. When the operator's shared call budget (--api-qps) cannot read every running operation that often, reads come further apart.
	//
	// Written as a Go duration, such as 30s, 5m or 1h30m, of more than 0s and at most 24h; days (1d) are not accepted.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s') && duration(self) <= duration('24h')",message="pollInterval must be more than 0s and at most 24h"
	PollInterval *Duration `json:"pollInterval,omitempty"`

	// solveTimeout is the timeout the solve was started with (the OptimizeToursRequest's timeout: at most 30m, or 1h with allowLargeDeadlineDespiteInterruptionRisk). The server answers before it, and large problems use most of it, so the operator reads the operation once just after the deadline it implies, counted from its first observation (status.startTime; status.expectedEndTime), and closely until it is done, instead of learning of the end up to --max-poll-interval late. Before the deadline, reads follow spec.pollBeforeDeadline.
	//
	// Resources with spec.submit.optimizeToursLongRunning take it from their request's timeout (and ignore this field); batch and URI requests keep their models in Cloud Storage, where the operator cannot see the timeout: set it here if you know it.
	//
	// Written as a Go duration, such as 30m, of more than 0s and at most 1h.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s') && duration(self) <= duration('1h')",message="solveTimeout must be more than 0s and at most 1h"
	SolveTimeout *Duration `json:"solveTimeout,omitempty"`

	// pollBeforeDeadline says how this operation is read before its deadline (status.expectedEndTime), when that is known; it changes nothing otherwise.
	//
	// Age (the default): by the solve's age, as without a deadline, so an early finish is seen within a fifth of the solve's age. For a solve that uses its whole timeout this costs more reads than Google's client library would send: about 29 for a 5-minute solve, 46 for an hour.
	//
	// Sparse: for large problems, which use most of their timeout. Reads come about a fifth of the timeout apart (at least --max-poll-interval, at most spec.pollInterval), none in the last stretch before the deadline: 1 read for a 5-minute solve, 5 for 30 minutes or an hour, a tenth of Google's client library's or less. An early finish is seen up to a quarter of the timeout (at least 1.25 x --max-poll-interval) late, and never after the read just after the deadline.
	//
	// In both, one read comes a second after the deadline and reads follow closely until the operation is done.
	// +optional
	// +kubebuilder:default=Age
	PollBeforeDeadline PollBeforeDeadline `json:"pollBeforeDeadline,omitempty"`

	// resultTo names a ConfigMap in this resource's namespace that the operator creates, once the solve succeeded, with the full OptimizeToursResponse as protojson: under data["response.json"], or gzip-compressed under binaryData["response.json.gz"] when the JSON is over 256 KiB. The ConfigMap is owned by this resource (deleted with it) and written once; the condition ResultStored tells how it went. A response that does not fit in one ConfigMap (about 1 MiB, compressed) is not written (ResultStored False, TooLarge): use spec.submit.optimizeToursUri for large results. A ConfigMap of that name that the operator did not create for this resource is never written over (ResultStored False, NotOwned).
	//
	// Only an OptimizeToursResponse (optimizeToursLongRunning) has anything to store: batchOptimizeTours and optimizeToursUri write their results to Cloud Storage (status.result.outputs). It cannot be changed, added or removed.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="resultTo is immutable: the response may already have been written there"
	ResultTo *ResultTarget `json:"resultTo,omitempty"`
}

// SecretKeySelector selects a key of a Secret in the same namespace.
type SecretKeySelector struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key in the Secret's data that holds the service-account JSON key.
	// +optional
	// +kubebuilder:default=key.json
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// OperationError is the google.rpc.Status of an operation that finished with an error.
type OperationError struct {
	// code is the numeric google.rpc.Code (1 CANCELLED, 3 INVALID_ARGUMENT, 5 NOT_FOUND ...), never an HTTP status.
	// +kubebuilder:validation:Minimum=-2147483648
	// +kubebuilder:validation:Maximum=2147483647
	Code int32 `json:"code"`
	// status is the name of the code, such as CANCELLED.
	// +optional
	Status string `json:"status,omitempty"`
	// message is the error message from the server.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// OperationResult is a small summary of a successful operation's response. The full response is never copied: it can be megabytes, and Kubernetes objects are capped near 1.5 MiB.
type OperationResult struct {
	// type is the @type URL of the response, such as type.googleapis.com/google.maps.routeoptimization.v1.OptimizeToursResponse.
	Type string `json:"type"`
	// routes is the number of routes in an OptimizeToursResponse.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	Routes *int32 `json:"routes,omitempty"`
	// skippedShipments is the number of skipped shipments in an OptimizeToursResponse.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	SkippedShipments *int32 `json:"skippedShipments,omitempty"`
	// totalCost is metrics.totalCost of an OptimizeToursResponse, as a decimal string.
	// +optional
	TotalCost string `json:"totalCost,omitempty"`
	// outputURI is where an OptimizeToursUri solve wrote its result.
	// +optional
	OutputURI string `json:"outputURI,omitempty"`
	// vehiclesUsed is metrics.usedVehicleCount of an OptimizeToursResponse: the vehicles that perform at least one shipment.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	VehiclesUsed *int32 `json:"vehiclesUsed,omitempty"`
	// visits is the number of visits (pickups and deliveries) over all routes of an OptimizeToursResponse.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	Visits *int32 `json:"visits,omitempty"`
	// travelDistanceMeters is metrics.aggregatedRouteMetrics.travelDistanceMeters of an OptimizeToursResponse, rounded to the meter.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TravelDistanceMeters *int64 `json:"travelDistanceMeters,omitempty"`
	// travelDuration is metrics.aggregatedRouteMetrics.travelDuration of an OptimizeToursResponse, as a Go duration (1h2m3s).
	// +optional
	TravelDuration Duration `json:"travelDuration,omitempty"`
	// totalDuration is metrics.aggregatedRouteMetrics.totalDuration of an OptimizeToursResponse (travel, visits, waits, breaks and delays), as a Go duration.
	// +optional
	TotalDuration Duration `json:"totalDuration,omitempty"`
	// outputs are where the results were written, for solves that write them to Cloud Storage: output.uri of an OptimizeToursUri response, or each modelConfigs[].outputConfig.gcsDestination.uri of a batchOptimizeTours request sent through spec.submit (its response names none).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=1252
	Outputs []string `json:"outputs,omitempty"`
}

// CancelOutcome is what the server answered to the cancel request.
// +kubebuilder:validation:Enum=Accepted;Unsupported;NotFound;AlreadyDone;NotSubmitted
type CancelOutcome string

const (
	// CancelAccepted: the server accepted the cancel. Acceptance is not cancellation: the
	// Succeeded condition says whether the operation ended Cancelled or completed anyway.
	CancelAccepted CancelOutcome = "Accepted"
	// CancelUnsupported: the server answered UNIMPLEMENTED.
	CancelUnsupported CancelOutcome = "Unsupported"
	// CancelNotFound: the server answered NOT_FOUND to the cancel while the operation could
	// still be read; the operator keeps tracking it.
	CancelNotFound CancelOutcome = "NotFound"
	// CancelAlreadyDone: the operation was seen finished before an answer to a cancel was
	// recorded; nothing more is sent. The message says whether a cancel was sent: none was when
	// requestedAt is absent; one may have been (its answer lost to a restart) when it is set.
	CancelAlreadyDone CancelOutcome = "AlreadyDone"
	// CancelNotSubmitted: spec.cancel was set before spec.submit was sent, so nothing was sent,
	// neither the request nor a cancel. The resource ends Cancelled with done true.
	CancelNotSubmitted CancelOutcome = "NotSubmitted"
)

// CancelStatus records a cancel request. A cancel is sent until an outcome is recorded, so the request survives operator restarts.
type CancelStatus struct {
	// requestedAt is when the operator first acted on spec.cancel. It is recorded before the first cancel is sent, so a record without it means no cancel was ever sent.
	// +optional
	RequestedAt *metav1.Time `json:"requestedAt,omitempty"`
	// answeredAt is when the server answered the cancel (the time of outcome Accepted, Unsupported or NotFound).
	// +optional
	AnsweredAt *metav1.Time `json:"answeredAt,omitempty"`
	// outcome is the server's answer to the cancel; empty until one was received.
	// +optional
	Outcome CancelOutcome `json:"outcome,omitempty"`
	// message explains the outcome.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// Condition types.
const (
	// ConditionSucceeded is True when the operation finished with a response, False when it
	// finished with an error (or cannot be found), Unknown while it runs.
	ConditionSucceeded = "Succeeded"
	// ConditionReady is True when the resource reached the state its spec asked for: a response,
	// or a cancellation that was requested here.
	ConditionReady = "Ready"
	// ConditionStalled is present, and True, only when the operator cannot make progress without
	// a change from a person: failed or externally cancelled operations, missing operations,
	// credential problems, invalid requests, and submits that may have started a solve.
	ConditionStalled = "Stalled"
)

// PollBeforeDeadline says how an operation with a known deadline is read before it.
// +kubebuilder:validation:Enum=Age;Sparse
type PollBeforeDeadline string

const (
	// PollByAge reads by the solve's age: an early finish is seen within a fifth of its age.
	PollByAge PollBeforeDeadline = "Age"
	// PollSparse reads about once in every fifth of the timeout: for solves that use it all.
	PollSparse PollBeforeDeadline = "Sparse"
)

// Condition reasons. The Ready condition's reason is the State printer column and the state label
// of routeopt_operations: the problem when there is one (AuthFailed, RemoteUnavailable ...),
// otherwise the Succeeded condition's reason.
const (
	ReasonRunning                = "Running"
	ReasonCancelling             = "Cancelling"
	ReasonCancelUnsupported      = "CancelUnsupported"
	ReasonSucceeded              = "Succeeded"
	ReasonCompletedDespiteCancel = "CompletedDespiteCancel"
	ReasonCancelled              = "Cancelled"
	ReasonFailed                 = "Failed"
	ReasonNotFound               = "NotFound"
	ReasonAuthFailed             = "AuthFailed"
	ReasonRequestRejected        = "RequestRejected"
	ReasonRemoteUnavailable      = "RemoteUnavailable"
	ReasonPending                = "Pending"
	// ReasonPastExpectedEnd: the operation is still running although its deadline
	// (status.expectedEndTime) passed more than 30 s ago; the server should have answered by
	// then. It is read by its age again, and the reason changes when it ends.
	ReasonPastExpectedEnd = "PastExpectedEnd"
	// ReasonInvalidSpec: the spec holds a value the operator cannot use (one stored before the
	// API validated it); nothing is sent until it is fixed.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonSubmitting: spec.submit has not been answered with an operation name yet; the request is
	// being sent, or waits for quota (RESOURCE_EXHAUSTED) or for an explicit UNAVAILABLE answer to
	// pass. No solve runs yet.
	ReasonSubmitting = "Submitting"
	// ReasonSubmitUncertain: an attempt to send spec.submit may have started a solve, and the API
	// offers no way to find it (no request id, no list). A solve may be running and billed. Nothing is
	// sent again until the annotation AnnotationResubmit names the attempt
	// (status.submit.attemptedAt). Stalled.
	ReasonSubmitUncertain = "SubmitUncertain"
	// ReasonInvalidRequest: the request of spec.submit cannot be built (an unknown field or a bad
	// value in the ConfigMap's or the inline JSON, a missing ConfigMap or key), or the server refused
	// it as invalid before starting a solve. Nothing is sent until the spec or the ConfigMap changes.
	// Stalled.
	ReasonInvalidRequest = "InvalidRequest"
)

// OptimizationOperationStatus is what the operator last observed of the remote operation.
type OptimizationOperationStatus struct {
	// observedGeneration is the metadata.generation this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// operationName is the remote operation this resource tracks: spec.operationName, or the name the server answered to spec.submit. Empty while a submit has not been answered.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	OperationName string `json:"operationName,omitempty"`

	// submit records the attempts to send spec.submit; absent for resources that set spec.operationName.
	// +optional
	Submit *SubmitStatus `json:"submit,omitempty"`

	// done is true once the remote operation reported done. A finished operation is never polled again and its terminal status never changes.
	//
	// It is false, never absent, once the operator wrote any status, so that the Done column and kubectl wait --for=jsonpath='{.status.done}'=true see it.
	// +optional
	// +kubebuilder:default=false
	Done bool `json:"done"`

	// error is the operation's google.rpc.Status when it finished with an error.
	// +optional
	Error *OperationError `json:"error,omitempty"`

	// result summarises the operation's response when it finished successfully.
	// +optional
	Result *OperationResult `json:"result,omitempty"`

	// metadataType is the @type URL of the operation's metadata.
	// +optional
	MetadataType string `json:"metadataType,omitempty"`

	// cancel records the cancel request and the server's answer.
	// +optional
	Cancel *CancelStatus `json:"cancel,omitempty"`

	// startTime is when the operator first observed the remote operation: its first read, or the answer to spec.submit, which names the running operation.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// expectedEndTime is when the solve must end at the latest: when it started plus its timeout (spec.solveTimeout, counted from startTime, or the timeout of the request spec.submit sent, counted from submittedAt). Unset when the timeout is not known. Reads come just after it; an operation still running well past it is read by its age again.
	// +optional
	ExpectedEndTime *metav1.Time `json:"expectedEndTime,omitempty"`

	// completionTime is when the operator first observed the operation done.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// lastHandledReconcileAt is the value of the annotation reconcile.fluxcd.io/requestedAt that the operator handled last (Flux's convention): a value different from it asks for one read now.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// conditions: Succeeded (the operation's outcome), Ready (the spec's intent reached) and Stalled (present only when True).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// OptimizationOperation tracks, and on request cancels, a Google Route Optimization long-running operation (batchOptimizeTours, optimizeToursLongRunning, OptimizeToursUri): one started elsewhere (spec.operationName) or one it starts itself (spec.submit).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=optop,categories=routeopt
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Status of the Ready condition: True once the spec's intent is reached"
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="Reason of the Ready condition: the problem when there is one, otherwise the state of the operation"
// +kubebuilder:printcolumn:name="Done",type=boolean,JSONPath=`.status.done`,description="Whether the remote operation finished"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Operation",type=string,JSONPath=`.status.operationName`,priority=1,description="The remote operation tracked"
// +kubebuilder:printcolumn:name="Start",type=date,JSONPath=`.status.startTime`,priority=1,description="When the operator first observed the remote operation"
// +kubebuilder:printcolumn:name="Completion",type=date,JSONPath=`.status.completionTime`,priority=1,description="When the operator first observed the operation done"
// +kubebuilder:printcolumn:name="Cancel",type=string,JSONPath=`.status.cancel.outcome`,priority=1,description="The server's answer to the cancel (status.cancel.outcome)"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1,description="Message of the Ready condition"
type OptimizationOperation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec OptimizationOperationSpec `json:"spec"`
	// +optional
	Status OptimizationOperationStatus `json:"status,omitempty"`
}

// OptimizationOperationList contains a list of OptimizationOperation.
// +kubebuilder:object:root=true
type OptimizationOperationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OptimizationOperation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OptimizationOperation{}, &OptimizationOperationList{})
}
