package remote

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"sync"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	routeoptimization "cloud.google.com/go/maps/routeoptimization/apiv1"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	htransport "google.golang.org/api/transport/http"

	"github.com/routeopt/routeopt-operator/internal/policy"
)

const (
	// DefaultEndpoint is the Route Optimization API. The operations methods live on the same
	// host as the solves, not on the generic longrunning host the client defaults to.
	DefaultEndpoint = "https://routeoptimization.googleapis.com"
	// Scope is the OAuth scope the API requires.
	Scope = "https://www.googleapis.com/auth/cloud-platform"
	// EmulatorHostEnv follows the convention of Google's emulators (PUBSUB_EMULATOR_HOST ...):
	// when set to host:port, the operator talks plain HTTP to that host without credentials.
	EmulatorHostEnv = "ROUTEOPTIMIZATION_EMULATOR_HOST"

	maxCachedClients = 128
)

// Config is fixed at start-up by the operator's flags; no resource can change it, so a tenant
// cannot aim the operator's credentials at another host.
type Config struct {
	// Endpoint is the API's base URL.
	Endpoint string
	// EmulatorHost, when set, overrides Endpoint with http://EmulatorHost and disables auth.
	EmulatorHost string
	// QuotaProject is sent as x-goog-user-project (needed with user ADC credentials).
	QuotaProject string
	// Timeout bounds each call (Get, Cancel, Submit) through its context, and each token request.
	Timeout time.Duration
	// UserAgent identifies the operator to the API.
	UserAgent string
	// TrustedTokenURIs are token endpoints a service-account key from a Secret may name in
	// token_uri, besides Google's (https://oauth2.googleapis.com/token, always trusted). They
	// are compared with a key's token_uri by scheme, host, port and path, exactly. Keys of the
	// operator's own Application Default Credentials are not checked: the operator chose them.
	TrustedTokenURIs []string
}

// Validate reports settings that cannot work, such as a trusted token URI that is not an
// absolute http(s) URL without user info, query or fragment (it would match no key).
func (c Config) Validate() error {
	for _, u := range c.TrustedTokenURIs {
		if _, err := normalizeTokenURI(u); err != nil {
			return fmt.Errorf("trusted token URI %q: %w", u, err)
		}
	}
	return nil
}

// Credentials selects the identity of the calls.
type Credentials struct {
	// JSON is a Google credentials file (a service-account key, or an external-account
	// configuration). Empty means the operator's Application Default Credentials.
	JSON []byte
}

func (c Credentials) key() string {
	if len(c.JSON) == 0 {
		return "adc"
	}
	sum := sha256.Sum256(c.JSON)
	return "json:" + hex.EncodeToString(sum[:])
}

// Factory builds API clients and keeps them, one per distinct credential, so connections and
// tokens are reused across reconciles.
type Factory struct {
	cfg Config
	// base outlives every reconcile: token sources refresh tokens with it long after the
	// reconcile that built the client has returned.
	base    context.Context
	metrics Observer
	trusted trustedTokenURIs

	mu    sync.Mutex
	cache map[string]*list.Element
	lru   *list.List
}

// cached is the clients of one credential: Operations and Submitter share one *http.Client.
type cached struct {
	key string
	ops Operations
	sub Submitter
}

// Observer receives one record per remote request (for metrics).
type Observer func(method string, err error, elapsed time.Duration)

// NewFactory returns a Factory. base must live as long as the operator.
func NewFactory(base context.Context, cfg Config, obs Observer) *Factory {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &Factory{cfg: cfg, base: base, metrics: obs, trusted: newTrustedTokenURIs(cfg.TrustedTokenURIs),
		cache: map[string]*list.Element{}, lru: list.New()}
}

// Endpoint is where calls go, for logs.
func (f *Factory) Endpoint() string {
	if f.cfg.EmulatorHost != "" {
		return "http://" + f.cfg.EmulatorHost
	}
	return f.cfg.Endpoint
}

// For returns the client for creds, building it on first use. Errors loading credentials are
// *policy.CredentialsError.
func (f *Factory) For(creds Credentials) (Operations, error) {
	c, err := f.clients(creds)
	if err != nil {
		return nil, err
	}
	return c.ops, nil
}

// SubmitterFor returns the Submitter for creds: the same credentials, HTTP client, cache entry
// and errors as For(creds).
func (f *Factory) SubmitterFor(creds Credentials) (Submitter, error) {
	c, err := f.clients(creds)
	if err != nil {
		return nil, err
	}
	return c.sub, nil
}

func (f *Factory) clients(creds Credentials) (*cached, error) {
	key := creds.key()
	if f.cfg.EmulatorHost != "" {
		key = "emulator" // credentials are ignored by the emulator convention
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.cache[key]; ok {
		f.lru.MoveToFront(el)
		return el.Value.(*cached), nil
	}
	c, err := f.build(creds)
	if err != nil {
		return nil, err
	}
	c.key = key
	if f.metrics != nil {
		c.ops = &observed{next: c.ops, obs: f.metrics}
		c.sub = &observedSubmitter{next: c.sub, obs: f.metrics}
	}
	f.cache[key] = f.lru.PushFront(c)
	if f.lru.Len() > maxCachedClients {
		// Not closed: a reconcile may still hold it (Close would break its next call). The
		// garbage collector reclaims it and its idle connections once nobody does.
		oldest := f.lru.Remove(f.lru.Back()).(*cached)
		delete(f.cache, oldest.key)
	}
	return c, nil
}

func (f *Factory) build(creds Credentials) (*cached, error) {
	opts := []option.ClientOption{option.WithUserAgent(f.cfg.UserAgent)}
	if f.cfg.EmulatorHost != "" {
		opts = append(opts, option.WithEndpoint("http://"+f.cfg.EmulatorHost), option.WithoutAuthentication())
	} else {
		ts, err := f.tokenSource(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithEndpoint(f.cfg.Endpoint), ts)
		// The quota project is for the operator's own identity (user ADC needs one); a
		// tenant's service account bills its own project and may lack rights on this one.
		if f.cfg.QuotaProject != "" && len(creds.JSON) == 0 {
			opts = append(opts, option.WithQuotaProject(f.cfg.QuotaProject))
		}
	}
	// One *http.Client serves the official clients (Cancel; the submits) and getter (Get),
	// built with the options the official LRO client would have used, so all send the same
	// credentials and headers over the same connections.
	hc, endpoint, err := htransport.NewClient(f.base, append(officialClientDefaults(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create the HTTP client for %s: %w", f.Endpoint(), err)
	}
	client, err := lroauto.NewOperationsRESTClient(f.base, option.WithEndpoint(endpoint), option.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("create operations client for %s: %w", f.Endpoint(), err)
	}
	noRetry(client)
	ro, err := routeoptimization.NewRESTClient(f.base, option.WithEndpoint(endpoint), option.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("create route optimization client for %s: %w", f.Endpoint(), err)
	}
	noSubmitRetry(ro)
	return &cached{
		ops: &lroOperations{c: client, get: &getter{hc: hc, endpoint: endpoint}, timeout: f.cfg.Timeout},
		sub: &submitter{c: ro, timeout: f.cfg.Timeout},
	}, nil
}

// officialClientDefaults are the options lroauto.NewOperationsRESTClient puts before its
// caller's (they are unexported there). With option.WithHTTPClient the client uses the given
// client as it is, so the client is built here with the same defaults: the new auth library,
// scopes, audience and universe.
func officialClientDefaults() []option.ClientOption {
	return []option.ClientOption{
		internaloption.WithDefaultEndpointTemplate("https://longrunning.UNIVERSE_DOMAIN"),
		internaloption.WithDefaultMTLSEndpoint("https://longrunning.mtls.googleapis.com"),
		internaloption.WithDefaultUniverseDomain("googleapis.com"),
		internaloption.WithDefaultAudience("https://longrunning.googleapis.com/"),
		internaloption.WithDefaultScopes(lroauto.DefaultAuthScopes()...),
		internaloption.EnableNewAuthLibrary(),
	}
}

func (f *Factory) tokenSource(creds Credentials) (option.ClientOption, error) {
	// The oauth2 library fetches tokens with the HTTP client of the context it was given,
	// not with the call's context: without a timeout of its own, a token endpoint that hangs
	// would hold every call past its deadline.
	ctx := context.WithValue(f.base, oauth2.HTTPClient, &http.Client{Timeout: f.cfg.Timeout})
	if len(creds.JSON) == 0 {
		c, err := google.FindDefaultCredentials(ctx, Scope)
		if err != nil {
			return nil, &policy.CredentialsError{Err: fmt.Errorf(
				"no Application Default Credentials: %w (on GKE bind the operator's service account with Workload Identity, or set spec.credentialsSecretRef)", err)}
		}
		return option.WithTokenSource(c.TokenSource), nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(creds.JSON, &head); err != nil {
		return nil, &policy.CredentialsError{Err: fmt.Errorf("the credentials are not valid JSON: %w", err)}
	}
	// Only service-account keys: other credential files name URLs, files or commands that the
	// operator would fetch, read or run with its own privileges (an external_account file can
	// send the operator's Kubernetes token to any host), and a Secret is tenant input.
	if head.Type != string(google.ServiceAccount) {
		return nil, &policy.CredentialsError{Err: fmt.Errorf(
			"credentials of type %q are not accepted from a Secret; use a service-account key (type %q), or Workload Identity through the operator's own identity", head.Type, google.ServiceAccount)}
	}
	if err := checkServiceAccountKey(creds.JSON, f.trusted); err != nil {
		return nil, &policy.CredentialsError{Err: err}
	}
	c, err := google.CredentialsFromJSONWithType(ctx, creds.JSON, google.ServiceAccount, Scope)
	if err != nil {
		return nil, &policy.CredentialsError{Err: fmt.Errorf("load the service-account key: %w", err)}
	}
	return option.WithTokenSource(c.TokenSource), nil
}

// checkServiceAccountKey catches a malformed key when it is loaded. The oauth2 library parses
// the private key only when it first needs a token, and its error then looks like any other
// failed request; here it becomes a clear message about the Secret. A key naming a token
// endpoint that is not trusted is refused here too, before anything is sent.
func checkServiceAccountKey(data []byte, trusted trustedTokenURIs) error {
	var key struct {
		ClientEmail    string `json:"client_email"`
		PrivateKey     string `json:"private_key"`
		TokenURI       string `json:"token_uri"`
		UniverseDomain string `json:"universe_domain"`
	}
	if err := json.Unmarshal(data, &key); err != nil {
		return fmt.Errorf("the service-account key is not valid JSON: %w", err)
	}
	if err := trusted.check(key.TokenURI, key.UniverseDomain); err != nil {
		return err
	}
	if key.ClientEmail == "" {
		return fmt.Errorf("the service-account key has no client_email")
	}
	block, _ := pem.Decode([]byte(key.PrivateKey))
	if block == nil {
		return fmt.Errorf("the private_key of service account %s is not PEM-encoded", key.ClientEmail)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		if _, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 != nil {
			return fmt.Errorf("the private_key of service account %s cannot be parsed: %w", key.ClientEmail, err)
		}
	}
	return nil
}

// observed reports every request to an Observer.
type observed struct {
	next Operations
	obs  Observer
}

func (o *observed) Get(ctx context.Context, name string) (op *longrunningpb.Operation, err error) {
	start := time.Now()
	op, err = o.next.Get(ctx, name)
	o.obs("GetOperation", err, time.Since(start))
	return op, err
}

func (o *observed) Cancel(ctx context.Context, name string) error {
	start := time.Now()
	err := o.next.Cancel(ctx, name)
	o.obs("CancelOperation", err, time.Since(start))
	return err
}
