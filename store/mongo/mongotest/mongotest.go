// Package mongotest gives tests a MongoDB wire-protocol server: the one named
// by KILN_TEST_MONGO_URI when set, otherwise FerretDB (v1, the embeddable
// github.com/FerretDB/FerretDB/ferretdb package with its SQLite handler)
// started in-process on a random loopback port, its data in a temporary
// directory. Tests of any package can use it.
package mongotest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // FerretDB's own SQLite driver, for idIndexes
)

// EnvURI names the environment variable that points tests at an external
// MongoDB (a replica set, to test transactions).
const EnvURI = "KILN_TEST_MONGO_URI"

// Server is a running MongoDB-compatible server for one test.
type Server struct {
	// URI is the connection string (mongodb://host:port/).
	URI string
	// FerretDB reports whether the server is the in-process FerretDB, which
	// lacks multi-document transactions, Decimal128 and some operators.
	FerretDB bool

	mu      sync.Mutex
	addr    string // host:port, kept across Stop and Start
	dir     string
	cancel  context.CancelFunc
	stopped chan struct{}
}

// Start returns a server for t; the in-process one stops when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return &Server{URI: uri}
	}
	s := &Server{FerretDB: true, dir: t.TempDir(), addr: "127.0.0.1:0"}
	if err := s.run(); err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) run() error {
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: s.addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + s.dir + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fmt.Errorf("start FerretDB: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = f.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		idIndexes(ctx, s.dir)
	}()
	go func() {
		wg.Wait()
		close(done)
	}()
	uri := f.MongoDBURI() // blocks until the listener has its address
	host := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	if err := waitListening(host); err != nil {
		cancel()
		<-done
		return err
	}
	s.mu.Lock()
	s.URI, s.addr, s.cancel, s.stopped = uri, host, cancel, done
	s.mu.Unlock()
	return nil
}

// Stop stops the in-process server (its data stays for Restart): clients
// then see a server that has gone away. No-op for an external server.
func (s *Server) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.stopped
	s.cancel, s.stopped = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Restart starts the stopped in-process server again on the same address
// and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if !s.FerretDB {
		t.Skip("mongotest: an external server cannot be restarted by the test")
	}
	s.Stop()
	var err error
	for range 50 { // the port may linger for a moment
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mongotest: restart: %v", err)
}

func waitListening(host string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FerretDB not listening at %s: %w", host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idIndexes gives every collection of the in-process FerretDB an index
// that its lookups by _id use, until ctx ends. FerretDB v1.24.2's SQLite
// handler creates a collection's unique _id index on the expression
// _ferretdb_sjson->"_id" but looks an _id up with
// _ferretdb_sjson->'$._id' (backends/sqlite: metadata.IDColumn), which
// SQLite does not match to that index: every find, update or delete by
// _id reads and parses the whole table (37 ms per lookup in 2,000
// documents of 10 kB, 0.7 ms with this index). A MongoDB server always
// answers _id from its index; the index added here makes the stand-in do
// the same. It changes no result, only SQLite's plan, and FerretDB does
// not know of it (listIndexes lists its own metadata).
//
// FerretDB keeps one SQLite file per database and one table per
// collection, created on first use, so the files are looked at again
// whenever they change.
func idIndexes(ctx context.Context, dir string) {
	seen := map[string]string{} // file → size and modification times last indexed
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, f := range files {
			stamp := ""
			for _, p := range []string{f, f + "-wal"} {
				if fi, err := os.Stat(p); err == nil {
					stamp += fmt.Sprint(fi.Size(), fi.ModTime().UnixNano(), ";")
				}
			}
			if seen[f] == stamp {
				continue
			}
			if err := indexFile(ctx, f); err == nil {
				seen[f] = stamp
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// indexFile adds the missing _id lookup indexes to one database file.
func indexFile(ctx context.Context, path string) error {
	// mode=rw: a database FerretDB has just dropped is not created again.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || '_kiln_id')`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_kiln_id", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
