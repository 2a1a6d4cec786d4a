package smart

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestApplyClients(t *testing.T) {
	e := newEnv(t, nil)
	secret := strings.Repeat("s", 40)
	file := `[
	 {"client_id": "portal", "client_name": "Portal", "redirect_uris": ["https://portal.example/cb"], "public": true},
	 {"client_id": "chart", "client_name": "Chart", "redirect_uris": ["https://chart.example/cb"], "client_secret": "` + secret + `", "scope": ["openid", "user/*.rs"]},
	 {"client_id": "bulk", "client_name": "Bulk", "jwks_uri": "https://bulk.example/jwks.json"}
	]`
	for range 2 { // applying again converges
		regs, err := ApplyClients(t.Context(), e.st, []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range regs {
			got = append(got, r.ClientID+" "+r.AuthMethod+" "+r.Scope+" secret:"+r.ClientSecret)
		}
		want := []string{"portal none " + strings.Join(DefaultScopes, " ") + " secret:",
			"chart client_secret_basic openid user/*.rs secret:", "bulk private_key_jwt system/*.rs secret:"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("registered %q, want %q", got, want)
		}
	}
	recs, _ := e.st.ListRecords(t.Context(), kindClient)
	if len(recs) != 3 {
		t.Errorf("%d clients stored, want 3", len(recs))
	}
	// The declared secret authenticates (here at introspection, which
	// only confidential clients may use); another does not.
	if status, _, got := e.postForm("/auth/introspect", url.Values{"token": {"x"}}, "chart", secret); status != 200 || got["active"] != false {
		t.Errorf("declared secret: %d %v", status, got)
	}
	if status, _, _ := e.postForm("/auth/introspect", url.Values{"token": {"x"}}, "chart", secret+"x"); status != 401 {
		t.Errorf("wrong secret: %d", status)
	}

	for _, bad := range []string{
		`[{"client_name": "No id", "redirect_uris": ["https://x.example/cb"], "public": true}]`,
		`[{"client_id": "a", "client_name": "A", "redirect_uris": ["https://x.example/cb"], "public": true},
		  {"client_id": "a", "client_name": "A2", "redirect_uris": ["https://x.example/cb"], "public": true}]`,
		`[{"client_id": "short", "client_name": "S", "redirect_uris": ["https://x.example/cb"], "client_secret": "tooshort"}]`,
		`[{"client_id": "typo", "client_name": "T", "redirect_uri": ["https://x.example/cb"], "public": true}]`,
		`[{"client_id": "ok", "client_name": "OK", "redirect_uris": ["https://x.example/cb"], "public": true},
		  {"client_id": "rel", "client_name": "R", "redirect_uris": ["/cb"], "public": true}]`,
		`[{"client_id": "bad id!", "client_name": "B", "redirect_uris": ["https://x.example/cb"], "public": true}]`,
		`{"client_id": "obj"}`,
	} {
		if _, err := ApplyClients(t.Context(), e.st, []byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	// A rejected file stores nothing, not even its valid entries.
	if recs, _ := e.st.ListRecords(t.Context(), kindClient); len(recs) != 3 {
		t.Errorf("%d clients after rejected files, want 3", len(recs))
	}
}
