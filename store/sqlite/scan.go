package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// scanSQL lists one page of a type's resources as of an instant, walking
// current_id (type, id) so that a page is a seek plus LIMIT rows. The
// version at the instant is the current one when it was written by then
// (the common case: one rowid lookup by seq), otherwise the newest version
// written by then, found through versions_instance (rid, version), whose
// entries carry seq. A resource first written after the instant has no
// such version and drops out of the join.
//
// The page is read in one statement, and in WAL mode one statement sees one
// committed state, so a page never mixes two states; pages of one scan may
// see different states, which At makes irrelevant for every version
// written by then.
const scanSQL = `SELECT c.id, v.version, v.last_updated, v.method, v.body
	FROM current AS c INDEXED BY current_id
	JOIN versions AS v ON v.seq = CASE WHEN c.last_updated <= ?1 THEN c.seq ELSE
		(SELECT p.seq FROM versions AS p INDEXED BY versions_instance
		 WHERE p.rid = c.rid AND p.last_updated <= ?1 ORDER BY p.version DESC LIMIT 1) END
	WHERE c.type = ?2 AND c.id > ?3 AND v.last_updated > ?4 AND (?5 OR v.method <> 'DELETE')
	ORDER BY c.id LIMIT ?6`

// Scan implements store.Scanner.
func (s *Store) Scan(ctx context.Context, q store.ScanQuery) (store.ScanPage, error) {
	if q.Count <= 0 {
		return store.ScanPage{}, errors.New("sqlite: scan: Count must be positive")
	}
	at := int64(math.MaxInt64)
	if !q.At.IsZero() {
		// Stored instants are whole microseconds: s <= At exactly when
		// s <= floor(At).
		at = q.At.UnixMicro()
	}
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		// Likewise s > Since exactly when s > floor(Since).
		since = q.Since.UnixMicro()
	}
	st, err := s.stmts.get(ctx, s.sdb, scanSQL)
	if err != nil {
		return store.ScanPage{}, fmt.Errorf("sqlite: scan %s: %w", q.Type, s.mapErr(ctx, err))
	}
	rows, err := st.QueryContext(ctx, at, q.Type, q.After, since, q.Deleted, q.Count)
	if err != nil {
		return store.ScanPage{}, fmt.Errorf("sqlite: scan %s: %w", q.Type, s.mapErr(ctx, err))
	}
	defer rows.Close()
	page := store.ScanPage{Resources: make([]store.Resource, 0, min(q.Count, 1024))}
	for rows.Next() {
		r := store.Resource{Type: q.Type}
		var lastUpdated int64
		if err := rows.Scan(&r.ID, &r.Version, &lastUpdated, &r.Method, &r.Body); err != nil {
			return store.ScanPage{}, fmt.Errorf("sqlite: scan %s: %w", q.Type, s.mapErr(ctx, err))
		}
		r.LastUpdated = time.UnixMicro(lastUpdated).UTC()
		page.Resources = append(page.Resources, r)
	}
	if err := rows.Err(); err != nil {
		return store.ScanPage{}, fmt.Errorf("sqlite: scan %s: %w", q.Type, s.mapErr(ctx, err))
	}
	if len(page.Resources) == q.Count {
		page.Next = page.Resources[len(page.Resources)-1].ID
	}
	return page, nil
}

var _ store.Scanner = (*Store)(nil)
