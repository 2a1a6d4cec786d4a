package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/storetest"
	"github.com/kiln-fhir/kiln/store"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(killHelperEnv); path != "" {
		killHelper(path)
		return
	}
	os.Exit(m.Run())
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// openTemp opens a store on a new file in t's temporary directory; the
// caller closes it.
func openTemp(t *testing.T) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "kiln.db"))
}

func openPath(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func create(typ, id string, note string) store.Change {
	return store.Change{Type: typ, ID: id, Version: 1, LastUpdated: t0, Method: store.MethodPost,
		Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"note":%q}`, typ, id, note)}
}

func next(c store.Change, method store.Method) store.Change {
	c.Version++
	c.LastUpdated = c.LastUpdated.Add(time.Second)
	c.Method = method
	if method == store.MethodDelete {
		c.Body = nil
	} else {
		c.Body = fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"version":%d}`, c.Type, c.ID, c.Version)
	}
	return c
}

// checkStored expects every change to be readable by VRead, and the last
// change of each resource to be what Read answers.
func checkStored(t *testing.T, s *Store, changes []store.Change) {
	t.Helper()
	latest := map[[2]string]store.Change{}
	for _, c := range changes {
		latest[[2]string{c.Type, c.ID}] = c
		r, err := s.VRead(context.Background(), c.Type, c.ID, c.Version)
		if (err != nil) != (c.Method == store.MethodDelete) || !bytes.Equal(r.Body, c.Body) ||
			r.Method != c.Method || r.LastUpdated.UnixMicro() != c.LastUpdated.UnixMicro() {
			t.Errorf("VRead %s/%s/_history/%d = %+v, %v", c.Type, c.ID, c.Version, r, err)
		}
	}
	for _, c := range latest {
		r, err := s.Read(context.Background(), c.Type, c.ID)
		if (err != nil) != (c.Method == store.MethodDelete) || r.Version != c.Version {
			t.Errorf("Read %s/%s = version %d, %v; want version %d", c.Type, c.ID, r.Version, err, c.Version)
		}
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	s := openPath(t, path)

	a := create("Patient", "a", "")
	a2 := next(a, store.MethodPut)
	a3 := next(a2, store.MethodDelete)
	b := create("Observation", "b", "")
	written := []store.Change{a, b, a2, a3}
	for _, c := range written[:2] {
		if err := s.Commit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(context.Background(), a2, a3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = openPath(t, path)
	defer s.Close()
	checkStored(t, s, written)
	page, err := s.History(context.Background(), store.HistoryQuery{Count: 10})
	if err != nil || page.Total != 4 || len(page.Versions) != 4 || page.Versions[0].Version != 3 {
		t.Errorf("History after reopen: %+v, %v", page, err)
	}
	// The reopened store keeps counting versions where it left off.
	if err := s.Commit(context.Background(), next(a3, store.MethodPut)); err != nil {
		t.Errorf("update after reopen: %v", err)
	}
}

// TestGroupCommitBatch queues calls before the writer starts, so that they
// meet in one batch, and checks that each call is answered on its own: a
// call that loses its compare-and-set, even to an earlier call of the same
// batch, rolls back to its savepoint and leaves the others committed.
func TestGroupCommitBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	s, err := open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d, e := create("Patient", "a", ""), create("Patient", "b", ""), create("Patient", "c", ""),
		create("Patient", "d", ""), create("Patient", "e", "")
	calls := []struct {
		changes []store.Change
		index   int // of the conflict; -1: none
	}{
		{[]store.Change{a}, -1},
		{[]store.Change{b}, -1},
		{[]store.Change{create("Patient", "a", "again")}, 0},
		{[]store.Change{c}, -1},
		{[]store.Change{d, create("Patient", "b", "again")}, 1},
		{[]store.Change{e, next(e, store.MethodPut)}, -1},
	}
	results := make([]chan error, len(calls))
	for i, call := range calls {
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.Commit(context.Background(), call.changes...) }()
		// Wait until the call is queued, so the batch keeps this order.
		for len(s.w.queue) != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	go s.w.run()
	for i, call := range calls {
		err := <-results[i]
		var ce *store.ConflictError
		switch {
		case call.index < 0 && err != nil:
			t.Errorf("call %d: %v", i, err)
		case call.index >= 0 && (!errors.As(err, &ce) || ce.Index != call.index || ce.Current != 1):
			t.Errorf("call %d: error %v, want a conflict at change %d with current 1", i, err, call.index)
		}
	}
	if n := s.w.batches.Load(); n != 1 {
		t.Errorf("%d calls took %d transactions, want 1", len(calls), n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openPath(t, path)
	defer s.Close()
	checkStored(t, s, []store.Change{a, b, c, e, next(e, store.MethodPut)})
	if _, err := s.Read(context.Background(), "Patient", "d"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Patient/d of a conflicting call: %v, want ErrNotFound", err)
	}
}

// TestGroupCommitConcurrent: concurrent callers share transactions, and
// every acknowledged write is in the file after reopening it.
func TestGroupCommitConcurrent(t *testing.T) {
	const writers, each = 16, 25
	path := filepath.Join(t.TempDir(), "kiln.db")
	s := openPath(t, path)
	written := make([][]store.Change, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c := create("Observation", fmt.Sprintf("w%d-%d", w, i), "")
				if err := s.Commit(context.Background(), c); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				written[w] = append(written[w], c)
			}
		}()
	}
	wg.Wait()
	batches := s.w.batches.Load()
	t.Logf("%d commits in %d transactions", writers*each, batches)
	if batches >= writers*each {
		t.Errorf("%d concurrent commits took %d transactions: no group commit", writers*each, batches)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPath(t, path)
	defer s.Close()
	for _, w := range written {
		checkStored(t, s, w)
	}
}

// TestCommitWithdrawn: a caller whose context ends while its call waits in
// the queue gets the context error, and the call is never applied.
func TestCommitWithdrawn(t *testing.T) {
	s, err := open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Commit(ctx, create("Patient", "a", "")) }()
	for len(s.w.queue) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Commit: %v, want context.Canceled", err)
	}
	go s.w.run()
	defer s.Close()
	if err := s.Commit(context.Background(), create("Patient", "b", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background(), "Patient", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("withdrawn create: Read %v, want ErrNotFound", err)
	}
}

func TestClosed(t *testing.T) {
	s := openTemp(t)
	if err := s.Commit(context.Background(), create("Patient", "a", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Read":    func() error { _, err := s.Read(ctx, "Patient", "a"); return err },
		"VRead":   func() error { _, err := s.VRead(ctx, "Patient", "a", 1); return err },
		"Commit":  func() error { return s.Commit(ctx, create("Patient", "b", "")) },
		"History": func() error { _, err := s.History(ctx, store.HistoryQuery{Count: 1}); return err },
		"Ping":    func() error { return s.Ping(ctx) },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
}

// TestTwoStoresOneFile stands in for two processes on one file: SQLite's
// write lock, taken by BEGIN IMMEDIATE before the compare-and-set, keeps
// them from both winning.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	stores := []*Store{openPath(t, path), openPath(t, path)}
	defer stores[0].Close()
	defer stores[1].Close()
	const rounds = 20
	for i := range rounds {
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for j, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = s.Commit(context.Background(), create("Patient", fmt.Sprint(i), fmt.Sprint(j)))
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v and %v, want exactly one winner", i, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, store.ErrVersionConflict) {
				t.Errorf("round %d: loser got %v, want ErrVersionConflict", i, err)
			}
		}
	}
}

// TestSettings guards what durability and concurrency rest on: WAL,
// synchronous=FULL and a busy timeout on the writer, read-only mapped
// readers.
func TestSettings(t *testing.T) {
	s, err := open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	// Before run starts, the test may use the writer's connection.
	pragma := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, name string) string {
		var v string
		if err := q.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	for _, c := range []struct{ conn, name, got, want string }{
		{"writer", "journal_mode", pragma(s.w.conn, "journal_mode"), "wal"},
		{"writer", "synchronous", pragma(s.w.conn, "synchronous"), "2"}, // FULL
		{"writer", "busy_timeout", pragma(s.w.conn, "busy_timeout"), "5000"},
		{"writer", "cache_size", pragma(s.w.conn, "cache_size"), "-65536"},
		{"reader", "query_only", pragma(s.rdb, "query_only"), "1"},
		{"reader", "mmap_size", pragma(s.rdb, "mmap_size"), fmt.Sprint(maxMmap)},
	} {
		if c.got != c.want {
			t.Errorf("%s PRAGMA %s = %s, want %s", c.conn, c.name, c.got, c.want)
		}
	}
	go s.w.run()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCommitRejectsMalformedChanges(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ok := create("Patient", "ok", "")
	for _, tc := range []struct {
		name   string
		change func(c *store.Change)
	}{
		{"no type", func(c *store.Change) { c.Type = "" }},
		{"no id", func(c *store.Change) { c.ID = "" }},
		{"version 0", func(c *store.Change) { c.Version = 0 }},
		{"unknown method", func(c *store.Change) { c.Method = "PATCH" }},
		{"empty body", func(c *store.Change) { c.Body = nil }},
		{"delete with body", func(c *store.Change) { c.Method = store.MethodDelete }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := create("Patient", "bad", "")
			tc.change(&bad)
			err := s.Commit(context.Background(), ok, bad)
			if err == nil || errors.Is(err, store.ErrVersionConflict) {
				t.Errorf("Commit: %v, want a validation error", err)
			}
			if _, err := s.Read(context.Background(), "Patient", "ok"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the valid change of a rejected call was written: %v", err)
			}
		})
	}
}

// TestCursorBoundToQuery: a cursor only continues the query that issued it.
func TestCursorBoundToQuery(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	for i := range 3 {
		for _, typ := range []string{"Patient", "Observation"} {
			if err := s.Commit(context.Background(), create(typ, fmt.Sprint(i), "")); err != nil {
				t.Fatal(err)
			}
		}
	}
	page, err := s.History(context.Background(), store.HistoryQuery{Type: "Patient", Count: 1})
	if err != nil || page.Next == "" {
		t.Fatalf("History: %+v, %v", page, err)
	}
	for _, q := range []store.HistoryQuery{
		{Type: "Observation", Count: 1, Cursor: page.Next},
		{Count: 1, Cursor: page.Next},
		{Type: "Patient", Since: t0, Count: 1, Cursor: page.Next},
	} {
		if _, err := s.History(context.Background(), q); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("cursor of Patient history used for %+v: %v, want ErrInvalidCursor", q, err)
		}
	}
	// A different page size is the same query.
	if _, err := s.History(context.Background(), store.HistoryQuery{Type: "Patient", Count: 5, Cursor: page.Next}); err != nil {
		t.Errorf("same query, other count: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	if err := openPath(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(context.Background(), Config{Path: path}); err == nil {
		s.Close()
		t.Error("Open accepted a file with a newer schema")
	}
}

// TestHistoryPlans guards the history statements: each names its index
// (Open fails if one is missing), and none may sort its matches or read
// the table to count.
func TestHistoryPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	for level := range 3 {
		for _, since := range []bool{false, true} {
			for _, at := range []bool{false, true} {
				sh := historyShape{level: level, since: since, at: at}
				for kind, q := range map[string]string{"page": sh.pageSQL(), "count": sh.countSQL()} {
					plan := explain(t, s, q)
					t.Logf("%+v %s: %s", sh, kind, plan)
					// Instance counts read one resource's rows; fine.
					if kind == "count" && !at && level < 2 && !strings.Contains(plan, "COVERING INDEX") {
						t.Errorf("%+v %s reads the table: %s", sh, kind, plan)
					}
					if strings.Contains(plan, "TEMP B-TREE") {
						t.Errorf("%+v %s sorts: %s", sh, kind, plan)
					}
				}
			}
		}
	}
}

// explain is the query plan of q with every parameter bound to NULL.
func explain(t *testing.T, s *Store, q string) string {
	t.Helper()
	return strings.ReplaceAll(explainArgs(t, s, frag{q, make([]any, strings.Count(q, "?"))}), "\n", "; ")
}

const killHelperEnv = "KILN_SQLITE_KILL_HELPER"

// killHelper runs in a child process of TestKilled: concurrent writers
// commit creates and print the id of each acknowledged one, until the
// parent kills the process.
func killHelper(path string) {
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Commit(context.Background(), create("Observation", id, "")); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Println(id)
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestKilled: every Commit acknowledged before kill -9 is in the file when
// it is opened again.
func TestKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var acked []string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		acked = append(acked, lines.Text())
		if len(acked) == 500 {
			cmd.Process.Kill() // SIGKILL: no deferred code, no Close
		}
	}
	cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("the helper acknowledged only %d commits", len(acked))
	}

	s := openPath(t, path)
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Read(context.Background(), "Observation", id); err != nil {
			t.Errorf("acknowledged Observation/%s: %v", id, err)
		}
	}
	t.Logf("%d acknowledged commits survived kill -9", len(acked))
}
