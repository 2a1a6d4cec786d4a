package smart

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kiln-fhir/kiln/store"
)

// UpstreamOIDC configures sign-in through an OpenID Connect provider
// beside (or instead of) local passwords. An upstream subject signs in as
// the Kiln user linked to it (LinkUser), whose fhirUser it then carries.
type UpstreamOIDC struct {
	Issuer, ClientID, ClientSecret string
}

const (
	upstreamCookie = "kiln_upstream"
	upstreamLife   = 10 * time.Minute
)

type upstream struct {
	issuer   string
	name     string // shown on the button
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
}

// upstreamState is what the server remembers between sending the browser
// to the provider and its return: the authorization request to resume and
// the OIDC nonce and PKCE verifier of this round trip.
type upstreamState struct {
	Params   url.Values `json:"params"`
	Nonce    string     `json:"nonce"`
	Verifier string     `json:"verifier"`
}

func newUpstream(ctx context.Context, cfg *UpstreamOIDC, base string, client *http.Client) (*upstream, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("smart: upstream OIDC needs an issuer and a client id")
	}
	pctx := oidc.ClientContext(ctx, client)
	provider, err := oidc.NewProvider(pctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("smart: upstream OIDC discovery: %w", err)
	}
	name := cfg.Issuer
	if u, err := url.Parse(cfg.Issuer); err == nil && u.Host != "" {
		name = u.Host
	}
	return &upstream{
		issuer: cfg.Issuer, name: name, client: client,
		oauth: &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: base + "/auth/upstream/callback", Scopes: []string{oidc.ScopeOpenID}},
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

// LinkUser lets the upstream identity (issuer, subject) sign in as the
// Kiln user username.
func LinkUser(ctx context.Context, rs Records, username, issuer, subject string) error {
	if issuer == "" || subject == "" {
		return errors.New("an upstream link needs an issuer and a subject")
	}
	if _, err := getUser(ctx, rs, username); err != nil {
		return fmt.Errorf("user %q: %w", username, err)
	}
	err := rs.InsertRecord(ctx, store.Record{Kind: kindLink, Key: issuer + " " + subject, Value: []byte(username)})
	if errors.Is(err, store.ErrVersionConflict) {
		return fmt.Errorf("%s %s is already linked", issuer, subject)
	}
	return err
}

// upstreamStart is POST /auth/upstream, the login page's "sign in with"
// button: the browser goes to the provider with a fresh state, nonce and
// PKCE verifier. The state is also set in a cookie, so that only the
// browser that started the round trip can finish it (no login CSRF).
func (s *Server) upstreamStart(w http.ResponseWriter, r *http.Request) {
	if s.up == nil {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	p, ok := s.takePending(r)
	if !ok {
		s.errorPage(w, http.StatusForbidden, "This sign-in form has expired or was not issued by this server. Start again from the app.")
		return
	}
	st := upstreamState{Params: p.Params, Nonce: randomToken(16), Verifier: oauth2.GenerateVerifier()}
	state := randomToken(24)
	b, _ := json.Marshal(st)
	if err := s.rs.PutRecord(r.Context(), store.Record{Kind: kindUpstream, Key: state, Value: b, Expires: s.cfg.Now().Add(upstreamLife)}); err != nil {
		s.serverError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: state, Path: s.basePath + "/auth/upstream/", HttpOnly: true,
		Secure: s.secureCookies(), SameSite: http.SameSiteLaxMode, MaxAge: int(upstreamLife.Seconds())})
	http.Redirect(w, r, s.up.oauth.AuthCodeURL(state, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusSeeOther)
}

// upstreamCallback is GET /auth/upstream/callback: the provider's answer.
func (s *Server) upstreamCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.up == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	ck, err := r.Cookie(upstreamCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		s.errorPage(w, http.StatusForbidden, "This sign-in was not started in this browser. Start again from the app.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Path: s.basePath + "/auth/upstream/", MaxAge: -1})
	rec, err := s.rs.TakeRecord(ctx, kindUpstream, state)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "This sign-in has expired or was already used. Start again from the app.")
		return
	}
	var st upstreamState
	if err := json.Unmarshal(rec.Value, &st); err != nil {
		s.serverError(w, err)
		return
	}
	if e := q.Get("error"); e != "" {
		s.errorPage(w, http.StatusUnauthorized, "The identity provider did not sign you in.")
		return
	}
	tok, err := s.up.oauth.Exchange(oidc.ClientContext(ctx, s.up.client), q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		s.log.Warn("upstream OIDC code exchange failed", "err", err)
		s.errorPage(w, http.StatusBadGateway, "The identity provider's answer could not be used.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := s.up.verifier.Verify(oidc.ClientContext(ctx, s.up.client), raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		s.log.Warn("upstream OIDC id_token rejected", "err", err)
		s.errorPage(w, http.StatusUnauthorized, "The identity provider's answer could not be verified.")
		return
	}
	link, err := s.rs.GetRecord(ctx, kindLink, s.up.issuer+" "+idt.Subject)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "Your account at the identity provider is not linked to a user of this server.")
		return
	}
	u, err := getUser(ctx, s.rs, string(link.Value))
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "Your account at the identity provider is not linked to a user of this server.")
		return
	}
	s.signIn(w, r, u, st.Params)
}
