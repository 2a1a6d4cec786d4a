package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kiln-fhir/kiln/store"
)

// Reindex implements store.Reindexer. The updates go through the writer's
// queue like a Commit, so they are serialised with every write of this
// process (and, by BEGIN IMMEDIATE, of any other process on the file): the
// check that the current version is still the one indexed and the
// replacement of its rows happen under one write lock, and a concurrent
// update of the same resource either comes before (the check fails, its
// own rows stay) or after (it replaces these rows with its own).
func (s *Store) Reindex(ctx context.Context, updates ...store.IndexUpdate) (int, error) {
	if s.recordsOnly {
		return 0, errors.New("sqlite: store opened for records only cannot reindex resources")
	}
	if len(updates) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: reindex: %w", err)
	}
	call := &commitCall{reindex: updates, result: make(chan error, 1)}
	s.mu.RLock()
	if s.closed.Load() {
		s.mu.RUnlock()
		return 0, errClosed
	}
	select {
	case s.w.queue <- call:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return 0, fmt.Errorf("sqlite: reindex: %w", ctx.Err())
	}
	var err error
	select {
	case err = <-call.result:
	case <-ctx.Done():
		if call.state.CompareAndSwap(callQueued, callWithdrawn) {
			return 0, fmt.Errorf("sqlite: reindex: %w", ctx.Err())
		}
		err = <-call.result
	}
	if err != nil {
		return 0, err // the batch rolled back: nothing applied
	}
	return call.applied, nil
}

// applyReindex applies a Reindex call inside a savepoint, as applyCall a
// Commit: an update whose resource is no longer at its version (or is
// deleted) is skipped; any other failure rolls the call back.
func (w *writer) applyReindex(ctx context.Context, c *commitCall) (err, fatal error) {
	if _, err := w.savepoint.ExecContext(ctx); err != nil {
		return nil, err
	}
	mark := w.index.mark()
	applied := 0
	for _, u := range c.reindex {
		var rid, current int64
		var deleted bool
		err = w.selectCurrent.QueryRowContext(ctx, u.Type, u.ID).Scan(&rid, &current, &deleted)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
			continue
		}
		if err != nil {
			err = fmt.Errorf("sqlite: reindex %s/%s: %w", u.Type, u.ID, mapDriverErr(err))
			break
		}
		if current != u.Version || deleted {
			continue
		}
		if err = w.index.remove(ctx, rid, u.Type, u.ID); err == nil {
			err = w.index.write(ctx, rid, u.Type, u.ID, u.Index)
		}
		if err != nil {
			err = fmt.Errorf("sqlite: reindex %s/%s: %w", u.Type, u.ID, mapDriverErr(err))
			break
		}
		applied++
	}
	if err != nil {
		applied = 0
		if _, rerr := w.rollbackTo.ExecContext(ctx); rerr != nil {
			return nil, rerr
		}
		w.index.undo(mark)
	}
	if _, rerr := w.release.ExecContext(ctx); rerr != nil {
		return nil, rerr
	}
	c.applied = applied
	return err, nil
}
