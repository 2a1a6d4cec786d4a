package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// The SMART flows end to end against the real binary: `kiln import`, then
// `kiln serve` with its default --auth=smart, apps and users registered
// by the admin commands beside the running server, and golang.org/x/oauth2
// as the client over real HTTP. The smart package's own tests drive the
// same flows in process; these check that the binary wires them to the
// FHIR API (fhir/rest/permit.go) as the README says.

// smartPatients are the two Synthea patients the SMART tests load: the
// two smallest bundles, to keep the import short.
var smartPatients = []string{
	"Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json",
	"Joie_Morissette_c47db034-eb1c-4100-9448-4d4b3cb6535c.json",
}

// smartKiln is a served data directory with two imported patients.
type smartKiln struct {
	*kiln
	data     string
	base     string            // the FHIR base tokens are issued for (aud)
	patients []string          // the Patient ids, A then B
	bodies   []json.RawMessage // the Patients as imported
}

// startSMARTKiln imports smartPatients into a fresh data directory and
// serves it with the default authorization and the serve flags in extra.
func startSMARTKiln(t *testing.T, extra ...string) *smartKiln {
	t.Helper()
	src := t.TempDir()
	for _, f := range smartPatients {
		b, err := os.ReadFile(filepath.Join("../../testdata/synthea", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bundles, err := synthea.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var bodies []json.RawMessage
	for _, b := range bundles {
		for _, e := range b.Entries {
			if e.Type == "Patient" {
				var p struct{ ID string }
				json.Unmarshal(e.Resource, &p)
				if p.ID == "" {
					p.ID = strings.TrimPrefix(e.FullURL, "urn:uuid:")
				}
				ids = append(ids, p.ID)
				bodies = append(bodies, e.Resource)
			}
		}
	}
	if len(ids) != 2 {
		t.Fatalf("want one Patient per bundle, got %v", ids)
	}
	data := filepath.Join(t.TempDir(), "data")
	if got := runImport(t, data, src); got[4] != 0 {
		t.Fatalf("import rejected %d resources", got[4])
	}
	k := spawn(t, nil, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json"}, extra...)...)
	k.waitServing()
	// Without --base-url the audience is http://localhost:PORT
	// (cmd/kiln/auth.go smartBase); the client calls that very base.
	base := "http://localhost" + k.base[strings.LastIndexByte(k.base, ':'):]
	return &smartKiln{kiln: k, data: data, base: base, patients: ids, bodies: bodies}
}

// admin runs an admin command of the binary (beside the running server)
// with stdin and decodes the JSON it prints.
func (k *smartKiln) admin(t *testing.T, stdin string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(kilnBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return jsonObject(t, out)
}

// backendService is a SMART Backend Services client registered with a
// freshly generated ES384 key pair, its public JWKS inline
// (backend-services.html#registering-a-smart-backend-service).
type backendService struct {
	k      *smartKiln
	id     string
	signer jose.Signer
}

// backendService registers a backend client that may be granted scope.
func (k *smartKiln) backendService(t *testing.T, name, scope string) *backendService {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid := "e2e-" + hex.EncodeToString(key.PublicKey.X.Bytes()[:6])
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: string(jose.ES384), Use: "sig"}}})
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := k.admin(t, "", "client", "add", "--data", k.data, "--name", name, "--jwks", jwksFile, "--scope", scope)
	id, _ := svc["client_id"].(string)
	if id == "" || svc["token_endpoint_auth_method"] != "private_key_jwt" {
		t.Fatalf("client add --jwks printed %v", svc)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	return &backendService{k: k, id: id, signer: signer}
}

// config is a client_credentials request for scopes with one freshly
// signed assertion (its jti is good for one token request).
func (bs *backendService) config(t *testing.T, scopes ...string) *clientcredentials.Config {
	t.Helper()
	assertion, err := jwt.Signed(bs.signer).Claims(jwt.Claims{
		Issuer: bs.id, Subject: bs.id, Audience: jwt.Audience{bs.k.base + "/auth/token"},
		Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)), ID: rand.Text(),
	}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return &clientcredentials.Config{TokenURL: bs.k.base + "/auth/token", Scopes: scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		}}
}

// token gets an access token for scopes.
func (bs *backendService) token(t *testing.T, ctx context.Context, scopes ...string) string {
	t.Helper()
	tok, err := bs.config(t, scopes...).Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials for %v: %v", scopes, err)
	}
	return tok.AccessToken
}

// launchToken runs a standalone launch (PKCE S256, aud = the FHIR base)
// for cfg as username, approving every scope offered, and exchanges the
// code.
func (k *smartKiln) launchToken(t *testing.T, ctx context.Context, cfg *oauth2.Config, username, password string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	loc := newUserAgent(t).authorizeCode(cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", k.base)), username, password)
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange for %s: %v", username, err)
	}
	return tok
}

// appRedirect is the redirect URI of the test app: the user agent stops
// there (it is never dialled) and reads the code off the Location.
const appRedirect = "https://app.example/callback"

// userAgent is a browser: a cookie jar, redirects followed on the
// server, stopped at the app.
type userAgent struct {
	t *testing.T
	c *http.Client
}

func newUserAgent(t *testing.T) *userAgent {
	jar, _ := cookiejar.New(nil)
	return &userAgent{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if strings.HasPrefix(r.URL.String(), appRedirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

func (u *userAgent) do(method, target string, form url.Values) (status int, body string, loc *url.URL) {
	u.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if l := resp.Header.Get("Location"); l != "" && resp.StatusCode/100 == 3 {
		loc, _ = url.Parse(l)
	}
	return resp.StatusCode, string(b), loc
}

var (
	hiddenInputRE = regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)">`)
	scopeBoxRE    = regexp.MustCompile(`name="scope" value="([^"]*)"`)
	formActionRE  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// formOf reads the first form of a page: its action and hidden fields.
func formOf(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := formActionRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form on the page:\n%.2000s", page)
	}
	v := url.Values{}
	for _, h := range hiddenInputRE.FindAllStringSubmatch(page, -1) {
		v.Set(h[1], h[2])
	}
	return htmlText(m[1]), v
}

func htmlText(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// authorizeCode runs the authorization endpoint as a person would: the
// login page (fields username and password), then the consent page,
// approved with every scope offered. It returns the redirect to the app.
func (u *userAgent) authorizeCode(authURL, username, password string) *url.URL {
	u.t.Helper()
	status, page, _ := u.do(http.MethodGet, authURL, nil)
	if status != http.StatusOK || !strings.Contains(page, `name="password"`) {
		u.t.Fatalf("authorize: want the login page, got %d\n%.2000s", status, page)
	}
	action, form := formOf(u.t, page)
	form.Set("username", username)
	form.Set("password", password)
	status, page, _ = u.do(http.MethodPost, action, form)
	if status != http.StatusOK || !strings.Contains(page, `name="approve"`) {
		u.t.Fatalf("login: want the consent page, got %d\n%.2000s", status, page)
	}
	action, form = formOf(u.t, page)
	for _, m := range scopeBoxRE.FindAllStringSubmatch(page, -1) {
		form.Add("scope", htmlText(m[1]))
	}
	form.Set("approve", "approve")
	status, page, loc := u.do(http.MethodPost, action, form)
	if loc == nil {
		u.t.Fatalf("consent: want a redirect to the app, got %d\n%.2000s", status, page)
	}
	return loc
}

// fhirGet reads a FHIR path with a bearer token ("" for none).
func fhirGet(t *testing.T, base, path, token string) (int, http.Header, []byte) {
	t.Helper()
	return bearerDo(t, http.MethodGet, base+path, token)
}

// bearerDo sends one request with a bearer token ("" for none) and the
// header name/value pairs in extra, and returns the whole answer.
func bearerDo(t *testing.T, method, target, token string, extra ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, target, nil)
	req.Header.Set("Accept", "application/fhir+json")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// searchset decodes a search Bundle's entries.
type searchset struct {
	Entry []struct {
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Subject      struct {
				Reference string `json:"reference"`
			} `json:"subject"`
		} `json:"resource"`
		Search struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
	Link []struct {
		Relation string `json:"relation"`
	} `json:"link"`
}

func TestSMARTOnBinary(t *testing.T) {
	start := time.Now()
	k := startSMARTKiln(t)
	a, b := k.patients[0], k.patients[1]
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})

	app := k.admin(t, "", "client", "add", "--data", k.data, "--name", "Portal E2E", "--redirect-uri", appRedirect, "--public")
	clientID, _ := app["client_id"].(string)
	if clientID == "" || app["client_secret"] != nil {
		t.Fatalf("client add --public printed %v", app)
	}
	const password = "correct horse battery staple"
	user := k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "patient-a", "--password-stdin", "--fhir-user", "Patient/"+a)
	if user["fhirUser"] != "Patient/"+a {
		t.Fatalf("user add printed %v", user)
	}

	cfg := &oauth2.Config{
		ClientID: clientID, RedirectURL: appRedirect,
		Scopes:   []string{"launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: k.base + "/auth/authorize", TokenURL: k.base + "/auth/token", AuthStyle: oauth2.AuthStyleInParams},
	}

	var tok *oauth2.Token
	t.Run("standalone launch", func(t *testing.T) {
		// app-launch.html#launch-app-standalone-launch with PKCE S256
		// (app-launch.html#considerations-for-pkce-support).
		verifier := oauth2.GenerateVerifier()
		state := rand.Text()
		loc := newUserAgent(t).authorizeCode(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", k.base)), "patient-a", password)
		code := loc.Query().Get("code")
		if code == "" || loc.Query().Get("state") != state {
			t.Fatalf("redirect %v: want a code and state %q echoed", loc, state)
		}
		var err error
		if tok, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("code exchange: %v", err)
		}
		// app-launch.html#response-5: patient context, granted scope,
		// an id_token for openid fhirUser.
		if got := tok.Extra("patient"); got != a {
			t.Errorf("token response patient = %v, want %s", got, a)
		}
		granted := strings.Fields(tok.Extra("scope").(string))
		for _, want := range cfg.Scopes {
			if !slices.Contains(granted, want) {
				t.Errorf("granted scope %q lacks %q", granted, want)
			}
		}
		if !strings.EqualFold(tok.TokenType, "bearer") || tok.RefreshToken == "" {
			t.Errorf("token_type %q, refresh_token %q: want Bearer and a refresh token for offline_access", tok.TokenType, tok.RefreshToken)
		}
		raw, _ := tok.Extra("id_token").(string)
		// The id_token checked as an OpenID client would: discovery,
		// the published keys, issuer, audience, expiry.
		provider, err := oidc.NewProvider(ctx, k.base)
		if err != nil {
			t.Fatalf("OpenID discovery: %v", err)
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("id_token: %v", err)
		}
		var claims struct {
			FHIRUser string `json:"fhirUser"`
		}
		idt.Claims(&claims)
		if want := k.base + "/Patient/" + a; claims.FHIRUser != want {
			t.Errorf("id_token fhirUser = %q, want %q", claims.FHIRUser, want)
		}
	})
	if tok == nil {
		t.FailNow()
	}

	t.Run("patient A's token", func(t *testing.T) {
		status, _, body := fhirGet(t, k.base, "/Patient/"+a, tok.AccessToken)
		if status != http.StatusOK || jsonObject(t, body)["id"] != a {
			t.Errorf("read own Patient: %d %.300s", status, body)
		}
		status, _, body = fhirGet(t, k.base, "/Observation?patient="+a+"&_count=1000", tok.AccessToken)
		var ss searchset
		if status != http.StatusOK || json.Unmarshal(body, &ss) != nil || len(ss.Entry) == 0 {
			t.Fatalf("search own Observations: %d %.300s", status, body)
		}
		// Unfiltered, the search still holds only A's (the compartment
		// is ANDed in, README "Access control").
		status, _, body = fhirGet(t, k.base, "/Observation?_count=1000", tok.AccessToken)
		var all searchset
		if status != http.StatusOK || json.Unmarshal(body, &all) != nil {
			t.Fatalf("search Observations: %d %.300s", status, body)
		}
		for _, e := range append(ss.Entry, all.Entry...) {
			if e.Resource.ResourceType == "Observation" && e.Resource.Subject.Reference != "Patient/"+a {
				t.Errorf("Observation/%s of %s leaked to patient A", e.Resource.ID, e.Resource.Subject.Reference)
			}
		}
		if len(all.Entry) != len(ss.Entry) {
			t.Errorf("unfiltered search: %d Observations, by patient: %d", len(all.Entry), len(ss.Entry))
		}
		status, _, body = fhirGet(t, k.base, "/Observation?patient="+b, tok.AccessToken)
		var ofB searchset
		if json.Unmarshal(body, &ofB) != nil || status != http.StatusOK && status != http.StatusForbidden || status == http.StatusOK && len(ofB.Entry) != 0 {
			t.Errorf("search B's Observations: %d with %d entries, want none", status, len(ofB.Entry))
		}
		// Another patient's record is refused or looks absent.
		if status, _, body := fhirGet(t, k.base, "/Patient/"+b, tok.AccessToken); status != http.StatusNotFound && status != http.StatusForbidden {
			t.Errorf("read B's Patient: %d %.300s", status, body)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		// Browser apps read the FHIR API from the origins of their
		// registered redirect URIs, and no other.
		for _, tc := range []struct {
			method, origin string
			allowed        bool
		}{
			{http.MethodOptions, "https://app.example", true},
			{http.MethodGet, "https://app.example", true},
			{http.MethodOptions, "https://evil.example", false},
			{http.MethodGet, "https://evil.example", false},
		} {
			req, _ := http.NewRequest(tc.method, k.base+"/Patient/"+a, nil)
			req.Header.Set("Origin", tc.origin)
			if tc.method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization")
			} else {
				req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tc.allowed && (acao != tc.origin || resp.StatusCode/100 != 2) || !tc.allowed && acao != "" {
				t.Errorf("%s from %s: %d, Access-Control-Allow-Origin %q", tc.method, tc.origin, resp.StatusCode, acao)
			}
			if tc.allowed && tc.method == http.MethodOptions && !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("preflight does not allow Authorization: %q", resp.Header.Get("Access-Control-Allow-Headers"))
			}
		}
	})

	t.Run("bad tokens", func(t *testing.T) {
		// RFC 6750 §3: no token is a bare challenge, a bad one is
		// invalid_token.
		status, h, _ := fhirGet(t, k.base, "/Patient/"+a, "")
		if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("no token: %d %q", status, h.Get("WWW-Authenticate"))
		}
		status, h, _ = fhirGet(t, k.base, "/Patient/"+a, "garbage."+tok.AccessToken[:10])
		if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("garbage token: %d %q", status, h.Get("WWW-Authenticate"))
		}
	})

	t.Run("introspection", func(t *testing.T) {
		// RFC 7662 with the token itself as the caller's credential
		// (README): the live token is active with its patient, a bad
		// one is 200 {"active": false}.
		for _, tc := range []struct {
			token  string
			active bool
		}{{tok.AccessToken, true}, {"not-a-token", false}} {
			req, _ := http.NewRequest(http.MethodPost, k.base+"/auth/introspect", strings.NewReader(url.Values{"token": {tc.token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := jsonObject(t, body)
			if resp.StatusCode != http.StatusOK || m["active"] != tc.active || tc.active && (m["patient"] != a || m["client_id"] != clientID) {
				t.Errorf("introspect (active %v): %d %s", tc.active, resp.StatusCode, body)
			}
		}
	})

	t.Run("refresh and revoke", func(t *testing.T) {
		// app-launch.html#step-5-later-app-uses-a-refresh-token.
		fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
			t.Errorf("refresh: want a new access token and a rotated refresh token")
		}
		if status, _, _ := fhirGet(t, k.base, "/Patient/"+a, fresh.AccessToken); status != http.StatusOK {
			t.Fatalf("refreshed token: %d", status)
		}
		// RFC 7009 §2.1: the public client revokes its refresh token;
		// the access tokens of the grant go with it.
		resp, err := http.PostForm(k.base+"/auth/revoke", url.Values{"token": {fresh.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {clientID}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		status, h, _ := fhirGet(t, k.base, "/Patient/"+a, fresh.AccessToken)
		if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("revoked grant's access token: %d %q, want 401 invalid_token", status, h.Get("WWW-Authenticate"))
		}
		if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
			t.Error("a revoked refresh token was accepted")
		}
	})

	t.Run("EHR launch", func(t *testing.T) {
		// app-launch.html#launch-app-ehr-launch: `kiln launch` makes the
		// context (patient B) beside the running server; a practitioner
		// signs in and the token carries B, and only B.
		const drPassword = "the doctor's own password"
		k.admin(t, drPassword+"\n", "user", "add", "--data", k.data, "--username", "dr-e2e", "--password-stdin", "--fhir-user", "Practitioner/e2e")
		launch, _ := k.admin(t, "", "launch", "--data", k.data, "--patient", b)["launch"].(string)
		if launch == "" {
			t.Fatal("kiln launch printed no handle")
		}
		ehr := *cfg
		ehr.Scopes = []string{"launch", "openid", "fhirUser", "patient/*.rs"}
		verifier := oauth2.GenerateVerifier()
		state := rand.Text()
		loc := newUserAgent(t).authorizeCode(ehr.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("aud", k.base), oauth2.SetAuthURLParam("launch", launch)), "dr-e2e", drPassword)
		if loc.Query().Get("state") != state {
			t.Fatalf("redirect %v: state not echoed", loc)
		}
		etok, err := ehr.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("code exchange: %v", err)
		}
		if etok.Extra("patient") != b {
			t.Errorf("EHR launch token patient = %v, want %s", etok.Extra("patient"), b)
		}
		if status, _, _ := fhirGet(t, k.base, "/Patient/"+b, etok.AccessToken); status != http.StatusOK {
			t.Errorf("read the launch patient: %d", status)
		}
		if status, _, _ := fhirGet(t, k.base, "/Patient/"+a, etok.AccessToken); status != http.StatusNotFound && status != http.StatusForbidden {
			t.Errorf("read another patient with a patient/ scope: %d", status)
		}
	})

	t.Run("backend services", func(t *testing.T) {
		// backend-services.html: a fresh ES384 key pair, its public
		// JWKS registered inline, client_credentials with a signed
		// assertion.
		bs := k.backendService(t, "Bulk E2E", "system/*.rs")
		cc := bs.config(t, "system/Patient.rs")
		stok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client_credentials: %v", err)
		}
		status, _, body := fhirGet(t, k.base, "/Patient", stok.AccessToken)
		var ss searchset
		if status != http.StatusOK || json.Unmarshal(body, &ss) != nil {
			t.Fatalf("GET /Patient with a system token: %d %.300s", status, body)
		}
		var got []string
		for _, e := range ss.Entry {
			got = append(got, e.Resource.ID)
		}
		slices.Sort(got)
		want := []string{a, b}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("system/*.rs GET /Patient: %v, want both patients %v", got, want)
		}
		// backend-services.html: a jti is never accepted twice.
		_, err = cc.Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode/100 != 4 {
			t.Errorf("replayed assertion: %v, want a 4xx token error", err)
		}
	})
	t.Logf("TestSMARTOnBinary: %v", time.Since(start).Round(time.Millisecond))
}
