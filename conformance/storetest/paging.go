package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// testSearchPagingBack: a page's Prev cursor (a previous link,
// RFC 5005 as search.html#paging uses it) gives the page before it. Read
// forward to the end and then back by Prev, every page is the same page
// again, in the same order — for each sort, nullable and descending keys
// included — and the first page has no Prev.
func testSearchPagingBack(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	for _, tc := range []struct {
		name  string
		types []string
		sort  []search.SortKey
	}{
		{"no sort", []string{"Patient"}, nil},
		{"birthdate, missing last", []string{"Patient"}, []search.SortKey{asc("birthdate", search.Date)}},
		{"-birthdate, missing last", []string{"Patient"}, []search.SortKey{desc("birthdate", search.Date)}},
		{"gender then -family", []string{"Patient"}, []search.SortKey{asc("gender", search.Token), desc("family", search.String)}},
		{"-_lastUpdated over two types", []string{"Patient", "Observation"}, []search.SortKey{desc("_lastUpdated", search.Date)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := search.Query{Types: tc.types, Sort: tc.sort, Count: 2}
			var pages [][]string
			var last store.SearchPage
			for n := 0; ; n++ {
				p, err := s.Search(t.Context(), &q)
				if err != nil {
					t.Fatalf("page %d: %v", n+1, err)
				}
				if n == 0 && p.Prev != "" {
					t.Errorf("the first page has a Prev cursor")
				}
				if n > 0 && p.Prev == "" {
					t.Errorf("page %d has no Prev cursor", n+1)
				}
				pages = append(pages, matchIDs(p.Matches, true))
				last = p
				if p.Next == "" {
					break
				}
				if n > 100 {
					t.Fatal("paging does not end")
				}
				q.Cursor = p.Next
			}
			if len(pages) < 3 {
				t.Fatalf("%d pages: the corpus should give at least 3", len(pages))
			}
			p := last
			for i := len(pages) - 2; i >= 0; i-- {
				if p.Prev == "" {
					t.Fatalf("no Prev cursor back to page %d", i+1)
				}
				q.Cursor = p.Prev
				var err error
				if p, err = s.Search(t.Context(), &q); err != nil {
					t.Fatalf("back to page %d: %v", i+1, err)
				}
				if got := matchIDs(p.Matches, true); !slices.Equal(got, pages[i]) {
					t.Errorf("back to page %d: %q, forward it was %q", i+1, got, pages[i])
				}
				if p.Next == "" {
					t.Errorf("page %d, read backward, has no Next", i+1)
				}
			}
			if p.Prev != "" {
				t.Errorf("the first page, read backward, has a Prev cursor")
			}
			// Forward again from the first page read backward.
			q.Cursor = p.Next
			again, err := s.Search(t.Context(), &q)
			if err != nil {
				t.Fatal(err)
			}
			if got := matchIDs(again.Matches, true); !slices.Equal(got, pages[1]) {
				t.Errorf("forward from the first page read backward: %q, want %q", got, pages[1])
			}
		})
	}
}

// testSearchPagingBackWhileWriting: the page before is read when the
// link is followed: a resource written since, sorting just before the
// page, is on it, and a deleted one is not.
func testSearchPagingBackWhileWriting(t *testing.T, s store.Store) {
	at := searchCorpusAt
	obs := func(id string, v int64, day int) store.Change {
		return indexed(t, "Observation", id, v, at, fmt.Sprintf(`"status":"final","code":{"coding":[{"code":"y"}]},"effectiveDateTime":"2020-02-%02d"`, day))
	}
	var changes []store.Change
	for d := 1; d <= 6; d++ {
		changes = append(changes, obs(fmt.Sprintf("b%02d", d), 1, d*2))
	}
	commitEach(t, s, changes...)
	q := typed("Observation", tok("code", "", "y"))
	q.Sort = []search.SortKey{asc("date", search.Date)}
	q.Count = 2
	p1, err := s.Search(t.Context(), &q)
	if err != nil {
		t.Fatal(err)
	}
	q.Cursor = p1.Next
	p2, err := s.Search(t.Context(), &q)
	if err != nil {
		t.Fatal(err)
	}
	if got := matchIDs(p2.Matches, false); !slices.Equal(got, []string{"b03", "b04"}) {
		t.Fatalf("page 2: %q", got)
	}
	commitEach(t, s,
		obs("new", 1, 5), // between b02 and b03: just before page 2
		store.Change{Type: "Observation", ID: "b01", Version: 2, LastUpdated: at, Method: store.MethodDelete},
	)
	q.Cursor = p2.Prev
	back, err := s.Search(t.Context(), &q)
	if err != nil {
		t.Fatal(err)
	}
	if got := matchIDs(back.Matches, false); !slices.Equal(got, []string{"b02", "new"}) {
		t.Errorf("the page before page 2 after the writes: %q, want [b02 new]", got)
	}
	if back.Prev != "" {
		t.Errorf("nothing is left before b02, yet a Prev cursor")
	}
}
