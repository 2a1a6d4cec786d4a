package apitest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// testSearchPostPaging: a search started by POST _search continues by
// links followed with GET, and the server also accepts POST on those
// links (http.html#paging, A-SB-06), at type and system level: the page
// a link gives is the same whichever method follows it, and the pages
// together hold every match once.
func testSearchPostPaging(t *testing.T, c *Client) {
	fam := uniqueName("Poster")
	want := map[string]bool{}
	for _, given := range []string{"Pa", "Pb", "Pc", "Pd", "Pe"} {
		id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":[%q]}]}`, fam, given))
		want["Patient/"+id] = true
	}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	page := func(method, link string, body string, what string) (searchBundle, []string) {
		t.Helper()
		var r Response
		if method == "GET" {
			r = c.Do("GET", link, nil)
		} else {
			r = c.Do("POST", link, []byte(body), form...)
		}
		expectStatus(t, r, 200, what)
		b, entries := readSearchPage(t, r, 2)
		var keys []string
		for _, e := range entries {
			if e.mode == "match" {
				keys = append(keys, e.key)
			}
		}
		return b, keys
	}
	for _, tc := range []struct{ name, path, body string }{
		{"type", "/Patient/_search", "family=" + fam + "&_count=2&_sort=given"},
		{"system", "/_search", "_type=Patient&family=" + fam + "&_count=2&_sort=given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, first := page("POST", tc.path, tc.body, "POST "+tc.path)
			got := slices.Clone(first)
			for n := 2; b.link("next") != ""; n++ {
				if n > 5 {
					t.Fatal("paging does not end")
				}
				next := b.link("next")
				if u, err := url.Parse(next); err != nil || strings.HasSuffix(u.Path, "/_search") {
					t.Errorf("next link %q: want a GET-able search URL, not _search", next)
				}
				// Both methods give the same page; alternate which one
				// continues the paging.
				byGet, getKeys := page("GET", next, "", fmt.Sprintf("GET page %d", n))
				byPost, postKeys := page("POST", next, "", fmt.Sprintf("POST page %d", n))
				if !slices.Equal(getKeys, postKeys) {
					t.Errorf("page %d: GET gives %q, POST gives %q", n, getKeys, postKeys)
				}
				if byGet.link("next") != byPost.link("next") {
					t.Errorf("page %d: next by GET %q, by POST %q", n, byGet.link("next"), byPost.link("next"))
				}
				got = append(got, getKeys...)
				b = byPost
				if n%2 == 1 {
					b = byGet
				}
			}
			slices.Sort(got)
			if len(got) != len(want) || slices.ContainsFunc(got, func(k string) bool { return !want[k] }) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("pages hold %q, want the %d patients once each", got, len(want))
			}
		})
	}
	// A POST on the type without _page is still a create (not a search).
	id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":["Pz"]}]}`, fam))
	if id == "" {
		t.Error("create after POST paging")
	}
}
