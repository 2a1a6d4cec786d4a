package apitest

import (
	"fmt"
	"slices"
	"testing"
)

// testSearchAmbiguousID: a bare id on a reference parameter with several
// target types is refused when it is ambiguous (search.html#reference,
// B-REF-02), read precisely: when resources with that id exist of two or
// more of the parameter's target types. A bare id that names one
// resource, or none, or resources of types the parameter cannot point to,
// is answered; so are the typed forms.
func testSearchAmbiguousID(t *testing.T, c *Client) {
	x, y := uniqueID("amb"), uniqueID("one")
	put := func(typ, id, body string, status int) {
		t.Helper()
		expectStatus(t, c.Do("PUT", "/"+typ+"/"+id, []byte(body)), status, "PUT "+typ+"/"+id)
	}
	// Observation.subject may point to Patient, Group, Device, Location.
	put("Patient", x, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, x), 201)
	put("Group", x, fmt.Sprintf(`{"resourceType":"Group","id":%q,"type":"person","actual":true}`, x), 201)
	put("Patient", y, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, y), 201)
	// Not a target of Observation.subject: no ambiguity.
	put("Encounter", y, fmt.Sprintf(`{"resourceType":"Encounter","id":%q,"status":"finished","class":{"code":"AMB"}}`, y), 201)
	obs := func(subject string) string {
		id, _ := create(t, c, "Observation", fmt.Sprintf(
			`{"resourceType":"Observation","status":"final","code":{"text":"ambiguity"},"subject":{"reference":%q}}`, subject))
		return "Observation/" + id
	}
	ox, oy := obs("Patient/"+x), obs("Patient/"+y)

	matches := func(query string) []string {
		t.Helper()
		r := c.Do("GET", query, nil)
		expectStatus(t, r, 200, query)
		_, entries := readSearchPage(t, r, -1)
		var out []string
		for _, e := range entries {
			if e.mode == "match" {
				out = append(out, e.key)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, query string
		want        []string // nil with status: refused
		status      int
	}{
		{"two target types hold the id", "/Observation?subject=" + x, nil, 400},
		{"one among several", "/Observation?subject=" + x + "," + y, nil, 400},
		{"at system level", "/?_type=Observation&subject=" + x, nil, 400},
		{"typed", "/Observation?subject=Patient/" + x, []string{ox}, 0},
		{":[type]", "/Observation?subject:Patient=" + x, []string{ox}, 0},
		{"single-target parameter", "/Observation?patient=" + x, []string{ox}, 0},
		{"one target type holds the id", "/Observation?subject=" + y, []string{oy}, 0},
		{"no resource has the id", "/Observation?subject=" + uniqueID("none"), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status != 0 {
				issues := expectOutcome(t, c.Do("GET", tc.query, nil), tc.status, tc.query)
				if len(issues) == 0 || issues[0]["code"] != "multiple-matches" {
					t.Errorf("%s: issues %v, want code multiple-matches", tc.query, issues)
				}
				return
			}
			if got := matches(tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
			}
		})
	}

	// Once the Group is deleted the id names one resource again.
	if r := c.Do("DELETE", "/Group/"+x, nil); r.Status >= 300 {
		t.Fatalf("DELETE Group: status %d", r.Status)
	}
	if got := matches("/Observation?subject=" + x); !slices.Equal(got, []string{ox}) {
		t.Errorf("after the Group's delete: %q, want %q", got, []string{ox})
	}
}
