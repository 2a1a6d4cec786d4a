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

// TestDirectoryForPatients: Slot and Schedule are readable by a patient
// as non-PHI directory data and never writable by one, even with
// patient/*.cruds (issue 5, "Enforcement"; README "Access control").
func TestDirectoryForPatients(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	toks := fixedTokens{
		"admin":   {ClientID: "loader", Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}},
		"patient": {ClientID: "portal", Patient: "p1", FHIRUser: "Patient/p1", Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}},
	}
	srv := httptest.NewServer(rest.New(rest.Config{Auth: toks}, db))
	defer srv.Close()
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	as := func(tok, method, path string, body []byte) apitest.Response {
		return c.Do(method, path, body, "Authorization", "Bearer "+tok)
	}
	schedule := []byte(`{"resourceType":"Schedule","id":"s1","actor":[{"reference":"Practitioner/d1"}]}`)
	slot := []byte(`{"resourceType":"Slot","id":"sl1","schedule":{"reference":"Schedule/s1"},"status":"free",` +
		`"start":"2027-01-04T09:00:00Z","end":"2027-01-04T09:30:00Z"}`)
	for _, r := range []apitest.Response{
		as("admin", "PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`)),
		as("admin", "PUT", "/Schedule/s1", schedule),
		as("admin", "PUT", "/Slot/sl1", slot),
	} {
		if r.Status/100 != 2 {
			t.Fatalf("load: %d %s", r.Status, r.Body)
		}
	}
	busy := []byte(strings.Replace(string(slot), `"free"`, `"busy"`, 1))
	for _, tc := range []struct {
		method, path string
		body         []byte
		want         int
	}{
		{"GET", "/Slot/sl1", nil, 200},
		{"GET", "/Schedule/s1", nil, 200},
		{"GET", "/Slot?schedule=Schedule/s1&status=free", nil, 200},
		{"PUT", "/Slot/sl1", busy, 403},
		{"PUT", "/Schedule/s1", schedule, 403},
		{"POST", "/Slot", busy, 403},
		{"DELETE", "/Slot/sl1", nil, 403},
		{"DELETE", "/Schedule/s1", nil, 403},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := as("patient", tc.method, tc.path, tc.body)
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tc.want, r.Body)
			}
			if tc.path == "/Slot?schedule=Schedule/s1&status=free" {
				if got := bundleIDs(t, r); !slices.Equal(got, []string{"Slot/sl1"}) {
					t.Errorf("entries %v, want the free slot", got)
				}
			}
		})
	}
	// The slot is as loaded: free, version 1.
	if r := as("admin", "GET", "/Slot/sl1", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"free"`) || !strings.Contains(string(r.Body), `"versionId":"1"`) {
		t.Errorf("slot changed: %d %s", r.Status, r.Body)
	}
}
