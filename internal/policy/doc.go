// Package policy holds the operator's decisions as pure functions: how a remote error is
// classified, what the status says about an operation, and when to poll next. Nothing here
// performs I/O or reads a clock; callers pass in what they observed and the current time, so
// every rule is covered by table-driven tests.
package policy
