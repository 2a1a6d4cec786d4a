package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// Group commit. A COMMIT with synchronous=FULL costs 0.5 to 2 ms on these
// machines, almost all of it the fsync, so one transaction per Commit would
// cap the store at a few hundred durable writes per second whatever the CPU.
// Instead one goroutine drains the queue of pending Commit calls, applies
// each in its own SAVEPOINT inside one transaction, commits once and only
// then answers all of them. A call whose precondition fails rolls back to
// its savepoint and leaves the others of the batch alone. A lone client
// never waits for a batch to fill: when the queue holds a single call and
// nothing else was in flight, it is committed at once, so one client sees
// one fsync of latency. Under load the calls that arrive during one COMMIT
// share the next. Left at that, 8 closed-loop callers settle at 4 calls a
// transaction: the callers of one batch send their next call a few
// microseconds after the writer took the calls that queued meanwhile. So,
// like PostgreSQL's commit_delay and commit_siblings, the writer waits a
// little (at most batchLinger) for as many calls as were in flight during
// the previous transaction: those callers are the ones about to come back.
// With index rows a COMMIT writes some twenty pages per create, many of
// them shared between the creates of a batch, and one fsync either way, so
// batches of 8 instead of 4 raise throughput by about half. Answering only
// after COMMIT also means no reader sees a version before it is durable: in
// WAL mode SQLite publishes the frames to readers after syncing them.
const batchLinger = 500 * time.Microsecond

// Commit call states. Exactly one of the writer (queued → taken) and a
// caller whose context ended (queued → withdrawn) wins, so a withdrawn call
// is never applied and a taken one is always answered.
const (
	callQueued int32 = iota
	callTaken
	callWithdrawn
)

type commitCall struct {
	changes []store.Change
	// reindex, when not nil, makes the call a Reindex (reindex.go): index
	// rows replaced in place, no version written; changes is then empty.
	reindex []store.IndexUpdate
	applied int // Reindex: how many updates applied, set before result
	state   atomic.Int32
	result  chan error // buffered: the writer never blocks on a caller
}

// writer owns conn, the store's only write connection, and the statements
// prepared on it. Only the goroutine running run uses them: that ownership
// is their lock.
type writer struct {
	conn     *sql.Conn
	queue    chan *commitCall // closed by Store.Close under Store.mu
	done     chan struct{}    // closed when run has answered every call
	maxBatch int
	batches  atomic.Int64 // transactions committed, for tests and metrics
	ckp      *checkpointer
	cache    *readCache // nil: off

	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt
	selectCurrent, insertVersion   *sql.Stmt
	insertCurrent, updateCurrent   *sql.Stmt
	maxRid                         *sql.Stmt
	index                          indexStmts

	// lastRid is the highest rid handed out in the transaction in flight:
	// read under the write lock at BEGIN, so a create knows its rid before
	// it writes the version (versions_instance). Rids of rolled-back
	// creates are skipped, never reused within the transaction.
	lastRid int64
}

func newWriter(ctx context.Context, conn *sql.Conn, maxBatch int, ckp *checkpointer, cache *readCache) (*writer, error) {
	w := &writer{
		ckp:      ckp,
		cache:    cache,
		conn:     conn,
		queue:    make(chan *commitCall, maxBatch),
		done:     make(chan struct{}),
		maxBatch: maxBatch,
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		// IMMEDIATE takes the write lock up front: a transaction that starts
		// as a reader and upgrades could fail with SQLITE_BUSY half-way when
		// another process writes the same file.
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT kiln_call"},
		{&w.release, "RELEASE kiln_call"},
		{&w.rollbackTo, "ROLLBACK TO kiln_call"},
		{&w.selectCurrent, "SELECT rid, version, deleted FROM current WHERE type = ? AND id = ?"},
		{&w.insertVersion, `INSERT INTO versions (type, id, rid, version, last_updated, method, body)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&w.insertCurrent, `INSERT INTO current (rid, type, id, version, seq, deleted, last_updated)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&w.maxRid, `SELECT coalesce(max(rid), 0) FROM current`},
		{&w.updateCurrent, `UPDATE current SET version = ?, seq = ?, deleted = ?, last_updated = ?
			WHERE rid = ?`},
	} {
		var err error
		if *p.stmt, err = conn.PrepareContext(ctx, p.sql); err != nil {
			w.closeStmts()
			return nil, err
		}
	}
	if err := w.index.prepare(ctx, conn); err != nil {
		w.closeStmts()
		return nil, err
	}
	return w, nil
}

// close releases the statements and the connection; run must have returned.
func (w *writer) close() error {
	return errors.Join(w.closeStmts(), w.conn.Close())
}

func (w *writer) closeStmts() error {
	var errs []error
	for _, st := range append([]*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.release,
		w.rollbackTo, w.selectCurrent, w.insertVersion, w.insertCurrent, w.updateCurrent, w.maxRid}, w.index.all()...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// run applies batches until the queue is closed and drained.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]*commitCall, 0, w.maxBatch)
	inFlight := 1 // calls seen during the last transaction: in it and queued meanwhile
	timer := time.NewTimer(0)
	<-timer.C
	for call := range w.queue {
		batch = append(batch[:0], call)
		waiting := false
	fill:
		for len(batch) < w.maxBatch {
			select {
			case c, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, c)
				continue
			default:
			}
			if len(batch) >= inFlight {
				break
			}
			// Fewer calls than were in flight: their callers are likely
			// about to send the next ones.
			if !waiting {
				waiting = true
				timer.Reset(batchLinger)
			}
			select {
			case c, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, c)
			case <-timer.C:
				waiting = false
				break fill
			}
		}
		if waiting && !timer.Stop() {
			<-timer.C
		}
		w.apply(batch)
		inFlight = min(len(batch)+len(w.queue), w.maxBatch)
		clear(batch) // let answered calls be collected
	}
}

// apply commits one batch and answers every call in it.
//
// It runs with context.Background: the transaction is shared by many
// callers, so no single caller's cancellation may abort it. A caller that
// gives up before its call is taken withdraws it instead (Store.Commit).
func (w *writer) apply(batch []*commitCall) {
	ctx := context.Background()
	live := batch[:0:0]
	for _, c := range batch {
		if c.state.CompareAndSwap(callQueued, callTaken) {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	results := make([]error, len(live))
	// answer(err) fails every call of the batch, conflicts included: a
	// conflict may have been with an earlier call of this batch, which is
	// now rolled back, so it is no longer a true answer.
	//
	// Before any caller hears back, the read cache forgets every resource
	// the batch touched, whatever the outcome (a failed COMMIT is not
	// trusted to have changed nothing): a caller that reads after its
	// answer finds the file, not an older cached version.
	answer := func(all error) {
		if w.cache != nil {
			for _, c := range live {
				w.cache.invalidate(c.changes)
			}
		}
		for i, c := range live {
			if all != nil {
				results[i] = all
			}
			c.result <- results[i]
		}
	}

	if _, err := w.begin.ExecContext(ctx); err != nil {
		answer(fmt.Errorf("sqlite: commit: begin: %w", mapDriverErr(err)))
		return
	}
	if err := w.maxRid.QueryRowContext(ctx).Scan(&w.lastRid); err != nil {
		_, _ = w.rollback.ExecContext(ctx)
		answer(fmt.Errorf("sqlite: commit: %w", mapDriverErr(err)))
		return
	}
	for i, c := range live {
		var err, fatal error
		if c.reindex != nil {
			// A reindex replaces rows it does not know are buffered.
			if fatal = w.index.flush(ctx); fatal == nil {
				err, fatal = w.applyReindex(ctx, c)
			}
		} else {
			err, fatal = w.applyCall(ctx, c.changes)
		}
		if fatal != nil {
			// The transaction is no longer usable (SQLite may already
			// have rolled it back after an I/O error or a full disk):
			// nothing of this batch was acknowledged, so fail all of it.
			_, _ = w.rollback.ExecContext(ctx)
			w.index.reset()
			answer(fmt.Errorf("sqlite: commit: %w", mapDriverErr(fatal)))
			return
		}
		results[i] = err
	}
	// The batch's index rows, buffered by its calls (index.go).
	if err := w.index.flush(ctx); err != nil {
		_, _ = w.rollback.ExecContext(ctx)
		w.index.reset()
		answer(fmt.Errorf("sqlite: commit: index: %w", mapDriverErr(err)))
		return
	}
	if _, err := w.commit.ExecContext(ctx); err != nil {
		_, _ = w.rollback.ExecContext(ctx)
		w.index.reset()
		answer(fmt.Errorf("sqlite: commit: %w", mapDriverErr(err)))
		return
	}
	w.index.pending = w.index.pending[:0] // the new pids are durable
	w.batches.Add(1)
	w.ckp.committed()
	answer(nil)
}

// applyCall applies the changes of one Commit call inside a savepoint. err
// is that call's answer (a conflict, or a failure of this call alone, both
// already rolled back to the savepoint); fatal means the whole transaction
// is broken.
func (w *writer) applyCall(ctx context.Context, changes []store.Change) (err, fatal error) {
	// The index rows of earlier calls are buffered (index.go). A call
	// that touches one of their resources would replace rows it cannot
	// see, so they are inserted first, outside this call's savepoint: a
	// rollback of this call must not take them along.
	for _, ch := range changes {
		if w.index.buffers(ch.Type, ch.ID) {
			if err := w.index.flush(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	if _, err := w.savepoint.ExecContext(ctx); err != nil {
		return nil, err
	}
	mark := w.index.mark()
	for i, ch := range changes {
		if err = w.applyChange(ctx, i, ch); err != nil {
			break
		}
	}
	if err != nil {
		if _, rerr := w.rollbackTo.ExecContext(ctx); rerr != nil {
			return nil, rerr
		}
		w.index.undo(mark)
	}
	if _, rerr := w.release.ExecContext(ctx); rerr != nil {
		return nil, rerr
	}
	return err, nil
}

// applyChange writes one version after checking its precondition: the
// stored version must be ch.Version-1 (store.Change). The check and the
// write happen under the SQLite write lock held since BEGIN IMMEDIATE, so
// two writers of the same version can never both win. A change sees the
// changes before it in the same transaction, so one call may write versions
// 1 and 2 of the same resource; a conflict's Current is likewise the
// version this change was checked against.
func (w *writer) applyChange(ctx context.Context, i int, ch store.Change) error {
	var rid, current int64
	var wasDeleted bool
	err := w.selectCurrent.QueryRowContext(ctx, ch.Type, ch.ID).Scan(&rid, &current, &wasDeleted)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: commit %s/%s: %w", ch.Type, ch.ID, mapDriverErr(err))
	}
	if current != ch.Version-1 {
		return fmt.Errorf("sqlite: commit %s/%s: %w", ch.Type, ch.ID,
			&store.ConflictError{Index: i, Current: current})
	}
	var body any = ch.Body
	deleted := ch.Method == store.MethodDelete
	if deleted {
		body = nil // NULL, not an empty blob
	}
	lastUpdated := ch.LastUpdated.UnixMicro()
	if !exists {
		w.lastRid++
		rid = w.lastRid
	}
	res, err := w.insertVersion.ExecContext(ctx, ch.Type, ch.ID, rid, ch.Version, lastUpdated, string(ch.Method), body)
	if err != nil {
		return fmt.Errorf("sqlite: commit %s/%s: %w", ch.Type, ch.ID, mapDriverErr(err))
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("sqlite: commit %s/%s: %w", ch.Type, ch.ID, err)
	}
	if exists {
		_, err = w.updateCurrent.ExecContext(ctx, ch.Version, seq, deleted, lastUpdated, rid)
	} else {
		_, err = w.insertCurrent.ExecContext(ctx, rid, ch.Type, ch.ID, ch.Version, seq, deleted, lastUpdated)
	}
	if err != nil {
		return fmt.Errorf("sqlite: commit %s/%s: %w", ch.Type, ch.ID, mapDriverErr(err))
	}
	// The index rows follow the version in the same transaction, so a
	// search sees exactly the current versions (design.md, Storage model):
	// the previous version's rows go (a deleted one has none left), the
	// new version's come in, a delete leaves none. The new rows are
	// buffered until the batch's end (index.go) and leave with this
	// call's savepoint if it rolls back.
	if exists && !wasDeleted {
		if err := w.index.remove(ctx, rid, ch.Type, ch.ID); err != nil {
			return fmt.Errorf("sqlite: commit %s/%s: index: %w", ch.Type, ch.ID, mapDriverErr(err))
		}
	}
	if !deleted {
		if err := w.index.write(ctx, rid, ch.Type, ch.ID, ch.Index); err != nil {
			return fmt.Errorf("sqlite: commit %s/%s: index: %w", ch.Type, ch.ID, mapDriverErr(err))
		}
	}
	return nil
}

// Commit implements store.Resources. It validates the changes, queues them
// for the writer and waits for the batch they join to be durable.
func (s *Store) Commit(ctx context.Context, changes ...store.Change) error {
	if s.recordsOnly {
		return errors.New("sqlite: store opened for records only cannot commit resources")
	}
	for i, ch := range changes {
		if err := validate(ch); err != nil {
			return fmt.Errorf("sqlite: commit %s/%s (change %d): %w", ch.Type, ch.ID, i, err)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	call := &commitCall{changes: changes, result: make(chan error, 1)}

	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case s.w.queue <- call:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return fmt.Errorf("sqlite: commit: %w", ctx.Err())
	}

	select {
	case err := <-call.result:
		return err
	case <-ctx.Done():
		if call.state.CompareAndSwap(callQueued, callWithdrawn) {
			return fmt.Errorf("sqlite: commit: %w", ctx.Err())
		}
		// The writer already took the call; its answer comes with the
		// batch's COMMIT, and only that answer says whether it applied.
		return <-call.result
	}
}

// validate rejects changes that no precondition could make sense of.
func validate(ch store.Change) error {
	switch {
	case ch.Type == "" || ch.ID == "":
		return errors.New("type and id are required")
	case ch.Version < 1:
		return fmt.Errorf("version %d: versions start at 1", ch.Version)
	}
	switch ch.Method {
	case store.MethodDelete:
		if ch.Body != nil {
			return errors.New("a delete carries no body")
		}
	case store.MethodPost, store.MethodPut:
		if len(ch.Body) == 0 {
			return errors.New("body is empty")
		}
	default:
		return fmt.Errorf("unknown method %q", ch.Method)
	}
	return nil
}
