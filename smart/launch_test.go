package smart

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		path, accept string
		want         []string
	}{
		{"/.well-known/smart-configuration", "application/json", []string{"authorization_endpoint", "token_endpoint", "capabilities", "grant_types_supported", "code_challenge_methods_supported", "issuer", "jwks_uri", "introspection_endpoint", "revocation_endpoint", "token_endpoint_auth_methods_supported", "scopes_supported", "response_types_supported"}},
		{"/.well-known/smart-configuration", "application/fhir+json", nil},
		{"/.well-known/smart-configuration", "", nil},
		{"/.well-known/openid-configuration", "", []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported"}},
	} {
		t.Run(tc.path+" "+tc.accept, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.base+tc.path, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			req.Header.Set("Origin", "https://x.example")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// conformance.html: application/json whatever the Accept;
			// CORS from any origin.
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q", resp.Header.Get("Access-Control-Allow-Origin"))
			}
			var doc map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.want {
				if doc[f] == nil || doc[f] == "" {
					t.Errorf("%s missing", f)
				}
			}
			for _, f := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri"} {
				if s, _ := doc[f].(string); !strings.HasPrefix(s, e.base+"/auth/") {
					t.Errorf("%s = %q, want absolute under %s/auth/", f, s, e.base)
				}
			}
			if ccm := doc["code_challenge_methods_supported"]; tc.path == "/.well-known/smart-configuration" {
				if got, _ := json.Marshal(ccm); string(got) != `["S256"]` {
					t.Errorf("code_challenge_methods_supported = %s, want [\"S256\"] (never plain)", got)
				}
			}
			if algs, _ := json.Marshal(doc["id_token_signing_alg_values_supported"]); tc.path == "/.well-known/openid-configuration" && !strings.Contains(string(algs), "RS256") {
				t.Errorf("id_token_signing_alg_values_supported = %s", algs)
			}
		})
	}
	t.Run("jwks", func(t *testing.T) {
		set := e.jwks()
		if len(set.Keys) != 1 || set.Keys[0].KeyID == "" || set.Keys[0].Algorithm != "RS256" || !set.Keys[0].IsPublic() {
			t.Fatalf("JWKS = %+v, want one public RS256 key with a kid", set)
		}
	})
}

func (e *env) jwks() jose.JSONWebKeySet {
	e.t.Helper()
	resp, err := http.Get(e.base + "/auth/jwks")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	return set
}

// idToken verifies an id_token against the published JWKS the way
// Inferno does (C-OI-02, C-OI-05) and returns its claims.
func (e *env) idToken(raw, clientID string) map[string]any {
	e.t.Helper()
	tok, err := jwt.ParseSigned(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	h := tok.Headers[0]
	if h.Algorithm != "RS256" || h.KeyID == "" {
		e.t.Fatalf("id_token header alg %q kid %q, want RS256 and a kid", h.Algorithm, h.KeyID)
	}
	set := e.jwks()
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(keys[0].Key, &std, &all); err != nil {
		e.t.Fatalf("id_token signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: e.base, Audience: jwt.Audience{clientID}, Time: time.Now()}, time.Minute); err != nil {
		e.t.Errorf("id_token claims: %v", err)
	}
	if std.Subject == "" || len(std.Subject) > 255 || std.IssuedAt == nil {
		e.t.Errorf("id_token sub %q iat %v", std.Subject, std.IssuedAt)
	}
	return all
}

func TestStandaloneLaunch(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs")
	tok := e.standalone(cfg, "alice", nil)

	e.mu.Lock()
	h := e.headers
	e.mu.Unlock()
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Errorf("token response Cache-Control %q Pragma %q", h.Get("Cache-Control"), h.Get("Pragma"))
	}
	if !strings.EqualFold(tok.TokenType, "bearer") || tok.RefreshToken == "" || tok.Expiry.IsZero() {
		t.Errorf("token_type %q refresh_token %q expiry %v", tok.TokenType, tok.RefreshToken, tok.Expiry)
	}
	if ei, _ := tok.Extra("expires_in").(float64); ei <= 0 || ei > 3600 {
		t.Errorf("expires_in = %v, want 1..3600", tok.Extra("expires_in"))
	}
	if got := tok.Extra("scope"); got != "launch/patient openid fhirUser offline_access patient/*.rs" {
		t.Errorf("scope = %q", got)
	}
	if tok.Extra("patient") != "p1" || tok.Extra("need_patient_banner") != true {
		t.Errorf("patient %v need_patient_banner %v", tok.Extra("patient"), tok.Extra("need_patient_banner"))
	}
	style, _ := tok.Extra("smart_style_url").(string)
	if resp, err := http.Get(style); err != nil || resp.StatusCode != 200 {
		t.Errorf("smart_style_url %q: %v %v", style, err, resp)
	} else {
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Errorf("style document: %v", err)
		}
		resp.Body.Close()
	}
	idt, _ := tok.Extra("id_token").(string)
	claims := e.idToken(idt, app.ClientID)
	if claims["fhirUser"] != e.base+"/Patient/p1" {
		t.Errorf("fhirUser claim = %v", claims["fhirUser"])
	}

	g, status := e.whoami(tok.AccessToken)
	if status != 200 || g.Patient != "p1" || g.FHIRUser != "Patient/p1" || g.ClientID != app.ClientID {
		t.Fatalf("whoami: %d %+v", status, g)
	}
	if len(g.Scopes) != 1 || g.Scopes[0].Context != "patient" || g.Scopes[0].Type != "*" || g.Scopes[0].Ops != "rs" {
		t.Errorf("grant scopes %+v, want patient/*.rs only", g.Scopes)
	}
	if time.Until(g.Expires) <= 0 || time.Until(g.Expires) > time.Hour+time.Minute {
		t.Errorf("grant expires %v", g.Expires)
	}

	// authorize-post: the same launch with a POSTed authorization request.
	v := oauth2.GenerateVerifier()
	b := e.browser()
	au, _ := url.Parse(e.authURL(cfg, "state-post-1", v))
	p := b.post(e.base+"/auth/authorize", au.Query())
	form := hidden(p.body)
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	loc := b.approve(b.post(e.base+"/auth/login", form), nil, nil)
	if _, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v)); err != nil {
		t.Errorf("POST authorize: exchange: %v", err)
	}
}

func TestConsentSubset(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	lab := "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	cfg := e.oauth(app, "launch/patient", "patient/Patient.rs", lab, "patient/Condition.rs")
	// The user unticks Condition (and the Condition categories offered
	// instead): the grant says exactly what was approved, granular scope
	// verbatim (C-SC-06, C-SC-08).
	tok := e.standalone(cfg, "alice", func(s string) bool { return !strings.HasPrefix(s, "patient/Condition.") })
	if got := tok.Extra("scope"); got != "launch/patient patient/Patient.rs "+lab {
		t.Errorf("scope = %q", got)
	}
	g, _ := e.whoami(tok.AccessToken)
	var types []string
	for _, sc := range g.Scopes {
		types = append(types, sc.Type)
		if sc.Type == "Observation" && sc.Query.Get("category") != "http://terminology.hl7.org/CodeSystem/observation-category|laboratory" {
			t.Errorf("granular scope lost its restriction: %+v", sc)
		}
	}
	if !slices.Equal(types, []string{"Patient", "Observation"}) {
		t.Errorf("granted types %v", types)
	}
	// No refresh token without offline_access or online_access.
	if tok.RefreshToken != "" {
		t.Error("refresh token issued without offline_access/online_access")
	}
}

func TestScopesBeyondRegistration(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true, Scopes: []string{"launch/patient", "patient/Observation.rs"}})
	cfg := e.oauth(app, "launch/patient", "patient/Observation.rs", "patient/*.cruds", "user/*.rs", "openid")
	// RFC 6749 §3.3: the server grants less than asked, and says so.
	tok := e.standalone(cfg, "alice", nil)
	if got := tok.Extra("scope"); got != "launch/patient patient/Observation.rs" {
		t.Errorf("scope = %q, want only the registered ones", got)
	}
	if tok.Extra("id_token") != nil {
		t.Error("id_token issued although openid is not registered")
	}
}

func TestEHRLaunch(t *testing.T) {
	e := newEnv(t, nil)
	e.user("drbob", "Practitioner/d9")
	e.user("alice", "Patient/p1")
	ehr := e.client(ClientSpec{Public: true})
	app := e.client(ClientSpec{Name: "Chart App"})

	// The clinician is signed in to the EHR (here: a user token).
	ehrTok := e.standalone(e.oauth(ehr, "openid", "fhirUser", "user/*.rs"), "drbob", nil)
	launch := e.createLaunch(ehrTok.AccessToken, url.Values{"patient": {"p7"}, "encounter": {"e3"}}, http.StatusCreated)

	// A patient's token may not create launch contexts.
	patTok := e.standalone(e.oauth(ehr, "launch/patient", "patient/*.rs"), "alice", nil)
	e.createLaunch(patTok.AccessToken, url.Values{"patient": {"p7"}}, http.StatusForbidden)
	e.createLaunch("", url.Values{"patient": {"p7"}}, http.StatusUnauthorized)

	cfg := e.oauth(app, "launch", "openid", "fhirUser", "patient/*.rs", "user/*.rs")
	v := oauth2.GenerateVerifier()
	b := e.browser()
	loc := b.approve(b.login(e.authURL(cfg, "ehr-state-1", v, "launch", launch), "drbob", "drbob-password"), nil, nil)
	tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "p7" || tok.Extra("encounter") != "e3" || tok.Extra("need_patient_banner") != false {
		t.Errorf("patient %v encounter %v need_patient_banner %v", tok.Extra("patient"), tok.Extra("encounter"), tok.Extra("need_patient_banner"))
	}
	if got := tok.Extra("scope"); got != "launch openid fhirUser patient/*.rs user/*.rs" {
		t.Errorf("scope = %q", got)
	}
	g, _ := e.whoami(tok.AccessToken)
	if g.Patient != "p7" || g.Encounter != "e3" || g.FHIRUser != "Practitioner/d9" {
		t.Errorf("grant %+v", g)
	}
	claims := e.idToken(tok.Extra("id_token").(string), app.ClientID)
	if claims["fhirUser"] != e.base+"/Practitioner/d9" {
		t.Errorf("fhirUser = %v", claims["fhirUser"])
	}

	// A launch handle binds one authorization; an unknown one none.
	for _, l := range []string{launch, "no-such-launch"} {
		p := b.get(e.authURL(cfg, "ehr-state-2", oauth2.GenerateVerifier(), "launch", l))
		if p.loc == nil || p.loc.Query().Get("error") != "invalid_request" || p.loc.Query().Get("code") != "" {
			t.Errorf("launch %q again: %d %v", l, p.status, p.loc)
		}
	}
}

// TestPractitionerStandalone: a user who is not a patient picks the
// patient on the consent page; without a pick, patient scopes are not
// granted (a patient/ scope needs a patient context).
func TestPractitionerStandalone(t *testing.T) {
	e := newEnv(t, nil)
	e.user("drbob", "Practitioner/d9")
	cfg := e.oauth(e.client(ClientSpec{Public: true}), "launch/patient", "patient/*.rs", "user/*.rs")
	for _, tc := range []struct {
		pick, patient, scope string
	}{
		{"p42", "p42", "launch/patient patient/*.rs user/*.rs"},
		{"", "", "user/*.rs"},
		{"../Patient/x", "", "user/*.rs"},
	} {
		v := oauth2.GenerateVerifier()
		b := e.browser()
		consent := b.login(e.authURL(cfg, "state-pick-1", v), "drbob", "drbob-password")
		if !strings.Contains(consent.body, `name="patient"`) {
			t.Fatal("no patient field on the consent page for a practitioner")
		}
		loc := b.approve(consent, nil, url.Values{"patient": {tc.pick}})
		tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tok.Extra("patient").(string)
		if got != tc.patient || tok.Extra("scope") != tc.scope {
			t.Errorf("pick %q: patient %q scope %q, want %q %q", tc.pick, got, tok.Extra("scope"), tc.patient, tc.scope)
		}
	}
}

func (e *env) createLaunch(bearer string, form url.Values, want int) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/auth/launch", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		e.t.Fatalf("POST /auth/launch: %d %v, want %d", resp.StatusCode, out, want)
	}
	if want == http.StatusCreated && (out["launch"] == "" || out["iss"] != e.base) {
		e.t.Fatalf("launch response %v", out)
	}
	return out["launch"]
}
