// Package sqlite is Kiln's embedded default backend: one SQLite file in WAL
// mode, through the pure-Go modernc.org/sqlite driver (no cgo).
//
// Who protects what:
//
//   - Writes. Every Commit is handed to one writer goroutine (writer.go),
//     which owns the only write connection and the statements prepared on
//     it; nothing else touches them. It applies the queued Commit calls in
//     one SQLite transaction, each call inside its own SAVEPOINT, and answers
//     the callers only after COMMIT returned, that is after the WAL was
//     fsynced (synchronous=FULL). The transaction is BEGIN IMMEDIATE, so the
//     SQLite write lock also serialises against another process that opened
//     the same file. The compare-and-set on versions happens under that lock.
//   - Reads. A pool of read-only connections (query_only). In WAL mode each
//     read statement sees the last committed transaction as a snapshot: reads
//     never wait for the writer and never see half a batch.
//   - The read cache (cache.go) has its own mutex; the writer drops the
//     entries a batch touched after COMMIT and before answering, and a
//     lock file keeps every other process out while it is on.
//   - Store.mu guards closed and the send side of the writer's queue, so
//     Close never closes the queue under a sender.
//
// The store never logs, and its errors carry type and id but never bodies.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kiln-fhir/kiln/store"
)

// Config configures Open. Only Path is required.
type Config struct {
	// Path is the database file. It is created if missing, together with
	// its -wal and -shm companions in the same directory.
	Path string
	// ReadConns caps the pool of read connections (0: 4 × GOMAXPROCS).
	ReadConns int
	// BusyTimeout is how long a statement waits for a lock held by another
	// process before failing with store.ErrUnavailable (0: 5 s).
	BusyTimeout time.Duration
	// MaxBatch caps how many Commit calls share one transaction and one
	// fsync (0: 256).
	MaxBatch int
	// MmapSize is how many bytes of the file each read connection maps
	// into memory instead of reading them with pread (0: the most SQLite
	// allows, 2 GiB less 64 KiB; negative: none). Mapping roughly doubled
	// random Reads per second on a 200 MB file here, and a million
	// resources make a 3.6 GB file whose pages past the mapping are read
	// into each connection's small page cache one pread at a time. The
	// price is SQLite's: an I/O error while reading mapped pages is a
	// crash, not an error.
	MmapSize int64
	// CacheBytes bounds the read cache of current versions (cache.go); 0
	// turns it off. With the cache on, Open takes an exclusive lock on
	// Path + ".lock" and fails with ErrLocked while another store has the
	// file open; without, it takes a shared lock, so that it cannot open
	// the file under a caching store either.
	CacheBytes int64
	// RecordsOnly opens the file for store.Records alone (the admin
	// commands: clients, users, launch contexts, keys) and takes no lock,
	// so they can run beside a caching server: records are never cached,
	// and Commit of resources is refused so that the server's cache of
	// resources cannot go stale behind its back.
	RecordsOnly bool
}

// maxMmap is SQLITE_MAX_MMAP_SIZE as compiled into modernc.org/sqlite: a
// larger mmap_size is silently lowered to it.
const maxMmap = 0x7fff0000

// ErrLocked is returned by Open when the lock file is held in a way that
// conflicts (Config.CacheBytes).
var ErrLocked = errors.New("sqlite: database in use by another process")

// Store is a store.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	rdb *sql.DB // read pool
	// sdb is the pool of Scan (bulk export, reindex): the same reads
	// without mmap, so that walking a whole file goes through each
	// connection's bounded page cache instead of mapping it into the
	// process (a mapped page touched counts in RSS until unmapped: two
	// export lanes over a 3.6 GB file took peak RSS past 500 MB).
	sdb *sql.DB
	wdb *sql.DB // holds the writer's single connection
	cdb *sql.DB // the checkpointer's connection (checkpoint.go)
	xdb *sql.DB // one connection for store.Records writes (records.go)
	jdb *sql.DB // writes jobs and their files (jobs.go)
	w   *writer
	ckp *checkpointer

	cache *readCache // nil: off
	// recordsOnly: Config.RecordsOnly; Commit refuses.
	recordsOnly bool
	lock        *os.File // the lock file, held until Close

	readStmt, vreadStmt, maxSeqStmt *sql.Stmt
	maxPidStmt                      *sql.Stmt
	history                         historyStmts
	params                          atomic.Pointer[paramSnapshot] // search.go
	stmts                           stmtCache                     // stmtcache.go

	mu     sync.RWMutex // guards closing the writer's queue
	closed atomic.Bool  // written under mu, read anywhere

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Searcher = (*Store)(nil)
)

// Open opens (creating if needed) the database file at cfg.Path, brings its
// schema up to date and starts the writer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	go s.w.run()
	return s, nil
}

// open is Open without starting the writer, so that tests can fill its
// queue first.
func open(ctx context.Context, cfg Config) (_ *Store, err error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: open: Config.Path is empty")
	}
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	switch {
	case cfg.MmapSize == 0, cfg.MmapSize > maxMmap:
		cfg.MmapSize = maxMmap
	case cfg.MmapSize < 0:
		cfg.MmapSize = 0
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	// A file: URI, so that a path containing '?' or '#' stays a path; the
	// query carries the driver's per-connection settings.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_busy_timeout=" + strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)

	s := &Store{}
	defer func() {
		if err != nil {
			s.closeHandles()
			err = fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
		}
	}()
	s.recordsOnly = cfg.RecordsOnly
	if cfg.RecordsOnly {
		cfg.CacheBytes = 0
	} else if s.lock, err = lockFile(path+".lock", cfg.CacheBytes > 0); err != nil {
		return nil, err
	}
	if cfg.CacheBytes > 0 {
		s.cache = newReadCache(cfg.CacheBytes)
	}

	// synchronous=FULL makes COMMIT fsync the WAL: an acknowledged Commit
	// survives power loss, which NORMAL (the usual WAL setting) does not
	// promise. A 64 MiB page cache (SQLite's default is 2 MiB) holds the
	// dirty pages of a large batch or transaction bundle, so they are
	// written to the WAL once, at COMMIT, instead of spilling half-way.
	//
	// The writer never checkpoints: the checkpointer does, off the commit
	// path (checkpoint.go). temp_store=MEMORY keeps the sub-journal of
	// each call's SAVEPOINT (a copy of every page the call changes, for
	// ROLLBACK TO) in memory: by default it spills to a temporary file past
	// 64 KiB, which a create with index rows exceeds, and that file cost a
	// create, a write per page and a delete on every call.
	if s.wdb, err = sql.Open("sqlite", base+"&_journal_mode=WAL&_synchronous=FULL&_pragma=cache_size(-65536)"+
		"&_pragma=wal_autocheckpoint(0)&_pragma=temp_store(memory)"); err != nil {
		return nil, err
	}
	s.wdb.SetMaxOpenConns(1)
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		conn.Close()
		return nil, err
	}
	if mode != "wal" {
		conn.Close()
		return nil, fmt.Errorf("journal mode is %q, not wal (does the file system support shared memory?)", mode)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	if s.cdb, err = sql.Open("sqlite", base); err != nil {
		conn.Close()
		return nil, err
	}
	s.cdb.SetMaxOpenConns(1)
	s.ckp = newCheckpointer(s.cdb)
	if err := s.openJobs(base); err != nil {
		conn.Close()
		return nil, err
	}
	if s.w, err = newWriter(ctx, conn, cfg.MaxBatch, s.ckp, s.cache); err != nil {
		conn.Close()
		return nil, err
	}

	// Same durability and checkpoint policy as the writer's connection.
	if s.xdb, err = sql.Open("sqlite", base+"&_synchronous=FULL&_pragma=wal_autocheckpoint(0)"); err != nil {
		return nil, err
	}
	s.xdb.SetMaxOpenConns(1)

	if s.rdb, err = sql.Open("sqlite", base+"&_query_only=1&_pragma=mmap_size("+
		strconv.FormatInt(cfg.MmapSize, 10)+")"); err != nil {
		return nil, err
	}
	s.rdb.SetMaxOpenConns(cfg.ReadConns)
	s.rdb.SetMaxIdleConns(cfg.ReadConns)
	if s.sdb, err = sql.Open("sqlite", base+"&_query_only=1&_pragma=mmap_size(0)"); err != nil {
		return nil, err
	}
	s.sdb.SetMaxOpenConns(cfg.ReadConns)
	s.sdb.SetMaxIdleConns(2)
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.readStmt, `SELECT v.version, v.last_updated, v.method, v.body
			FROM current AS c JOIN versions AS v ON v.seq = c.seq
			WHERE c.type = ? AND c.id = ?`},
		{&s.vreadStmt, `SELECT last_updated, method, body FROM versions
			WHERE rid = (SELECT rid FROM current WHERE type = ? AND id = ?) AND version = ?`},
		{&s.maxSeqStmt, `SELECT coalesce(max(seq), 0) FROM versions`},
		{&s.maxPidStmt, `SELECT coalesce(max(pid), 0) FROM params`},
	} {
		if *p.stmt, err = s.rdb.PrepareContext(ctx, p.sql); err != nil {
			return nil, err
		}
	}
	if err := s.history.prepare(ctx, s.rdb); err != nil {
		return nil, err
	}
	go s.ckp.run() // idle until the writer commits
	return s, nil
}

// Read implements store.Resources, from the read cache when it is on and
// holds typ/id (cache.go explains why a cached version is never stale).
func (s *Store) Read(ctx context.Context, typ, id string) (store.Resource, error) {
	if s.cache == nil {
		return s.read(ctx, typ, id)
	}
	if err := ctx.Err(); err != nil {
		// As a read of the file would: an ended request reads nothing.
		return store.Resource{}, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, err)
	}
	if s.closed.Load() {
		return store.Resource{}, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, errClosed)
	}
	r, gen, ok := s.cache.get(typ, id)
	if ok {
		return r, nil
	}
	r, err := s.read(ctx, typ, id)
	if err == nil {
		s.cache.put(r, gen)
	}
	return r, err
}

// read reads the current version of typ/id from the file.
func (s *Store) read(ctx context.Context, typ, id string) (store.Resource, error) {
	r := store.Resource{Type: typ, ID: id}
	var lastUpdated int64
	err := s.readStmt.QueryRowContext(ctx, typ, id).Scan(&r.Version, &lastUpdated, &r.Method, &r.Body)
	if err != nil {
		return store.Resource{}, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, s.mapErr(ctx, err))
	}
	r.LastUpdated = time.UnixMicro(lastUpdated).UTC()
	if r.Deleted() {
		// http.html#read: a deleted resource answers 410 Gone.
		return r, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, store.ErrGone)
	}
	return r, nil
}

// VRead implements store.Resources.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	r := store.Resource{Type: typ, ID: id, Version: version}
	var lastUpdated int64
	err := s.vreadStmt.QueryRowContext(ctx, typ, id, version).Scan(&lastUpdated, &r.Method, &r.Body)
	if err != nil {
		return store.Resource{}, fmt.Errorf("sqlite: vread %s/%s/_history/%d: %w", typ, id, version, s.mapErr(ctx, err))
	}
	r.LastUpdated = time.UnixMicro(lastUpdated).UTC()
	if r.Deleted() {
		// http.html#vread: a version that records a delete answers 410 Gone.
		return r, fmt.Errorf("sqlite: vread %s/%s/_history/%d: %w", typ, id, version, store.ErrGone)
	}
	return r, nil
}

// Ping implements store.Pinger: it succeeds when a read connection answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", s.mapErr(ctx, err))
	}
	return nil
}

// Close stops accepting Commits, lets the writer finish and answer every
// Commit already queued, then closes the file. Reads in flight finish first
// (sql.DB.Close waits for them). Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		close(s.w.queue)
		s.mu.Unlock()
		<-s.w.done
		s.ckp.close()
		s.closeErr = s.closeHandles()
	})
	return s.closeErr
}

// closeHandles releases whatever Open managed to create.
func (s *Store) closeHandles() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	errs = append(errs, s.stmts.close())
	for _, st := range append([]*sql.Stmt{s.readStmt, s.vreadStmt, s.maxSeqStmt, s.maxPidStmt}, s.history.all()...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.rdb, s.sdb, s.xdb, s.cdb, s.jdb, s.wdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.lock != nil {
		// Released last: until the file is closed, nobody may open it
		// under a cache that believes it is alone.
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

var errClosed = fmt.Errorf("sqlite: store is closed: %w", store.ErrUnavailable)

// mapErr translates driver errors into store sentinels at the backend's
// edge (style.md habit 3). What it does not recognise is returned as is,
// for the caller to wrap with context.
func (s *Store) mapErr(ctx context.Context, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	// A query interrupted because ctx ended reports SQLITE_INTERRUPT or the
	// context error; callers should see the context error either way.
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	if s.closed.Load() || errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w (%w)", store.ErrUnavailable, err)
	}
	return mapDriverErr(err)
}

// mapDriverErr turns lock timeouts into store.ErrUnavailable: another
// process held the file longer than BusyTimeout, and a retry may succeed.
func mapDriverErr(err error) error {
	var e *driver.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff { // primary code; extended codes are on
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w (%w)", store.ErrUnavailable, err)
		}
	}
	return err
}
