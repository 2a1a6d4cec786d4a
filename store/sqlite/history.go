package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// History pages through versions newest first by seq, the global write
// order (schema.go). A page is a keyset window: the cursor carries the seq
// the next page starts below, so versions written while a client pages
// cannot shift later pages (the store.History contract). It also carries the snapshot, the highest seq when the
// first page was read; every page counts and lists only seq <= snapshot,
// so Total stays the size of the set being paged and new versions never
// appear half-way through. The queries need no read transaction: seqs
// become visible in order, so everything at or below a seen seq is final.

// historyShape picks one of the prepared history statements: the level
// (system, type, instance) and which filters are present. The SQL text of a
// shape is fixed; values are always bound parameters.
type historyShape struct {
	level     int // 0 system, 1 type, 2 instance
	since, at bool
}

func shapeOf(q store.HistoryQuery) historyShape {
	sh := historyShape{since: !q.Since.IsZero(), at: !q.AtStart.IsZero() || !q.AtEnd.IsZero()}
	switch {
	case q.ID != "":
		sh.level = 2
	case q.Type != "":
		sh.level = 1
	}
	return sh
}

// where is the filter shared by a shape's page and count statements. Its
// parameters, in order, are those of args.
//
// _at (history.html): a version is kept when it was written before AtEnd
// and its successor, if any, was not written before AtStart. Versions of a
// resource are consecutive, so the successor is version+1, found through
// the UNIQUE (rid, version) index.
func (sh historyShape) where() string {
	w := "v.seq <= ?"
	switch sh.level {
	case 1:
		w += " AND v.type = ?"
	case 2:
		// Versions are indexed by the resource's rid (schema.go).
		w += " AND v.rid = (SELECT c.rid FROM current AS c WHERE c.type = ? AND c.id = ?)"
	}
	if sh.since {
		w += " AND v.last_updated >= ?"
	}
	if sh.at {
		w += ` AND v.last_updated < ? AND coalesce((SELECT n.last_updated
			FROM versions AS n INDEXED BY versions_instance
			WHERE n.rid = v.rid AND n.version = v.version + 1),
			9223372036854775807) >= ?`
	}
	return w
}

// historyFilter is a query's bounds in stored units (unix microseconds),
// rounded so that comparing whole microseconds gives the same answer as
// comparing the caller's exact instants.
type historyFilter struct {
	since, atStart, atEnd int64
}

func filterOf(q store.HistoryQuery) historyFilter {
	f := historyFilter{since: ceilMicro(q.Since), atStart: math.MinInt64, atEnd: math.MaxInt64}
	if !q.AtStart.IsZero() {
		f.atStart = ceilMicro(q.AtStart)
	}
	if !q.AtEnd.IsZero() {
		f.atEnd = ceilMicro(q.AtEnd)
	}
	return f
}

// ceilMicro rounds t up to a whole microsecond: a stored instant s (whole
// microseconds) is >= t exactly when s >= ceilMicro(t), and < t exactly
// when s < ceilMicro(t).
func ceilMicro(t time.Time) int64 {
	u := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		u++
	}
	return u
}

// pageSQL lists one page, newest first, walking an index in that order so
// that it stops after LIMIT rows. System history walks the rowid (seq)
// itself; NOT INDEXED keeps the planner from sorting matches of the
// last_updated index instead. Within one resource versions were written in
// seq order, so instance history walks versions_instance by version.
func (sh historyShape) pageSQL() string {
	from, order := "versions AS v NOT INDEXED", "v.seq DESC"
	switch sh.level {
	case 1:
		from = "versions AS v INDEXED BY versions_type"
	case 2:
		from, order = "versions AS v INDEXED BY versions_instance", "v.version DESC"
	}
	return `SELECT v.seq, v.type, v.id, v.version, v.last_updated, v.method, v.body
		FROM ` + from + ` WHERE ` + sh.where() + ` ORDER BY ` + order + ` LIMIT ?`
}

// countSQL counts what the pages of a query list. It reads indexes, not the
// table, where it can: the table's rows carry the bodies.
func (sh historyShape) countSQL() string {
	from := "versions AS v INDEXED BY versions_last_updated"
	switch sh.level {
	case 1:
		from = "versions AS v INDEXED BY versions_type"
	case 2:
		from = "versions AS v INDEXED BY versions_instance"
	}
	return `SELECT count(*) FROM ` + from + ` WHERE ` + sh.where()
}

func (sh historyShape) args(upper int64, q store.HistoryQuery, f historyFilter) []any {
	a := []any{upper}
	if sh.level >= 1 {
		a = append(a, q.Type)
	}
	if sh.level == 2 {
		a = append(a, q.ID)
	}
	if sh.since {
		a = append(a, f.since)
	}
	if sh.at {
		a = append(a, f.atEnd, f.atStart)
	}
	return a
}

// historyStmts holds the page and count statement of every shape.
type historyStmts [3][2][2]struct{ page, count *sql.Stmt }

func (h *historyStmts) get(sh historyShape) (page, count *sql.Stmt) {
	e := h[sh.level][b2i(sh.since)][b2i(sh.at)]
	return e.page, e.count
}

func (h *historyStmts) prepare(ctx context.Context, db *sql.DB) error {
	for level := range 3 {
		for since := range 2 {
			for at := range 2 {
				sh := historyShape{level: level, since: since == 1, at: at == 1}
				e := &h[level][since][at]
				var err error
				if e.page, err = db.PrepareContext(ctx, sh.pageSQL()); err != nil {
					return err
				}
				if e.count, err = db.PrepareContext(ctx, sh.countSQL()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (h *historyStmts) all() []*sql.Stmt {
	var all []*sql.Stmt
	for level := range h {
		for since := range h[level] {
			for _, e := range h[level][since] {
				all = append(all, e.page, e.count)
			}
		}
	}
	return all
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// History implements store.History.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (store.HistoryPage, error) {
	if q.Count <= 0 {
		return store.HistoryPage{}, fmt.Errorf("sqlite: history: count %d is not positive", q.Count)
	}
	if q.ID != "" && q.Type == "" {
		return store.HistoryPage{}, errors.New("sqlite: history: an id needs a type")
	}
	sh, f := shapeOf(q), filterOf(q)
	fp := fingerprintOnly(fingerprint(sh, q, f), q.Only)

	var c cursor
	if q.Cursor != "" {
		var ok bool
		if c, ok = decodeCursor(q.Cursor, fp); !ok {
			return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", store.ErrInvalidCursor)
		}
	} else {
		if err := s.maxSeqStmt.QueryRowContext(ctx).Scan(&c.snapshot); err != nil {
			return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
		}
		c.upper = c.snapshot
	}
	var page store.HistoryPage
	if c.snapshot == 0 {
		return page, nil // nothing was ever written
	}

	pageStmt, countStmt := s.history.get(sh)
	args := func(upper int64) []any { return sh.args(upper, q, f) }
	if q.Only != nil {
		if len(q.Only) == 0 {
			return page, nil
		}
		var err error
		if pageStmt, err = s.stmts.get(ctx, s.rdb, sh.onlyPageSQL()); err != nil {
			return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
		}
		if countStmt, err = s.stmts.get(ctx, s.rdb, sh.onlyCountSQL()); err != nil {
			return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
		}
		members := onlyJSON(q.Only)
		args = func(upper int64) []any { return append([]any{members}, sh.args(upper, q, f)...) }
	}
	if err := countStmt.QueryRowContext(ctx, args(c.snapshot)...).Scan(&page.Total); err != nil {
		return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
	}
	// One row more than asked tells whether a next page exists.
	rows, err := pageStmt.QueryContext(ctx, append(args(c.upper), q.Count+1)...)
	if err != nil {
		return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
	}
	defer rows.Close()
	var lastSeq int64
	for rows.Next() {
		if len(page.Versions) == q.Count {
			page.Next = encodeCursor(cursor{snapshot: c.snapshot, upper: lastSeq - 1}, fp)
			break
		}
		var r store.Resource
		var lastUpdated int64
		if err := rows.Scan(&lastSeq, &r.Type, &r.ID, &r.Version, &lastUpdated, &r.Method, &r.Body); err != nil {
			return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
		}
		r.LastUpdated = time.UnixMicro(lastUpdated).UTC()
		page.Versions = append(page.Versions, r)
	}
	if err := rows.Err(); err != nil {
		return store.HistoryPage{}, fmt.Errorf("sqlite: history: %w", s.mapErr(ctx, err))
	}
	return page, nil
}

// cursor is a keyset position: the next page lists seq <= upper, and all
// pages list seq <= snapshot.
type cursor struct {
	snapshot, upper int64
}

// A cursor travels as base64url of: format byte, snapshot and upper as
// uvarints, then a CRC-32 over those bytes and the query's fingerprint.
// The checksum catches cursors that were garbled, cut, or handed to a
// different query; it is not a secret, and needs not be: a forged cursor
// can only choose where the same query's pages start, and access control
// never depends on it.
const cursorFormat = 1

var cursorEncoding = base64.RawURLEncoding.Strict()

// fingerprint binds a cursor to the query that issued it.
func fingerprint(sh historyShape, q store.HistoryQuery, f historyFilter) []byte {
	b := []byte{byte(sh.level), byte(b2i(sh.since)), byte(b2i(sh.at))}
	b = binary.AppendUvarint(b, uint64(len(q.Type)))
	b = append(b, q.Type...)
	b = binary.AppendUvarint(b, uint64(len(q.ID)))
	b = append(b, q.ID...)
	b = binary.AppendVarint(b, f.since)
	b = binary.AppendVarint(b, f.atStart)
	return binary.AppendVarint(b, f.atEnd)
}

func checksum(body, fp []byte) uint32 {
	return crc32.Update(crc32.ChecksumIEEE(body), crc32.IEEETable, fp)
}

func encodeCursor(c cursor, fp []byte) string {
	b := []byte{cursorFormat}
	b = binary.AppendUvarint(b, uint64(c.snapshot))
	b = binary.AppendUvarint(b, uint64(c.upper))
	b = binary.BigEndian.AppendUint32(b, checksum(b, fp))
	return cursorEncoding.EncodeToString(b)
}

func decodeCursor(s string, fp []byte) (cursor, bool) {
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < 1+1+1+4 {
		return cursor{}, false
	}
	body := b[:len(b)-4]
	if binary.BigEndian.Uint32(b[len(b)-4:]) != checksum(body, fp) || body[0] != cursorFormat {
		return cursor{}, false
	}
	snapshot, n := binary.Uvarint(body[1:])
	if n <= 0 {
		return cursor{}, false
	}
	upper, m := binary.Uvarint(body[1+n:])
	if m <= 0 || 1+n+m != len(body) {
		return cursor{}, false
	}
	// A next page exists only below the last seq shown, which is at most
	// the snapshot and above 1.
	if snapshot > math.MaxInt64 || upper < 1 || upper >= snapshot {
		return cursor{}, false
	}
	return cursor{snapshot: int64(snapshot), upper: int64(upper)}, true
}
