package emulator

import (
	"net/http"
	"strings"
)

// authorize enforces the optional bearer-token requirement: no token is 401
// UNAUTHENTICATED, a token outside the accepted list is 403
// PERMISSION_DENIED. Tokens are opaque strings; nothing is verified.
func authorize(r *http.Request, cfg *settings, method string) *apiError {
	if !cfg.requireToken {
		return nil
	}
	tok, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return errUnauthenticated(method)
	}
	if len(cfg.acceptedTokens) > 0 {
		if _, ok := cfg.acceptedTokens[tok]; !ok {
			return errPermissionDenied(method)
		}
	}
	return nil
}

// bearerToken extracts the token of a "Bearer" Authorization header; the
// scheme is case-insensitive (RFC 9110).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
