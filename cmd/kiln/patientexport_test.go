package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kiln-fhir/kiln/conformance/apitest"
)

// TestPatientTokenExport: patient A's SMART token (patient/*.rs) tries
// every bulk export kick-off against the real binary (issue 5: "bulk
// export" in the A→B matrix; checklist C-SC-05). Each is refused, or
// runs and its files hold nothing of patient B.
func TestPatientTokenExport(t *testing.T) {
	k := startSMARTKiln(t)
	a, b := k.patients[0], k.patients[1]
	app := k.admin(t, "", "client", "add", "--data", k.data, "--name", "Export Probe", "--redirect-uri", appRedirect, "--public")
	const password = "patient a's export password"
	k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "patient-a", "--password-stdin", "--fhir-user", "Patient/"+a)
	cfg := &oauth2.Config{
		ClientID: app["client_id"].(string), RedirectURL: appRedirect,
		Scopes:   []string{"launch/patient", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: k.base + "/auth/authorize", TokenURL: k.base + "/auth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	loc := newUserAgent(t).authorizeCode(cfg.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", k.base)), "patient-a", password)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	c := &apitest.Client{T: t, Base: k.base, HTTP: &http.Client{Timeout: 60 * time.Second, Transport: bearer{tok.AccessToken, http.DefaultTransport}}}

	for _, path := range []string{
		"/$export",
		"/$export?_type=Patient,Observation",
		"/Patient/$export",
		"/Patient/$export?_type=Patient,Observation,Condition",
		"/Patient/" + b + "/$export",
		"/Group/any/$export",
	} {
		t.Run(path, func(t *testing.T) {
			r := c.Do("GET", path, nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
			switch r.Status {
			case http.StatusForbidden, http.StatusNotFound, http.StatusUnauthorized, http.StatusBadRequest:
				// A path naming B may be echoed back; nothing else of B may.
				if !strings.Contains(path, b) && bytes.Contains(r.Body, []byte(b)) {
					t.Errorf("refusal names B: %s", r.Body)
				}
				return
			case http.StatusAccepted:
			default:
				t.Fatalf("kick-off: %d %.300s", r.Status, r.Body)
			}
			status, err := url.Parse(r.Header.Get("Content-Location"))
			if err != nil {
				t.Fatal(err)
			}
			m := pollExport(t, c, status.Path)
			ofA := false // a confined export still holds A's own record
			for _, f := range m.Output {
				u, _ := url.Parse(f.URL)
				fr := c.Do("GET", u.Path, nil)
				if fr.Status != http.StatusOK {
					t.Fatalf("GET %s: %d", u.Path, fr.Status)
				}
				if bytes.Contains(fr.Body, []byte(b)) {
					t.Errorf("%s file holds patient B's id", f.Type)
				}
				ofA = ofA || bytes.Contains(fr.Body, []byte(a))
			}
			if !ofA {
				t.Errorf("the export ran but holds nothing of A: %d files", len(m.Output))
			}
			if raw, _ := json.Marshal(m); strings.Contains(string(raw), b) {
				t.Errorf("manifest names B: %s", raw)
			}
		})
	}
}
