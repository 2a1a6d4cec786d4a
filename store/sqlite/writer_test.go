package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// TestGroupCommitIndexRows: the writer buffers the index rows of a whole
// batch and inserts them just before COMMIT (index.go). Queued as one
// batch, these calls check that the rows end up exactly as if each call
// had written its own: a call rolled back to its savepoint leaves none,
// a later call of the batch that updates or deletes a resource replaces
// the rows an earlier call buffered for it (even when that later call is
// itself rolled back), and a call that writes two versions of a resource
// keeps the second version's rows only.
func TestGroupCommitIndexRows(t *testing.T) {
	s, err := open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tagged := func(c store.Change, code string) store.Change {
		c.Index = []search.Entry{{Param: "identifier", Type: search.Token, System: "urn:test", Code: code}}
		return c
	}
	a1 := tagged(create("Patient", "a", ""), "a1")
	a2 := tagged(next(a1, store.MethodPut), "a2")
	d1 := tagged(create("Patient", "d", ""), "d1")
	d2 := tagged(next(d1, store.MethodPut), "d2")
	f1 := tagged(create("Patient", "f", ""), "f1")
	calls := []struct {
		changes  []store.Change
		conflict bool
	}{
		{[]store.Change{a1}, false},
		{[]store.Change{a2}, false}, // a's rows are buffered by call 0
		{[]store.Change{tagged(create("Patient", "c", ""), "c1"), create("Patient", "a", "again")}, true},
		{[]store.Change{d1, d2}, false},
		{[]store.Change{tagged(next(a2, store.MethodPut), "a3"), create("Patient", "d", "again")}, true},
		{[]store.Change{f1}, false},
		{[]store.Change{next(f1, store.MethodDelete)}, false},
		{[]store.Change{tagged(create("Patient", "e", ""), "e1")}, false},
	}
	results := make([]chan error, len(calls))
	for i, call := range calls {
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.Commit(context.Background(), call.changes...) }()
		for len(s.w.queue) != i+1 { // queued in this order, one batch
			time.Sleep(time.Millisecond)
		}
	}
	go s.w.run()
	for i, call := range calls {
		err := <-results[i]
		var ce *store.ConflictError
		if call.conflict != errors.As(err, &ce) || (!call.conflict && err != nil) {
			t.Errorf("call %d: %v, want conflict %v", i, err, call.conflict)
		}
	}
	if n := s.w.batches.Load(); n != 1 {
		t.Errorf("%d calls took %d transactions, want 1", len(calls), n)
	}

	rows, err := s.rdb.Query(`SELECT c.id || ':' || t.code FROM ix_token AS t JOIN current AS c ON c.rid = t.rid
		WHERE t.pid IN (SELECT pid FROM params WHERE name = 'identifier') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if want := []string{"a:a2", "d:d2", "e:e1"}; !slices.Equal(got, want) || rows.Err() != nil {
		t.Errorf("identifier rows %q (%v), want %q", got, rows.Err(), want)
	}
}
