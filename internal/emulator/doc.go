// Package emulator implements a local, in-memory emulator of the Google
// Route Optimization API's long-running operation surface.
//
// The emulator speaks the same REST wire format as
// routeoptimization.googleapis.com: request bodies are decoded into the real
// routeoptimizationpb request types and every Operation, response, metadata
// and error detail is encoded from the official protobuf types through
// protojson, so Google's own Go clients (the routeoptimization REST client and
// the longrunning Operations REST client) work against it unmodified.
//
// Operations are evaluated lazily against an injectable Clock: a solve "runs"
// until the clock passes its planned end, so tests can drive time with a
// FakeClock instead of sleeping. The handler starts no goroutines.
//
// Besides the Google-facing surface under /v1/, the Server exposes an admin
// API under /emulator/v1/ (see AdminClient) for tests: creating operations
// with a chosen outcome, fault injection, request counters, runtime
// configuration and an OAuth2 token endpoint for service-account flows.
package emulator
