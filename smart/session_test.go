package smart

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kiln-fhir/kiln/store"
)

func TestIntrospection(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	rs := e.client(ClientSpec{Name: "Resource server"}) // confidential: may introspect
	tok := e.standalone(e.oauth(app, "launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"), "alice", nil)
	claims := e.idToken(tok.Extra("id_token").(string), app.ClientID)

	status, _, got := e.postForm("/auth/introspect", url.Values{"token": {tok.AccessToken}}, rs.ClientID, rs.ClientSecret)
	if status != 200 || got["active"] != true || got["client_id"] != app.ClientID || got["patient"] != "p1" ||
		got["scope"] != tok.Extra("scope") || got["iss"] != claims["iss"] || got["sub"] != claims["sub"] ||
		got["fhirUser"] != e.base+"/Patient/p1" {
		t.Errorf("active token: %d %v", status, got)
	}
	if exp, _ := got["exp"].(float64); time.Unix(int64(exp), 0).Before(time.Now()) {
		t.Errorf("exp %v", got["exp"])
	}
	// The bearer of a token may introspect too (token-introspection.html).
	req, _ := http.NewRequest(http.MethodPost, e.base+"/auth/introspect", strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspect with a bearer token: %v %v", err, resp)
	}
	resp.Body.Close()

	for _, bad := range []string{"not-a-token", tok.AccessToken + "x", ""} {
		status, _, got := e.postForm("/auth/introspect", url.Values{"token": {bad}}, rs.ClientID, rs.ClientSecret)
		// RFC 7662 §2.2: inactive is 200 {"active": false} and nothing else.
		if status != 200 || !reflect.DeepEqual(got, map[string]any{"active": false}) {
			t.Errorf("introspect %q: %d %v", bad, status, got)
		}
	}
	// Unauthenticated, a public client, or a wrong secret: 401.
	for _, tc := range []struct{ id, secret string }{{"", ""}, {app.ClientID, ""}, {rs.ClientID, "wrong"}} {
		status, _, got := e.postForm("/auth/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {tc.id}}, "", "")
		if tc.secret != "" {
			status, _, got = e.postForm("/auth/introspect", url.Values{"token": {tok.AccessToken}}, tc.id, tc.secret)
		}
		if status != http.StatusUnauthorized || got["active"] != nil {
			t.Errorf("introspect as %q: %d %v", tc.id, status, got)
		}
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "offline_access", "patient/*.rs")
	for _, which := range []string{"access", "refresh"} {
		t.Run(which, func(t *testing.T) {
			tok := e.standalone(cfg, "alice", nil)
			target := tok.AccessToken
			if which == "refresh" {
				target = tok.RefreshToken
			}
			status, _, _ := e.postForm("/auth/revoke", url.Values{"token": {target}, "client_id": {app.ClientID}}, "", "")
			if status != 200 {
				t.Fatalf("revoke: %d", status)
			}
			// Revoking either token of a grant revokes both (C-RS-03).
			if _, status := e.whoami(tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("revoked access token: %d", status)
			}
			_, err := cfg.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
			if s, _ := retrieveErr(err); s != 400 && s != 401 {
				t.Errorf("refresh after revocation: %v", err)
			}
		})
	}
	t.Run("another client cannot revoke", func(t *testing.T) {
		tok := e.standalone(cfg, "alice", nil)
		other := e.client(ClientSpec{Public: true})
		e.postForm("/auth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {other.ClientID}}, "", "")
		if _, status := e.whoami(tok.AccessToken); status != 200 {
			t.Errorf("another client revoked the token (%d)", status)
		}
	})
}

// TestConsentCSRF: the consent form only works with its own CSRF token,
// once, from the browser it was shown to.
func TestConsentCSRF(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	e.user("mallory", "Patient/p2")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	b := e.browser()
	consent := b.login(e.authURL(cfg, "state-csrf-01", v), "alice", "alice-password")
	good := hidden(consent.body)
	good.Set("approve", "approve")
	good.Add("scope", "patient/*.rs")

	mallory := e.browser()
	mallory.login(e.authURL(cfg, "state-csrf-02", v), "mallory", "mallory-password")

	for _, tc := range []struct {
		name string
		b    *browser
		form func() url.Values
	}{
		{"no csrf", b, func() url.Values { f := cloneValues(good); f.Del("csrf"); return f }},
		{"wrong csrf", b, func() url.Values { f := cloneValues(good); f.Set("csrf", randomToken(24)); return f }},
		{"another user's session", mallory, func() url.Values { return cloneValues(good) }},
		{"no session", e.browser(), func() url.Values { return cloneValues(good) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.b.post(e.base+"/auth/consent", tc.form())
			if p.status != http.StatusForbidden || p.loc != nil {
				t.Errorf("got %d %v, want 403 and no redirect", p.status, p.loc)
			}
		})
	}
	// Each failed attempt used the form up (the pending request is taken
	// before the token is compared), so even the right token now fails:
	// a forged post cannot be retried.
	if p := b.post(e.base+"/auth/consent", good); p.status != http.StatusForbidden {
		t.Errorf("consent after forged attempts: %d %v", p.status, p.loc)
	}
	// A fresh form works once.
	consent = b.get(e.authURL(cfg, "state-csrf-03", v))
	f := hidden(consent.body)
	f.Set("approve", "approve")
	if p := b.post(e.base+"/auth/consent", f); p.loc == nil || p.loc.Query().Get("code") == "" {
		t.Fatalf("fresh consent: %d %v", p.status, p.loc)
	}
	if p := b.post(e.base+"/auth/consent", f); p.status != http.StatusForbidden {
		t.Errorf("replayed consent: %d %v", p.status, p.loc)
	}
}

func TestLoginLockout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LoginAttempts = 3 })
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "patient/*.rs")
	b := e.browser()
	p := b.get(e.authURL(cfg, "state-lock-01", oauth2.GenerateVerifier()))
	try := func(user, pass string) page {
		f := hidden(p.body)
		f.Set("username", user)
		f.Set("password", pass)
		p = b.post(e.base+"/auth/login", f)
		return p
	}
	for i := range 3 {
		if r := try("alice", "guess"+string(rune('0'+i))); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong username or password") {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	// Locked: even the right password is refused, and no cookie is set.
	if r := try("alice", "alice-password"); r.status != http.StatusTooManyRequests || r.loc != nil {
		t.Fatalf("locked account: %d %v", r.status, r.loc)
	}
	u, _ := url.Parse(e.base + "/auth/")
	if len(b.c.Jar.Cookies(u)) != 0 {
		t.Error("a login cookie was set for a locked account")
	}
	// Unknown usernames are counted the same way, and answer the same.
	if r := try("nobody", "x"); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong username or password") {
		t.Errorf("unknown user: %d", r.status)
	}
	// Once the period has passed the right password works again.
	e.s.cfg.Now = func() time.Time { return time.Now().Add(16 * time.Minute) }
	if r := try("alice", "alice-password"); r.status != http.StatusOK || !strings.Contains(r.body, `name="approve"`) {
		t.Errorf("after the lockout period: %d", r.status)
	}
}

func TestPasswordHash(t *testing.T) {
	defer func(tm, mem uint32) { argonTime, argonMemory = tm, mem }(argonTime, argonMemory)
	argonTime, argonMemory = 3, 64*1024 // production cost (TestMain lowers it)
	h := hashPassword("correct horse")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q is not argon2id with the configured cost", h)
	}
	if !checkPassword(h, "correct horse") || checkPassword(h, "correct horsf") || checkPassword(h, "") {
		t.Error("checkPassword")
	}
	if h == hashPassword("correct horse") {
		t.Error("two hashes of one password are equal: no salt")
	}
	// A hash made with another cost still verifies: the cost is read
	// from the hash.
	argonTime, argonMemory = 1, 8*1024
	if !checkPassword(h, "correct horse") {
		t.Error("a hash of another cost does not verify")
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$$", "$bcrypt$x$y$z$w"} {
		if checkPassword(bad, "") {
			t.Errorf("checkPassword(%q) accepted", bad)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	tok := e.standalone(e.oauth(app, "launch/patient", "patient/*.rs"), "alice", nil)
	for _, tc := range []struct {
		header string
		want   error
	}{
		{"", ErrNoToken},
		{"Bearer", ErrInvalidToken},
		{"Basic " + tok.AccessToken, ErrInvalidToken},
		{"Bearer not-a-token", ErrInvalidToken},
		{"Bearer " + tok.AccessToken + "x", ErrInvalidToken},
		{"Bearer " + tok.AccessToken, nil},
		{"bearer " + tok.AccessToken, nil},
	} {
		r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if _, err := e.s.Authenticate(r); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.header, err, tc.want)
		}
	}

	// Another Kiln on the same store but a different FHIR base: its
	// audience differs, so the token is not valid there (C-RS-01).
	other, err := New(t.Context(), Config{BaseURL: "https://other.example/fhir"}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if _, err := other.Authenticate(r); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token for %s accepted by another base: %v", e.base, err)
	}

	// The store is down: not the token's fault, so not ErrInvalidToken.
	down := newEnv(t, nil)
	down.user("alice", "Patient/p1")
	dtok := down.standalone(down.oauth(down.client(ClientSpec{Public: true}), "launch/patient", "patient/*.rs"), "alice", nil)
	down.st.Close()
	r = httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
	r.Header.Set("Authorization", "Bearer "+dtok.AccessToken)
	if _, err := down.s.Authenticate(r); !errors.Is(err, store.ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("store closed: %v, want store.ErrUnavailable", err)
	}

	// Expired: a server whose tokens live one second.
	short := newEnv(t, func(c *Config) { c.AccessTokenLifespan = time.Second })
	short.user("alice", "Patient/p1")
	stok := short.standalone(short.oauth(short.client(ClientSpec{Public: true}), "launch/patient", "patient/*.rs"), "alice", nil)
	time.Sleep(2 * time.Second)
	if _, status := short.whoami(stok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("expired token: %d", status)
	}
}

// TestKeys: the signing key is created once and kept in the store, a
// second process (New on the same store) publishes and signs with the
// same key, and rotation publishes the new key beside the old one.
func TestKeys(t *testing.T) {
	e := newEnv(t, nil)
	before := e.jwks()
	again, err := New(context.Background(), Config{BaseURL: e.base}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := again.keys.public(t.Context())
	if len(set.Keys) != 1 || set.Keys[0].KeyID != before.Keys[0].KeyID {
		t.Fatalf("second start: keys %v, want the stored %s", set.Keys, before.Keys[0].KeyID)
	}
	kid, err := RotateKeys(t.Context(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	third, err := New(context.Background(), Config{BaseURL: e.base}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	set, _ = third.keys.public(t.Context())
	if len(set.Keys) != 2 || set.Keys[0].KeyID != kid || set.Keys[1].KeyID != before.Keys[0].KeyID {
		t.Fatalf("after rotation: %v, want %s then %s", set.Keys, kid, before.Keys[0].KeyID)
	}
	k, _ := third.keys.signing(t.Context())
	if k.(interface{ IsPublic() bool }).IsPublic() {
		t.Fatal("signing key is public")
	}
}

func TestTokenCORS(t *testing.T) {
	e := newEnv(t, nil)
	app := e.client(ClientSpec{Public: true, RedirectURIs: []string{"https://app.example/callback"}})
	for _, tc := range []struct {
		origin, want string
	}{
		{"https://app.example", "https://app.example"},
		{"https://evil.example", ""},
	} {
		req, _ := http.NewRequest(http.MethodOptions, e.base+"/auth/token", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("preflight from %s: %q, want %q", tc.origin, got, tc.want)
		}
		req, _ = http.NewRequest(http.MethodPost, e.base+"/auth/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {app.ClientID}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", tc.origin)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("token POST from %s: %q, want %q", tc.origin, got, tc.want)
		}
	}
}
