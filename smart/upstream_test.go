package smart

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// TestUpstreamLogin signs in through an in-process OpenID provider: a
// linked subject becomes the Kiln user it is linked to, with that user's
// fhirUser; an unlinked one gets no session; the callback only completes
// in the browser that started it.
func TestUpstreamLogin(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	mc := m.Config()
	e := newEnv(t, func(c *Config) {
		c.Upstream = &UpstreamOIDC{Issuer: m.Issuer(), ClientID: mc.ClientID, ClientSecret: mc.ClientSecret}
	})
	if _, err := AddUser(t.Context(), e.st, "carol", "", "Patient/p5"); err != nil {
		t.Fatal(err)
	}
	if err := LinkUser(t.Context(), e.st, "carol", m.Issuer(), "sub-carol"); err != nil {
		t.Fatal(err)
	}
	if err := LinkUser(t.Context(), e.st, "carol", m.Issuer(), "sub-carol"); err == nil {
		t.Error("the same upstream subject linked twice")
	}
	if err := LinkUser(t.Context(), e.st, "nobody", m.Issuer(), "sub-x"); err == nil {
		t.Error("linked to a user that does not exist")
	}
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "openid", "fhirUser", "patient/*.rs")

	start := func(b *browser) page {
		t.Helper()
		p := b.get(e.authURL(cfg, "state-up-1234", oauth2.GenerateVerifier()))
		if !strings.Contains(p.body, "Sign in with 127.0.0.1") {
			t.Fatalf("login page has no upstream button:\n%s", p.body)
		}
		// The second form on the page is the upstream one.
		forms := strings.SplitN(p.body, `action="`+e.base+`/auth/upstream"`, 2)
		if len(forms) != 2 {
			t.Fatal("no upstream form")
		}
		return b.post(e.base+"/auth/upstream", hidden(forms[1]))
	}

	t.Run("linked", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-carol", Email: "carol@example.com"})
		v := oauth2.GenerateVerifier()
		b := e.browser()
		p := b.get(e.authURL(cfg, "state-up-1234", v))
		forms := strings.SplitN(p.body, `action="`+e.base+`/auth/upstream"`, 2)
		consent := b.post(e.base+"/auth/upstream", hidden(forms[1]))
		loc := b.approve(consent, nil, nil)
		tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if tok.Extra("patient") != "p5" {
			t.Errorf("patient = %v", tok.Extra("patient"))
		}
		claims := e.idToken(tok.Extra("id_token").(string), app.ClientID)
		if claims["fhirUser"] != e.base+"/Patient/p5" {
			t.Errorf("fhirUser = %v", claims["fhirUser"])
		}
	})
	t.Run("not linked", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-stranger"})
		b := e.browser()
		p := start(b)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "not linked") {
			t.Errorf("unlinked subject: %d", p.status)
		}
		u, _ := url.Parse(e.base + "/auth/")
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == loginCookie {
				t.Error("unlinked subject got a login session")
			}
		}
	})
	t.Run("callback in another browser", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-carol"})
		b := e.browser()
		b.c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			if strings.Contains(r.URL.Path, "/auth/upstream/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		p := start(b)
		if p.loc == nil {
			t.Fatalf("want the redirect to the callback, got %d", p.status)
		}
		// The attacker's callback URL, opened by a victim's browser.
		victim := e.browser()
		if got := victim.get(p.loc.String()); got.status != http.StatusForbidden {
			t.Errorf("callback without the state cookie: %d", got.status)
		}
	})
}
