package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// TestSearchWindowWalk: a broad clause (a code without its system, more
// than driveProbe matches) pages by a bounded walk of the type
// (windowWalk), and the pages hold exactly the matches in rid order,
// forward and backward, whether the walk filled the page or the page was
// gathered after all (the last pages, sparse matches).
//
// With the read cache on, the broad clauses' counts are kept, and a
// reference probed against them is not probed at all (othersBroad): the
// answers must be the same.
func TestSearchWindowWalk(t *testing.T) {
	for _, cacheBytes := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cacheBytes), func(t *testing.T) { testSearchWindowWalk(t, cacheBytes) })
	}
}

func testSearchWindowWalk(t *testing.T, cacheBytes int64) {
	s := openCached(t, filepath.Join(t.TempDir(), "kiln.db"), cacheBytes)
	defer s.Close()
	ctx := context.Background()
	const n = 2600
	var changes []store.Change
	want := map[string][]string{} // code: ids in creation (rid) order
	for i := range n {
		typ, id := "Observation", fmt.Sprintf("o%04d", i)
		if i%5 == 0 {
			typ, id = "Patient", fmt.Sprintf("p%04d", i) // other rids in between
		}
		var index []search.Entry
		for _, c := range []struct {
			code string
			on   bool
		}{{"dense", i%5 != 0 && i%3 != 0}, {"sparse", i%5 != 0 && i%2 == 0}, {"rare", i%97 == 1}, {"late", i >= n/2}} {
			if c.on {
				index = append(index, search.Entry{Param: "category", Type: search.Token, System: "http://example.org/cat", Code: c.code})
				if typ == "Observation" {
					want[c.code] = append(want[c.code], id)
				}
			}
		}
		if typ == "Observation" && i%7 == 0 {
			index = append(index, search.Entry{Param: "subject", Type: search.Reference, Ref: "Patient/p0000"})
			want["subject"] = append(want["subject"], id)
		}
		changes = append(changes, store.Change{Type: typ, ID: id, Version: 1, LastUpdated: time.Now(), Method: store.MethodPost,
			Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q}`, typ, id), Index: index})
	}
	if err := s.Commit(ctx, changes...); err != nil {
		t.Fatal(err)
	}
	clause := func(code string) search.Clause {
		return search.Clause{Param: "category", Type: search.Token, Values: []search.Value{{Code: code}}}
	}
	for _, tc := range []struct {
		name   string
		filter []search.Clause
		want   []string
		walks  bool // the first page walks the type
	}{
		{"dense", []search.Clause{clause("dense")}, want["dense"], true},
		// sparse and dense: both broad, the smaller drives, both tested.
		{"dense and sparse", []search.Clause{clause("dense"), clause("sparse")}, intersect(want["dense"], want["sparse"]), true},
		{"rare", []search.Clause{clause("rare")}, want["rare"], false},
		// A reference (ranked first) and a broad clause: the reference
		// drives, its rows walked or gathered.
		{"subject and dense", []search.Clause{{Param: "subject", Type: search.Reference,
			Values: []search.Value{{Ref: "Patient/p0000", RefType: "Patient"}}}, clause("dense")},
			intersect(want["subject"], want["dense"]), false},
		// Many matches, none among the first resources: the first windows
		// hold none, and the pages are gathered.
		{"late", []search.Clause{clause("late")}, want["late"], true},
	} {
		for _, count := range []int{1, 10, 50} {
			t.Run(fmt.Sprintf("%s/_count=%d", tc.name, count), func(t *testing.T) {
				q := search.Query{Types: []string{"Observation"}, Count: count, Filter: tc.filter}
				plan, err := s.plan(ctx, &q)
				if err != nil {
					t.Fatal(err)
				}
				if walks := plan.fallback != nil; walks != tc.walks {
					t.Errorf("first page walks the type: %v, want %v", walks, tc.walks)
				}
				if tc.name == "subject and dense" && cacheBytes > 0 && count > 1 {
					// dense's count is cached by now: subject is not probed,
					// and its rows are walked as a lone clause's are.
					if !strings.Contains(plan.page.sql, "FROM ix_ref AS x CROSS JOIN current AS c") {
						t.Errorf("subject's rows are not walked:\n%s", plan.page.sql)
					}
				}
				var got []string
				var pages []store.SearchPage
				for cursor := ""; ; {
					q.Cursor = cursor
					page, err := s.Search(ctx, &q)
					if err != nil {
						t.Fatal(err)
					}
					pages = append(pages, page)
					for _, m := range page.Matches {
						got = append(got, m.ID)
					}
					if page.Next == "" || len(pages) > n {
						break
					}
					cursor = page.Next
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("paging forward: %d ids, want %d\ngot  %v\nwant %v", len(got), len(tc.want), head(got), head(tc.want))
				}
				// And back from the last page, by the previous links.
				var back []string
				for i := len(pages) - 1; i >= 0; i-- {
					var ids []string
					for _, m := range pages[i].Matches {
						ids = append(ids, m.ID)
					}
					back = append(ids, back...)
					if i == 0 {
						break
					}
					q.Cursor = pages[i].Prev
					prev, err := s.Search(ctx, &q)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.EqualFunc(prev.Matches, pages[i-1].Matches, func(a, b store.Resource) bool { return a.ID == b.ID }) {
						t.Fatalf("page %d by its previous link differs", i-1)
					}
				}
				if !slices.Equal(back, tc.want) {
					t.Errorf("paging backward: %d ids, want %d", len(back), len(tc.want))
				}
			})
		}
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func head(ids []string) []string { return ids[:min(len(ids), 8)] }
