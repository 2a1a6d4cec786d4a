package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/bulk"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/smart"
)

// smartAuthorizer adapts the SMART authorization server to what the FHIR
// API needs (rest.Authorizer). It is the only place the two meet: fhir/…
// and smart never import each other (design.md).
type smartAuthorizer struct{ srv *smart.Server }

func (a smartAuthorizer) Authorize(r *http.Request) (*rest.Access, error) {
	g, err := a.srv.Authenticate(r)
	switch {
	case errors.Is(err, smart.ErrNoToken):
		return nil, fmt.Errorf("%w", rest.ErrNoToken)
	case errors.Is(err, smart.ErrInvalidToken):
		return nil, fmt.Errorf("%w", rest.ErrInvalidToken)
	case err != nil:
		// The store behind the token records is down: rest answers 503
		// (the error wraps store.ErrUnavailable), never a grant.
		return nil, err
	}
	return accessOf(g), nil
}

// accessOf turns a grant into the rules rest enforces: one rule per
// resource scope. smart.Scope already normalises SMART v1 and v2 to v2
// letters, which is what rest.Rule.Ops holds.
func accessOf(g smart.Grant) *rest.Access {
	acc := &rest.Access{ClientID: g.ClientID, FHIRUser: g.FHIRUser, Patient: g.Patient}
	for _, s := range g.Scopes {
		acc.Rules = append(acc.Rules, rest.Rule{Context: s.Context, Type: s.Type, Ops: s.Ops, Query: s.Query})
	}
	return acc
}

// smartBase is the FHIR base URL tokens are issued for (aud). SMART needs
// an absolute one; without --base-url it is http://localhost:PORT
// (https with --tls-cert), right for a development machine only (a client
// that calls 127.0.0.1 instead asks for another audience and is refused).
func smartBase(cfg serveConfig, addr net.Addr) string {
	if cfg.baseURL != "" {
		return strings.TrimRight(cfg.baseURL, "/")
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil || port == "" {
		port = "8080"
	}
	if cfg.tlsCert != "" {
		return "https://localhost:" + port
	}
	return "http://localhost:" + port
}

func newSMART(ctx context.Context, cfg serveConfig, addr net.Addr, records smart.Records, logger *slog.Logger) (*smart.Server, error) {
	scfg := smart.Config{BaseURL: smartBase(cfg, addr), Logger: logger,
		AccessTokenLifespan: cfg.accessTTL, RefreshTokenLifespan: cfg.refreshTTL, CodeLifespan: cfg.codeTTL}
	if cfg.baseURL == "" {
		logger.Warn("--base-url is not set: SMART tokens are issued for " + scfg.BaseURL + "; set --base-url to the public FHIR base in production")
	}
	if cfg.oidcIssuer != "" {
		scfg.Upstream = &smart.UpstreamOIDC{Issuer: cfg.oidcIssuer, ClientID: cfg.oidcClientID, ClientSecret: cfg.oidcClientSecret}
	}
	srv, err := smart.New(ctx, scfg, records)
	if err != nil {
		return nil, fmt.Errorf("SMART authorization server: %w", err)
	}
	return srv, nil
}

// withSMART sends the authorization server's paths (discovery documents
// and /auth/…) to it and everything else to the FHIR API. The FHIR API is
// served at the root (a proxy maps the public base onto it), while the
// SMART handler routes on full paths under the base's path, so that path
// is put back in front.
func withSMART(api http.Handler, authz *smart.Server, base string) http.Handler {
	prefix := ""
	if u, err := url.Parse(base); err == nil {
		prefix = strings.TrimRight(u.Path, "/")
	}
	h := authz.Handler()
	toSMART := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefix != "" {
			r2 := r.Clone(r.Context())
			r2.URL.Path = prefix + r.URL.Path
			r2.URL.RawPath = ""
			r = r2
		}
		h.ServeHTTP(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("/.well-known/", toSMART)
	mux.Handle("/auth/", toSMART)
	mux.Handle("/", apiCORS(api, authz))
	return mux
}

// exportAuthorizer adapts SMART grants to what bulk export needs
// (bulk.Authorizer). Bulk Data 2.0 export is a read of whole types, so a
// scope counts when it grants r on a type without a granular query (a
// query restriction cannot be honoured by a whole-type export, so such a
// scope grants nothing here rather than everything).
type exportAuthorizer struct{ srv *smart.Server }

func (a exportAuthorizer) Export(r *http.Request) (bulk.Grant, error) {
	g, err := a.srv.Authenticate(r)
	switch {
	case errors.Is(err, smart.ErrNoToken):
		return bulk.Grant{}, outcome.New(http.StatusUnauthorized, outcome.CodeLogin, "a bearer token is required").
			With("WWW-Authenticate", `Bearer realm="kiln"`)
	case errors.Is(err, smart.ErrInvalidToken):
		return bulk.Grant{}, outcome.New(http.StatusUnauthorized, outcome.CodeLogin, "the bearer token is invalid, expired or revoked").
			With("WWW-Authenticate", `Bearer realm="kiln", error="invalid_token"`)
	case err != nil:
		return bulk.Grant{}, err
	}
	eg, ok := exportGrant(g)
	if !ok {
		return bulk.Grant{}, outcome.New(http.StatusForbidden, outcome.CodeForbidden,
			"the access token grants no read scope that an export can use (system/, user/ or patient/ [type].rs without a query)").
			With("WWW-Authenticate", `Bearer realm="kiln", error="insufficient_scope"`)
	}
	return eg, nil
}

// exportGrant computes what g may export. Unconfined rules (system/) win
// over confined ones (patient/, and user/ for a Patient user), since
// bulk.Grant holds one confinement; a token with only confined rules
// exports its patient's compartment. user/ rules of a Practitioner and
// any other user type export nothing.
func exportGrant(g smart.Grant) (bulk.Grant, bool) {
	userType, userID, _ := strings.Cut(lastTwo(g.FHIRUser), "/")
	var open, confined []string
	openAll, confinedAll := false, false
	patient := ""
	for _, s := range g.Scopes {
		if !strings.Contains(s.Ops, "r") || s.Query != nil {
			continue
		}
		var isOpen bool
		switch {
		case s.Context == "system":
			isOpen = true
		case s.Context == "user" && (userType == "Practitioner" || userType == "PractitionerRole"):
			// REST confines a practitioner to its linked patients
			// (fhir/rest/permit.go linked); bulk.Grant holds one patient,
			// so until export learns the linkage these scopes export
			// nothing rather than every patient.
			continue
		case s.Context == "user" && userType == "Patient":
			patient = userID
		case s.Context == "patient" && g.Patient != "":
			patient = g.Patient
		default:
			continue
		}
		if isOpen {
			openAll = openAll || s.Type == "*"
			open = append(open, s.Type)
		} else {
			confinedAll = confinedAll || s.Type == "*"
			confined = append(confined, s.Type)
		}
	}
	switch {
	case len(open) > 0:
		return bulk.Grant{Client: exportOwner(g, ""), Types: typesOf(open, openAll),
			ClientID: g.ClientID, FHIRUser: g.FHIRUser}, true
	case len(confined) > 0 && patient != "":
		return bulk.Grant{Client: exportOwner(g, patient), Types: typesOf(confined, confinedAll), Patient: patient,
			ClientID: g.ClientID, FHIRUser: g.FHIRUser}, true
	}
	return bulk.Grant{}, false
}

// exportOwner is bulk.Grant.Client, who may poll, cancel and download an
// export: the app, and the user and patient it acts for. The client id
// alone is not enough: every patient of a portal signs in through the
// same app, and patient B's token must not reach patient A's files
// (export.html#bulk-data-output-file-request: files are protected like
// the kick-off), nor an EHR launch for one patient the export of another.
// A Backend Services token has no user (its subject is the client).
func exportOwner(g smart.Grant, patient string) string {
	owner := g.ClientID
	if g.Subject != "" && g.Subject != g.ClientID {
		owner += " user " + g.Subject
	}
	if patient != "" {
		owner += " patient " + patient
	}
	return owner
}

// typesOf is bulk.Grant.Types: nil (every type) when a wildcard was granted.
func typesOf(types []string, all bool) []string {
	if all {
		return nil
	}
	return types
}

// lastTwo keeps "Type/id" of a relative or absolute reference.
func lastTwo(ref string) string {
	parts := strings.Split(strings.TrimRight(ref, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}

// apiCORS lets the browser apps registered with the authorization server
// call the FHIR API from their own origins, the origins of their redirect
// URIs (SMART App Launch: a browser app reads the FHIR API with its
// token; issue 5: CORS from each client's registered origins). The
// bearer token is what grants access; CORS only decides which pages may
// read the answers, so an origin is allowed when any client registered
// it, and an unregistered origin gets no CORS headers at all.
// /metadata answers every origin itself (fhir/rest).
func apiCORS(api http.Handler, authz *smart.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || r.URL.Path == "/metadata" {
			api.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if ok, err := authz.RegisteredOrigin(r.Context(), origin); err != nil || !ok {
			api.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Content-Location, ETag, Last-Modified, Location, WWW-Authenticate, X-Request-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// A preflight: the FHIR API itself has no OPTIONS.
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, If-None-Exist, If-None-Match, Prefer, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		api.ServeHTTP(w, r)
	})
}
