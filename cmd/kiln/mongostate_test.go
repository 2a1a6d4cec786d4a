package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// TestSMARTExportOnMongo: with --mongo-uri and the default --auth=smart,
// two Kiln processes share every piece of state through MongoDB (issue 7,
// scale-out). A Backend Services client registered with `kiln client add
// --mongo-uri` gets a token from A (private_key_jwt, SMART Backend
// Services), which B accepts; a system $export kicked off at A is polled
// and downloaded at B, its NDJSON holding exactly what was written.
func TestSMARTExportOnMongo(t *testing.T) {
	srv := mongotest.Start(t)
	db := fmt.Sprintf("kiln_smart_%d", time.Now().UnixNano())
	dir := t.TempDir()

	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := clientCmd(t.Context(), []string{"add", "--mongo-uri", srv.URI, "--mongo-db", db, "--name", "Exporter",
		"--jwks", jwksFile, "--scope", "system/*.cruds"}, &out); err != nil {
		t.Fatalf("kiln client add --mongo-uri: %v", err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(out.Bytes(), &reg); err != nil || reg.ClientID == "" {
		t.Fatalf("client add: %v %s", err, out.Bytes())
	}

	// Behind a load balancer every process has the one public base URL,
	// which tokens are issued for.
	const base = "http://kiln.test"
	start := func() *kiln {
		k := spawn(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--log-format", "json",
			"--mongo-uri", srv.URI, "--mongo-db", db, "--base-url", base)
		k.waitServing()
		return k
	}
	a, b := start(), start()

	// The assertion's audience is the token endpoint under the public base.
	tokenURL := base + "/auth/token"
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"kid": "k1", "typ": "JWT"}})
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: reg.ClientID, Subject: reg.ClientID,
		Audience: jwt.Audience{tokenURL}, Expiry: jwt.NewNumericDate(time.Now().Add(5 * time.Minute)),
		ID: fmt.Sprint(time.Now().UnixNano())}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.cruds"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion}}
	resp, err := http.PostForm(a.base+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || tok.AccessToken == "" {
		t.Fatalf("token at A: %d %v", resp.StatusCode, err)
	}
	// The jti is in the shared replay cache: B refuses the same assertion.
	resp, err = http.PostForm(b.base+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("B accepted an assertion A had already used (jti replay)")
	}

	ca, cb := a.client(t), b.client(t)
	if r := cb.Do("GET", "/Patient", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("GET /Patient at B without a token: %d, want 401", r.Status)
	}
	ca.HTTP.Transport = bearer{tok.AccessToken, http.DefaultTransport}
	cb.HTTP.Transport = bearer{tok.AccessToken, http.DefaultTransport}

	var want []string
	for i := range 3 {
		p := fmt.Sprintf("mp%d", i)
		put(t, ca, "Patient", p, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, p))
		want = append(want, "Patient/"+p)
	}
	put(t, ca, "Observation", "mo", `{"resourceType":"Observation","id":"mo","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/mp0"}}`)
	want = append(want, "Observation/mo")
	slices.Sort(want)

	r := ca.Do("GET", "/$export?_type=Patient,Observation", nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off at A: %d %s", r.Status, r.Body)
	}
	status, err := url.Parse(r.Header.Get("Content-Location"))
	if err != nil {
		t.Fatal(err)
	}
	m := pollExport(t, cb, status.Path)
	if got := downloadExport(t, cb, m); !slices.Equal(got, want) {
		t.Errorf("export downloaded at B:\n%v\nwant\n%v", got, want)
	}
	// Files are protected like the kick-off (export.html#bulk-data-output-file-request).
	f, _ := url.Parse(m.Output[0].URL)
	if r := b.client(t).Do("GET", f.Path, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("file without a token: %d, want 401", r.Status)
	}
}
