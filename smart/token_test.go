package smart

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestRefresh: refresh works twice in a row, without and with scope,
// each time with the newest (rotated) refresh token; the old one is then
// refused and its reuse revokes the whole grant (C-RF-01..05, RFC 6819
// §5.2.2.3).
func TestRefresh(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{})
	cfg := e.oauth(app, "launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs")
	tok := e.standalone(cfg, "alice", nil)
	first := tok.RefreshToken

	refresh := func(rt string, scope string) (*oauth2.Token, error) {
		c := *cfg
		if scope != "" {
			c.Scopes = strings.Fields(scope)
		} else {
			c.Scopes = nil
		}
		return c.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
	}
	t1, err := refresh(first, "")
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	e.mu.Lock()
	h := e.headers
	e.mu.Unlock()
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Errorf("refresh response Cache-Control %q Pragma %q", h.Get("Cache-Control"), h.Get("Pragma"))
	}
	if t1.RefreshToken == "" || t1.RefreshToken == first || t1.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	if t1.Extra("scope") != tok.Extra("scope") || t1.Extra("expires_in") == nil || t1.Extra("patient") != "p1" {
		t.Errorf("refresh response scope %v expires_in %v patient %v", t1.Extra("scope"), t1.Extra("expires_in"), t1.Extra("patient"))
	}
	// x/oauth2 sends no scope on refresh; Inferno's second refresh
	// does (C-RF-04), so this one is posted by hand.
	status, h2, body := e.postForm("/auth/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {t1.RefreshToken}, "scope": {tok.Extra("scope").(string)}}, app.ClientID, app.ClientSecret)
	if status != 200 || body["scope"] != tok.Extra("scope") || body["refresh_token"] == nil || body["expires_in"] == nil || h2.Get("Cache-Control") != "no-store" {
		t.Fatalf("second refresh, with scope: %d %v", status, body)
	}
	t2 := &oauth2.Token{AccessToken: body["access_token"].(string), RefreshToken: body["refresh_token"].(string)}
	if g, status := e.whoami(t2.AccessToken); status != 200 || g.Patient != "p1" {
		t.Fatalf("refreshed token: %d %+v", status, g)
	}

	// A refresh may not widen the grant (C-RF-01).
	status, _, body = e.postForm("/auth/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {t2.RefreshToken}, "scope": {"patient/*.rs patient/*.cruds"}}, app.ClientID, app.ClientSecret)
	if status != 400 || body["error"] != "invalid_scope" {
		t.Errorf("widening refresh: %d %v", status, body)
	}

	// Another client cannot use the refresh token (C-RF-03).
	other := e.client(ClientSpec{})
	oc := e.oauth(other)
	if _, err := oc.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: t2.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
		t.Error("another client refreshed the token")
	}
	// An invalid refresh token is 400 or 401 (C-RF-05).
	if _, err := refresh("not-a-refresh-token", ""); err == nil {
		t.Error("invalid refresh token accepted")
	} else if s, _ := retrieveErr(err); s != 400 && s != 401 {
		t.Errorf("invalid refresh token: status %d", s)
	}
	// Reusing a rotated refresh token fails and revokes the grant.
	if _, err := refresh(first, ""); err == nil {
		t.Fatal("rotated refresh token accepted again")
	} else if s, code := retrieveErr(err); s != 400 || code != "invalid_grant" {
		t.Errorf("reuse: %d %q, want 400 invalid_grant", s, code)
	}
	if _, status := e.whoami(t2.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("after refresh-token reuse the newest access token still works (%d)", status)
	}
	if _, err := refresh(t2.RefreshToken, ""); err == nil {
		t.Error("after refresh-token reuse the newest refresh token still works")
	}
}

func TestOnlineAccess(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	cfg := e.oauth(e.client(ClientSpec{Public: true}), "launch/patient", "online_access", "patient/*.rs")
	tok := e.standalone(cfg, "alice", nil)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for online_access")
	}
	// It lives as long as the sign-in (8 h), not 90 days.
	rs := e.client(ClientSpec{})
	status, _, got := e.postForm("/auth/introspect", url.Values{"token": {tok.RefreshToken}}, rs.ClientID, rs.ClientSecret)
	exp, _ := got["exp"].(float64)
	if left := time.Until(time.Unix(int64(exp), 0)); status != 200 || left > loginLife || left < loginLife-time.Minute {
		t.Errorf("online_access refresh token: %d, expires in %v, want about %v", status, left, loginLife)
	}
}

// TestCodeExchangeBadInput: every way a code exchange can be wrong is
// refused with 400 or 401 and an RFC 6749 §5.2 error (C-PK-01, C-TK-05..08).
func TestCodeExchangeBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CodeLifespan = 2 * time.Second })
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	conf := e.client(ClientSpec{})
	cfg := e.oauth(app, "launch/patient", "patient/*.rs")

	// code returns a fresh code and its verifier.
	code := func(c *oauth2.Config) (string, string) {
		v := oauth2.GenerateVerifier()
		b := e.browser()
		loc := b.approve(b.login(e.authURL(c, "state-abcdefgh", v), "alice", "alice-password"), nil, nil)
		return loc.Query().Get("code"), v
	}
	exchange := func(c *oauth2.Config, code string, opts ...oauth2.AuthCodeOption) error {
		_, err := c.Exchange(e.ctx(), code, opts...)
		return err
	}
	wrongRedirect := *cfg
	wrongRedirect.RedirectURL = "https://app.example/other"
	unknown := *cfg
	unknown.ClientID = "BAD_CLIENT_ID"
	for _, tc := range []struct {
		name     string
		run      func() error
		statuses []int
		errCode  string
	}{
		{"no code_verifier", func() error { c, _ := code(cfg); return exchange(cfg, c) }, []int{400}, "invalid_grant"},
		{"blank code_verifier", func() error { c, _ := code(cfg); return exchange(cfg, c, oauth2.VerifierOption("")) }, []int{400}, ""},
		{"wrong code_verifier", func() error {
			c, _ := code(cfg)
			return exchange(cfg, c, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		}, []int{400}, "invalid_grant"},
		{"verifier equal to the challenge", func() error {
			c, v := code(cfg)
			return exchange(cfg, c, oauth2.VerifierOption(oauth2.S256ChallengeFromVerifier(v)))
		}, []int{400}, "invalid_grant"},
		{"bad code", func() error { return exchange(cfg, "BAD_CODE", oauth2.VerifierOption(oauth2.GenerateVerifier())) }, []int{400}, "invalid_grant"},
		{"redirect_uri differs", func() error { c, v := code(cfg); return exchange(&wrongRedirect, c, oauth2.VerifierOption(v)) }, []int{400}, "invalid_grant"},
		{"unknown client", func() error { c, v := code(cfg); return exchange(&unknown, c, oauth2.VerifierOption(v)) }, []int{400, 401}, "invalid_client"},
		{"bad client secret", func() error {
			cc := e.oauth(conf)
			c, v := code(cc)
			cc.ClientSecret = "wrong"
			return exchange(cc, c, oauth2.VerifierOption(v))
		}, []int{401}, "invalid_client"},
		{"code of another client", func() error {
			c, v := code(cfg)
			return exchange(e.oauth(conf), c, oauth2.VerifierOption(v))
		}, []int{400}, "invalid_grant"},
		{"expired code", func() error {
			c, v := code(cfg)
			time.Sleep(3 * time.Second)
			return exchange(cfg, c, oauth2.VerifierOption(v))
		}, []int{400}, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("exchange succeeded")
			}
			s, ec := retrieveErr(err)
			if !contains(tc.statuses, s) || (tc.errCode != "" && ec != tc.errCode) {
				t.Errorf("got %d %q, want %v %q (%v)", s, ec, tc.statuses, tc.errCode, err)
			}
		})
	}

	t.Run("invalid_client with Basic is 401 with WWW-Authenticate", func(t *testing.T) {
		status, h, body := e.postForm("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"},
			"redirect_uri": {appRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}, conf.ClientID, "wrong-secret")
		if status != 401 || body["error"] != "invalid_client" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("got %d %v WWW-Authenticate %q", status, body, h.Get("WWW-Authenticate"))
		}
	})

	t.Run("concurrent exchanges of one code", func(t *testing.T) {
		c, v := code(cfg)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {appRedirect},
			"code_verifier": {v}, "client_id": {app.ClientID}}
		type result struct {
			status int
			body   map[string]any
		}
		results := make(chan result, 6)
		for range 6 {
			go func() {
				status, _, body := e.postForm("/auth/token", form, "", "")
				results <- result{status, body}
			}()
		}
		var issued []string
		for range 6 {
			r := <-results
			switch {
			case r.status == 200:
				issued = append(issued, r.body["access_token"].(string))
			case r.status != 400 || r.body["error"] != "invalid_grant":
				t.Errorf("loser got %d %v, want 400 invalid_grant", r.status, r.body)
			}
		}
		if len(issued) > 1 {
			t.Fatalf("one code was exchanged %d times", len(issued))
		}
		// Every other attempt was a reuse, so what was issued is revoked.
		for _, tok := range issued {
			if _, status := e.whoami(tok); status != http.StatusUnauthorized {
				t.Errorf("token from a code used %d times still works", 6)
			}
		}
	})

	t.Run("reused code revokes its tokens", func(t *testing.T) {
		c, v := code(cfg)
		tok, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if _, status := e.whoami(tok.AccessToken); status != 200 {
			t.Fatalf("token before reuse: %d", status)
		}
		_, err = cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v))
		if s, ec := retrieveErr(err); s != 400 || ec != "invalid_grant" {
			t.Fatalf("second exchange: %d %q %v, want 400 invalid_grant", s, ec, err)
		}
		// RFC 6749 §4.1.2: the server SHOULD revoke tokens issued from it.
		if _, status := e.whoami(tok.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("token issued from a reused code still works (%d)", status)
		}
	})
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestAuthorizeBadInput: errors that must not redirect (unknown client,
// unregistered redirect URI: RFC 6749 §4.1.2.1) and errors that redirect
// with error and state but never a code (C-AZ-03, C-AZ-06, C-PK-01).
func TestAuthorizeBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	good := func() url.Values {
		u, _ := url.Parse(e.authURL(cfg, "state-xyz-123", v))
		return u.Query()
	}
	for _, tc := range []struct {
		name     string
		change   func(url.Values)
		redirect bool   // false: an error page, never a redirect
		errCode  string // the error on the redirect
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "BAD_CLIENT_ID") }, false, ""},
		{"missing client", func(q url.Values) { q.Del("client_id") }, false, ""},
		{"wrong redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/callback") }, false, ""},
		{"redirect_uri with extra path", func(q url.Values) { q.Set("redirect_uri", appRedirect+"/x") }, false, ""},
		{"redirect_uri with query", func(q url.Values) { q.Set("redirect_uri", appRedirect+"?a=b") }, false, ""},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, false, ""},
		{"foreign aud", func(q url.Values) { q.Set("aud", "https://inferno.healthit.gov/invalid_aud") }, true, "invalid_request"},
		{"missing aud", func(q url.Values) { q.Del("aud") }, true, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", v) }, true, "invalid_request"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, true, "invalid_request"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, true, "unsupported_response_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := good()
			tc.change(q)
			b := e.browser()
			p := b.get(e.base + "/auth/authorize?" + q.Encode())
			if !tc.redirect {
				if p.loc != nil || p.status != http.StatusBadRequest || !strings.Contains(p.body, "Cannot continue") {
					t.Fatalf("got %d %v, want a 400 error page and no redirect", p.status, p.loc)
				}
				return
			}
			if p.loc == nil {
				t.Fatalf("got %d, want an error redirect\n%s", p.status, p.body)
			}
			got := p.loc.Query()
			if got.Get("code") != "" || got.Get("error") != tc.errCode || got.Get("state") != "state-xyz-123" ||
				!strings.HasPrefix(p.loc.String(), appRedirect) {
				t.Errorf("redirect %v, want error=%s with the state and no code", p.loc, tc.errCode)
			}
		})
	}
	t.Run("denied", func(t *testing.T) {
		b := e.browser()
		consent := b.login(e.authURL(cfg, "state-deny-1", v), "alice", "alice-password")
		form := hidden(consent.body)
		form.Set("deny", "deny")
		p := b.post(e.base+"/auth/consent", form)
		if p.loc == nil || p.loc.Query().Get("error") != "access_denied" || p.loc.Query().Get("code") != "" {
			t.Errorf("deny: %d %v", p.status, p.loc)
		}
	})
}
