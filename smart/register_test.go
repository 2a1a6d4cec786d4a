package smart

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
)

// TestDynamicRegistration: RFC 7591 registration behind an initial
// access token (§3, protected registration) that an administrator mints
// and that serves one registration. A registered public, symmetric or
// asymmetric client then works like one added by `kiln client add`;
// bad metadata is 400 with the §3.2.2 error and spends no token; a
// missing, unknown, used or expired token is 401 and registers nothing.
func TestDynamicRegistration(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	mint := func(ttl time.Duration) string {
		t.Helper()
		tok, _, err := CreateRegistrationToken(t.Context(), e.st, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	register := func(token string, metadata any) (int, http.Header, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(metadata)
		req, _ := http.NewRequest(http.MethodPost, e.base+"/auth/register", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header, out
	}
	clients := func() int {
		recs, err := e.st.ListRecords(t.Context(), kindClient)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	publicApp := map[string]any{"client_name": "Registered Portal", "redirect_uris": []string{appRedirect},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
		"scope": "launch/patient openid fhirUser offline_access patient/*.rs"}

	t.Run("public app launches", func(t *testing.T) {
		status, h, got := register(mint(time.Hour), publicApp)
		if status != http.StatusCreated || got["client_id"] == nil || got["client_secret"] != nil ||
			got["token_endpoint_auth_method"] != "none" || got["client_name"] != "Registered Portal" || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("register: %d %v %v", status, got, h)
		}
		cfg := e.oauth(Registered{ClientID: got["client_id"].(string)}, "launch/patient", "patient/*.rs")
		tok := e.standalone(cfg, "alice", nil)
		if g, status := e.whoami(tok.AccessToken); status != 200 || g.Patient != "p1" || g.ClientID != got["client_id"] {
			t.Errorf("token of the registered app: %d %+v", status, g)
		}
		// Beyond its registered scope: cut, as for any client.
		cfg = e.oauth(Registered{ClientID: got["client_id"].(string)}, "launch/patient", "patient/*.cruds")
		if tok := e.standalone(cfg, "alice", nil); tok.Extra("scope") != "launch/patient" {
			t.Errorf("scope beyond the registration granted: %v", tok.Extra("scope"))
		}
	})

	t.Run("symmetric app", func(t *testing.T) {
		status, _, got := register(mint(time.Hour), map[string]any{"client_name": "Confidential", "redirect_uris": []string{appRedirect},
			"token_endpoint_auth_method": "client_secret_basic"})
		secret, _ := got["client_secret"].(string)
		if status != http.StatusCreated || secret == "" || got["client_secret_expires_at"] != float64(0) {
			t.Fatalf("register: %d %v", status, got)
		}
		cfg := e.oauth(Registered{ClientID: got["client_id"].(string), ClientSecret: secret}, "launch/patient", "patient/Patient.rs")
		if tok := e.standalone(cfg, "alice", nil); tok.AccessToken == "" {
			t.Error("no access token")
		}
		// The wrong secret is refused at the token endpoint.
		status, _, body := e.postForm("/auth/token", map[string][]string{"grant_type": {"client_credentials"}}, cfg.ClientID, "wrong")
		if status != http.StatusUnauthorized {
			t.Errorf("wrong secret: %d %v", status, body)
		}
	})

	t.Run("backend service", func(t *testing.T) {
		svc := newService(t, jose.ES384)
		status, _, got := register(mint(time.Hour), map[string]any{"client_name": "Backend", "jwks": svc.jwks,
			"token_endpoint_auth_method": "private_key_jwt", "grant_types": []string{"client_credentials"}, "scope": "system/Patient.rs"})
		if status != http.StatusCreated || got["token_endpoint_auth_method"] != "private_key_jwt" || got["jwks"] == nil {
			t.Fatalf("register: %d %v", status, got)
		}
		svc.id = got["client_id"].(string)
		tok, err := e.ccConfig(svc, svc.assertion(t, e.base+"/auth/token", nil), "system/Patient.rs").Token(e.ctx())
		if err != nil {
			t.Fatalf("client_credentials: %v", err)
		}
		if g, status := e.whoami(tok.AccessToken); status != 200 || g.ClientID != svc.id {
			t.Errorf("whoami: %d %+v", status, g)
		}
	})

	t.Run("bad metadata", func(t *testing.T) {
		tok := mint(time.Hour)
		before := clients()
		for _, tc := range []struct {
			name     string
			metadata map[string]any
			code     string
		}{
			{"redirect with fragment", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect + "#f"}, "token_endpoint_auth_method": "none"}, "invalid_redirect_uri"},
			{"relative redirect", map[string]any{"client_name": "x", "redirect_uris": []string{"/callback"}, "token_endpoint_auth_method": "none"}, "invalid_redirect_uri"},
			{"no redirect for an app", map[string]any{"client_name": "x", "token_endpoint_auth_method": "none"}, "invalid_redirect_uri"},
			{"no name", map[string]any{"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none"}, "invalid_client_metadata"},
			{"unknown method", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "tls_client_auth"}, "invalid_client_metadata"},
			{"public with keys", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "jwks_uri": "https://keys.example/jwks"}, "invalid_client_metadata"},
			{"private_key_jwt without keys", map[string]any{"client_name": "x", "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"},
			{"implicit grant", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
			{"client_credentials for a public app", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "grant_types": []string{"client_credentials"}}, "invalid_client_metadata"},
			{"token response type", map[string]any{"client_name": "x", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "response_types": []string{"token"}}, "invalid_client_metadata"},
			{"private key in jwks", map[string]any{"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": privateJWKS(t)}, "invalid_client_metadata"},
		} {
			status, _, got := register(tok, tc.metadata)
			if status != http.StatusBadRequest || got["error"] != tc.code {
				t.Errorf("%s: %d %v, want 400 %s", tc.name, status, got, tc.code)
			}
		}
		if n := clients(); n != before {
			t.Errorf("%d clients after refused registrations, want %d", n, before)
		}
		// Not spent by the refused ones.
		if status, _, got := register(tok, publicApp); status != http.StatusCreated {
			t.Errorf("the token after refused registrations: %d %v", status, got)
		}
	})

	t.Run("bad tokens", func(t *testing.T) {
		used := mint(time.Hour)
		if status, _, _ := register(used, publicApp); status != http.StatusCreated {
			t.Fatalf("first use: %d", status)
		}
		expired := mint(time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		before := clients()
		for name, tok := range map[string]string{"none": "", "unknown": "not-a-token", "used": used, "expired": expired} {
			status, h, got := register(tok, publicApp)
			if status != http.StatusUnauthorized || got["error"] != "invalid_token" || h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s token: %d %v %q", name, status, got, h.Get("WWW-Authenticate"))
			}
		}
		if n := clients(); n != before {
			t.Errorf("%d clients after refused registrations, want %d", n, before)
		}
	})

	t.Run("discovery", func(t *testing.T) {
		for _, doc := range []string{"smart-configuration", "openid-configuration"} {
			resp, err := http.Get(e.base + "/.well-known/" + doc)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if m["registration_endpoint"] != e.base+"/auth/register" {
				t.Errorf("%s registration_endpoint %v", doc, m["registration_endpoint"])
			}
		}
	})
}

// privateJWKS is a JWK Set holding a private key, which registration
// must refuse.
func privateJWKS(t *testing.T) jose.JSONWebKeySet {
	s := newService(t, jose.ES384)
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: s.key, KeyID: "private", Algorithm: string(jose.ES384), Use: "sig"}}}
}
