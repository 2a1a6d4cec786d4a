package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2/clientcredentials"
)

// TestAuditOnBinary: `kiln serve` (SMART by default) records the requests
// of a real SMART Backend Services token as AuditEvents that the same
// token can search; the search's query string is in the AuditEvent and
// nowhere in the log; the token cannot write an AuditEvent even with
// system/*.cruds; the writer's counters are on /metrics.
func TestAuditOnBinary(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := clientCmd(t.Context(), []string{"add", "--data", data, "--name", "Loader", "--jwks", jwksFile, "--scope", "system/*.cruds"}, &out); err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(out.Bytes(), &reg); err != nil || reg.ClientID == "" {
		t.Fatalf("client add: %q %v", out.String(), err)
	}

	k := spawn(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json")
	k.waitServing()
	hc := &http.Client{Timeout: 10 * time.Second}
	tokenURL := "http://localhost" + k.base[strings.LastIndexByte(k.base, ':'):] + "/auth/token"

	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: reg.ClientID, Subject: reg.ClientID, Audience: jwt.Audience{tokenURL},
		Expiry: jwt.NewNumericDate(time.Now().Add(4 * time.Minute)), ID: newJTI()}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientcredentials.Config{TokenURL: tokenURL, Scopes: []string{"system/*.cruds"},
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, k.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	if st, b := do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Zanzibarova"}]}`); st != http.StatusCreated {
		t.Fatalf("PUT: %d %s", st, b)
	}
	if st, b := do("GET", "/Patient?family=Zanzibarova", ""); st != http.StatusOK {
		t.Fatalf("search: %d %s", st, b)
	}
	forged := `{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2024-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
	if st, b := do("POST", "/AuditEvent", forged); st != http.StatusForbidden {
		t.Errorf("POST AuditEvent with system/*.cruds: %d %s, want 403", st, b)
	}

	// The writer flushes every 500ms: poll the patient's events.
	var found bool
	deadline := time.Now().Add(15 * time.Second)
	for !found && time.Now().Before(deadline) {
		st, b := do("GET", "/AuditEvent?patient=Patient/p1&subtype=search-type", "")
		if st != http.StatusOK {
			t.Fatalf("AuditEvent search: %d %s", st, b)
		}
		var bundle struct {
			Entry []struct {
				Resource struct {
					Agent []struct {
						Who struct{ Identifier struct{ Value string } }
					}
					Entity []struct{ Query string }
				}
			}
		}
		json.Unmarshal(b, &bundle)
		for _, e := range bundle.Entry {
			for _, en := range e.Resource.Entity {
				q, _ := base64.StdEncoding.DecodeString(en.Query)
				if string(q) == "Patient?family=Zanzibarova" && e.Resource.Agent[0].Who.Identifier.Value == reg.ClientID {
					found = true
				}
			}
		}
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !found {
		t.Fatal("no AuditEvent of the search linked to Patient/p1 within 15s")
	}
	if strings.Contains(k.logs(), "Zanzibarova") {
		t.Error("the search value (patient data) is in the log")
	}
	resp, err := hc.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "kiln_audit_events_written_total") || !strings.Contains(string(metrics), "kiln_audit_events_dropped_total 0") {
		t.Errorf("/metrics lacks the audit counters")
	}
}

func newJTI() string {
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
