package v1alpha1

// AnnotationRequestedAt asks the operator to read the operation once, soon, outside its poll schedule: Flux's convention for "reconcile now" (the value is any string, usually a timestamp, and is opaque to the operator).
//
// The value handled last is recorded in status.lastHandledReconcileAt, so a value is handled once: annotating again with the same value, or keeping the annotation in Git, reads nothing more. The read goes through the operator's call budget with the priority of a first read, and counts as handled whatever it answered. A resource whose operation is done is not read again: the value is only recorded. Before spec.submit's request has started a solve, a new value lets a request the server refused without starting a solve be sent again now instead of after its back-off (never after an attempt whose outcome is unknown: that takes ops.routeopt.dev/resubmit).
//
//	kubectl annotate optop NAME reconcile.fluxcd.io/requestedAt="$(date +%s)" --overwrite
const AnnotationRequestedAt = "reconcile.fluxcd.io/requestedAt"

// ResultTarget names the ConfigMap the operator writes the full response to.
type ResultTarget struct {
	// name of the ConfigMap, in the resource's namespace. The operator creates it once the solve succeeded, owned by this resource (deleted with it); it never writes over a ConfigMap it did not create for this resource.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// Keys and annotations of the ConfigMap of spec.resultTo.
const (
	// ResultKeyJSON holds the OptimizeToursResponse as protojson, in data, when it is at most ResultPlainLimit bytes.
	ResultKeyJSON = "response.json"
	// ResultKeyGzip holds the same JSON gzip-compressed, in binaryData, when it is larger.
	ResultKeyGzip = "response.json.gz"
	// AnnotationResultSHA256 is the SHA-256 (hex) of the JSON (before compression): with it a reader, and the operator after a restart, can tell a complete ConfigMap.
	AnnotationResultSHA256 = "ops.routeopt.dev/result-sha256"
	// AnnotationResultOperation names the operation whose response the ConfigMap holds.
	AnnotationResultOperation = "ops.routeopt.dev/operation"
	// ResultPlainLimit is the largest JSON stored as is; larger JSON is compressed.
	ResultPlainLimit = 256 << 10
	// ResultMaxBytes is the most a ConfigMap holds: the API server refuses one whose data and binaryData together exceed 1 MiB.
	ResultMaxBytes = 1 << 20
)

// ConditionResultStored is present on a resource that sets spec.resultTo once its operation is done: True when the response is in the ConfigMap, False when it is not (the reason says why). It does not change Succeeded or Ready: a solve whose response cannot be stored still succeeded.
const ConditionResultStored = "ResultStored"

// Reasons of the ResultStored condition.
const (
	// ReasonResultStored: the ConfigMap holds the whole response.
	ReasonResultStored = "Stored"
	// ReasonResultTooLarge: the response does not fit in one ConfigMap, even compressed; nothing was written. Final: solve with spec.submit.optimizeToursUri to get large results in Cloud Storage.
	ReasonResultTooLarge = "TooLarge"
	// ReasonResultNotOwned: a ConfigMap of that name exists and was not created by the operator for this resource; it is left as it is. Written as soon as that ConfigMap is deleted.
	ReasonResultNotOwned = "NotOwned"
	// ReasonResultNoResponse: the operation finished without an OptimizeToursResponse (it failed or was cancelled, or its response is of another type); there is nothing to store. Final.
	ReasonResultNoResponse = "NoResponse"
	// ReasonResultUnavailable: the response was not kept (the operator restarted after it saw the operation done) and the operation can no longer be read (it expired). Final.
	ReasonResultUnavailable = "ResponseUnavailable"
	// ReasonResultWriteFailed: the write failed, or the response could not be read again, for a reason that may pass (a permission, the API server); it is tried again.
	ReasonResultWriteFailed = "WriteFailed"
)
