package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
)

// tokenPath is the OAuth2 token endpoint. Point a service-account key's
// token_uri here and golang.org/x/oauth2/google's JWT-bearer flow obtains
// tokens from the emulator.
const tokenPath = "/emulator/v1/token"

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenPrefix starts every access token the token endpoint issues; the
	// rest is the service account's email (the JWT's iss claim).
	TokenPrefix   = "emulator-token:"
	tokenLifetime = 3600 // seconds
)

// TokenFor returns the access token the token endpoint issues to the service
// account with the given email, for use in AcceptedTokens.
func TokenFor(email string) string { return TokenPrefix + email }

// serveToken implements the JWT-bearer grant (RFC 7523) as Google's token
// endpoint does, minus verification: the assertion's signature is NOT checked,
// since the emulator has no key registry; the claims are only parsed. Any
// syntactically valid assertion gets a token naming its issuer.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "cannot parse form: "+err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+jwtBearerGrant)
		return
	}
	claims, err := parseJWTClaims(r.PostForm.Get("assertion"))
	if err != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", err)
		return
	}
	body, _ := json.Marshal(map[string]any{
		"access_token": TokenFor(claims.Iss),
		"token_type":   "Bearer",
		"expires_in":   tokenLifetime,
	})
	s.log.Info("token issued", "iss", claims.Iss, "scope", claims.Scope)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, append(body, '\n'))
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
}

// parseJWTClaims decodes the claims of a compact JWS without verifying it.
// It returns a description of the problem instead of an error value because
// the description goes straight into the OAuth2 error body.
func parseJWTClaims(assertion string) (jwtClaims, string) {
	var c jwtClaims
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return c, "assertion is not a compact JWT (header.claims.signature)"
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, "assertion claims are not base64url: " + err.Error()
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, "assertion claims are not a JSON object: " + err.Error()
	}
	if c.Iss == "" {
		return c, "assertion has no iss claim"
	}
	return c, ""
}

// writeOAuthError answers in the RFC 6749 section 5.2 format, which is what
// golang.org/x/oauth2 parses from a token endpoint.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	writeJSON(w, status, append(body, '\n'))
}

// TokenURL is the token endpoint of the emulator at baseURL (such as http://127.0.0.1:8085), as
// NewServiceAccountKey writes it into token_uri. A client that accepts keys only with trusted
// token endpoints (the operator's --trusted-token-uris) must list it.
func TokenURL(baseURL string) string { return strings.TrimSuffix(baseURL, "/") + tokenPath }

// NewServiceAccountKey returns a service-account key file for email with a fresh RSA key and
// token_uri pointing at the emulator at baseURL (such as http://127.0.0.1:8085). Google's
// client libraries load it like a real key and fetch their tokens from the emulator.
func NewServiceAccountKey(baseURL, email string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "demo-project",
		"private_key_id": "emulator-key",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   email,
		"client_id":      "1234567890",
		"token_uri":      TokenURL(baseURL),
	})
}
