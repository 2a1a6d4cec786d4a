package rest_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// fixedTokens names one Access per bearer token.
type fixedTokens map[string]*rest.Access

func (f fixedTokens) Authorize(r *http.Request) (*rest.Access, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, rest.ErrNoToken
	}
	if acc := f[strings.TrimPrefix(h, "Bearer ")]; acc != nil {
		return acc, nil
	}
	return nil, rest.ErrInvalidToken
}

// TestGranularCategories: the HTI-1 category scopes g10 grants for
// Condition and Observation, with each of their code systems (checklist
// C-SC-07, C-SC-06): a search returns exactly the granted categories, a
// read of another category is refused, and a type with no scope at all
// is 403 with error="insufficient_scope" (C-RS-04, RFC 6750 §3.1).
func TestGranularCategories(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const (
		condCat  = "http://terminology.hl7.org/CodeSystem/condition-category"
		usCond   = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
		obsCat   = "http://terminology.hl7.org/CodeSystem/observation-category"
		usCoreOb = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
	)
	scope := func(typ string, cats ...string) rest.Rule {
		r := rest.Rule{Context: "patient", Type: typ, Ops: "rs", Query: url.Values{}}
		for _, c := range cats {
			r.Query.Add("category", c)
		}
		return r
	}
	toks := fixedTokens{
		"admin": {ClientID: "loader", Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}},
		"g10": {ClientID: "app", Patient: "p1", FHIRUser: "Patient/p1", Rules: []rest.Rule{
			{Context: "patient", Type: "Patient", Ops: "rs"},
			scope("Condition", condCat+"|problem-list-item"),
			scope("Condition", usCond+"|health-concern"),
			scope("Observation", obsCat+"|social-history"),
			scope("Observation", usCoreOb+"|sdoh"),
		}},
	}
	srv := httptest.NewServer(rest.New(rest.Config{Auth: toks}, db))
	defer srv.Close()
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	as := func(tok, method, path string, body []byte) apitest.Response {
		return c.Do(method, path, body, "Authorization", "Bearer "+tok)
	}
	put := func(typ, id, system, code string) {
		body := `{"resourceType":"` + typ + `","id":"` + id + `","subject":{"reference":"Patient/p1"},` +
			`"category":[{"coding":[{"system":"` + system + `","code":"` + code + `"}]}],"code":{"text":"x"}`
		if typ == "Observation" {
			body += `,"status":"final"`
		}
		if r := as("admin", "PUT", "/"+typ+"/"+id, []byte(body+"}")); r.Status/100 != 2 {
			t.Fatalf("PUT %s/%s: %d %s", typ, id, r.Status, r.Body)
		}
	}
	if r := as("admin", "PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`)); r.Status/100 != 2 {
		t.Fatalf("PUT Patient: %d %s", r.Status, r.Body)
	}
	put("Condition", "problem", condCat, "problem-list-item")
	put("Condition", "diagnosis", condCat, "encounter-diagnosis")
	put("Condition", "concern", usCond, "health-concern")
	put("Condition", "concern-wrong-system", condCat, "health-concern")
	put("Observation", "social", obsCat, "social-history")
	put("Observation", "sdoh", usCoreOb, "sdoh")
	put("Observation", "lab", obsCat, "laboratory")
	put("Observation", "vital", obsCat, "vital-signs")

	for _, tc := range []struct {
		path    string
		status  int
		entries []string // nil: not a Bundle check
	}{
		{"/Condition", 200, []string{"Condition/concern", "Condition/problem"}},
		{"/Observation", 200, []string{"Observation/sdoh", "Observation/social"}},
		{"/Condition?category=problem-list-item", 200, []string{"Condition/problem"}},
		{"/Condition?category=encounter-diagnosis", 200, []string{}},
		{"/Condition/problem", 200, nil},
		{"/Condition/concern", 200, nil},
		{"/Condition/diagnosis", 404, nil},
		{"/Condition/concern-wrong-system", 404, nil},
		{"/Observation/sdoh", 200, nil},
		{"/Observation/lab", 404, nil},
		{"/Observation/vital", 404, nil},
		{"/Encounter", 403, nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := as("g10", "GET", tc.path, nil)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tc.status, r.Body)
			}
			if r.Status == 403 && !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Errorf("403 WWW-Authenticate %q, want error=\"insufficient_scope\"", r.Header.Get("WWW-Authenticate"))
			}
			if tc.entries != nil {
				got := bundleIDs(t, r)
				slices.Sort(got)
				if !slices.Equal(got, tc.entries) {
					t.Errorf("entries %v, want %v", got, tc.entries)
				}
			}
		})
	}
}
