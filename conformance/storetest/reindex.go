package storetest

import (
	"slices"
	"testing"

	"github.com/kiln-fhir/kiln/store"
)

// testReindex checks store.Reindexer: index entries replaced in place on
// the current version only, never on a version that moved on, a delete or
// a resource that does not exist, and the searches that follow see exactly
// the replaced entries.
func testReindex(t *testing.T, s store.Store) {
	rx, ok := s.(store.Reindexer)
	if !ok {
		t.Skip("backend does not implement store.Reindexer: kiln reindex and custom SearchParameters cannot run on it")
	}
	at := tick(1)
	ann := indexed(t, "Patient", "a", 1, at, `"name":[{"family":"Smith","given":["Ann"]}]`)
	bea1 := indexed(t, "Patient", "b", 1, at, `"name":[{"family":"Smith","given":["Bea"]}]`)
	bea2 := indexed(t, "Patient", "b", 2, tick(2), `"name":[{"family":"Jones","given":["Bea"]}]`)
	cat := indexed(t, "Patient", "c", 1, at, `"name":[{"family":"Smith","given":["Cat"]}]`)
	// Written without index entries, as by a registry that lacked them.
	bare := func(c store.Change) store.Change { c.Index = nil; return c }
	commitEach(t, s, bare(ann), bare(bea1), bare(bea2), bare(cat), del("Patient", "c", 2, tick(3)))

	smith := typed("Patient", str("family", "", "smith"))
	jones := typed("Patient", str("family", "", "jones"))
	find := func(q string) []string {
		t.Helper()
		query := smith
		if q == "jones" {
			query = jones
		}
		got, err := searchAll(t, s, query)
		if err != nil {
			t.Fatalf("Search family=%s: %v", q, err)
		}
		ids := matchIDs(got, false)
		slices.Sort(ids)
		return ids
	}
	if got := find("smith"); len(got) != 0 {
		t.Fatalf("family=smith before reindexing: %v, want none (nothing indexed)", got)
	}

	for _, tc := range []struct {
		name    string
		updates []store.IndexUpdate
		applied int
		smith   []string
		jones   []string
	}{
		{"stale, deleted and missing resources are left alone", []store.IndexUpdate{
			{Type: "Patient", ID: "b", Version: 1, Index: bea1.Index}, // b is at version 2
			{Type: "Patient", ID: "c", Version: 1, Index: cat.Index},  // c is deleted
			{Type: "Patient", ID: "c", Version: 2, Index: cat.Index},  // a delete has no entries
			{Type: "Patient", ID: "x", Version: 1, Index: ann.Index},  // never written
		}, 0, nil, nil},
		{"current versions are reindexed", []store.IndexUpdate{
			{Type: "Patient", ID: "a", Version: 1, Index: ann.Index},
			{Type: "Patient", ID: "b", Version: 2, Index: bea2.Index},
		}, 2, []string{"a"}, []string{"b"}},
		{"again: idempotent", []store.IndexUpdate{
			{Type: "Patient", ID: "a", Version: 1, Index: ann.Index},
			{Type: "Patient", ID: "b", Version: 2, Index: bea2.Index},
		}, 2, []string{"a"}, []string{"b"}},
		{"entries are replaced, not added", []store.IndexUpdate{
			{Type: "Patient", ID: "a", Version: 1, Index: nil},
		}, 1, nil, []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := rx.Reindex(t.Context(), tc.updates...)
			if err != nil {
				t.Fatalf("Reindex: %v", err)
			}
			if n != tc.applied {
				t.Errorf("Reindex applied %d updates, want %d", n, tc.applied)
			}
			if got := find("smith"); !slices.Equal(got, tc.smith) {
				t.Errorf("family=smith: %v, want %v", got, tc.smith)
			}
			if got := find("jones"); !slices.Equal(got, tc.jones) {
				t.Errorf("family=jones: %v, want %v", got, tc.jones)
			}
		})
	}
	// The body and version are untouched: a reindex writes no version.
	r, err := s.Read(t.Context(), "Patient", "a")
	if err != nil || r.Version != 1 || string(r.Body) != string(ann.Body) {
		t.Errorf("Read Patient/a after reindexing: version %d, err %v; body changed: %v", r.Version, err, string(r.Body) != string(ann.Body))
	}
}
