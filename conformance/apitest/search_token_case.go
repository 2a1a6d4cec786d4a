package apitest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// testSearchTokenCase: search.html#token, "when in doubt, servers SHOULD
// match case-insensitively" (B-TOK-03). A code bound to an enumerated
// ValueSet (Patient.gender, Observation.status) matches whatever the
// case of the value; identifiers stay exact (Inferno compares them so).
func testSearchTokenCase(t *testing.T, c *Client) {
	fam := uniqueName("Tokcase")
	ident := uniqueName("AbCid")
	id, _ := create(t, c, "Patient", fmt.Sprintf(
		`{"resourceType":"Patient","name":[{"family":%q}],"gender":"female","identifier":[{"system":"urn:kiln:test","value":%q}]}`, fam, ident))
	p := "Patient/" + id
	obs, _ := create(t, c, "Observation", fmt.Sprintf(
		`{"resourceType":"Observation","status":"entered-in-error","code":{"text":%q},"subject":{"reference":%q}}`, fam, p))
	o := "Observation/" + obs
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"/Patient?family=" + fam + "&gender=female", []string{p}},
		{"/Patient?family=" + fam + "&gender=FEMALE", []string{p}},
		{"/Patient?family=" + fam + "&gender=Female,male", []string{p}},
		{"/Patient?family=" + fam + "&gender=MALE", nil},
		{"/Patient?family=" + fam + "&gender:not=FEMALE", nil},
		{"/Patient?family=" + fam + "&gender:not=MALE", []string{p}},
		{"/Observation?subject=" + p + "&status=Entered-In-Error", []string{o}},
		{"/Observation?subject:Patient.gender=FEMALE&code:text=" + fam, []string{o}},
		{"/Patient?identifier=" + url.QueryEscape(ident), []string{p}},
		{"/Patient?identifier=" + url.QueryEscape(strings.ToLower(ident)), nil},
		{"/Patient?identifier=urn:kiln:test|" + url.QueryEscape(strings.ToUpper(ident)), nil},
	} {
		expectMatches(t, c, tc.query, tc.want...)
	}
	// The self link says what was asked, once.
	r := c.Do("GET", "/Patient?family="+fam+"&gender=FEMALE", nil)
	expectStatus(t, r, 200, "gender=FEMALE")
	b, _ := readSearchPage(t, r, -1)
	if self := b.link("self"); !strings.Contains(self, "gender=FEMALE") || strings.Contains(strings.ToLower(self), "female,") {
		t.Errorf("self link %q, want gender=FEMALE as asked", self)
	}
}
