package remote

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/oauth2/google"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

// defaultUniverseDomain is the only universe whose keys are accepted. A key of another universe
// would need that universe's token endpoint and API host, which the operator does not derive.
const defaultUniverseDomain = "googleapis.com"

// normalizeTokenURI reduces an absolute http(s) URL to scheme://host[:port]/path, lower-case
// scheme and host, without the scheme's default port. URLs with user info, a query or a
// fragment have no normal form: a trusted endpoint is named by scheme, host and path alone,
// and anything more is a way to make two spellings differ.
func normalizeTokenURI(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "https" && scheme != "http":
		return "", fmt.Errorf("the scheme is not https or http")
	case u.Opaque != "" || u.Hostname() == "":
		return "", fmt.Errorf("no host")
	case u.User != nil, u.RawQuery != "" || u.ForceQuery, u.Fragment != "" || u.RawFragment != "":
		return "", fmt.Errorf("user info, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// trustedTokenURIs is the set of token endpoints a tenant's key may name, in normal form.
type trustedTokenURIs map[string]bool

// newTrustedTokenURIs holds Google's token endpoint and the operator's extra entries. An entry
// without a normal form is left out, so it matches nothing; Config.Validate reports it.
func newTrustedTokenURIs(extra []string) trustedTokenURIs {
	t := trustedTokenURIs{}
	for _, raw := range append([]string{google.JWTTokenURL}, extra...) {
		if n, err := normalizeTokenURI(raw); err == nil {
			t[n] = true
		}
	}
	return t
}

// check refuses a key whose token endpoint is not trusted. The oauth2 library POSTs a signed
// assertion to token_uri and reports the answer: without this check a tenant could make the
// operator send requests from inside the cluster to any address (and read the answers back
// from conditions). A missing token_uri is accepted: the library then uses Google's endpoint
// (google.JWTTokenURL), which is trusted.
func (t trustedTokenURIs) check(tokenURI, universeDomain string) error {
	if universeDomain != "" && !strings.EqualFold(universeDomain, defaultUniverseDomain) {
		return fmt.Errorf("the key's universe_domain %q is not supported: the operator accepts keys of the %s universe only",
			policy.Bound(universeDomain, 200), defaultUniverseDomain)
	}
	if tokenURI == "" {
		return nil
	}
	if n, err := normalizeTokenURI(tokenURI); err == nil && t[n] {
		return nil
	}
	return fmt.Errorf("the key's token_uri %q is not a trusted token endpoint (%s); the operator sends signed assertions only there (add it with --trusted-token-uris)",
		policy.Bound(tokenURI, 200), google.JWTTokenURL)
}
