package apitest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Search scenarios on data of their own: each writes resources that only
// it can match (a unique family name or code system), so they run on any
// server, whatever else it holds.

// matchIDs runs a GET search through every page and returns its matches.
func matchIDs(t testing.TB, c *Client, path string) []string {
	t.Helper()
	res, r := search(t, c, "GET", path, "", nil, countParam(path, ""))
	if res == nil {
		t.Fatalf("GET %s: status %d, want a searchset\n%s", path, r.Status, truncate(r.Body))
	}
	return res.matches
}

// expectMatches checks a search's matches as a set.
func expectMatches(t testing.TB, c *Client, path string, want ...string) {
	t.Helper()
	compareSets(t, "GET "+path, matchIDs(t, c, path), want)
}

// uniqueName is a name no other scenario or run uses, in letters only so
// that string folding leaves it alone.
func uniqueName(prefix string) string {
	id := uniqueID("")
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range id {
		if r >= '0' && r <= '9' {
			b.WriteRune('a' + (r - '0'))
		}
	}
	return b.String()
}

// testSearchStrings: search.html#string, with the checklist's own
// examples (B-STR-01..03).
func testSearchStrings(t *testing.T, c *Client) {
	fam := uniqueName("Strings")
	ids := map[string]string{}
	for _, given := range []string{"Évelyn", "Severine", "Eve", "eve"} {
		id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":[%q]}]}`, fam, given))
		ids[given] = "Patient/" + id
	}
	q := func(param, value string) string {
		return "/Patient?family=" + fam + "&" + param + "=" + url.QueryEscape(value)
	}
	expectMatches(t, c, q("given", "eve"), ids["Évelyn"], ids["Eve"], ids["eve"])
	expectMatches(t, c, q("given", "EVE"), ids["Évelyn"], ids["Eve"], ids["eve"])
	expectMatches(t, c, q("given", "ével"), ids["Évelyn"])
	expectMatches(t, c, q("given", "velyn"))
	expectMatches(t, c, q("given:contains", "eve"), ids["Évelyn"], ids["Severine"], ids["Eve"], ids["eve"])
	expectMatches(t, c, q("given:contains", "VERI"), ids["Severine"])
	expectMatches(t, c, q("given:exact", "Eve"), ids["Eve"])
	expectMatches(t, c, q("given:exact", "eve"), ids["eve"])
	expectMatches(t, c, q("given:exact", "Évelyn"), ids["Évelyn"])
	expectMatches(t, c, q("given:exact", "Evelyn"))
	expectMatches(t, c, "/Patient?family="+strings.ToUpper(fam), ids["Évelyn"], ids["Severine"], ids["Eve"], ids["eve"])
}

// testSearchTokens: escaping in values (B-GEN-05), comma OR against
// repeated AND (B-GEN-02) and the token forms on codes of a system that
// only this scenario uses.
func testSearchTokens(t *testing.T, c *Client) {
	sys := "urn:kiln:apitest:" + uniqueName("tok")
	obs := func(codes ...string) string {
		var cs []string
		for _, code := range codes {
			cs = append(cs, fmt.Sprintf(`{"system":%q,"code":%q}`, sys, code))
		}
		id, _ := create(t, c, "Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[`+strings.Join(cs, ",")+`]}}`)
		return "Observation/" + id
	}
	comma, pipe, dollar, both, onlyX := obs("a,b"), obs("a|b"), obs("a$b"), obs("x", "y"), obs("x")
	q := func(v string) string { return "/Observation?code=" + url.QueryEscape(v) }
	expectMatches(t, c, q(sys+`|a\,b`), comma)
	expectMatches(t, c, q(sys+`|a\|b`), pipe)
	expectMatches(t, c, q(sys+`|a\$b`), dollar)
	expectMatches(t, c, q(sys+`|a,`+sys+`|b`)) // two codes, neither stored
	expectMatches(t, c, q(sys+`|x`)+"&code="+url.QueryEscape(sys+`|y`), both)
	expectMatches(t, c, q(sys+`|x,`+sys+`|y`), both, onlyX)
	expectMatches(t, c, q(sys+`|`)+"&_count=2", comma, pipe, dollar, both, onlyX)
	expectMatches(t, c, q(sys+`|y`)+"&code:not="+url.QueryEscape(sys+`|x`))
	expectMatches(t, c, q(sys+`|x`)+"&code:not="+url.QueryEscape(sys+`|y`), onlyX)
}

// testSearchChainIndependence: B-CHN-01, each chained parameter is
// evaluated on its own: two practitioners may satisfy the two conditions.
func testSearchChainIndependence(t *testing.T, c *Client) {
	joe, state := uniqueName("Joe"), uniqueName("MN")
	a, _ := create(t, c, "Practitioner", fmt.Sprintf(`{"resourceType":"Practitioner","name":[{"family":%q}],"address":[{"state":"XX"}]}`, joe))
	b, _ := create(t, c, "Practitioner", fmt.Sprintf(`{"resourceType":"Practitioner","name":[{"family":"Other"}],"address":[{"state":%q}]}`, state))
	p, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","generalPractitioner":[{"reference":"Practitioner/%s"},{"reference":"Practitioner/%s"}]}`, a, b))
	expectMatches(t, c, "/Patient?general-practitioner:Practitioner.name="+joe+"&general-practitioner:Practitioner.address-state="+state, "Patient/"+p)
	expectMatches(t, c, "/Patient?general-practitioner:Practitioner.name="+joe+"&general-practitioner:Practitioner.address-state="+state+"x")
}

// testSearchFollowsWrites: an update moves a resource between results and
// a deleted resource leaves search (gotcha 3).
func testSearchFollowsWrites(t *testing.T, c *Client) {
	one, two := uniqueName("Before"), uniqueName("After")
	id, _ := create(t, c, "Patient", patient("", one))
	expectMatches(t, c, "/Patient?family="+one, "Patient/"+id)
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, two))), 200, "update")
	expectMatches(t, c, "/Patient?family="+one)
	expectMatches(t, c, "/Patient?family="+two, "Patient/"+id)
	if r := c.Do("DELETE", "/Patient/"+id, nil); r.Status >= 300 {
		t.Fatalf("delete: status %d", r.Status)
	}
	expectMatches(t, c, "/Patient?family="+two)
	expectMatches(t, c, "/Patient?_id="+id)
}

// testSearchPagingStable: paging links stay right while data changes: a
// resource written before the cursor does not shift the next pages (an
// offset would repeat B), and every page is reachable by its link.
func testSearchPagingStable(t *testing.T, c *Client) {
	fam := uniqueName("Pager")
	want := map[string]string{}
	for _, given := range []string{"Aa", "Bb", "Cc", "Dd", "Ee", "Ff"} {
		id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":[%q]}]}`, fam, given))
		want["Patient/"+id] = given
	}
	r := c.Do("GET", "/Patient?family="+fam+"&_sort=given&_count=2", nil)
	expectStatus(t, r, 200, "first page")
	b, entries := readSearchPage(t, r, 2)
	seen := map[string]int{}
	var order []string
	add := func(entries []searchEntry) {
		for _, e := range entries {
			if e.mode == "match" {
				seen[e.key]++
				order = append(order, want[e.key])
			}
		}
	}
	add(entries)
	// Written after the first page, sorting before everything it showed.
	extra, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":["Ab"]}]}`, fam))
	for pages := 1; b.link("next") != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		r = c.Do("GET", b.link("next"), nil)
		expectStatus(t, r, 200, "next page")
		b, entries = readSearchPage(t, r, 2)
		add(entries)
	}
	for key, given := range want {
		if seen[key] != 1 {
			t.Errorf("%s (given %s) came %d times, want once; order %v", key, given, seen[key], order)
		}
	}
	if seen["Patient/"+extra] > 1 {
		t.Errorf("the patient written while paging came %d times", seen["Patient/"+extra])
	}
	for i := 1; i < len(order); i++ {
		if order[i] != "" && order[i-1] != "" && order[i] < order[i-1] {
			t.Errorf("pages out of _sort=given order: %v", order)
			break
		}
	}
}

// testSearchTamperedLinks: a paging link is opaque, but a changed one is
// a clear 400, never a 500 or data another query asked for.
func testSearchTamperedLinks(t *testing.T, c *Client) {
	mine, theirs := uniqueName("Mine"), uniqueName("Theirs")
	var theirIDs []string
	for range 3 {
		create(t, c, "Patient", patient("", mine))
		id, _ := create(t, c, "Patient", patient("", theirs))
		theirIDs = append(theirIDs, "Patient/"+id)
	}
	r := c.Do("GET", "/Patient?family="+mine+"&_count=1", nil)
	expectStatus(t, r, 200, "first page")
	b, _ := readSearchPage(t, r, 1)
	next := b.link("next")
	if next == "" {
		t.Fatal("no next link with _count=1 over three matches (A-SB-05)")
	}
	u, err := url.Parse(next)
	if err != nil {
		t.Fatalf("next link %q: %v", next, err)
	}
	q := u.Query()
	cursor := q.Get("_page")
	if cursor == "" {
		t.Skipf("the next link %q has no _page cursor to tamper with", next)
	}
	tampered := func(cur string) string {
		q2 := u.Query()
		q2.Set("_page", cur)
		u2 := *u
		u2.RawQuery = q2.Encode()
		return u2.String()
	}
	flip := []byte(cursor)
	flip[len(flip)/2] ^= 1
	for name, link := range map[string]string{
		"a flipped character": tampered(string(flip)),
		"cut short":           tampered(cursor[:len(cursor)/2]),
		"doubled":             tampered(cursor + cursor),
		"not base64":          tampered("!!!" + cursor),
	} {
		expectOutcome(t, c.Do("GET", link, nil), 400, "tampered cursor, "+name)
	}
	// The cursor of one query on another: refused, or that query's own
	// results, never the first query's.
	q.Set("family", theirs)
	u.RawQuery = q.Encode()
	r = c.Do("GET", u.String(), nil)
	switch r.Status {
	case 400:
		expectOutcome(t, r, 400, "a cursor moved to another query")
	case 200:
		_, entries := readSearchPage(t, r, 1)
		for _, e := range entries {
			if e.mode == "match" && !slices.Contains(theirIDs, e.key) {
				t.Errorf("a cursor moved to another query returned %s, which that query does not match", e.key)
			}
		}
	default:
		t.Errorf("a cursor moved to another query: status %d\n%s", r.Status, truncate(r.Body))
	}
}
