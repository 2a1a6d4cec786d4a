package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// TestSearchCountCache: with the read cache on, totals and the params
// snapshot are reused between writes (countCache, paramSnapshot) but never
// across one: every acknowledged Commit or Reindex is seen by the next
// search's total and clauses, as with the cache off.
func TestSearchCountCache(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
			cacheBytes := int64(0)
			if cached {
				cacheBytes = 1 << 20
			}
			s := openCached(t, filepath.Join(t.TempDir(), "kiln.db"), cacheBytes)
			defer s.Close()
			ctx := context.Background()
			tok := func(param, code string) search.Entry {
				return search.Entry{Param: param, Type: search.Token, System: "http://example.org", Code: code}
			}
			create := func(typ, id string, index ...search.Entry) {
				t.Helper()
				err := s.Commit(ctx, store.Change{Type: typ, ID: id, Version: 1, LastUpdated: time.Now(),
					Method: store.MethodPost, Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q}`, typ, id), Index: index})
				if err != nil {
					t.Fatal(err)
				}
			}
			total := func(typ, param, code string, count int) int {
				t.Helper()
				page, err := s.Search(ctx, &search.Query{Types: []string{typ}, Count: count, Total: search.TotalAccurate,
					Filter: []search.Clause{{Param: param, Type: search.Token, Values: []search.Value{
						{System: "http://example.org", Code: code, HasSystem: true}}}}})
				if err != nil {
					t.Fatal(err)
				}
				if count > 0 && len(page.Matches) != min(count, page.Total) {
					t.Errorf("%s?%s=%s: %d matches with a total of %d", typ, param, code, len(page.Matches), page.Total)
				}
				return page.Total
			}
			for i := range 3 {
				create("Observation", fmt.Sprint("o", i), tok("status", "final"))
			}
			steps := []struct {
				name  string
				write func()
				typ   string
				param string
				want  int
			}{
				{"first", nil, "Observation", "status", 3},
				{"repeated", nil, "Observation", "status", 3},
				{"after a create", func() { create("Observation", "o3", tok("status", "final")) }, "Observation", "status", 4},
				{"after a create of another type", func() { create("Patient", "p1", tok("gender", "male")) }, "Observation", "status", 4},
				// A parameter no resource had before: its params row is
				// added by the write, and the next search must know it.
				{"a new parameter, before", nil, "Basic", "code", 0},
				{"a new parameter, after", func() { create("Basic", "b1", tok("code", "x")) }, "Basic", "code", 1},
				{"after a delete", func() {
					if err := s.Commit(ctx, store.Change{Type: "Observation", ID: "o0", Version: 2, LastUpdated: time.Now(),
						Method: store.MethodDelete}); err != nil {
						t.Fatal(err)
					}
				}, "Observation", "status", 3},
				// A reindex writes no version: the count must move anyway.
				{"after a reindex", func() {
					n, err := s.Reindex(ctx, store.IndexUpdate{Type: "Observation", ID: "o1", Version: 1, Index: []search.Entry{tok("status", "amended")}})
					if err != nil || n != 1 {
						t.Fatalf("reindex: %d, %v", n, err)
					}
				}, "Observation", "status", 2},
			}
			for _, st := range steps {
				if st.write != nil {
					st.write()
				}
				for _, count := range []int{0, 10} {
					code := map[string]string{"status": "final", "code": "x"}[st.param]
					if got := total(st.typ, st.param, code, count); got != st.want {
						t.Errorf("%s (_count=%d): total %d, want %d", st.name, count, got, st.want)
					}
				}
			}
			if cached {
				// The repeated totals were answered without counting again.
				n := len(s.cache.counts.m)
				if n == 0 {
					t.Error("no total was cached")
				}
				// A query longer than countKeyMax is counted, not kept.
				long := strings.Repeat("x", countKeyMax)
				if got := total("Observation", "status", long, 0); got != 0 {
					t.Errorf("status=%.10s…: total %d, want 0", long, got)
				}
				if m := len(s.cache.counts.m); m != n {
					t.Errorf("a %d-byte query left %d counts kept, want %d", len(long), m, n)
				}
			}
		})
	}
}

// TestReadMmap: read connections map as much of the file as SQLite
// allows by default (Config.MmapSize), and a larger setting is lowered
// to it rather than refused.
func TestReadMmap(t *testing.T) {
	for _, cfg := range []int64{0, 1 << 40, 1 << 20} {
		s, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "kiln.db"), MmapSize: cfg})
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		if err := s.rdb.QueryRow("PRAGMA mmap_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		want := int64(maxMmap)
		if cfg == 1<<20 {
			want = cfg
		}
		if got != want {
			t.Errorf("MmapSize %d: mmap_size %d, want %d", cfg, got, want)
		}
	}
}
