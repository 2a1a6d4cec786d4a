package storetest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/store"
)

// testScan checks store.Scanner, the snapshot read of bulk export: per
// resource, the version current at At (nothing written after it), _since
// as "written after", deletes only when asked, ids ascending, and paging
// that returns the same as one page.
func testScan(t *testing.T, s store.Store) {
	sc, ok := s.(store.Scanner)
	if !ok {
		t.Skip("backend does not implement store.Scanner: bulk export cannot run on it")
	}
	// One change per Commit: the scan is not about transactions, and a
	// backend without them (MongoDB standalone, FerretDB) must pass it too.
	commitEach(t, s, put("Patient", "a", 1, tick(1)), put("Observation", "o", 1, tick(1)))
	commit(t, s, put("Patient", "b", 1, tick(2)))
	commit(t, s, put("Patient", "d", 1, tick(3)))
	commit(t, s, del("Patient", "b", 2, tick(4)))
	commit(t, s, put("Patient", "a", 2, tick(5)))
	commit(t, s, put("Patient", "c", 1, tick(6)))
	commit(t, s, del("Patient", "d", 2, tick(7)))

	for _, tc := range []struct {
		name string
		q    store.ScanQuery
		want string // keys as type/id/_history/version, in order
	}{
		{"latest", store.ScanQuery{}, "a/2 c/1"},
		{"at an instant", store.ScanQuery{At: tick(4)}, "a/1 d/1"},
		{"at an instant with deletes", store.ScanQuery{At: tick(4), Deleted: true}, "a/1 b/2 d/1"},
		{"at is inclusive", store.ScanQuery{At: tick(3)}, "a/1 b/1 d/1"},
		{"before anything", store.ScanQuery{At: tick(0)}, ""},
		{"since is exclusive", store.ScanQuery{At: tick(6), Since: tick(3)}, "a/2 c/1"},
		{"since with deletes", store.ScanQuery{At: tick(6), Since: tick(3), Deleted: true}, "a/2 b/2 c/1"},
		{"since, latest, with deletes", store.ScanQuery{Since: tick(5), Deleted: true}, "c/1 d/2"},
		{"after an id", store.ScanQuery{After: "b"}, "c/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, count := range []int{100, 1} {
				q := tc.q
				q.Type, q.Count = "Patient", count
				var got []string
				for pages := 0; ; pages++ {
					if pages > 10 {
						t.Fatalf("Count %d: more pages than resources", count)
					}
					page, err := sc.Scan(t.Context(), q)
					if err != nil {
						t.Fatalf("Scan(%+v): %v", q, err)
					}
					for _, r := range page.Resources {
						got = append(got, scanKey(t, s, r))
					}
					if page.Next == "" {
						break
					}
					q.After = page.Next
				}
				if g := strings.Join(got, " "); g != tc.want {
					t.Errorf("Count %d: got %q, want %q", count, g, tc.want)
				}
			}
		})
	}
}

// scanKey is "id/version" after checking that r is exactly the version
// the store reads back for it.
func scanKey(t *testing.T, s store.Store, r store.Resource) string {
	t.Helper()
	want, err := s.VRead(t.Context(), r.Type, r.ID, r.Version)
	if err != nil && !want.Deleted() {
		t.Errorf("VRead %s: %v", key(r), err)
	}
	if d := diff(r, want); d != "" {
		t.Errorf("Scan returned %s: %s", key(r), d)
	}
	return r.ID + "/" + strconv.FormatInt(r.Version, 10)
}
