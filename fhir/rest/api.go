// Package rest is Kiln's FHIR R4 HTTP API (http.html) on gorilla/mux.
//
// One file per interaction. The interaction table below drives both the
// routes and the CapabilityStatement, so the statement can never claim an
// interaction the server does not route, or the reverse.
package rest

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Store is what the REST layer needs from a backend.
type Store interface {
	store.Resources
	store.History
	store.Searcher
	store.Pinger
}

// Config configures the API.
type Config struct {
	// BaseURL is the public base for Location headers and bundle links
	// (e.g. https://fhir.example.org/r4). Empty: derived from each request.
	BaseURL string
	// MaxBody is the largest request body accepted, in bytes (413 above).
	MaxBody int64
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Metrics records request counts and latencies; nil records nothing.
	Metrics *Metrics
	// Version is the software version reported in the CapabilityStatement.
	Version string
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// Registry is the search parameter registry: index entries are
	// extracted and queries parsed with it; nil is search.Default().
	Registry *search.Registry
	// SearchParams, when set, serves custom SearchParameter resources
	// (searchparams.go): searches, index entries and the
	// CapabilityStatement follow its registries instead of Registry.
	SearchParams SearchParams
	// StrictSearch makes unknown search parameters an error unless the
	// request says Prefer: handling=lenient (search.html#errors).
	StrictSearch bool
	// OAuth lists the authorization server's endpoints for the
	// CapabilityStatement's security section (SMART App Launch
	// conformance: the oauth-uris extension); nil: no security section.
	OAuth *OAuthURIs
	// Auth authenticates every request but /metadata and enforces the
	// scopes of its token (permit.go); nil allows everything (--auth=none).
	Auth Authorizer
	// Audit receives one event per request made with a valid token
	// (audit.go); nil records nothing.
	Audit Auditor
	// ExternalOperations are operations another handler serves in front
	// of this API (cmd/kiln routes Bulk Data's $export to fhir/bulk).
	// They are listed in the CapabilityStatement only, never routed here.
	ExternalOperations []ExternalOperation
	// Instantiates are the canonical URLs of other CapabilityStatements
	// this server implements (CapabilityStatement.instantiates), such as
	// Bulk Data's when export is served.
	Instantiates []string
}

// ExternalOperation is an operation served by another handler, for the
// CapabilityStatement (Config.ExternalOperations).
type ExternalOperation struct {
	// Name is the code after '$'.
	Name string
	// Definition is the canonical URL of the OperationDefinition.
	Definition string
	// System lists it in rest.operation (invoked on [base]).
	System bool
	// Types lists it in rest.resource.operation of these types (invoked
	// on [base]/[type] or [base]/[type]/[id]).
	Types []string
}

// API serves the FHIR REST interface.
type API struct {
	cfg      Config
	store    Store
	searcher store.Searcher
	router   *mux.Router
	capsNow  atomic.Pointer[capsCache] // searchparams.go
}

// Level is where an interaction applies (CapabilityStatement.rest.resource
// vs rest.interaction).
type level int

const (
	typeLevel level = iota
	instanceLevel
	systemLevel
)

// interaction is one row of the table that drives routes and capabilities.
type interaction struct {
	code    string // CapabilityStatement interaction code (restful-interaction)
	level   level
	methods []string
	path    string
	handle  func(*API, http.ResponseWriter, *http.Request) error
}

// Route patterns constrain ids (datatypes.html#id) so that _history,
// _search and $operations can never match as an id.
const (
	typePat = `{type:[A-Z][A-Za-z]+}`
	idPat   = `{id:[A-Za-z0-9\-\.]{1,64}}`
)

// interactions is the table, most specific patterns first (mux takes the
// first match).
var interactions = []interaction{
	{"history-system", systemLevel, []string{http.MethodGet, http.MethodHead}, "/_history", (*API).historySystem},
	{"history-type", typeLevel, []string{http.MethodGet, http.MethodHead}, "/" + typePat + "/_history", (*API).historyType},
	{"vread", instanceLevel, []string{http.MethodGet, http.MethodHead}, "/" + typePat + "/" + idPat + "/_history/{vid}", (*API).vread},
	{"history-instance", instanceLevel, []string{http.MethodGet, http.MethodHead}, "/" + typePat + "/" + idPat + "/_history", (*API).historyInstance},
	{"read", instanceLevel, []string{http.MethodGet, http.MethodHead}, "/" + typePat + "/" + idPat, (*API).read},
	{"update", instanceLevel, []string{http.MethodPut}, "/" + typePat + "/" + idPat, (*API).update},
	{"delete", instanceLevel, []string{http.MethodDelete}, "/" + typePat + "/" + idPat, (*API).delete},
	{"create", typeLevel, []string{http.MethodPost}, "/" + typePat, (*API).create},
	// Conditional update and delete are the update and delete interactions
	// (capabilities declare them with conditionalUpdate/conditionalDelete).
	{"update", typeLevel, []string{http.MethodPut}, "/" + typePat, (*API).conditionalUpdate},
	{"delete", typeLevel, []string{http.MethodDelete}, "/" + typePat, (*API).conditionalDelete},
	{"search-type", typeLevel, []string{http.MethodGet, http.MethodHead}, "/" + typePat, (*API).searchType},
	{"search-type", typeLevel, []string{http.MethodPost}, "/" + typePat + "/_search", (*API).searchType},
	{"search-type", typeLevel, []string{http.MethodGet, http.MethodHead}, "/{compartment:[A-Z][A-Za-z]+}/" + idPat + "/{type:[A-Z][A-Za-z]+}", (*API).searchCompartment},
	{"search-system", systemLevel, []string{http.MethodGet, http.MethodHead}, "/{compartment:[A-Z][A-Za-z]+}/" + idPat + "/*", (*API).searchCompartmentAll},
	{"search-system", systemLevel, []string{http.MethodGet, http.MethodHead}, "/", (*API).searchSystem},
	{"search-system", systemLevel, []string{http.MethodPost}, "/_search", (*API).searchSystem},
	// One route serves both: the Bundle's type decides (transaction.go).
	// The second row is never matched by mux; it is here so that the
	// CapabilityStatement lists both interactions.
	{"batch", systemLevel, []string{http.MethodPost}, "/", (*API).bundle},
	{"transaction", systemLevel, []string{http.MethodPost}, "/", (*API).bundle},
	{"patch", instanceLevel, []string{http.MethodPatch}, "/" + typePat + "/" + idPat, (*API).patch},
	{"patch", typeLevel, []string{http.MethodPatch}, "/" + typePat, (*API).conditionalPatch},
}

// New returns the API over st.
func New(cfg Config, st Store) *API {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = search.Default()
	}
	a := &API{cfg: cfg, store: st}
	// Terminology modifiers, _list and the like resolve into plain
	// clauses before the store sees a query.
	a.searcher = resolver{a}
	if cfg.SearchParams != nil {
		a.store = spNotifier{Store: st, sp: cfg.SearchParams}
	}
	a.capabilities() // rendered once up front, again when the registry changes

	r := mux.NewRouter()
	r.Handle("/metadata", a.wrap("capabilities", (*API).metadata)).Methods(http.MethodGet, http.MethodHead, http.MethodOptions)
	a.mountPagingPost(r)
	for _, in := range interactions {
		r.Handle(in.path, a.wrap(in.code, in.handle)).Methods(in.methods...)
	}
	// After the interactions (no interaction pattern matches a "$name"
	// segment, so the hot read route is tried first) and before the
	// invalid-id catch-alls, which would.
	a.mountOperations(r)
	// An id outside the id rules on an otherwise valid path is a client
	// error, not an unknown endpoint.
	r.Handle("/"+typePat+"/{id}", a.wrap("invalid-id", (*API).invalidID))
	r.Handle("/"+typePat+"/{id}/_history{rest:.*}", a.wrap("invalid-id", (*API).invalidID))
	r.NotFoundHandler = a.wrap("unknown", (*API).notFound)
	r.MethodNotAllowedHandler = a.wrap("unknown", (*API).methodNotAllowed)
	a.router = r
	return a
}

// ServeHTTP runs the request through the operational middleware (request
// id, logging, metrics, limits) and the router.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.observe(w, r, a.router)
}

// wrap adapts an error-returning handler: it checks that the type exists
// and writes any error as an OperationOutcome, in one place.
func (a *API) wrap(code string, h func(*API, http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setInteraction(r, code)
		if err := a.serve(w, r, h); err != nil {
			a.fail(w, r, err)
		}
	})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, h func(*API, http.ResponseWriter, *http.Request) error) error {
	// Authentication comes first, so that an anonymous client learns
	// nothing (not even which types exist). The capability statement is
	// public (SMART: discovery), and a CORS preflight carries no
	// credentials (it is answered without touching any resource).
	if info(r).interaction != "capabilities" && r.Method != http.MethodOptions {
		var err error
		if r, err = a.authenticate(r); err != nil {
			return err
		}
	}
	if typ, ok := mux.Vars(r)["type"]; ok {
		if err := checkType(typ); err != nil {
			return err
		}
		setType(r, typ) // only known types: metric labels stay bounded
	}
	noteTarget(r)
	if _, err := responseFormat(r); err != nil {
		return err
	}
	return h(a, w, r)
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) error {
	// The first segment decides the answer: an unknown resource type is
	// the 404 http.html names for "resource type not supported".
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if seg != "" && !strings.HasPrefix(seg, "_") && !strings.HasPrefix(seg, "$") {
		if err := checkType(seg); err != nil {
			return err
		}
	}
	return outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "no FHIR endpoint at %s %s", r.Method, r.URL.Path)
}

func (a *API) methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	return outcome.Newf(http.StatusMethodNotAllowed, outcome.CodeNotSupported, "%s is not supported on %s", r.Method, r.URL.Path)
}

func (a *API) invalidID(w http.ResponseWriter, r *http.Request) error {
	return outcome.New(http.StatusBadRequest, outcome.CodeValue,
		"invalid id: an id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")
}

// Ready reports whether the store answers (for /readyz).
func (a *API) Ready(ctx context.Context) error { return a.store.Ping(ctx) }

// now is the server clock truncated to what the store keeps (microseconds),
// so what a client reads back equals what was stamped.
func (a *API) now() time.Time { return a.cfg.Now().UTC().Truncate(time.Microsecond) }
