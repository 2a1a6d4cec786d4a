package apitest

import (
	"fmt"
	"slices"
	"testing"
)

// testSearchPagingBack: previous and first links (http.html#paging,
// A-SB-05). Followed back from the last page, previous links give the
// pages read going forward, in the same order; the first page has none;
// a previous link is read when followed, so a resource written since
// that sorts just before the page shows on it; a tampered one is a 400.
func testSearchPagingBack(t *testing.T, c *Client) {
	fam := uniqueName("Backer")
	ids := map[string]string{}
	for _, given := range []string{"Ba", "Bc", "Be", "Bg", "Bi", "Bk"} {
		id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":[%q]}]}`, fam, given))
		ids["Patient/"+id] = given
	}
	given := func(entries []searchEntry) []string {
		var out []string
		for _, e := range entries {
			if e.mode == "match" {
				out = append(out, ids[e.key])
			}
		}
		return out
	}
	get := func(link, what string) (searchBundle, []string) {
		t.Helper()
		r := c.Do("GET", link, nil)
		expectStatus(t, r, 200, what)
		b, entries := readSearchPage(t, r, 2)
		return b, given(entries)
	}
	b, first := get("/Patient?family="+fam+"&_sort=given&_count=2", "first page")
	if b.link("previous") != "" {
		t.Errorf("the first page has a previous link %q", b.link("previous"))
	}
	pages := [][]string{first}
	var links []searchBundle
	links = append(links, b)
	for b.link("next") != "" {
		if len(pages) > 5 {
			t.Fatal("paging does not end")
		}
		var got []string
		b, got = get(b.link("next"), "next page")
		pages = append(pages, got)
		links = append(links, b)
	}
	want := [][]string{{"Ba", "Bc"}, {"Be", "Bg"}, {"Bi", "Bk"}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pages forward %q, want %q", pages, want)
	}
	for i := len(pages) - 1; i > 0; i-- {
		prev := links[i].link("previous")
		if prev == "" {
			t.Fatalf("page %d has no previous link", i+1)
		}
		pb, got := get(prev, "previous page")
		if !slices.Equal(got, pages[i-1]) {
			t.Errorf("previous of page %d: %q, want %q", i+1, got, pages[i-1])
		}
		if i == 1 && pb.link("previous") != "" {
			t.Errorf("page 1, reached backward, has a previous link")
		}
		if links[i].link("first") == "" {
			t.Errorf("page %d has no first link", i+1)
		}
	}
	if _, got := get(links[2].link("first"), "first link"); !slices.Equal(got, pages[0]) {
		t.Errorf("the first link gives %q, want %q", got, pages[0])
	}

	// Written after page 3 was read, sorting between Bg and Bi: the
	// page before page 3 now ends with it.
	id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q,"given":["Bh"]}]}`, fam))
	ids["Patient/"+id] = "Bh"
	if _, got := get(links[2].link("previous"), "previous after a write"); !slices.Equal(got, []string{"Bg", "Bh"}) {
		t.Errorf("previous of page 3 after a write: %q, want [Bg Bh]", got)
	}

	prev := []byte(links[2].link("previous"))
	prev[len(prev)-3] ^= 1
	expectOutcome(t, c.Do("GET", string(prev), nil), 400, "a tampered previous link")
}
