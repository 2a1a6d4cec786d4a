package smart

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

const (
	obsCat  = "http://terminology.hl7.org/CodeSystem/observation-category|"
	condCat = "http://terminology.hl7.org/CodeSystem/condition-category|"
	usCore  = "http://hl7.org/fhir/us/core/CodeSystem/"
)

// TestConsentCategoryScopes: for a resource-level Condition or
// Observation scope the consent page offers the HTI-1 category scopes in
// its place, unticked, and the patient may grant those instead (C-SC-07;
// Inferno's "Granular Scope Selection": granular Condition and
// Observation scopes, no resource-level ones for them, a v2 Patient
// scope). The grant, the token response's scope and the access the API
// sees say exactly what was approved.
func TestConsentCategoryScopes(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	checkedRE := regexp.MustCompile(`name="scope" value="([^"]*)" checked>`)

	lab, vitals, sdoh := "patient/Observation.rs?category="+obsCat+"laboratory", "patient/Observation.rs?category="+obsCat+"vital-signs", "patient/Observation.rs?category="+usCore+"us-core-category|sdoh"
	problems, concerns := "patient/Condition.rs?category="+condCat+"problem-list-item", "patient/Condition.rs?category="+usCore+"condition-category|health-concern"
	for _, tc := range []struct {
		name      string
		requested []string
		offers    int      // category scopes offered
		tick      []string // the boxes ticked
		want      []string // the granted scope
	}{
		{
			name:      "categories instead of Condition and Observation",
			requested: []string{"launch/patient", "patient/Patient.rs", "patient/Condition.rs", "patient/Observation.rs"},
			offers:    8,
			tick:      []string{"launch/patient", "patient/Patient.rs", problems, concerns, lab, vitals, sdoh},
			want:      []string{"launch/patient", "patient/Patient.rs", problems, concerns, lab, vitals, sdoh},
		},
		{
			name:      "resource-level kept: its categories add nothing",
			requested: []string{"launch/patient", "patient/Observation.rs"},
			offers:    5,
			tick:      []string{"launch/patient", "patient/Observation.rs", lab},
			want:      []string{"launch/patient", "patient/Observation.rs"},
		},
		{
			name:      "v1 read: offered as v2 rs",
			requested: []string{"launch/patient", "patient/Observation.read"},
			offers:    5,
			tick:      []string{"launch/patient", lab},
			want:      []string{"launch/patient", lab},
		},
		{
			name:      "read of cruds: r and s only",
			requested: []string{"launch/patient", "patient/Condition.cruds"},
			offers:    3,
			tick:      []string{"launch/patient", problems},
			want:      []string{"launch/patient", problems},
		},
		{
			// Scopes the page did not offer are ignored: another category,
			// more letters, another type's category, another context.
			name:      "forged boxes ignored",
			requested: []string{"launch/patient", "patient/Observation.rs"},
			offers:    5,
			tick: []string{"launch/patient", "patient/Observation.rs?category=" + obsCat + "imaging",
				"patient/Observation.cruds?category=" + obsCat + "laboratory", "patient/Condition.rs?category=" + condCat + "problem-list-item",
				"user/Observation.rs?category=" + obsCat + "laboratory"},
			want: []string{"launch/patient"},
		},
		{
			name:      "no categories for other types, writes or granular scopes",
			requested: []string{"launch/patient", "patient/MedicationRequest.rs", "patient/Observation.cu", lab},
			offers:    0,
			tick:      []string{"launch/patient", "patient/MedicationRequest.rs", lab},
			want:      []string{"launch/patient", "patient/MedicationRequest.rs", lab},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.oauth(app, tc.requested...)
			b := e.browser()
			consent := b.login(e.authURL(cfg, "state-categories", "unused-verifier-unused-verifier-unused-verifier"), "alice", "alice-password")
			var ticked []string
			for _, m := range checkedRE.FindAllStringSubmatch(consent.body, -1) {
				ticked = append(ticked, htmlUnescape(m[1]))
			}
			if !slices.Equal(ticked, tc.requested) {
				t.Errorf("ticked by default %q, want the requested %q", ticked, tc.requested)
			}
			if got := len(offered(consent.body)) - len(ticked); got != tc.offers {
				t.Errorf("%d category scopes offered, want %d:\n%q", got, tc.offers, offered(consent.body))
			}
			if tc.offers > 0 && !strings.Contains(consent.body, "(only category laboratory)") && !strings.Contains(consent.body, "(only category problem-list-item)") {
				t.Error("category scopes are not said in words")
			}

			tok := e.standaloneTicking(cfg, "alice", tc.tick)
			if got := tok.Extra("scope"); got != strings.Join(tc.want, " ") {
				t.Errorf("granted scope\n%q\nwant\n%q", got, strings.Join(tc.want, " "))
			}
			g, status := e.whoami(tok.AccessToken)
			if status != 200 {
				t.Fatalf("whoami: %d", status)
			}
			var raw []string
			for _, sc := range g.Scopes {
				raw = append(raw, sc.Raw)
			}
			var wantRaw []string
			for _, sc := range tc.want {
				if _, ok := ParseScope(sc); ok {
					wantRaw = append(wantRaw, sc)
				}
			}
			if !slices.Equal(raw, wantRaw) {
				t.Errorf("the API sees scopes %q, want %q", raw, wantRaw)
			}
		})
	}
}

// standaloneTicking runs a standalone launch for user whose consent form
// is posted with exactly the scope boxes ticked, offered or not.
func (e *env) standaloneTicking(cfg *oauth2.Config, user string, ticked []string) *oauth2.Token {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	b := e.browser()
	consent := b.login(e.authURL(cfg, "state-12345678", v), user, user+"-password")
	if consent.status != http.StatusOK {
		e.t.Fatalf("want the consent page, got %d", consent.status)
	}
	form := hidden(consent.body)
	form["scope"] = ticked
	form.Set("approve", "approve")
	p := b.post(e.base+"/auth/consent", form)
	if p.loc == nil || p.loc.Query().Get("code") == "" {
		e.t.Fatalf("consent: want a redirect with a code, got %d %v", p.status, p.loc)
	}
	tok, err := cfg.Exchange(e.ctx(), p.loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}
