package rest_test

import (
	"strings"
	"testing"
)

// issueList renders an OperationOutcome's issues as "severity code
// expression…" lines, to compare whole outcomes.
func issueList(t *testing.T, body map[string]any) []string {
	t.Helper()
	var out []string
	for _, is := range body["issue"].([]any) {
		is := is.(map[string]any)
		line := is["severity"].(string) + " " + is["code"].(string)
		if ex, ok := is["expression"].([]any); ok {
			for _, e := range ex {
				line += " " + e.(string)
			}
		}
		out = append(out, line)
	}
	return out
}

// TestValidate: operation-resource-validate.html at the type and instance
// level, with the resource as the body or in Parameters, and the three
// modes. Findings about the resource are a 200 OperationOutcome; a
// request the operation cannot work on is a 4xx.
func TestValidate(t *testing.T) {
	c, _ := newServer(t)
	for _, p := range []string{
		`{"resourceType":"Patient","id":"live","gender":"female"}`,
		`{"resourceType":"Patient","id":"dead"}`,
	} {
		if r := c.Do("PUT", "/Patient/"+strings.Split(p, `"`)[7], []byte(p)); r.Status != 201 {
			t.Fatalf("setup: %d %s", r.Status, r.Body)
		}
	}
	if r := c.Do("DELETE", "/Patient/dead", nil); r.Status != 204 {
		t.Fatalf("setup delete: %d", r.Status)
	}
	params := func(parts ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(parts, ",") + `]}`
	}
	res := func(r string) string { return `{"name":"resource","resource":` + r + `}` }
	mode := func(m string) string { return `{"name":"mode","valueCode":"` + m + `"}` }
	const (
		valid    = `{"resourceType":"Patient","birthDate":"1974-12-25"}`
		badDate  = `{"resourceType":"Patient","birthDate":"1974-13-25"}`
		badTwice = `{"resourceType":"Patient","birthDate":"1974-13-25","gender":"mal"}`
		ok       = "information informational"
	)
	for _, tc := range []struct {
		name, path, body string
		status           int
		issues           []string // whole outcome, in order; nil: not checked (4xx)
	}{
		{"type valid", "/Patient/$validate", valid, 200, []string{ok}},
		{"type invalid date", "/Patient/$validate", badDate, 200, []string{"error value Patient.birthDate"}},
		{"every issue reported", "/Patient/$validate", badTwice, 200, []string{"error value Patient.birthDate", "error value Patient.gender"}},
		{"wrong type", "/Patient/$validate", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, 200, []string{"error invalid resourceType"}},
		{"unknown element", "/Patient/$validate", `{"resourceType":"Patient","colour":"blue"}`, 200, []string{"error structure Patient.colour"}},
		{"parameters create", "/Patient/$validate", params(res(valid), mode("create")), 200, []string{ok}},
		{"parameters invalid", "/Patient/$validate", params(mode("create"), res(badDate)), 200, []string{"error value Patient.birthDate"}},
		{"update id matches", "/Patient/live/$validate", params(res(`{"resourceType":"Patient","id":"live"}`), mode("update")), 200, []string{ok}},
		{"update id differs", "/Patient/live/$validate", params(res(`{"resourceType":"Patient","id":"other"}`), mode("update")), 200, []string{"error invalid Patient.id"}},
		{"update id missing", "/Patient/live/$validate", params(res(valid), mode("update")), 200, []string{"error required Patient.id"}},
		{"mode in the URL", "/Patient/live/$validate?mode=update", `{"resourceType":"Patient","id":"other"}`, 200, []string{"error invalid Patient.id"}},
		{"instance without mode, id differs", "/Patient/live/$validate", `{"resourceType":"Patient","id":"other"}`, 200, []string{"error invalid Patient.id"}},
		{"delete existing", "/Patient/live/$validate", params(mode("delete")), 200, []string{ok}},
		{"delete missing", "/Patient/nobody/$validate", params(mode("delete")), 404, nil},
		{"update missing", "/Patient/nobody/$validate", params(res(`{"resourceType":"Patient","id":"nobody"}`), mode("update")), 404, nil},
		{"update deleted", "/Patient/dead/$validate", params(res(`{"resourceType":"Patient","id":"dead"}`), mode("update")), 200, []string{ok}},
		{"delete deleted", "/Patient/dead/$validate", params(mode("delete")), 200, []string{"error deleted"}},
		{"other profile not checked", "/Patient/$validate", params(res(valid), `{"name":"profile","valueUri":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}`), 200,
			[]string{ok, "error not-supported"}},
		{"other profile, invalid resource", "/Patient/$validate?profile=http://example.org/StructureDefinition/p", badDate, 200,
			[]string{"error value Patient.birthDate", "error not-supported"}},
		{"base profile", "/Patient/$validate?profile=http://hl7.org/fhir/StructureDefinition/Patient", valid, 200, []string{ok}},
		{"delete at type level", "/Patient/$validate", params(mode("delete")), 400, nil},
		{"update at type level", "/Patient/$validate", params(res(`{"resourceType":"Patient","id":"live"}`), mode("update")), 400, nil},
		{"unknown mode", "/Patient/$validate", params(res(valid), mode("profile")), 400, nil},
		{"unknown parameter", "/Patient/$validate", params(res(valid), `{"name":"colour","valueString":"x"}`), 400, nil},
		{"repeated parameter", "/Patient/$validate", params(res(valid), res(valid)), 400, nil},
		{"no resource", "/Patient/$validate", params(mode("create")), 400, nil},
		{"empty body", "/Patient/$validate", "", 400, nil},
		{"not JSON", "/Patient/$validate", "<Patient/>", 400, nil},
		{"array", "/Patient/$validate", "[]", 400, nil},
		{"relative profile", "/Patient/$validate?profile=us-core", valid, 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do("POST", tc.path, []byte(tc.body))
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			oo := r.JSON(t)
			if oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("not an OperationOutcome: %s", r.Body)
			}
			if tc.issues == nil {
				return
			}
			if got := issueList(t, oo); strings.Join(got, "\n") != strings.Join(tc.issues, "\n") {
				t.Fatalf("issues\n%s\nwant\n%s\nbody %s", strings.Join(got, "\n"), strings.Join(tc.issues, "\n"), r.Body)
			}
		})
	}
	// $validate never writes: the store still holds exactly the two
	// patients and their three versions.
	hist := c.Do("GET", "/Patient/_history", nil).JSON(t)
	if total := hist["total"]; total == nil || total.(interface{ String() string }).String() != "3" {
		t.Errorf("Patient history total %v after $validate, want 3", total)
	}
	if r := c.Do("GET", "/Patient/live", nil); !strings.Contains(string(r.Body), `"versionId":"1"`) {
		t.Errorf("Patient/live changed: %s", r.Body)
	}
}
