package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// TestSearchWalk: a clause that seeks in rid order drives the page by
// walking its index rows (ordered.go). Its page has no gathered set and
// sorts only the page's own rows, and it yields each resource once even
// when the resource has several rows for the value (the same code in two
// codings with different displays), page by page, with the same matches
// and total as before.
func TestSearchWalk(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	obs := func(id string, codings ...string) store.Change {
		body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[%s]},"subject":{"reference":"Patient/p1"}}`,
			id, strings.Join(codings, ","))
		index, err := search.Extract("Observation", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return store.Change{Type: "Observation", ID: id, Version: 1, LastUpdated: time.Now(), Method: store.MethodPost, Body: []byte(body), Index: index}
	}
	glucose := func(display string) string {
		return `{"system":"http://loinc.org","code":"2339-0","display":"` + display + `"}`
	}
	other := `{"system":"http://loinc.org","code":"8302-2"}`
	if err := s.Commit(ctx,
		obs("o1", glucose("Glucose"), glucose("Glucose [Mass/volume] in Blood")),
		obs("o2", glucose("Glucose")),
		obs("o3", other),
		obs("o4", other, glucose("Glucose"), glucose("Glucose in blood")),
		obs("o5", glucose("Glucose")),
	); err != nil {
		t.Fatal(err)
	}
	v := []search.Value{{System: "http://loinc.org", Code: "2339-0", HasSystem: true}}
	want := []string{"o1", "o2", "o4", "o5"}
	for _, tc := range []struct {
		name  string
		q     search.Query
		walks bool
		want  []string
	}{
		{"token", search.Query{Types: []string{"Observation"}, Filter: []search.Clause{{Param: "code", Type: search.Token, Values: v}}}, true, want},
		{"reference", search.Query{Types: []string{"Observation"}, Filter: []search.Clause{{Param: "subject", Type: search.Reference,
			Values: []search.Value{{Ref: "Patient/p1", RefType: "Patient"}}}}}, true, []string{"o1", "o2", "o3", "o4", "o5"}},
		// _sort ranks every match: walking could not stop early, and
		// its first-row test would cost more than gathering.
		{"sorted gathers", search.Query{Types: []string{"Observation"}, Filter: []search.Clause{{Param: "code", Type: search.Token, Values: v}},
			Sort: []search.SortKey{{Param: "date", Type: search.Date}}}, false, want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, count := range []int{1, 2, 50} {
				q := tc.q
				q.Count, q.Total = count, search.TotalAccurate
				plan, err := s.plan(ctx, &q)
				if err != nil {
					t.Fatal(err)
				}
				p := explainArgs(t, s, plan.page)
				walks := strings.Contains(plan.page.sql, "AS x CROSS JOIN current AS c ON c.rid = x.rid")
				if walks != tc.walks || walks && (strings.Contains(p, "LIST SUBQUERY") || strings.Count(p, "USE TEMP B-TREE") > 1) {
					t.Fatalf("the page walks its driving rows: %v, want %v:\n%s\n%s", walks, tc.walks, plan.page.sql, p)
				}
				var got []string
				for pages := 0; ; pages++ {
					page, err := s.Search(ctx, &q)
					if err != nil {
						t.Fatal(err)
					}
					if page.Total != len(tc.want) {
						t.Errorf("count %d: total %d, want %d", count, page.Total, len(tc.want))
					}
					for _, m := range page.Matches {
						got = append(got, m.ID)
					}
					if page.Next == "" || pages > 10 {
						break
					}
					q.Cursor = page.Next
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("count %d: pages hold %v, want %v", count, got, tc.want)
				}
			}
		})
	}
}

// TestSearchHasWalk: a lone _has with many referrers spread over many
// targets walks the targets with the correlated probe; one whose
// referrers are concentrated on a few targets gathers the set. Both give
// the same pages: the targets with a matching referrer, in rid order.
func TestSearchHasWalk(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	change := func(typ, id, body string) store.Change {
		index, err := search.Extract(typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return store.Change{Type: typ, ID: id, Version: 1, LastUpdated: time.Now(), Method: store.MethodPost, Body: []byte(body), Index: index}
	}
	obs := func(id, patient, code string) store.Change {
		return change("Observation", id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",`+
			`"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"}}`, id, code, patient))
	}
	// 200 patients: every third has 20 Observations of 8302-2 (1,340
	// referrers over 67 patients); p000 and p001 have 600 each of 2339-0.
	var changes []store.Change
	var spread, few []string
	for i := range 200 {
		p := fmt.Sprintf("p%03d", i)
		changes = append(changes, change("Patient", p, `{"resourceType":"Patient","id":"`+p+`"}`))
		if i%3 == 0 {
			spread = append(spread, p)
			for j := range 20 {
				changes = append(changes, obs(fmt.Sprintf("h%03d-%02d", i, j), p, "8302-2"))
			}
		}
		if i < 2 {
			few = append(few, p)
			for j := range 600 {
				changes = append(changes, obs(fmt.Sprintf("g%03d-%03d", i, j), p, "2339-0"))
			}
		}
	}
	if err := s.Commit(ctx, changes...); err != nil {
		t.Fatal(err)
	}
	code := func(c string) search.Clause {
		return search.Clause{Param: "code", Type: search.Token, Values: []search.Value{{System: "http://loinc.org", Code: c, HasSystem: true}}}
	}
	any := append(slices.Clone(spread), "p001")
	slices.Sort(any)
	for _, tc := range []struct {
		name  string
		inner search.Clause
		count int
		walk  bool
		want  []string
	}{
		{"spread", code("8302-2"), 20, true, spread},
		{"concentrated", code("2339-0"), 20, false, few},
		// An inner clause on the referrer's current row (not only its
		// rid): the probe joins current.
		{"on the referrer's row", search.Clause{Param: "_lastUpdated", Type: search.Date, Values: []search.Value{{Prefix: search.Gt,
			Start: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)}}}, 1, true, any},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := search.Query{Types: []string{"Patient"}, Count: tc.count, Total: search.TotalAccurate, Filter: []search.Clause{{Has: &search.Has{
				Type: "Observation", Param: "patient", Filter: tc.inner}}}}
			plan, err := s.plan(ctx, &q)
			if err != nil {
				t.Fatal(err)
			}
			if walks := !strings.Contains(plan.page.sql, " IN (SELECT t.rid"); walks != tc.walk {
				t.Errorf("the page walks the targets: %v, want %v:\n%s", walks, tc.walk, plan.page.sql)
			}
			// The probe joins current only when the inner clause reads
			// more of the referrer than its rid (hasProbe).
			if joins := strings.Contains(plan.page.sql, "FROM ix_ref AS x CROSS JOIN current AS"); tc.walk && joins != (tc.inner.Param == "_lastUpdated") {
				t.Errorf("the probe joins current: %v:\n%s", joins, plan.page.sql)
			}
			p := explainArgs(t, s, plan.page)
			if m := scanOfTable.FindString(p); m != "" {
				t.Errorf("%q in the plan:\n%s", m, p)
			}
			var got []string
			for pages := 0; ; pages++ {
				page, err := s.Search(ctx, &q)
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != len(tc.want) {
					t.Errorf("total %d, want %d", page.Total, len(tc.want))
				}
				for _, m := range page.Matches {
					got = append(got, m.ID)
				}
				if page.Next == "" || pages > 100 {
					break
				}
				q.Cursor = page.Next
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pages hold %v, want %v", got, tc.want)
			}
		})
	}
}
