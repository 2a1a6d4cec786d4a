// Package smart is Kiln's SMART App Launch 2.x authorization server: app
// launch (standalone and EHR) with PKCE, SMART Backend Services, refresh,
// introspection and revocation, local accounts with login and consent
// pages, and the discovery documents. The OAuth 2.0 protocol machinery is
// ory/fosite; Kiln adds SMART scopes, launch context, consent, client
// assertions per SMART's asymmetric profile, and keeps every piece of
// state in store.Records so several processes can share it.
//
// Tokens are opaque (fosite's HMAC strategy) and looked up in the store
// on every request rather than self-contained JWTs: revocation, a reused
// code or a replayed refresh token takes effect at once in every process,
// a token shows an app nothing about the patient, and there is no second
// key to rotate. The price is one indexed store read per FHIR request.
package smart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/token/jwt"

	"github.com/kiln-fhir/kiln/store"
)

// Config configures New. BaseURL is required.
type Config struct {
	// BaseURL is the FHIR base (absolute, no trailing slash): the only
	// audience tokens are issued for (aud), and the prefix of every
	// endpoint (BaseURL + "/auth/token", BaseURL + "/.well-known/…").
	BaseURL string
	// Issuer of id_tokens (default BaseURL); its
	// /.well-known/openid-configuration must be served by Handler.
	Issuer string
	// AccessTokenLifespan (default 1 h, app-launch.html: "should not
	// exceed one hour"), SystemTokenLifespan for Backend Services
	// (default 5 min, backend-services.html), RefreshTokenLifespan
	// (default 90 days), CodeLifespan (default 1 min,
	// app-launch.html: "short-lived, usually around one minute").
	AccessTokenLifespan  time.Duration
	SystemTokenLifespan  time.Duration
	RefreshTokenLifespan time.Duration
	CodeLifespan         time.Duration
	// LoginAttempts failures within LockoutPeriod lock a username for
	// LockoutPeriod (defaults 5 and 15 min).
	LoginAttempts int
	LockoutPeriod time.Duration
	// Now is the clock of Kiln's own checks (assertion expiry, lockout);
	// fosite reads the system clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// HTTPClient fetches clients' JWKS URLs and talks to the upstream
	// provider (default: 10 s timeout).
	HTTPClient *http.Client
	// Upstream, if set, offers sign-in through an OpenID Connect
	// provider on the login page (--oidc-issuer, --oidc-client-id,
	// --oidc-client-secret).
	Upstream *UpstreamOIDC
}

// Server is the SMART authorization server; it mounts under the FHIR base.
type Server struct {
	cfg      Config
	rs       Records
	log      *slog.Logger
	storage  *storage
	oauth    *fosite.Fosite
	keys     *keyring
	jwks     *jwksCache
	basePath string // path of BaseURL, "" or "/fhir"
	tokenURL string
	handler  http.Handler
	up       *upstream     // nil without Config.Upstream
	kdf      chan struct{} // semaphore: password hashes computed at once
}

// New builds the server on the store, creating the token secret and the
// first signing key if the store has none.
func New(ctx context.Context, cfg Config, st Records) (*Server, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("smart: BaseURL %q must be an absolute URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Issuer == "" {
		cfg.Issuer = cfg.BaseURL
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AccessTokenLifespan, time.Hour)
	def(&cfg.SystemTokenLifespan, 5*time.Minute)
	def(&cfg.RefreshTokenLifespan, 90*24*time.Hour)
	def(&cfg.CodeLifespan, time.Minute)
	def(&cfg.LockoutPeriod, 15*time.Minute)
	if cfg.LoginAttempts <= 0 {
		cfg.LoginAttempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		cfg: cfg, rs: st, log: cfg.Logger,
		keys:     &keyring{rs: st},
		jwks:     &jwksCache{client: cfg.HTTPClient, byURL: map[string]cachedJWKS{}},
		basePath: strings.TrimRight(u.Path, "/"),
		tokenURL: cfg.BaseURL + "/auth/token",
		kdf:      make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
	}
	s.storage = &storage{rs: st, now: cfg.Now, refreshLife: cfg.RefreshTokenLifespan, server: s}
	if err := s.keys.ensure(ctx); err != nil {
		return nil, fmt.Errorf("smart: signing keys: %w", err)
	}
	secret, err := hmacSecret(ctx, st)
	if err != nil {
		return nil, err
	}
	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenLifespan,
		RefreshTokenLifespan:  cfg.RefreshTokenLifespan,
		AuthorizeCodeLifespan: cfg.CodeLifespan,
		IDTokenLifespan:       cfg.AccessTokenLifespan,
		IDTokenIssuer:         cfg.Issuer,
		AccessTokenIssuer:     cfg.Issuer,
		GlobalSecret:          secret,
		TokenURL:              s.tokenURL,
		// app-launch.html#pkce: S256 on every authorization code flow,
		// plain never.
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		ScopeStrategy:                  scopeStrategy,
		AudienceMatchingStrategy:       fosite.ExactAudienceMatchingStrategy,
		RefreshTokenScopes:             []string{"offline_access", "online_access"},
		ClientAuthenticationStrategy:   s.authenticateClient,
		// Redirect URIs are registered by an administrator and matched
		// exactly (authorize.go); http is allowed for local apps.
		RedirectSecureChecker: func(context.Context, *url.URL) bool { return true },
		TokenEntropy:          32,
		MinParameterEntropy:   8,
	}
	keyGetter := func(ctx context.Context) (any, error) { return s.keys.signing(ctx) }
	strategy := &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(fc),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, fc),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	}
	s.oauth = compose.Compose(fc, s.storage, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	).(*fosite.Fosite)
	if cfg.Upstream != nil {
		if s.up, err = newUpstream(ctx, cfg.Upstream, cfg.BaseURL, cfg.HTTPClient); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the discovery documents and the /auth endpoints. It
// expects request paths as clients send them, BaseURL's path included:
// mount it at BaseURL's path + "/.well-known/" and + "/auth/".
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := s.basePath
	mux.HandleFunc("GET "+p+"/.well-known/smart-configuration", s.smartConfiguration)
	mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.openidConfiguration)
	mux.HandleFunc("OPTIONS "+p+"/.well-known/", anyOriginPreflight)
	mux.HandleFunc("GET "+p+"/auth/jwks", s.jwksDoc)
	mux.HandleFunc("GET "+p+"/auth/style.json", s.style)
	mux.HandleFunc("GET "+p+"/auth/authorize", s.authorize)
	mux.HandleFunc("POST "+p+"/auth/authorize", s.authorize)
	mux.HandleFunc("POST "+p+"/auth/login", s.loginForm)
	mux.HandleFunc("POST "+p+"/auth/consent", s.consent)
	mux.HandleFunc("POST "+p+"/auth/upstream", s.upstreamStart)
	mux.HandleFunc("GET "+p+"/auth/upstream/callback", s.upstreamCallback)
	mux.HandleFunc("POST "+p+"/auth/launch", s.launch)
	mux.HandleFunc("POST "+p+"/auth/token", s.token)
	mux.HandleFunc("OPTIONS "+p+"/auth/token", s.tokenPreflight)
	mux.HandleFunc("POST "+p+"/auth/introspect", s.introspect)
	mux.HandleFunc("POST "+p+"/auth/revoke", s.revoke)
	mux.HandleFunc("POST "+p+"/auth/register", s.register)
	return mux
}

// Endpoints are the absolute OAuth URIs, for the CapabilityStatement's
// security section (the oauth-uris extension of
// http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris).
type Endpoints struct {
	Authorize, Token, Introspect, Revoke, JWKS string
}

// Endpoints returns this server's OAuth URIs.
func (s *Server) Endpoints() Endpoints {
	return Endpoints{Authorize: s.endpoint("authorize"), Token: s.tokenURL,
		Introspect: s.endpoint("introspect"), Revoke: s.endpoint("revoke"), JWKS: s.endpoint("jwks")}
}

func (s *Server) endpoint(name string) string { return s.cfg.BaseURL + "/auth/" + name }

// Capabilities this server offers (conformance.html#capabilities); each
// is exercised by a test in this package.
var capabilities = []string{
	"launch-ehr", "launch-standalone", "authorize-post",
	"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
	"sso-openid-connect",
	"context-banner", "context-style",
	"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
	"permission-offline", "permission-online", "permission-patient", "permission-user",
	"permission-v1", "permission-v2",
}

// scopesSupported lists scopes the server grants (conformance.html:
// every scope listed SHALL be supported).
var scopesSupported = []string{
	"openid", "fhirUser", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
	"patient/*.rs", "patient/*.cruds", "patient/*.read", "patient/*.write", "patient/*.*",
	"user/*.rs", "user/*.cruds", "user/*.read", "user/*.write", "user/*.*",
	"system/*.rs", "system/*.cruds", "system/*.read",
}

func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	writeJSONAnyOrigin(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.Issuer,
		"jwks_uri":                              s.endpoint("jwks"),
		"authorization_endpoint":                s.endpoint("authorize"),
		"token_endpoint":                        s.tokenURL,
		"introspection_endpoint":                s.endpoint("introspect"),
		"revocation_endpoint":                   s.endpoint("revoke"),
		"registration_endpoint":                 s.endpoint("register"),
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported":                 scopesSupported,
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities":                     capabilities,
	})
}

func (s *Server) openidConfiguration(w http.ResponseWriter, r *http.Request) {
	writeJSONAnyOrigin(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.Issuer,
		"authorization_endpoint":                s.endpoint("authorize"),
		"token_endpoint":                        s.tokenURL,
		"jwks_uri":                              s.endpoint("jwks"),
		"introspection_endpoint":                s.endpoint("introspect"),
		"revocation_endpoint":                   s.endpoint("revoke"),
		"registration_endpoint":                 s.endpoint("register"),
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"scopes_supported":                      scopesSupported,
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (s *Server) jwksDoc(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.public(r.Context())
	if err != nil {
		s.serverError(w, err)
		return
	}
	writeJSONAnyOrigin(w, http.StatusOK, set)
}

// styleDoc is the SMART style document (scopes-and-launch-context.html
// #styling). "A new URL SHALL be issued when the content changes", so
// styleVersion, the URL's v parameter, is a digest of the content
// rather than a number someone must remember to bump.
var styleDoc, _ = json.Marshal(map[string]any{
	"color_background": "#ffffff", "color_error": "#9e2a2b", "color_highlight": "#005a9c",
	"color_modal_backdrop": "", "color_success": "#2e7d32", "color_text": "#1a1a1a",
	"dim_border_radius": "4px", "dim_font_size": "16px", "dim_spacing_size": "16px",
	"font_family_body": "system-ui, sans-serif", "font_family_heading": "system-ui, sans-serif",
})

var styleVersion = func() string {
	sum := sha256.Sum256(styleDoc)
	return hex.EncodeToString(sum[:6])
}()

func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Write(styleDoc)
}

func writeJSONAnyOrigin(w http.ResponseWriter, status int, v any) {
	// conformance.html: discovery is fetched by browser apps from any
	// origin.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func anyOriginPreflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// serverError logs a failure without request data and answers 500.
func (s *Server) serverError(w http.ResponseWriter, err error) {
	s.log.Error("smart: internal error", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, fosite.ErrNotFound)
}

// tokenCORS allows the browser app's origin on the token endpoint when it
// is an origin of the client's registered redirect URIs
// (app-launch.html: CORS for the token endpoint, per client).
func (s *Server) tokenCORS(w http.ResponseWriter, r *http.Request, clientID string) {
	origin := r.Header.Get("Origin")
	if origin == "" || clientID == "" {
		return
	}
	c, err := getClient(r.Context(), s.rs, clientID)
	if err != nil || !slices.Contains(c.origins(), origin) {
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Add("Vary", "Origin")
}

// tokenPreflight answers a CORS preflight for the token endpoint: the
// preflight carries no client id, so any registered client's origin is
// allowed to send the real request, which tokenCORS then checks.
func (s *Server) tokenPreflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	ok, err := s.RegisteredOrigin(r.Context(), origin)
	if err != nil {
		s.serverError(w, err)
		return
	}
	if ok {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type")
		w.Header().Add("Vary", "Origin")
	}
	w.WriteHeader(http.StatusNoContent)
}

// RegisteredOrigin reports whether origin (scheme://host[:port], as a
// browser sends it in Origin) is the origin of a redirect URI some
// client registered: the browser apps the FHIR API answers across
// origins (CORS).
func (s *Server) RegisteredOrigin(ctx context.Context, origin string) (bool, error) {
	if origin == "" || origin == "null" {
		return false, nil
	}
	recs, err := s.rs.ListRecords(ctx, kindClient)
	if err != nil {
		return false, err
	}
	for _, rec := range recs {
		var c Client
		if json.Unmarshal(rec.Value, &c) == nil && slices.Contains(c.origins(), origin) {
			return true, nil
		}
	}
	return false, nil
}

// token is the token endpoint (RFC 6749 §3.2, app-launch.html,
// backend-services.html).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err == nil {
		id := r.PostForm.Get("client_id")
		if u, _, ok := r.BasicAuth(); ok {
			id, _ = url.QueryUnescape(u)
		}
		s.tokenCORS(w, r, id)
	}
	sess := newSession()
	ar, err := s.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		s.accessError(w, r, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// backend-services.html: scope is required, and system/ scopes
		// are the ones a service can be granted without a user or
		// patient in context.
		if len(ar.GetRequestedScopes()) == 0 {
			s.accessError(w, r, ar, fosite.ErrInvalidScope.WithHint("scope is required."))
			return
		}
		for _, sc := range ar.GetRequestedScopes() {
			if p, ok := ParseScope(sc); !ok || p.Context != "system" {
				s.accessError(w, r, ar, fosite.ErrInvalidScope.WithHintf("Backend services may request only system/ scopes, not %q.", sc))
				return
			}
			ar.GrantScope(sc)
		}
		ar.GrantAudience(s.cfg.BaseURL)
		sess.Subject = ar.GetClient().GetID()
	}
	var narrowed []string
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		// app-launch.html#step-5-later-app-uses-a-refresh-token, RFC 6749
		// §6: a scope on refresh must not include any scope not granted
		// originally (a resource scope within a granted one, such as
		// patient/Observation.rs under patient/*.rs, is within); omitted,
		// it is the original. A narrower one binds the new access token
		// only: the rotated refresh token keeps the grant's scope, as §6
		// requires, so a later refresh may ask for more again.
		var err error
		if narrowed, err = narrow(ar.GetGrantedScopes(), strings.Fields(r.PostForm.Get("scope"))); err != nil {
			s.accessError(w, r, ar, err)
			return
		}
		if sess, ok := ar.GetSession().(*session); ok && narrowed != nil {
			sess.accessScope = narrowed
		}
	}
	if sess, ok := ar.GetSession().(*session); ok && !sess.OnlineUntil.IsZero() && sess.GetExpiresAt(fosite.RefreshToken).After(sess.OnlineUntil) {
		// scopes-and-launch-context.html: online_access lasts while the
		// user is online; here, as long as the sign-in it came from.
		sess.SetExpiresAt(fosite.RefreshToken, sess.OnlineUntil)
	}
	resp, err := s.oauth.NewAccessResponse(ctx, ar)
	if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		// Two exchanges of one code raced and this one lost the
		// compare-and-set (storage.InvalidateAuthorizeCodeSession): a
		// reused code, so revoke what the winner got (RFC 6749 §4.1.2).
		if rerr := s.storage.revoke(ctx, ar.GetID()); rerr != nil {
			s.log.Error("smart: revoking a reused code's grant", "err", rerr)
		}
		err = fosite.ErrInvalidGrant.WithHint("The authorization code has already been used.")
	}
	if err != nil {
		s.accessError(w, r, ar, err)
		return
	}
	if narrowed != nil {
		resp.SetScopes(narrowed) // RFC 6749 §5.1: the scope of the access token
	}
	if sess, ok := ar.GetSession().(*session); ok && !ar.GetGrantTypes().ExactOne("client_credentials") {
		// app-launch.html#response-5: launch context beside the token.
		if sess.Patient != "" {
			resp.SetExtra("patient", sess.Patient)
		}
		if sess.Encounter != "" {
			resp.SetExtra("encounter", sess.Encounter)
		}
		resp.SetExtra("need_patient_banner", sess.Banner)
		resp.SetExtra("smart_style_url", s.endpoint("style.json")+"?v="+styleVersion)
	}
	s.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// narrow is the scope of an access token refreshed with requested:
// nil for the whole grant (requested empty, or naming all of it), else
// requested without repeats. A scope the grant does not cover is
// invalid_scope (RFC 6749 §6).
func narrow(granted fosite.Arguments, requested []string) ([]string, error) {
	var out []string
	for _, sc := range requested {
		if !scopeStrategy(granted, sc) {
			return nil, fosite.ErrInvalidScope.WithHintf("Scope %q was not granted originally.", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 || !slices.ContainsFunc(granted, func(g string) bool { return !slices.Contains(out, g) }) {
		return nil, nil // every granted scope asked for again (or nothing asked)
	}
	return out, nil
}

// accessError writes a token endpoint error (RFC 6749 §5.2): 401 for
// invalid_client, with WWW-Authenticate when the client authenticated
// with the Authorization header, as §5.2 requires.
func (s *Server) accessError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if e := fosite.ErrorToRFC6749Error(err); e.ErrorField == fosite.ErrInvalidClient.ErrorField && r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln", error="invalid_client"`)
	}
	s.oauth.WriteAccessError(r.Context(), w, ar, err)
}

// introspect is RFC 7662 with SMART's additions (token-introspection.html).
// The caller authenticates as a confidential client or with a bearer
// token of its own; an unknown, expired or revoked token is
// 200 {"active": false} and nothing else.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if bearer := bearerToken(r); bearer != "" {
		if _, err := s.grant(ctx, bearer); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
			return
		}
	} else if c, err := s.authenticateClient(ctx, r, r.PostForm); err != nil || c.IsPublic() {
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client",
			"error_description": "introspection needs a confidential client's credentials or a bearer token"})
		return
	}
	tok := r.PostForm.Get("token")
	inactive := map[string]any{"active": false}
	if tok == "" {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	use, ar, err := s.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, newSession())
	if err != nil || !slices.Contains(ar.GetGrantedAudience(), s.cfg.BaseURL) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	out := map[string]any{
		"active":     true,
		"scope":      strings.Join(ar.GetGrantedScopes(), " "),
		"client_id":  ar.GetClient().GetID(),
		"aud":        s.cfg.BaseURL,
		"iat":        ar.GetRequestedAt().Unix(),
		"token_type": "Bearer",
	}
	if use == fosite.RefreshToken {
		out["token_type"] = "refresh_token"
	}
	tt := fosite.TokenType(use)
	if exp := ar.GetSession().GetExpiresAt(tt); !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	if sess, ok := ar.GetSession().(*session); ok {
		if sess.Patient != "" {
			out["patient"] = sess.Patient
		}
		if sess.Encounter != "" {
			out["encounter"] = sess.Encounter
		}
		if sess.Subject != "" {
			out["sub"] = sess.Subject
		}
		// token-introspection.html: iss and sub as in the id_token,
		// fhirUser when one was granted.
		if ar.GetGrantedScopes().Has("openid") {
			out["iss"] = s.cfg.Issuer
			if sess.FHIRUser != "" && ar.GetGrantedScopes().Has("fhirUser") {
				out["fhirUser"] = s.absolute(sess.FHIRUser)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// revoke is RFC 7009: revoking either token of a grant revokes the grant.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := s.oauth.NewRevocationRequest(ctx, r)
	s.oauth.WriteRevocationResponse(ctx, w, err)
}

func (s *Server) absolute(ref string) string { return s.cfg.BaseURL + "/" + ref }

// Errors of Authenticate.
var (
	// ErrNoToken: the request has no Authorization header (RFC 6750
	// §3.1: answer 401 without an error code).
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken: the token is malformed, unknown, expired, revoked
	// or for another audience (401, error="invalid_token").
	ErrInvalidToken = errors.New("invalid bearer token")
)

// Grant is what a valid access token allows.
type Grant struct {
	ClientID, Subject string
	FHIRUser          string // "Patient/123", "Practitioner/9" or ""
	Patient           string // launch context patient id, "" if none
	Encounter         string
	Scopes            []Scope
	Expires           time.Time
}

// Authenticate validates the request's bearer token (RFC 6750 §2.1). An
// error that is neither ErrNoToken nor ErrInvalidToken wraps
// store.ErrUnavailable: the token could not be checked (503).
func (s *Server) Authenticate(r *http.Request) (Grant, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Grant{}, ErrNoToken
	}
	tok := bearerToken(r)
	if tok == "" {
		return Grant{}, ErrInvalidToken
	}
	return s.grant(r.Context(), tok)
}

func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func (s *Server) grant(ctx context.Context, tok string) (Grant, error) {
	use, ar, err := s.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, newSession())
	if errors.Is(err, store.ErrUnavailable) {
		// Not the client's fault: answering 401 would make it drop a
		// good token.
		return Grant{}, fmt.Errorf("smart: token lookup: %w", store.ErrUnavailable)
	}
	if err != nil || use != fosite.AccessToken {
		return Grant{}, ErrInvalidToken
	}
	// app-launch.html: the resource server SHALL check the token's
	// audience is this FHIR base.
	if !slices.Contains(ar.GetGrantedAudience(), s.cfg.BaseURL) {
		return Grant{}, ErrInvalidToken
	}
	sess, ok := ar.GetSession().(*session)
	if !ok {
		return Grant{}, ErrInvalidToken
	}
	g := Grant{
		ClientID: ar.GetClient().GetID(), Subject: sess.Subject,
		FHIRUser: sess.FHIRUser, Patient: sess.Patient, Encounter: sess.Encounter,
		Expires: sess.GetExpiresAt(fosite.AccessToken),
	}
	for _, raw := range ar.GetGrantedScopes() {
		if sc, ok := ParseScope(raw); ok {
			g.Scopes = append(g.Scopes, sc)
		}
	}
	return g, nil
}
