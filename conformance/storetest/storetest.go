// Package storetest is the behaviour suite every Kiln storage backend runs,
// so that all backends answer the store contract (store/store.go) the same
// way. A backend's test file is a few lines:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openEmpty(t) })
//	}
//
// It lives in a non-test file so that every backend package can import it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// Run runs the suite. open must return a fresh, empty store for each
// subtest; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"Update", testUpdate},
		{"NotFound", testNotFound},
		{"Conflict", testConflict},
		{"Delete", testDelete},
		{"Resurrect", testResurrect},
		{"CommitAllOrNothing", testCommitAllOrNothing},
		{"CommitSameResourceTwice", testCommitSameResourceTwice},
		{"ConcurrentCompareAndSet", testConcurrentCompareAndSet},
		{"ConcurrentCreates", testConcurrentCreates},
		{"History", testHistory},
		{"HistoryStablePaging", testHistoryStablePaging},
		{"HistoryInvalidCursor", testHistoryInvalidCursor},
		{"BodyBytes", testBodyBytes},
		{"LastUpdatedPrecision", testLastUpdatedPrecision},
		{"CaseSensitive", testCaseSensitive},
		{"Ping", testPing},
		{"ContextCanceled", testContextCanceled},
		{"Search", testSearch},
		{"SearchUnsupported", testSearchUnsupported},
		{"SearchSort", testSearchSort},
		{"SearchTotals", testSearchTotals},
		{"SearchChanges", testSearchChanges},
		{"SearchPagingWhileWriting", testSearchPagingWhileWriting},
		{"SearchInvalidCursor", testSearchInvalidCursor},
		{"SearchPagingBack", testSearchPagingBack},
		{"SearchPagingBackWhileWriting", testSearchPagingBackWhileWriting},
		{"Records", testRecords},
		{"Scan", testScan},
		{"Jobs", testJobs},
		{"Reindex", testReindex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.test(t, s)
		})
	}
}

// base is the suite's clock; tick(n) is n seconds after it.
var base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func tick(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

func body(typ, id string, version int64, note string) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"},"note":%q}`,
		typ, id, version, note)
}

// put is a create (version 1, POST) or an update (PUT).
func put(typ, id string, version int64, at time.Time) store.Change {
	m := store.MethodPut
	if version == 1 {
		m = store.MethodPost
	}
	return store.Change{Type: typ, ID: id, Version: version, LastUpdated: at, Method: m,
		Body: body(typ, id, version, "")}
}

func del(typ, id string, version int64, at time.Time) store.Change {
	return store.Change{Type: typ, ID: id, Version: version, LastUpdated: at, Method: store.MethodDelete}
}

// withBody returns c with a body that tells it apart from other writers of
// the same version.
func withBody(c store.Change, note string) store.Change {
	c.Body = body(c.Type, c.ID, c.Version, note)
	return c
}

// stored is the version a change must read back as.
func stored(c store.Change) store.Resource {
	return store.Resource{Type: c.Type, ID: c.ID, Version: c.Version, LastUpdated: c.LastUpdated,
		Method: c.Method, Body: c.Body}
}

// members is a HistoryQuery.Only of "Type/id" and "Type/id/_history/n"
// references; never nil.
func members(refs ...string) []store.VersionRef {
	out := []store.VersionRef{}
	for _, r := range refs {
		parts := strings.Split(r, "/")
		m := store.VersionRef{Type: parts[0], ID: parts[1]}
		if len(parts) == 4 {
			fmt.Sscan(parts[3], &m.Version)
		}
		out = append(out, m)
	}
	return out
}

func key(r store.Resource) string { return fmt.Sprintf("%s/%s/_history/%d", r.Type, r.ID, r.Version) }

func commit(t *testing.T, s store.Store, changes ...store.Change) {
	t.Helper()
	if err := s.Commit(t.Context(), changes...); err != nil {
		t.Fatalf("Commit(%d changes): %v", len(changes), err)
	}
}

// commitEach commits changes one Commit each, for setups whose subject is
// not atomicity: a backend without multi-document transactions
// (store.ErrNoTransactions) runs them too.
func commitEach(t *testing.T, s store.Store, changes ...store.Change) {
	t.Helper()
	for _, c := range changes {
		commit(t, s, c)
	}
}

// skipNoTransactions skips the test when err is store.ErrNoTransactions,
// after checking that the refused commit wrote none of changes: refusing
// is allowed, half-applying never.
func skipNoTransactions(t *testing.T, s store.Store, err error, changes []store.Change) {
	t.Helper()
	if !errors.Is(err, store.ErrNoTransactions) {
		return
	}
	for _, c := range changes {
		// A version that existed before (the loser's rival) is not the
		// change's own unless it reads back as the change.
		got, err := s.VRead(t.Context(), c.Type, c.ID, c.Version)
		if (err == nil || errors.Is(err, store.ErrGone)) && diff(got, stored(c)) == "" {
			t.Errorf("a refused Commit wrote %s", key(stored(c)))
		}
	}
	t.Skipf("the backend refuses commits of several changes (%v): atomic multi-change commits are tested where transactions exist", err)
}

// diff compares a read-back version with the expected one, field by field;
// instants are compared at microsecond precision, the precision the store
// keeps, and a delete must come back with a nil body.
func diff(got, want store.Resource) string {
	var d []string
	if got.Type != want.Type || got.ID != want.ID || got.Version != want.Version {
		d = append(d, fmt.Sprintf("got %s, want %s", key(got), key(want)))
	}
	if got.LastUpdated.UnixMicro() != want.LastUpdated.UnixMicro() {
		d = append(d, fmt.Sprintf("LastUpdated %s, want %s",
			got.LastUpdated.Format(time.RFC3339Nano), want.LastUpdated.Format(time.RFC3339Nano)))
	}
	if got.Method != want.Method {
		d = append(d, fmt.Sprintf("Method %q, want %q", got.Method, want.Method))
	}
	if !bytes.Equal(got.Body, want.Body) {
		d = append(d, fmt.Sprintf("Body %.80q, want %.80q", got.Body, want.Body))
	}
	if want.Body == nil && got.Body != nil {
		d = append(d, "Body is not nil")
	}
	return strings.Join(d, "; ")
}

func checkRead(t *testing.T, s store.Store, want store.Resource) {
	t.Helper()
	got, err := s.Read(t.Context(), want.Type, want.ID)
	checkAnswer(t, "Read "+key(want), got, err, want)
}

func checkVRead(t *testing.T, s store.Store, want store.Resource) {
	t.Helper()
	got, err := s.VRead(t.Context(), want.Type, want.ID, want.Version)
	checkAnswer(t, "VRead "+key(want), got, err, want)
}

// checkAnswer expects want, with ErrGone when want is a delete.
func checkAnswer(t *testing.T, op string, got store.Resource, err error, want store.Resource) {
	t.Helper()
	switch {
	case want.Deleted() && !errors.Is(err, store.ErrGone):
		t.Errorf("%s: error %v, want ErrGone", op, err)
	case !want.Deleted() && err != nil:
		t.Errorf("%s: %v", op, err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("%s: %s", op, d)
	}
}

func checkReadNotFound(t *testing.T, s store.Store, typ, id string) {
	t.Helper()
	_, err := s.Read(t.Context(), typ, id)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		t.Errorf("Read %s/%s: error %v, want ErrNotFound", typ, id, err)
	}
}

func checkVReadNotFound(t *testing.T, s store.Store, typ, id string, version int64) {
	t.Helper()
	_, err := s.VRead(t.Context(), typ, id, version)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		t.Errorf("VRead %s/%s/_history/%d: error %v, want ErrNotFound", typ, id, version, err)
	}
}

// checkConflict expects a *store.ConflictError for change index with the
// given current version (current < 0: any).
func checkConflict(t *testing.T, err error, index int, current int64) {
	t.Helper()
	var ce *store.ConflictError
	switch {
	case !errors.Is(err, store.ErrVersionConflict):
		t.Errorf("Commit: error %v, want ErrVersionConflict", err)
	case !errors.As(err, &ce):
		t.Errorf("Commit: error %v is not a *store.ConflictError", err)
	case ce.Index != index || (current >= 0 && ce.Current != current):
		t.Errorf("Commit: conflict at change %d with current %d, want change %d with current %d",
			ce.Index, ce.Current, index, current)
	}
}

func testCreateRead(t *testing.T, s store.Store) {
	c := put("Patient", "p1", 1, tick(1))
	commit(t, s, c)
	checkRead(t, s, stored(c))
	checkVRead(t, s, stored(c))
}

func testUpdate(t *testing.T, s store.Store) {
	var written []store.Change
	for v := int64(1); v <= 4; v++ {
		c := withBody(put("Observation", "o1", v, tick(int(v))), fmt.Sprintf("value %d", v))
		commit(t, s, c)
		written = append(written, c)
		checkRead(t, s, stored(c))
	}
	for _, c := range written {
		checkVRead(t, s, stored(c))
	}
}

func testNotFound(t *testing.T, s store.Store) {
	commitEach(t, s, put("Patient", "p1", 1, tick(1)), del("Patient", "p2", 1, tick(2)))
	for _, tc := range []struct {
		name, typ, id string
		version       int64
		read          bool // Read instead of VRead
	}{
		{"read never written", "Patient", "nobody", 0, true},
		{"read other type", "Observation", "p1", 0, true},
		{"vread never written", "Patient", "nobody", 1, false},
		{"vread future version", "Patient", "p1", 2, false},
		{"vread version 0", "Patient", "p1", 0, false},
		{"vread past a delete", "Patient", "p2", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.read {
				checkReadNotFound(t, s, tc.typ, tc.id)
			} else {
				checkVReadNotFound(t, s, tc.typ, tc.id, tc.version)
			}
		})
	}
}

func testConflict(t *testing.T, s store.Store) {
	for i, tc := range []struct {
		name        string
		setup       []store.Change
		change      store.Change
		wantCurrent int64
	}{
		{"create twice", []store.Change{put("Patient", "x", 1, tick(1))},
			put("Patient", "x", 1, tick(2)), 1},
		{"skip a version", []store.Change{put("Patient", "x", 1, tick(1))},
			put("Patient", "x", 3, tick(2)), 1},
		{"update what does not exist", nil,
			put("Patient", "x", 2, tick(2)), 0},
		{"stale update", []store.Change{put("Patient", "x", 1, tick(1)), put("Patient", "x", 2, tick(2))},
			put("Patient", "x", 2, tick(3)), 2},
		{"stale delete", []store.Change{put("Patient", "x", 1, tick(1)), put("Patient", "x", 2, tick(2))},
			del("Patient", "x", 2, tick(3)), 2},
		{"create over a delete", []store.Change{put("Patient", "x", 1, tick(1)), del("Patient", "x", 2, tick(2))},
			put("Patient", "x", 1, tick(3)), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case on its own id, so cases cannot see each other.
			id := fmt.Sprintf("conflict-%d", i)
			var written []store.Change // written[v-1] is version v
			for _, c := range tc.setup {
				c.ID = id
				if c.Method != store.MethodDelete {
					c = withBody(c, "setup")
				}
				commit(t, s, c)
				written = append(written, c)
			}
			loser := tc.change
			loser.ID = id
			if loser.Method != store.MethodDelete {
				loser = withBody(loser, "loser")
			}
			checkConflict(t, s.Commit(t.Context(), loser), 0, tc.wantCurrent)

			// Nothing of the losing change was written.
			if len(written) == 0 {
				checkReadNotFound(t, s, loser.Type, id)
			} else {
				checkRead(t, s, stored(written[len(written)-1]))
			}
			if loser.Version > tc.wantCurrent {
				checkVReadNotFound(t, s, loser.Type, id, loser.Version)
			} else {
				checkVRead(t, s, stored(written[loser.Version-1]))
			}
		})
	}
}

func testDelete(t *testing.T, s store.Store) {
	c1, c2 := put("Patient", "p1", 1, tick(1)), del("Patient", "p1", 2, tick(2))
	commit(t, s, c1)
	commit(t, s, c2)

	got, err := s.Read(t.Context(), "Patient", "p1")
	if !errors.Is(err, store.ErrGone) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read after delete: error %v, want ErrGone", err)
	}
	if d := diff(got, stored(c2)); d != "" || !got.Deleted() {
		t.Errorf("Read after delete must return the delete version: %s (Deleted %v)", d, got.Deleted())
	}
	checkVRead(t, s, stored(c2)) // ErrGone with the version
	checkVRead(t, s, stored(c1)) // earlier versions stay readable
}

func testResurrect(t *testing.T, s store.Store) {
	steps := []store.Change{
		put("Patient", "p1", 1, tick(1)),
		del("Patient", "p1", 2, tick(2)),
		withBody(put("Patient", "p1", 3, tick(3)), "back"),
		del("Patient", "p1", 4, tick(4)),
		withBody(put("Patient", "p1", 5, tick(5)), "back again"),
	}
	for _, c := range steps {
		commit(t, s, c)
		checkRead(t, s, stored(c))
	}
	for _, c := range steps {
		checkVRead(t, s, stored(c))
	}
}

func testCommitAllOrNothing(t *testing.T, s store.Store) {
	existing := put("Patient", "existing", 1, tick(1))
	commit(t, s, existing)

	for _, pos := range []int{0, 2, 4} {
		t.Run(fmt.Sprintf("conflict at %d", pos), func(t *testing.T) {
			var changes []store.Change
			for i := range 4 {
				changes = append(changes, put("Observation", fmt.Sprintf("o-%d-%d", pos, i), 1, tick(2)))
			}
			changes = append(changes[:pos], append([]store.Change{
				withBody(put("Patient", "existing", 1, tick(2)), "loser"),
			}, changes[pos:]...)...)

			err := s.Commit(t.Context(), changes...)
			skipNoTransactions(t, s, err, changes)
			checkConflict(t, err, pos, 1)
			for i, c := range changes {
				if i != pos {
					checkReadNotFound(t, s, c.Type, c.ID)
				}
			}
			checkRead(t, s, stored(existing))

			// Without the loser the same call goes through whole.
			rest := append(append([]store.Change{}, changes[:pos]...), changes[pos+1:]...)
			commit(t, s, rest...)
			for _, c := range rest {
				checkRead(t, s, stored(c))
			}
		})
	}
}

func testCommitSameResourceTwice(t *testing.T, s store.Store) {
	t.Run("versions in order", func(t *testing.T) {
		steps := []store.Change{
			put("Patient", "a", 1, tick(1)),
			put("Patient", "a", 2, tick(1)),
			del("Patient", "a", 3, tick(1)),
			put("Patient", "a", 4, tick(1)),
		}
		err := s.Commit(t.Context(), steps...)
		skipNoTransactions(t, s, err, steps)
		if err != nil {
			t.Fatalf("Commit(%d changes): %v", len(steps), err)
		}
		for _, c := range steps {
			checkVRead(t, s, stored(c))
		}
		checkRead(t, s, stored(steps[3]))
	})
	t.Run("same version twice", func(t *testing.T) {
		twice := []store.Change{put("Patient", "b", 1, tick(1)), withBody(put("Patient", "b", 1, tick(1)), "again")}
		err := s.Commit(t.Context(), twice...)
		skipNoTransactions(t, s, err, twice)
		checkConflict(t, err, 1, -1)
		checkReadNotFound(t, s, "Patient", "b")
	})
}

func testConcurrentCompareAndSet(t *testing.T, s store.Store) {
	const writers = 20
	for _, tc := range []struct {
		name  string
		setup []store.Change
		next  int64
	}{
		{"create", nil, 1},
		{"update", []store.Change{put("Patient", "update", 1, tick(1))}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.setup {
				commit(t, s, c)
			}
			start := make(chan struct{})
			errs := make([]error, writers)
			changes := make([]store.Change, writers)
			var wg sync.WaitGroup
			for i := range writers {
				changes[i] = withBody(put("Patient", tc.name, tc.next, tick(2)), fmt.Sprintf("writer %d", i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = s.Commit(t.Context(), changes[i])
				}()
			}
			close(start)
			wg.Wait()

			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("writers %d and %d both won version %d", winner, i, tc.next)
				case err == nil:
					winner = i
				default:
					checkConflict(t, err, 0, tc.next)
				}
			}
			if winner < 0 {
				t.Fatalf("no writer won version %d", tc.next)
			}
			checkRead(t, s, stored(changes[winner]))
			checkVReadNotFound(t, s, "Patient", tc.name, tc.next+1)
		})
	}
}

// testConcurrentCreates: many independent writers all succeed, and each
// finds its own write.
func testConcurrentCreates(t *testing.T, s store.Store) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c := put("Observation", fmt.Sprintf("w%d-%d", w, i), 1, tick(i))
				if err := s.Commit(t.Context(), c); err != nil {
					t.Errorf("Commit %s: %v", c.ID, err)
					return
				}
				checkRead(t, s, stored(c))
			}
		}()
	}
	wg.Wait()
	page, err := s.History(t.Context(), store.HistoryQuery{Type: "Observation", Count: 1})
	if err != nil || page.Total != writers*each {
		t.Errorf("History Total = %d, %v; want %d", page.Total, err, writers*each)
	}
}

// historyData is written one change per Commit, in this order; history
// lists it newest first.
var historyData = []store.Change{
	put("Patient", "a", 1, tick(10)),
	put("Patient", "b", 1, tick(20)),
	put("Observation", "o", 1, tick(30)),
	put("Patient", "a", 2, tick(40)),
	del("Patient", "b", 2, tick(50)),
	put("Patient", "a", 3, tick(60)),
	put("Observation", "o", 2, tick(70)),
	put("patient", "a", 1, tick(80)),
	put("Patient", "A", 1, tick(90)),
}

func testHistory(t *testing.T, s store.Store) {
	for _, c := range historyData {
		commit(t, s, c)
	}
	// names of historyData entries, for readable cases
	const (
		a1 = iota
		b1
		o1
		a2
		b2
		a3
		o2
		lowerA1
		upperA1
	)
	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
		want []int // indexes into historyData, newest first
	}{
		{"system", store.HistoryQuery{},
			[]int{upperA1, lowerA1, o2, a3, b2, a2, o1, b1, a1}},
		{"type", store.HistoryQuery{Type: "Patient"},
			[]int{upperA1, a3, b2, a2, b1, a1}},
		{"type is case-sensitive", store.HistoryQuery{Type: "patient"},
			[]int{lowerA1}},
		{"type never written", store.HistoryQuery{Type: "Encounter"}, nil},
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a"},
			[]int{a3, a2, a1}},
		{"instance with delete", store.HistoryQuery{Type: "Patient", ID: "b"},
			[]int{b2, b1}},
		{"instance id is case-sensitive", store.HistoryQuery{Type: "Patient", ID: "A"},
			[]int{upperA1}},
		{"since includes its instant", store.HistoryQuery{Since: tick(50)},
			[]int{upperA1, lowerA1, o2, a3, b2}},
		{"since one microsecond later", store.HistoryQuery{Since: tick(50).Add(time.Microsecond)},
			[]int{upperA1, lowerA1, o2, a3}},
		{"since one nanosecond later", store.HistoryQuery{Since: tick(50).Add(time.Nanosecond)},
			[]int{upperA1, lowerA1, o2, a3}},
		{"since on type", store.HistoryQuery{Type: "Patient", Since: tick(45)},
			[]int{upperA1, a3, b2}},
		{"since on instance", store.HistoryQuery{Type: "Patient", ID: "a", Since: tick(40)},
			[]int{a3, a2}},
		{"since after everything", store.HistoryQuery{Since: tick(100)}, nil},
		// _at: current at some instant of [AtStart, AtEnd).
		{"at a short window", store.HistoryQuery{AtStart: tick(45), AtEnd: tick(46)},
			[]int{a2, o1, b1}},
		{"at, replaced exactly at start is kept", store.HistoryQuery{Type: "Patient", AtStart: tick(50), AtEnd: tick(60)},
			[]int{b2, a2, b1}},
		{"at, written exactly at end is left out", store.HistoryQuery{Type: "Patient", ID: "a", AtStart: tick(55), AtEnd: tick(60)},
			[]int{a2}},
		{"at after everything", store.HistoryQuery{AtStart: tick(100), AtEnd: tick(101)},
			[]int{upperA1, lowerA1, o2, a3, b2}},
		{"at before everything", store.HistoryQuery{AtStart: tick(0), AtEnd: tick(10)}, nil},
		{"at with since", store.HistoryQuery{Since: tick(30), AtStart: tick(45), AtEnd: tick(46)},
			[]int{a2, o1}},
		// Only (history _list): the versions of the members alone.
		{"only, every version of each member", store.HistoryQuery{Only: members("Patient/a", "Observation/o")},
			[]int{o2, a3, a2, o1, a1}},
		{"only, one version", store.HistoryQuery{Only: members("Patient/a/_history/2", "Observation/o/_history/1")},
			[]int{a2, o1}},
		{"only, a member and one version of it", store.HistoryQuery{Only: members("Patient/a/_history/2", "Patient/a")},
			[]int{a3, a2, a1}},
		{"only, a deleted member", store.HistoryQuery{Only: members("Patient/b")},
			[]int{b2, b1}},
		{"only, on type", store.HistoryQuery{Type: "Patient", Only: members("Patient/a", "Observation/o")},
			[]int{a3, a2, a1}},
		{"only, on instance, a member", store.HistoryQuery{Type: "Patient", ID: "a", Only: members("Patient/a/_history/3", "Patient/b")},
			[]int{a3}},
		{"only, on instance, not a member", store.HistoryQuery{Type: "Patient", ID: "b", Only: members("Patient/a")}, nil},
		{"only is case-sensitive", store.HistoryQuery{Only: members("Patient/A")},
			[]int{upperA1}},
		{"only, never written", store.HistoryQuery{Only: members("Patient/zz", "Patient/a/_history/9")}, nil},
		{"only, empty", store.HistoryQuery{Only: members()}, nil},
		{"only with since", store.HistoryQuery{Since: tick(50), Only: members("Patient/a", "Patient/b")},
			[]int{a3, b2}},
		{"only with at", store.HistoryQuery{AtStart: tick(45), AtEnd: tick(46), Only: members("Patient/a", "Patient/b")},
			[]int{a2, b1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []store.Resource
			for _, i := range tc.want {
				want = append(want, stored(historyData[i]))
			}
			for _, count := range []int{100, 2, 1} {
				q := tc.q
				q.Count = count
				got := allPages(t, s, q, len(want))
				if len(got) != len(want) {
					t.Errorf("count %d: got %d versions %v, want %d %v", count, len(got), keys(got), len(want), keys(want))
					continue
				}
				for i := range want {
					if d := diff(got[i], want[i]); d != "" {
						t.Errorf("count %d: entry %d: %s", count, i, d)
					}
				}
			}
		})
	}
}

// allPages follows Next to the end, checking page sizes, that every page
// reports the same Total, and that the last page and only the last page has
// no Next.
func allPages(t *testing.T, s store.Store, q store.HistoryQuery, total int) []store.Resource {
	t.Helper()
	var all []store.Resource
	wantPages := max(1, (total+q.Count-1)/q.Count)
	for n := 1; ; n++ {
		page, err := s.History(t.Context(), q)
		if err != nil {
			t.Fatalf("History page %d (count %d): %v", n, q.Count, err)
		}
		if page.Total != total {
			t.Errorf("page %d (count %d): Total %d, want %d", n, q.Count, page.Total, total)
		}
		if len(page.Versions) > q.Count {
			t.Errorf("page %d: %d versions, more than count %d", n, len(page.Versions), q.Count)
		}
		all = append(all, page.Versions...)
		if page.Next == "" {
			if n != wantPages {
				t.Errorf("count %d: %d pages, want %d", q.Count, n, wantPages)
			}
			return all
		}
		if n >= wantPages {
			t.Fatalf("count %d: page %d of %d still has a Next cursor", q.Count, n, wantPages)
		}
		q.Cursor = page.Next
	}
}

func keys(rs []store.Resource) []string {
	var k []string
	for _, r := range rs {
		k = append(k, key(r))
	}
	return k
}

// testHistoryStablePaging writes between every two pages and expects the
// pages to list exactly what the history held when the first page was read:
// nothing shifted, duplicated or added, and the same Total on every page.
func testHistoryStablePaging(t *testing.T, s store.Store) {
	pv := int64(0) // latest version of Patient/p
	for i := range 5 {
		pv++
		commit(t, s, put("Patient", "p", pv, tick(i)))
		commit(t, s, put("Encounter", fmt.Sprintf("e%d", i), 1, tick(i)))
	}
	n := 0
	writeMore := func(t *testing.T) {
		n++
		pv++
		commit(t, s, put("Patient", "p", pv, tick(100+n)))
		commit(t, s, put("Patient", fmt.Sprintf("new%d", n), 1, tick(100+n)))
	}

	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
	}{
		{"instance", store.HistoryQuery{Type: "Patient", ID: "p"}},
		{"type", store.HistoryQuery{Type: "Patient"}},
		{"system", store.HistoryQuery{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Count = 1000
			before, err := s.History(t.Context(), q)
			if err != nil || before.Next != "" || len(before.Versions) < 5 || before.Total != len(before.Versions) {
				t.Fatalf("whole history: %d versions, Total %d, Next %q, %v", len(before.Versions), before.Total, before.Next, err)
			}

			q.Count = 2
			var got []store.Resource
			for page := 1; ; page++ {
				p, err := s.History(t.Context(), q)
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				if p.Total != before.Total {
					t.Errorf("page %d: Total %d, want %d (the versions there were when paging began)", page, p.Total, before.Total)
				}
				got = append(got, p.Versions...)
				writeMore(t)
				if p.Next == "" {
					break
				}
				if page > len(before.Versions) {
					t.Fatal("paging does not end")
				}
				q.Cursor = p.Next
			}
			if g, w := strings.Join(keys(got), " "), strings.Join(keys(before.Versions), " "); g != w {
				t.Errorf("pages with writes in between:\n got %s\nwant %s", g, w)
			}

			q.Cursor, q.Count = "", 1
			fresh, err := s.History(t.Context(), q)
			if err != nil || fresh.Total <= before.Total {
				t.Errorf("a new paging: Total %d, %v; want more than %d", fresh.Total, err, before.Total)
			}
		})
	}
}

func testHistoryInvalidCursor(t *testing.T, s store.Store) {
	for i := range 3 {
		commit(t, s, put("Patient", fmt.Sprintf("p%d", i), 1, tick(i)))
	}
	q := store.HistoryQuery{Count: 1}
	first, err := s.History(t.Context(), q)
	if err != nil || first.Next == "" {
		t.Fatalf("first page: Next %q, %v", first.Next, err)
	}
	valid := first.Next
	q.Cursor = valid
	if _, err := s.History(t.Context(), q); err != nil {
		t.Fatalf("the cursor the store issued is refused: %v", err)
	}

	// A cursor of one member list is not one of another's (history _list).
	only := store.HistoryQuery{Count: 1, Only: members("Patient/p0", "Patient/p1")}
	p, err := s.History(t.Context(), only)
	if err != nil || p.Next == "" {
		t.Fatalf("first page of two members: Next %q, %v", p.Next, err)
	}
	other := only
	other.Only, other.Cursor = members("Patient/p0", "Patient/p2"), p.Next
	if _, err := s.History(t.Context(), other); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("a cursor of other members: %v, want ErrInvalidCursor", err)
	}

	mid := len(valid) / 2
	swap := byte('A')
	if valid[mid] == 'A' {
		swap = 'B'
	}
	for _, tc := range []struct{ name, cursor string }{
		{"garbage", "not a cursor"},
		{"base64 garbage", "QUFBQUFBQUFBQUFB"},
		{"one character changed", valid[:mid] + string(swap) + valid[mid+1:]},
		{"cut short", valid[:mid]},
		{"extended", valid + "AAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q.Cursor = tc.cursor
			_, err := s.History(t.Context(), q)
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Errorf("History with cursor %q: error %v, want ErrInvalidCursor", tc.cursor, err)
			}
		})
	}
}

func testBodyBytes(t *testing.T, s store.Store) {
	big := bytes.Repeat([]byte(`{"a":"0123456789abcdef"},`), 1<<16/25*16) // about 1 MiB
	for i, b := range [][]byte{
		[]byte(`{"resourceType":"Observation","valueQuantity":{"value":1.50,"unit":"mg"}}`),
		[]byte("{\"name\":\"Zoë 日本 \\u00e9\",\n  \"x\" : [ 1 ,2 ]  }\n"),
		[]byte("{\"nul\":\"a\x00b\"}"),
		{0xff, 0xfe, 0x00, 0x01, '{', '}'},
		[]byte(" "),
		big,
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := put("Binary", fmt.Sprintf("b%d", i), 1, tick(i))
			c.Body = b
			commit(t, s, c)
			checkRead(t, s, stored(c))
			checkVRead(t, s, stored(c))
			page, err := s.History(t.Context(), store.HistoryQuery{Type: c.Type, ID: c.ID, Count: 1})
			if err != nil || len(page.Versions) != 1 {
				t.Fatalf("History: %v, %v", keys(page.Versions), err)
			}
			if d := diff(page.Versions[0], stored(c)); d != "" {
				t.Errorf("History: %s", d)
			}
		})
	}
}

func testLastUpdatedPrecision(t *testing.T, s store.Store) {
	for i, at := range []time.Time{
		time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC),
		time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("UTC-5", -5*3600)),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 1000, time.UTC),
	} {
		t.Run(at.Format(time.RFC3339Nano), func(t *testing.T) {
			c := put("Patient", fmt.Sprintf("t%d", i), 1, at)
			commit(t, s, c)
			want := at.UnixMicro()
			r, err := s.Read(t.Context(), c.Type, c.ID)
			if err != nil || r.LastUpdated.UnixMicro() != want {
				t.Errorf("Read: LastUpdated %s, %v; want %s", r.LastUpdated.Format(time.RFC3339Nano), err, at.Format(time.RFC3339Nano))
			}
			r, err = s.VRead(t.Context(), c.Type, c.ID, 1)
			if err != nil || r.LastUpdated.UnixMicro() != want {
				t.Errorf("VRead: LastUpdated %s, %v; want %s", r.LastUpdated.Format(time.RFC3339Nano), err, at.Format(time.RFC3339Nano))
			}
			page, err := s.History(t.Context(), store.HistoryQuery{Type: c.Type, ID: c.ID, Count: 1})
			if err != nil || len(page.Versions) != 1 || page.Versions[0].LastUpdated.UnixMicro() != want {
				t.Errorf("History: %v, %v; want LastUpdated %s", page.Versions, err, at.Format(time.RFC3339Nano))
			}
		})
	}
}

func testCaseSensitive(t *testing.T, s store.Store) {
	var written []store.Change
	for _, tid := range [][2]string{{"Patient", "a"}, {"Patient", "A"}, {"patient", "a"}, {"PATIENT", "a"}} {
		c := withBody(put(tid[0], tid[1], 1, tick(1)), tid[0]+"/"+tid[1])
		// Each is a create (version 1): a store that folded case would
		// answer a version conflict here.
		commit(t, s, c)
		written = append(written, c)
	}
	for _, c := range written {
		checkRead(t, s, stored(c))
	}
	checkReadNotFound(t, s, "Patient", "b")
	checkReadNotFound(t, s, "pAtient", "a")
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	existing := put("Patient", "existing", 1, tick(1))
	commit(t, s, existing)

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			for _, op := range []struct {
				name string
				call func() error
			}{
				{"Read", func() error { _, err := s.Read(ctx, "Patient", "existing"); return err }},
				{"VRead", func() error { _, err := s.VRead(ctx, "Patient", "existing", 1); return err }},
				{"Commit", func() error { return s.Commit(ctx, put("Patient", "new-"+tc.name, 1, tick(2))) }},
				{"History", func() error { _, err := s.History(ctx, store.HistoryQuery{Count: 10}); return err }},
				{"Ping", func() error { return s.Ping(ctx) }},
			} {
				done := make(chan error, 1)
				go func() { done <- op.call() }()
				select {
				case err := <-done:
					if !errors.Is(err, tc.want) {
						t.Errorf("%s with a %s context: error %v, want %v", op.name, tc.name, err, tc.want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s with a %s context did not return", op.name, tc.name)
				}
			}
			// A Commit refused for its context wrote nothing.
			checkReadNotFound(t, s, "Patient", "new-"+tc.name)
			checkRead(t, s, stored(existing))
		})
	}
}
