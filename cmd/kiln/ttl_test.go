package main

import (
	"context"
	"crypto/rand"
	"flag"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestTokenLifetimesOnBinary: --access-token-ttl, --refresh-token-ttl and
// --auth-code-ttl bound what the binary issues. Until then a token works;
// after, an access token is 401 invalid_token on the FHIR API (RFC 6750
// §3.1, C-RS-03) and {"active": false} at introspection (RFC 7662 §2.2),
// a refresh token and a code are invalid_grant (RFC 6749 §5.2).
func TestTokenLifetimesOnBinary(t *testing.T) {
	// Lifetimes short enough to wait out, long enough that the checks of
	// a live token finish within them on a loaded machine.
	const accessTTL, refreshTTL, codeTTL = 5 * time.Second, 10 * time.Second, 3 * time.Second
	k := startSMARTKiln(t, "--access-token-ttl", accessTTL.String(), "--refresh-token-ttl", refreshTTL.String(), "--auth-code-ttl", codeTTL.String())
	a := k.patients[0]
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})

	// A confidential app: introspection needs client credentials that
	// outlive the tokens introspected.
	app := k.admin(t, "", "client", "add", "--data", k.data, "--name", "TTL E2E", "--redirect-uri", appRedirect)
	clientID, _ := app["client_id"].(string)
	secret, _ := app["client_secret"].(string)
	if clientID == "" || secret == "" {
		t.Fatalf("client add printed %v", app)
	}
	const password = "ttl test password, long enough"
	k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "ttl-a", "--password-stdin", "--fhir-user", "Patient/"+a)
	cfg := &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: appRedirect,
		Scopes:   []string{"launch/patient", "offline_access", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: k.base + "/auth/authorize", TokenURL: k.base + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader},
	}

	introspect := func(token string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, k.base+"/auth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("introspect: %d %s", resp.StatusCode, body)
		}
		return jsonObject(t, body)
	}
	refresh := func(rt string) (*oauth2.Token, error) {
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}

	tok := k.launchToken(t, ctx, cfg, "ttl-a", password)
	if tok.ExpiresIn <= 0 || tok.ExpiresIn > int64(accessTTL/time.Second)+1 {
		t.Errorf("expires_in %d, want at most %v", tok.ExpiresIn, accessTTL)
	}
	fresh, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh within --refresh-token-ttl: %v", err)
	}
	issued := time.Now() // both tokens of fresh were issued before
	// Live: the checks below can fail.
	if status, _, body := fhirGet(t, k.base, "/Patient/"+a, fresh.AccessToken); status != http.StatusOK {
		t.Fatalf("fresh access token: %d %.300s", status, body)
	}
	if m := introspect(fresh.AccessToken); m["active"] != true {
		t.Fatalf("fresh access token introspected as %v", m)
	}

	// A code that is never exchanged in time.
	verifier := oauth2.GenerateVerifier()
	loc := newUserAgent(t).authorizeCode(cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", k.base)), "ttl-a", password)
	code := loc.Query().Get("code")
	codeIssued := time.Now()

	// fosite rounds expiry to the second: wait a second more.
	time.Sleep(max(time.Until(issued.Add(accessTTL)), time.Until(codeIssued.Add(codeTTL))) + 1500*time.Millisecond)
	for name, at := range map[string]string{"first": tok.AccessToken, "refreshed": fresh.AccessToken} {
		status, h, body := fhirGet(t, k.base, "/Patient/"+a, at)
		if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("expired %s access token: %d, WWW-Authenticate %q, want 401 Bearer error=\"invalid_token\"", name, status, h.Get("WWW-Authenticate"))
		}
		if !strings.Contains(string(body), `"OperationOutcome"`) {
			t.Errorf("expired %s access token: body is not an OperationOutcome: %.300s", name, body)
		}
		if m := introspect(at); len(m) != 1 || m["active"] != false {
			t.Errorf("expired %s access token introspected as %v, want exactly {\"active\": false}", name, m)
		}
	}
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isInvalidGrant(err) {
		t.Errorf("code exchanged after --auth-code-ttl: %v, want invalid_grant", err)
	}

	time.Sleep(time.Until(issued.Add(refreshTTL + 1500*time.Millisecond)))
	if _, err := refresh(fresh.RefreshToken); !isInvalidGrant(err) {
		t.Errorf("refresh after --refresh-token-ttl: %v, want invalid_grant", err)
	}
}

func isInvalidGrant(err error) bool {
	re, ok := err.(*oauth2.RetrieveError)
	return ok && re.ErrorCode == "invalid_grant"
}

// TestTokenLifetimeFlags: the lifetimes come from flags, else from
// KILN_* variables, else the defaults; a malformed or sub-second one
// stops the server.
func TestTokenLifetimeFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    [3]time.Duration // access, refresh, code
		wantErr bool
	}{
		{name: "defaults", want: [3]time.Duration{time.Hour, 90 * 24 * time.Hour, time.Minute}},
		{name: "flags", args: []string{"--access-token-ttl", "5m", "--refresh-token-ttl", "24h", "--auth-code-ttl", "30s"},
			want: [3]time.Duration{5 * time.Minute, 24 * time.Hour, 30 * time.Second}},
		{name: "env", env: map[string]string{"KILN_ACCESS_TOKEN_TTL": "10m", "KILN_REFRESH_TOKEN_TTL": "48h", "KILN_AUTH_CODE_TTL": "20s"},
			want: [3]time.Duration{10 * time.Minute, 48 * time.Hour, 20 * time.Second}},
		{name: "flag wins over env", env: map[string]string{"KILN_ACCESS_TOKEN_TTL": "10m"}, args: []string{"--access-token-ttl", "2m"},
			want: [3]time.Duration{2 * time.Minute, 90 * 24 * time.Hour, time.Minute}},
		{name: "malformed env", env: map[string]string{"KILN_REFRESH_TOKEN_TTL": "forever"}, wantErr: true},
		{name: "zero", args: []string{"--auth-code-ttl", "0s"}, wantErr: true},
		{name: "sub-second", env: map[string]string{"KILN_ACCESS_TOKEN_TTL": "500ms"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var cfg serveConfig
			fs := flag.NewFlagSet("kiln serve", flag.ContinueOnError)
			cfg.flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := cfg.numbersFromEnv(fs)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got := [3]time.Duration{cfg.accessTTL, cfg.refreshTTL, cfg.codeTTL}; !tc.wantErr && got != tc.want {
				t.Errorf("lifetimes %v, want %v", got, tc.want)
			}
		})
	}
}
