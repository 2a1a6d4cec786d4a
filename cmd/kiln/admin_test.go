package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestAdminCommands runs the admin commands in process against a real
// data directory and reads what they wrote back from the SQLite file.
func TestAdminCommands(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(data, "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o600)

	clientsFile := filepath.Join(data, "clients.json")
	os.WriteFile(clientsFile, []byte(`[{"client_id": "inferno", "client_name": "Inferno", "redirect_uris": ["https://inferno.example/cb"], "public": true}]`), 0o600)

	run := func(stdin string, args ...string) (map[string]any, error) {
		var out bytes.Buffer
		var err error
		switch args[0] {
		case "client":
			err = clientCmd(ctx, args[1:], &out)
		case "user":
			err = userCmd(ctx, args[1:], strings.NewReader(stdin), &out)
		case "launch":
			err = launchCmd(ctx, args[1:], &out)
		case "keys":
			err = keysCmd(ctx, args[1:], &out)
		}
		var m map[string]any
		if err == nil {
			if jerr := json.Unmarshal(out.Bytes(), &m); jerr != nil {
				t.Fatalf("%v: output is not JSON: %q", args, out.String())
			}
		}
		return m, err
	}
	ok := []struct {
		args  []string
		stdin string
		check func(map[string]any) bool
	}{
		{[]string{"client", "add", "--data", data, "--name", "Portal", "--redirect-uri", "https://portal.example/cb", "--public"}, "",
			func(m map[string]any) bool {
				return m["client_id"] != "" && m["client_secret"] == nil && m["token_endpoint_auth_method"] == "none"
			}},
		{[]string{"client", "add", "--data", data, "--name", "Chart", "--redirect-uri", "https://chart.example/cb", "--redirect-uri", "https://chart.example/cb2", "--scope", "openid fhirUser user/*.rs"}, "",
			func(m map[string]any) bool {
				return len(m["client_secret"].(string)) >= 32 && m["scope"] == "openid fhirUser user/*.rs" && len(m["redirect_uris"].([]any)) == 2
			}},
		{[]string{"client", "add", "--data", data, "--name", "Bulk", "--jwks", jwksFile, "--scope", "system/*.rs"}, "",
			func(m map[string]any) bool {
				return m["token_endpoint_auth_method"] == "private_key_jwt" && m["client_secret"] == nil
			}},
		{[]string{"client", "add", "--data", data, "--name", "Bulk URL", "--jwks-url", "https://bulk.example/jwks.json"}, "",
			func(m map[string]any) bool { return m["scope"] == "system/*.rs" }},
		{[]string{"user", "add", "--data", data, "--username", "alice", "--password-stdin", "--fhir-user", "Patient/123"}, "s3cret-pass\n",
			func(m map[string]any) bool {
				return m["username"] == "alice" && m["fhirUser"] == "Patient/123" && m["sub"] != ""
			}},
		{[]string{"user", "add", "--data", data, "--username", "dave", "--oidc-issuer", "https://idp.example", "--oidc-subject", "s-1", "--fhir-user", "Practitioner/9"}, "",
			func(m map[string]any) bool { return m["username"] == "dave" }},
		{[]string{"launch", "--data", data, "--patient", "123", "--encounter", "e1"}, "",
			func(m map[string]any) bool { return m["launch"] != "" }},
		{[]string{"client", "apply", "--data", data, "--file", clientsFile}, "",
			func(m map[string]any) bool { return len(m["clients"].([]any)) == 1 }},
		{[]string{"keys", "rotate", "--data", data}, "",
			func(m map[string]any) bool { return m["kid"] != "" }},
	}
	for _, tc := range ok {
		m, err := run(tc.stdin, tc.args...)
		if err != nil || !tc.check(m) {
			t.Errorf("%v: %v %v", tc.args, m, err)
		}
	}
	bad := [][]string{
		{"client", "add", "--data", data, "--name", "No redirect"},
		{"client", "add", "--data", data, "--name", "Frag", "--redirect-uri", "https://x.example/cb#f"},
		{"client", "add", "--data", data, "--name", "Both", "--redirect-uri", "https://x.example/cb", "--public", "--jwks-url", "https://x.example/j"},
		{"client", "add", "--data", data, "--redirect-uri", "https://x.example/cb"},
		{"client", "add", "--data", filepath.Join(data, "missing"), "--name", "X", "--redirect-uri", "https://x.example/cb"},
		{"user", "add", "--data", data, "--username", "bob", "--fhir-user", "Patient/1"},
		{"user", "add", "--data", data, "--username", "alice", "--password-stdin"},
		{"user", "add", "--data", data, "--username", "carol", "--password-stdin", "--fhir-user", "Observation/1"},
		{"user", "add", "--data", data, "--username", "erin", "--oidc-subject", "s-2"},
		{"launch", "--data", data},
		{"client", "list"},
	}
	for _, args := range bad {
		if _, err := run("another-password\n", args...); err == nil {
			t.Errorf("%v: succeeded", args)
		}
	}

	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for kind, want := range map[string]int{"smart.client": 5, "smart.user": 2, "smart.link": 1, "smart.launch": 1, "smart.key": 1} {
		recs, err := st.ListRecords(ctx, kind)
		if err != nil || len(recs) != want {
			t.Errorf("%s: %d records (%v), want %d", kind, len(recs), err, want)
		}
	}
	recs, _ := st.ListRecords(ctx, "smart.user")
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte("s3cret-pass")) {
			t.Error("the password is stored in clear")
		}
	}
}
