package smart

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"
)

// These tests close gaps found by the acceptance audit of issue 5
// (smart/ACCEPTANCE.md); each names the checklist lines it pins.

// smartDefined are the capability strings SMART App Launch 2.2 defines
// (conformance.html#capabilities); any other must be a full URI (C-WK-09).
var smartDefined = []string{
	"launch-ehr", "launch-standalone", "authorize-post",
	"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
	"sso-openid-connect", "context-passthrough-banner", "context-passthrough-style",
	"context-banner", "context-style",
	"context-ehr-patient", "context-ehr-encounter",
	"context-standalone-patient", "context-standalone-encounter",
	"permission-offline", "permission-online", "permission-patient", "permission-user",
	"permission-v1", "permission-v2", "smart-app-state",
}

// TestDiscoveryContents: the values of the smart-configuration document,
// not just its fields (C-WK-03, C-WK-05, C-WK-06, C-WK-08, C-WK-09, D-10).
func TestDiscoveryContents(t *testing.T) {
	e := newEnv(t, nil)
	get := func(path string) map[string]any {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	strs := func(doc map[string]any, field string) []string {
		t.Helper()
		arr, ok := doc[field].([]any)
		if !ok {
			t.Fatalf("%s = %v, want an array", field, doc[field])
		}
		var out []string
		for _, v := range arr {
			s, ok := v.(string)
			if !ok || s == "" {
				t.Fatalf("%s holds %v, want non-blank strings", field, v)
			}
			out = append(out, s)
		}
		return out
	}
	doc := get("/.well-known/smart-configuration")
	for _, tc := range []struct{ field, want string }{
		{"grant_types_supported", "authorization_code"}, // C-WK-03 [INF]
		{"grant_types_supported", "client_credentials"}, // D-10
		{"token_endpoint_auth_methods_supported", "private_key_jwt"},
		{"token_endpoint_auth_signing_alg_values_supported", "RS384"},
		{"token_endpoint_auth_signing_alg_values_supported", "ES384"},
	} {
		if !slices.Contains(strs(doc, tc.field), tc.want) {
			t.Errorf("%s lacks %s", tc.field, tc.want)
		}
	}
	// C-WK-05: every endpoint is an absolute URL.
	for k, v := range doc {
		if !strings.HasSuffix(k, "_endpoint") && k != "jwks_uri" {
			continue
		}
		if u, err := url.Parse(v.(string)); err != nil || !u.IsAbs() || u.Host == "" {
			t.Errorf("%s = %q is not absolute", k, v)
		}
	}
	// C-WK-08: what the g10 scenarios need, and C-WK-09: nothing SMART
	// does not define unless it is a full URI.
	caps := strs(doc, "capabilities")
	for _, want := range []string{
		"launch-standalone", "client-public", "client-confidential-symmetric", "context-standalone-patient", "permission-patient",
		"launch-ehr", "context-ehr-patient", "context-ehr-encounter", "permission-user",
		"sso-openid-connect", "permission-offline", "client-confidential-asymmetric", "authorize-post",
		"permission-v1", "permission-v2", "context-banner", "context-style",
	} {
		if !slices.Contains(caps, want) {
			t.Errorf("capabilities lack %s", want)
		}
	}
	for _, c := range caps {
		if u, err := url.Parse(c); !slices.Contains(smartDefined, c) && (err != nil || !u.IsAbs()) {
			t.Errorf("capability %q is neither SMART-defined nor a full URI", c)
		}
	}
	// C-WK-06: every scope listed SHALL be supported: it parses as a
	// SMART resource scope or is one of the context scopes the consent
	// page describes.
	for _, sc := range strs(doc, "scopes_supported") {
		if _, ok := ParseScope(sc); !ok && contextWords[sc] == "" {
			t.Errorf("scopes_supported lists %q, which the server does not know", sc)
		}
	}
	// C-WK-04, C-OI-05: one issuer in both documents.
	if oidc := get("/.well-known/openid-configuration"); doc["issuer"] != oidc["issuer"] || doc["jwks_uri"] != oidc["jwks_uri"] {
		t.Errorf("issuer %v / %v, jwks_uri %v / %v differ between the documents", doc["issuer"], oidc["issuer"], doc["jwks_uri"], oidc["jwks_uri"])
	}
}

// TestSymmetricClientAuth: a confidential symmetric client authenticates
// with Basic (C-CA-02) or with client_secret_post (advertised in
// token_endpoint_auth_methods_supported, C-WK-06), and a bad Basic
// client is 400/401 invalid_client (C-TK-07 "BAD_CLIENT_ID", C-CA-07).
func TestSymmetricClientAuth(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	conf := e.client(ClientSpec{})
	for _, tc := range []struct {
		name   string
		style  oauth2.AuthStyle
		id     string
		secret string
		ok     bool
		status []int
	}{
		{"client_secret_basic", oauth2.AuthStyleInHeader, conf.ClientID, conf.ClientSecret, true, nil},
		{"client_secret_post", oauth2.AuthStyleInParams, conf.ClientID, conf.ClientSecret, true, nil},
		{"post, wrong secret", oauth2.AuthStyleInParams, conf.ClientID, conf.ClientSecret + "x", false, []int{401}},
		{"post, no secret", oauth2.AuthStyleInParams, conf.ClientID, "", false, []int{400, 401}},
		{"Basic BAD_CLIENT_ID", oauth2.AuthStyleInHeader, "BAD_CLIENT_ID", conf.ClientSecret, false, []int{400, 401}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.oauth(conf, "launch/patient", "patient/*.rs")
			cfg.Endpoint.AuthStyle = tc.style
			v := oauth2.GenerateVerifier()
			b := e.browser()
			loc := b.approve(b.login(e.authURL(cfg, "state-sym-1234", v), "alice", "alice-password"), nil, nil)
			cfg.ClientID, cfg.ClientSecret = tc.id, tc.secret
			tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if g, status := e.whoami(tok.AccessToken); status != 200 || g.ClientID != conf.ClientID || g.Patient != "p1" {
					t.Errorf("whoami: %d %+v", status, g)
				}
				return
			}
			s, code := retrieveErr(err)
			if err == nil || !contains(tc.status, s) || code != "invalid_client" {
				t.Errorf("got %d %q (%v), want %v invalid_client", s, code, err, tc.status)
			}
		})
	}
}

// TestAsymmetricAppLaunch: an app registered with a JWK Set
// (client-confidential-asymmetric) runs an authorization code launch and
// authenticates at the token endpoint with an RS384 client assertion
// (C-CA-03, C-CA-04); another client's assertion or none does not
// redeem its code (C-CA-07).
func TestAsymmetricAppLaunch(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	svc := newService(t, jose.RS384)
	pub, _ := json.Marshal(svc.jwks)
	svc.id = e.client(ClientSpec{Name: "Asymmetric App", JWKS: pub, RedirectURIs: []string{appRedirect},
		Scopes: []string{"launch/patient", "openid", "fhirUser", "patient/*.rs"}}).ClientID
	other := newService(t, jose.ES384)
	opub, _ := json.Marshal(other.jwks)
	other.id = e.client(ClientSpec{Name: "Other", JWKS: opub, RedirectURIs: []string{appRedirect}}).ClientID

	tokenURL := e.base + "/auth/token"
	cfg := e.oauth(Registered{ClientID: svc.id}, "launch/patient", "openid", "fhirUser", "patient/*.rs")
	code := func() (string, string) {
		v := oauth2.GenerateVerifier()
		b := e.browser()
		loc := b.approve(b.login(e.authURL(cfg, "state-asym-123", v), "alice", "alice-password"), nil, nil)
		return loc.Query().Get("code"), v
	}
	withAssertion := func(a string) oauth2.AuthCodeOption {
		return oauth2.SetAuthURLParam("client_assertion", a)
	}
	assertionType := oauth2.SetAuthURLParam("client_assertion_type", assertionType)

	c, v := code()
	tok, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v), assertionType, withAssertion(svc.assertion(t, tokenURL, nil)))
	if err != nil {
		t.Fatalf("exchange with an RS384 assertion: %v", err)
	}
	if g, status := e.whoami(tok.AccessToken); status != 200 || g.ClientID != svc.id || g.Patient != "p1" {
		t.Errorf("whoami: %d %+v", status, g)
	}
	e.idToken(tok.Extra("id_token").(string), svc.id)

	for _, tc := range []struct {
		name string
		opts func() []oauth2.AuthCodeOption
	}{
		{"no assertion", func() []oauth2.AuthCodeOption { return nil }},
		{"another client's assertion", func() []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{assertionType, withAssertion(other.assertion(t, tokenURL, nil))}
		}},
		{"assertion for another audience", func() []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{assertionType, withAssertion(svc.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) {
				c.Audience = jwt.Audience{"https://other.example/token"}
			}))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, v := code()
			_, err := cfg.Exchange(e.ctx(), c, append([]oauth2.AuthCodeOption{oauth2.VerifierOption(v)}, tc.opts()...)...)
			if s, ec := retrieveErr(err); err == nil || (s != 400 && s != 401) || (ec != "invalid_client" && ec != "invalid_grant") {
				t.Errorf("got %d %q (%v), want 400/401 and no token", s, ec, err)
			}
		})
	}
}

// TestBackendServicesMoreBadInput: assertion and request errors the
// first backend test does not make (D-01, D-02, D-03, C-CA-03, C-CA-05).
func TestBackendServicesMoreBadInput(t *testing.T) {
	e := newEnv(t, nil)
	tokenURL := e.base + "/auth/token"
	rs := newService(t, jose.RS384)
	// The registered set holds rs's key and, under the same kid, an
	// unrelated RSA key: a kid naming two keys must fail (C-CA-05), even
	// though one of them verifies the signature.
	twin := newService(t, jose.RS384)
	dup := rs.jwks
	dup.Keys = append(slices.Clone(dup.Keys), jose.JSONWebKey{Key: twin.key.Public(), KeyID: rs.kid, Algorithm: "RS384", Use: "sig"})
	dupJSON, _ := json.Marshal(dup)
	if _, err := AddClient(t.Context(), e.st, ClientSpec{Name: "Twin kids", JWKS: dupJSON}); err == nil {
		t.Error("an inline JWKS with one kid twice was registered")
	}
	// A JWKS URL may still serve such a set.
	dupsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(dupJSON) }))
	defer dupsrv.Close()
	dupID := e.client(ClientSpec{Name: "Twin kids", JWKSURL: dupsrv.URL + "/jwks.json"}).ClientID
	pub, _ := json.Marshal(rs.jwks)
	rs.id = e.client(ClientSpec{Name: "RS384", JWKS: pub, Scopes: []string{"system/*.rs"}}).ClientID
	// An ES384 key registered under kid K: an RS384 assertion naming K
	// finds no key of its type (C-CA-05: kty consistent with alg).
	es := newService(t, jose.ES384)
	espub, _ := json.Marshal(es.jwks)
	es.id = e.client(ClientSpec{Name: "ES384", JWKS: espub}).ClientID
	wrongAlg := newService(t, jose.RS384)
	wrongAlg.id, wrongAlg.kid = es.id, es.kid

	for _, tc := range []struct {
		name      string
		assertion func() string
		form      url.Values
		status    []int
		errCode   string
	}{
		{"no scope", func() string { return rs.assertion(t, tokenURL, nil) }, url.Values{"scope": nil}, []int{400}, "invalid_scope"},
		{"no kid", func() string {
			return rs.assertion(t, tokenURL, func(_ *jwt.Claims, h map[jose.HeaderKey]any) { delete(h, "kid") })
		}, nil, []int{400, 401}, "invalid_client"},
		{"kid names two keys", func() string {
			s := *rs
			s.id = dupID
			return s.assertion(t, tokenURL, nil)
		}, nil, []int{400, 401}, "invalid_client"},
		{"RS384 header on an EC kid", func() string { return wrongAlg.assertion(t, tokenURL, nil) }, nil, []int{400, 401}, "invalid_client"},
		{"client_id differs from iss", func() string { return rs.assertion(t, tokenURL, nil) },
			url.Values{"client_id": {es.id}}, []int{400, 401}, "invalid_client"},
		{"aud lists the token URL with a trailing slash", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) { c.Audience = jwt.Audience{tokenURL + "/"} })
		}, nil, []int{400, 401}, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
				"client_assertion_type": {assertionType}, "client_assertion": {tc.assertion()}}
			for k, v := range tc.form {
				if v == nil {
					form.Del(k)
				} else {
					form[k] = v
				}
			}
			status, _, body := e.postForm("/auth/token", form, "", "")
			if !contains(tc.status, status) || body["error"] != tc.errCode || body["access_token"] != nil {
				t.Errorf("got %d %v, want %v %s", status, body, tc.status, tc.errCode)
			}
		})
	}
	// Control: the same service with a good assertion is served, so the
	// refusals above are about what each case changed.
	status, _, body := e.postForm("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
		"client_assertion_type": {assertionType}, "client_assertion": {rs.assertion(t, tokenURL, nil)}}, "", "")
	if status != 200 || body["access_token"] == nil {
		t.Fatalf("good assertion: %d %v", status, body)
	}
}

// TestJWKSURLNoStore: a JWKS served with Cache-Control: no-store is
// fetched again for every assertion, so a rotated key takes effect at
// once and the retired one stops working (C-CA-05: never cached longer
// than the client's Cache-Control allows).
func TestJWKSURLNoStore(t *testing.T) {
	e := newEnv(t, nil)
	first, second := newService(t, jose.ES384), newService(t, jose.ES384)
	var current atomic.Pointer[service]
	current.Store(first)
	var fetches atomic.Int32
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(current.Load().jwks)
	}))
	defer keysrv.Close()
	id := e.client(ClientSpec{Name: "Rotating", JWKSURL: keysrv.URL + "/jwks.json"}).ClientID
	first.id, second.id = id, id
	try := func(s *service) int {
		status, _, _ := e.postForm("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {assertionType}, "client_assertion": {s.assertion(t, e.base+"/auth/token", nil)}}, "", "")
		return status
	}
	if s := try(first); s != 200 {
		t.Fatalf("first key: %d", s)
	}
	current.Store(second)
	if s := try(second); s != 200 {
		t.Errorf("rotated key: %d, want 200 (the no-store JWKS was cached)", s)
	}
	if s := try(first); s == 200 {
		t.Error("the retired key still works")
	}
	if n := fetches.Load(); n != 3 {
		t.Errorf("JWKS fetched %d times for 3 assertions, want 3 (no-store)", n)
	}
}

// TestAuthorizeRequiredParams: an authorization request without state or
// scope gets an error redirect, never a code (C-AZ-02, C-AZ-06), and the
// state comes back byte for byte even when it needs escaping (C-AZ-04).
func TestAuthorizeRequiredParams(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	cfg := e.oauth(app, "launch/patient", "patient/*.rs")
	for _, tc := range []struct {
		name   string
		change func(url.Values)
	}{
		{"missing state", func(q url.Values) { q.Del("state") }},
		{"missing response_type", func(q url.Values) { q.Del("response_type") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(e.authURL(cfg, "state-req-1234", oauth2.GenerateVerifier()))
			q := u.Query()
			tc.change(q)
			p := e.browser().get(e.base + "/auth/authorize?" + q.Encode())
			if p.loc == nil || p.loc.Query().Get("error") == "" || p.loc.Query().Get("code") != "" || !strings.HasPrefix(p.loc.String(), appRedirect) {
				t.Errorf("got %d %v, want an error redirect without a code", p.status, p.loc)
			}
		})
	}
	const odd = "st8 +/=&?é%20"
	v := oauth2.GenerateVerifier()
	b := e.browser()
	loc := b.approve(b.login(e.authURL(cfg, odd, v), "alice", "alice-password"), nil, nil)
	if loc.Query().Get("state") != odd || loc.Query().Get("code") == "" {
		t.Errorf("redirect %v: state %q, want %q and a code", loc, loc.Query().Get("state"), odd)
	}
}

// TestEHRLaunchByPOST: the g10 EHR launch posts its authorization request
// (C-AZ-01, C-AZ-08); the token response and the introspection of its
// token carry the launch's patient and encounter (C-TK-02, C-IN-02).
func TestEHRLaunchByPOST(t *testing.T) {
	e := newEnv(t, nil)
	e.user("drbob", "Practitioner/d9")
	launch, err := CreateLaunch(t.Context(), e.st, "p7", "e3")
	if err != nil {
		t.Fatal(err)
	}
	app := e.client(ClientSpec{})
	cfg := e.oauth(app, "launch", "openid", "fhirUser", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	b := e.browser()
	au, _ := url.Parse(e.authURL(cfg, "ehr-post-1234", v, "launch", launch))
	p := b.post(e.base+"/auth/authorize", au.Query())
	if p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("POST authorize: %d, want the login page", p.status)
	}
	f := hidden(p.body)
	f.Set("username", "drbob")
	f.Set("password", "drbob-password")
	loc := b.approve(b.post(e.base+"/auth/login", f), nil, nil)
	if loc.Query().Get("state") != "ehr-post-1234" {
		t.Fatalf("redirect %v: state not echoed", loc)
	}
	tok, err := cfg.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "p7" || tok.Extra("encounter") != "e3" {
		t.Errorf("token response patient %v encounter %v", tok.Extra("patient"), tok.Extra("encounter"))
	}
	claims := e.idToken(tok.Extra("id_token").(string), app.ClientID)
	status, _, got := e.postForm("/auth/introspect", url.Values{"token": {tok.AccessToken}}, app.ClientID, app.ClientSecret)
	if status != 200 || got["active"] != true || got["patient"] != "p7" || got["encounter"] != "e3" ||
		got["scope"] != tok.Extra("scope") || got["sub"] != claims["sub"] || got["iss"] != claims["iss"] ||
		got["fhirUser"] != e.base+"/Practitioner/d9" {
		t.Errorf("introspection: %d %v", status, got)
	}
}

// TestStyleURLFollowsContent: smart_style_url answers 200 JSON, and its
// version parameter is a digest of what it serves, so a changed style
// gets a new URL (C-TK-10: "A new URL SHALL be issued when the content
// changes").
func TestStyleURLFollowsContent(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	tok := e.standalone(e.oauth(e.client(ClientSpec{Public: true}), "launch/patient", "patient/*.rs"), "alice", nil)
	raw, _ := tok.Extra("smart_style_url").(string)
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		t.Fatalf("smart_style_url %q", raw)
	}
	resp, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("GET %s: %d %q %s", raw, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	sum := sha256.Sum256(body)
	if got, want := u.Query().Get("v"), hex.EncodeToString(sum[:6]); got != want {
		t.Errorf("style URL version %q, want %q (the digest of the served document)", got, want)
	}
}

// TestPagesSayWhatIsAsked: the login and consent pages name the app
// (escaped: the name is the registrant's text) and say each requested
// scope in plain words, every input has a label, the fields are named
// as issue 5 says (username, password, approve), and no script is
// needed.
func TestPagesSayWhatIsAsked(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	const name = `Dr. <b>Chart</b> & "Co"`
	app := e.client(ClientSpec{Name: name, Public: true})
	lab := "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	cfg := e.oauth(app, "launch/patient", "offline_access", "patient/Condition.read", lab)
	b := e.browser()
	login := b.get(e.authURL(cfg, "state-pages-1", oauth2.GenerateVerifier()))
	consent := b.login(e.authURL(cfg, "state-pages-2", oauth2.GenerateVerifier()), "alice", "alice-password")
	escaped := "Dr. &lt;b&gt;Chart&lt;/b&gt; &amp; &#34;Co&#34;"
	for _, p := range []struct {
		name string
		page page
		want []string
	}{
		{"login", login, []string{escaped, `name="username"`, `name="password"`}},
		{"consent", consent, []string{escaped, `name="approve"`,
			"Know which patient record to work with",
			"Keep access after you log out, until you revoke it",
			"Read, search Condition records of the selected patient",
			"Read, search Observation records of the selected patient (only category laboratory)"}},
	} {
		t.Run(p.name, func(t *testing.T) {
			if p.page.status != http.StatusOK {
				t.Fatalf("status %d", p.page.status)
			}
			for _, w := range p.want {
				if !strings.Contains(p.page.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(p.page.body, "<b>Chart") || strings.Contains(strings.ToLower(p.page.body), "<script") {
				t.Error("page holds unescaped app markup or a script")
			}
			// Every visible input has a label naming its id.
			inputs := regexp.MustCompile(`<input[^>]* id="([^"]+)"`).FindAllStringSubmatch(p.page.body, -1)
			if len(inputs) < 2 {
				t.Errorf("%d labelled inputs found, want the form's fields", len(inputs))
			}
			for _, m := range inputs {
				if !strings.Contains(p.page.body, `<label for="`+m[1]+`">`) {
					t.Errorf("input %s has no label", m[1])
				}
			}
		})
	}
	// The 4 requested scopes, ticked, and the 3 Condition categories
	// offered in place of patient/Condition.read, not ticked (C-SC-07).
	if got := offered(consent.body); len(got) != 7 {
		t.Errorf("consent offers %q, want the 4 requested scopes and 3 Condition categories", got)
	}
	if got := strings.Count(consent.body, `name="scope"`) - strings.Count(consent.body, `" checked>`); got != 3 {
		t.Errorf("%d scope boxes unticked, want the 3 category ones", got)
	}
}

// TestLaunchEncounterScope: launch/encounter is granted with an EHR
// launch that has an encounter, and dropped (never an empty encounter)
// in a standalone launch, which has none (C-SC-09, C-TK-02).
func TestLaunchEncounterScope(t *testing.T) {
	e := newEnv(t, nil)
	e.user("drbob", "Practitioner/d9")
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})

	launch, err := CreateLaunch(t.Context(), e.st, "p7", "e3")
	if err != nil {
		t.Fatal(err)
	}
	ehr := e.oauth(app, "launch", "launch/encounter", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	b := e.browser()
	loc := b.approve(b.login(e.authURL(ehr, "state-enc-1234", v, "launch", launch), "drbob", "drbob-password"), nil, nil)
	tok, err := ehr.Exchange(e.ctx(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("scope") != "launch launch/encounter patient/*.rs" || tok.Extra("encounter") != "e3" {
		t.Errorf("EHR launch: scope %q encounter %v", tok.Extra("scope"), tok.Extra("encounter"))
	}

	tok = e.standalone(e.oauth(app, "launch/patient", "launch/encounter", "patient/*.rs"), "alice", nil)
	if tok.Extra("scope") != "launch/patient patient/*.rs" || tok.Extra("encounter") != nil {
		t.Errorf("standalone: scope %q encounter %v", tok.Extra("scope"), tok.Extra("encounter"))
	}
}

// TestRefreshBoundToClient: a refresh token presented by another client
// (public or confidential) is 400/401 and leaves the owner's grant
// working (C-RF-03).
func TestRefreshBoundToClient(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	owner := e.client(ClientSpec{Public: true})
	cfg := e.oauth(owner, "launch/patient", "offline_access", "patient/*.rs")
	tok := e.standalone(cfg, "alice", nil)
	pub, conf := e.client(ClientSpec{Public: true}), e.client(ClientSpec{})
	for _, tc := range []struct {
		name       string
		id, secret string
	}{{"public", pub.ClientID, ""}, {"confidential", conf.ClientID, conf.ClientSecret}} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			basic := ""
			if tc.secret == "" {
				form.Set("client_id", tc.id)
			} else {
				basic = tc.id
			}
			status, _, body := e.postForm("/auth/token", form, basic, tc.secret)
			if (status != 400 && status != 401) || body["access_token"] != nil {
				t.Errorf("got %d %v, want 400/401", status, body)
			}
		})
	}
	if _, status := e.whoami(tok.AccessToken); status != 200 {
		t.Errorf("owner's access token after the attempts: %d", status)
	}
	if _, err := cfg.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err != nil {
		t.Errorf("owner's refresh after the attempts: %v", err)
	}
}

// TestOnlyAccessTokensAreBearer: of everything a launch hands an app,
// only the access token opens the FHIR API; a refresh token, the code,
// the id_token or a client secret sent as a bearer token is invalid
// (C-RS-01, C-RS-03).
func TestOnlyAccessTokensAreBearer(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{})
	cfg := e.oauth(app, "launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs")
	v := oauth2.GenerateVerifier()
	b := e.browser()
	code := b.approve(b.login(e.authURL(cfg, "state-bearer-1", v), "alice", "alice-password"), nil, nil).Query().Get("code")
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if _, status := e.whoami(tok.AccessToken); status != 200 {
		t.Fatalf("access token: %d", status)
	}
	for name, bad := range map[string]string{
		"refresh token": tok.RefreshToken,
		"code":          code,
		"id_token":      tok.Extra("id_token").(string),
		"client secret": app.ClientSecret,
	} {
		if bad == "" {
			t.Fatalf("%s is empty", name)
		}
		if _, status := e.whoami(bad); status != http.StatusUnauthorized {
			t.Errorf("%s as a bearer token: %d, want 401", name, status)
		}
	}
}
