package rest_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// newServer is the API over a fresh SQLite file on real HTTP.
func newServer(t *testing.T) (*apitest.Client, *sqlite.Store) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(rest.New(rest.Config{}, db))
	t.Cleanup(srv.Close)
	return &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}, db
}

// issueCodes lists the issue codes of an OperationOutcome body.
func issueCodes(t *testing.T, r apitest.Response) []string {
	t.Helper()
	oo := r.JSON(t)
	if oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", r.Body)
	}
	var out []string
	for _, is := range oo["issue"].([]any) {
		out = append(out, is.(map[string]any)["code"].(string))
	}
	return out
}

// TestOperationRoutes: operations.html — an operation is reached only on
// the levels and types its definition names; "$name" never reaches an
// interaction as an id (which would answer "invalid id").
func TestOperationRoutes(t *testing.T) {
	c, _ := newServer(t)
	c.Do("PUT", "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
	for _, tc := range []struct {
		method, path string
		body         string
		status       int
		code         string // first issue code of the OperationOutcome
	}{
		{"POST", "/Patient/$validate", `{"resourceType":"Patient"}`, 200, "informational"},
		{"POST", "/Patient/p1/$validate", `{"resourceType":"Patient","id":"p1"}`, 200, "informational"},
		{"GET", "/Patient/$validate", "", 405, "not-supported"},
		{"GET", "/Patient/p1/$validate", "", 405, "not-supported"},
		{"POST", "/$validate", `{"resourceType":"Patient"}`, 404, "not-supported"},
		{"GET", "/Patient/p1/$everything", "", 200, ""},
		{"POST", "/Patient/p1/$everything", "", 405, "not-supported"},
		{"GET", "/Patient/$everything", "", 404, "not-supported"},
		{"GET", "/Observation/o1/$everything", "", 404, "not-supported"},
		{"GET", "/Patient/p1/$nosuch", "", 404, "not-supported"},
		{"GET", "/Patient/$nosuch", "", 404, "not-supported"},
		{"GET", "/$nosuch", "", 404, "not-supported"},
		{"GET", "/NoSuchType/$validate", "", 404, "not-supported"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := c.Do(tc.method, tc.path, body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.code == "" {
				if got := r.JSON(t)["resourceType"]; got != "Bundle" {
					t.Fatalf("resourceType %v, want Bundle", got)
				}
				return
			}
			if codes := issueCodes(t, r); codes[0] != tc.code {
				t.Fatalf("issue codes %v, want %s first: %s", codes, tc.code, r.Body)
			}
		})
	}
}

// TestCapabilitiesOperations: capabilitystatement.html — every type lists
// $validate, Patient also $everything, each with the canonical URL of the
// official OperationDefinition; nothing is claimed at the system level.
func TestCapabilitiesOperations(t *testing.T) {
	c, _ := newServer(t)
	cs := c.Do("GET", "/metadata", nil).JSON(t)
	rest0 := cs["rest"].([]any)[0].(map[string]any)
	if ops, ok := rest0["operation"]; ok {
		t.Errorf("rest.operation = %v, want none (no system-level operation)", ops)
	}
	const (
		validate   = "validate http://hl7.org/fhir/OperationDefinition/Resource-validate"
		everything = "everything http://hl7.org/fhir/OperationDefinition/Patient-everything"
	)
	seen := 0
	for _, res := range rest0["resource"].([]any) {
		res := res.(map[string]any)
		var got []string
		ops, _ := res["operation"].([]any)
		for _, op := range ops {
			op := op.(map[string]any)
			got = append(got, op["name"].(string)+" "+op["definition"].(string))
		}
		want := []string{validate}
		if res["type"] == "Patient" {
			want = []string{validate, everything}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: operations %v, want %v", res["type"], got, want)
		}
		seen++
	}
	if seen < 140 {
		t.Errorf("only %d resource entries", seen)
	}
}

// TestCapabilitiesExternal: operations served by another handler in front
// of the API (Config.ExternalOperations: cmd/kiln's bulk export) are
// listed where they are invoked, after the table's own, and Instantiates
// joins CapabilityStatement.instantiates after US Core's server statement,
// which is always there (A-CS-06); without them neither appears
// (capabilitystatement.html; Bulk Data IG export.html#server-capability-documentation).
func TestCapabilitiesExternal(t *testing.T) {
	const bulkCS = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
	const usCore = "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server|3.1.0"
	ext := []rest.ExternalOperation{
		{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export", System: true},
		{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export", Types: []string{"Patient"}},
		{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export", Types: []string{"Group"}},
	}
	for _, tc := range []struct {
		name         string
		cfg          rest.Config
		system       []string
		patient      []string
		group        []string
		instantiates []any
	}{
		{name: "none", cfg: rest.Config{},
			patient: []string{"validate", "everything"}, group: []string{"validate"}, instantiates: []any{usCore}},
		{name: "bulk", cfg: rest.Config{ExternalOperations: ext, Instantiates: []string{bulkCS}},
			system:       []string{"export http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
			patient:      []string{"validate", "everything", "export http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
			group:        []string{"validate", "export http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"},
			instantiates: []any{usCore, bulkCS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			srv := httptest.NewServer(rest.New(tc.cfg, db))
			t.Cleanup(srv.Close)
			c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
			cs := c.Do("GET", "/metadata", nil).JSON(t)
			// names lists "name" for the table's operations and "name
			// definition" for the external ones, to check both.
			names := func(v any) []string {
				var out []string
				ops, _ := v.([]any)
				for _, op := range ops {
					op := op.(map[string]any)
					n := op["name"].(string)
					if d := op["definition"].(string); !strings.HasPrefix(d, "http://hl7.org/fhir/OperationDefinition/") {
						n += " " + d
					}
					out = append(out, n)
				}
				return out
			}
			rest0 := cs["rest"].([]any)[0].(map[string]any)
			if got := names(rest0["operation"]); !slices.Equal(got, tc.system) {
				t.Errorf("rest.operation %v, want %v", got, tc.system)
			}
			checked := 0
			for _, res := range rest0["resource"].([]any) {
				res := res.(map[string]any)
				want := []string{"validate"}
				switch res["type"] {
				case "Patient":
					want = tc.patient
				case "Group":
					want = tc.group
				}
				if got := names(res["operation"]); !slices.Equal(got, want) {
					t.Errorf("%s: operations %v, want %v", res["type"], got, want)
				}
				checked++
			}
			if checked < 140 {
				t.Errorf("only %d resource entries", checked)
			}
			got, _ := cs["instantiates"].([]any)
			if !slices.Equal(got, tc.instantiates) {
				t.Errorf("instantiates %v, want %v", got, tc.instantiates)
			}
		})
	}
}
