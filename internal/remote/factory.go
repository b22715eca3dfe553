package remote

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

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
	// Timeout bounds one HTTP request.
	Timeout time.Duration
	// UserAgent identifies the operator to the API.
	UserAgent string
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

	mu      sync.Mutex
	clients map[string]*list.Element
	lru     *list.List
}

type cached struct {
	key    string
	client *lroauto.OperationsClient
	ops    Operations
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
	return &Factory{cfg: cfg, base: base, metrics: obs, clients: map[string]*list.Element{}, lru: list.New()}
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
	key := creds.key()
	if f.cfg.EmulatorHost != "" {
		key = "emulator" // credentials are ignored by the emulator convention
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.clients[key]; ok {
		f.lru.MoveToFront(el)
		return el.Value.(*cached).ops, nil
	}
	client, err := f.build(creds)
	if err != nil {
		return nil, err
	}
	ops := Operations(&lroOperations{c: client})
	if f.metrics != nil {
		ops = &observed{next: ops, obs: f.metrics}
	}
	f.clients[key] = f.lru.PushFront(&cached{key: key, client: client, ops: ops})
	if f.lru.Len() > maxCachedClients {
		oldest := f.lru.Remove(f.lru.Back()).(*cached)
		delete(f.clients, oldest.key)
		// Close only drops idle connections; a call still in flight on it completes.
		_ = oldest.client.Close()
	}
	return ops, nil
}

func (f *Factory) build(creds Credentials) (*lroauto.OperationsClient, error) {
	opts := []option.ClientOption{option.WithUserAgent(f.cfg.UserAgent)}
	if f.cfg.EmulatorHost != "" {
		opts = append(opts, option.WithEndpoint("http://"+f.cfg.EmulatorHost), option.WithoutAuthentication())
	} else {
		ts, err := f.tokenSource(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithEndpoint(f.cfg.Endpoint), ts)
		if f.cfg.QuotaProject != "" {
			opts = append(opts, option.WithQuotaProject(f.cfg.QuotaProject))
		}
	}
	client, err := lroauto.NewOperationsRESTClient(f.base, opts...)
	if err != nil {
		return nil, fmt.Errorf("create operations client for %s: %w", f.Endpoint(), err)
	}
	noRetry(client, gax.WithTimeout(f.cfg.Timeout))
	return client, nil
}

// credentialTypes are the credential files accepted from a Secret. Each names the identity
// itself; "authorized_user" (a person's gcloud login) is refused in a cluster.
var credentialTypes = map[string]google.CredentialsType{
	string(google.ServiceAccount):             google.ServiceAccount,
	string(google.ExternalAccount):            google.ExternalAccount,
	string(google.ImpersonatedServiceAccount): google.ImpersonatedServiceAccount,
}

func (f *Factory) tokenSource(creds Credentials) (option.ClientOption, error) {
	if len(creds.JSON) == 0 {
		c, err := google.FindDefaultCredentials(f.base, Scope)
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
	typ, ok := credentialTypes[head.Type]
	if !ok {
		return nil, &policy.CredentialsError{Err: fmt.Errorf(
			"credentials of type %q are not accepted; use a service-account key (type service_account) or an external_account configuration", head.Type)}
	}
	c, err := google.CredentialsFromJSONWithType(f.base, creds.JSON, typ, Scope)
	if err != nil {
		return nil, &policy.CredentialsError{Err: fmt.Errorf("load %s credentials: %w", head.Type, err)}
	}
	return option.WithTokenSource(c.TokenSource), nil
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
