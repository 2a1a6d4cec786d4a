package sqlite

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the statements of recent search shapes prepared. A
// search's SQL text depends only on its shape (parameters, modifiers,
// prefixes, how many values), never on a value, so a portal asking the
// same question for another patient reuses the statement instead of
// parsing and planning it again (a third of a simple search's CPU).
// database/sql prepares a cached statement on each read connection as it
// is first used there, and closes an evicted one once its open rows are
// done with it.
type stmtCache struct {
	mu  sync.Mutex
	max int
	lru *list.List // of *cachedStmt, most recent first
	m   map[string]*list.Element
}

type cachedStmt struct {
	sql  string
	stmt *sql.Stmt
}

// stmtCacheSize bounds the shapes kept; each holds one compiled statement
// per read connection that ran it.
const stmtCacheSize = 128

func (c *stmtCache) get(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m, c.lru, c.max = map[string]*list.Element{}, list.New(), stmtCacheSize
	}
	if e, ok := c.m[q]; ok {
		c.lru.MoveToFront(e)
		st := e.Value.(*cachedStmt).stmt
		c.mu.Unlock()
		return st, nil
	}
	c.mu.Unlock()
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[q]; ok { // prepared meanwhile by another search
		st.Close()
		c.lru.MoveToFront(e)
		return e.Value.(*cachedStmt).stmt, nil
	}
	c.m[q] = c.lru.PushFront(&cachedStmt{sql: q, stmt: st})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cachedStmt)
		delete(c.m, old.sql)
		old.stmt.Close()
	}
	return st, nil
}

// close closes every cached statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		return nil
	}
	var first error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if err := e.Value.(*cachedStmt).stmt.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.m, c.lru = nil, nil
	return first
}

func (s *Store) query(ctx context.Context, f frag) (*sql.Rows, error) {
	st, err := s.stmts.get(ctx, s.rdb, f.sql)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, f.args...)
}

// queryRow is query for one row; its error comes with Scan.
func (s *Store) queryRow(ctx context.Context, f frag) *sql.Row {
	st, err := s.stmts.get(ctx, s.rdb, f.sql)
	if err != nil {
		// A Row carrying err: QueryRowContext on the pool with the
		// same text reports the same failure.
		return s.rdb.QueryRowContext(ctx, f.sql, f.args...)
	}
	return st.QueryRowContext(ctx, f.args...)
}
