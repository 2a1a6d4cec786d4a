package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is kept in PRAGMA user_version, so a file written by a newer
// Kiln is refused instead of being misread. Bump it with every layout change
// and add the step to migrate.
const schemaVersion = 1

// schemaV1 is the file layout.
//
// versions holds every version of every resource; deletes are versions too
// (http.html#delete: a later read answers 410 and history shows the
// delete). seq is the global write order that history pages by: AUTOINCREMENT
// guarantees a seq is never handed out twice even if rows are removed later
// (a future $expunge), and because one writer (writer.go) assigns seqs one
// transaction at a time, a reader that sees seq n also sees every seq below
// n. Keyset cursors rely on both facts. last_updated is unix microseconds,
// the precision the store contract promises.
//
// current points at the latest version of each resource so that Read is a
// primary-key lookup plus a rowid lookup, and so that the compare-and-set in
// Commit reads one small row. deleted is there for search, which must skip
// deleted resources without touching their versions.
//
// Search index tables (a later issue) go beside these, keyed by (type, id),
// and are rewritten by writer.applyChange in the same savepoint as the
// version and current rows, so a resource and its index entries never
// disagree (design.md, Storage model).
//
// History statements name the index they use (INDEXED BY, history.go): the
// planner has no statistics on a new file and would otherwise pick, say, the
// type index for an instance history. INDEXED BY also turns a dropped or
// renamed index into an error at Open instead of a silent full scan.
var schemaV1 = []string{
	`CREATE TABLE versions (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT,
		type         TEXT    NOT NULL,
		id           TEXT    NOT NULL,
		version      INTEGER NOT NULL,
		last_updated INTEGER NOT NULL,
		method       TEXT    NOT NULL,
		body         BLOB
	) STRICT`,
	// VRead, instance history, and the successor lookup of _at.
	`CREATE UNIQUE INDEX versions_instance ON versions (type, id, version)`,
	// Type history in seq order; last_updated rides along so that counting
	// a type's versions since an instant reads only the index.
	`CREATE INDEX versions_type ON versions (type, seq, last_updated)`,
	// System history bounded by _since or _at, and the small index that
	// system-level counts scan instead of the table and its bodies.
	`CREATE INDEX versions_last_updated ON versions (last_updated)`,
	`CREATE TABLE current (
		type    TEXT    NOT NULL,
		id      TEXT    NOT NULL,
		version INTEGER NOT NULL,
		seq     INTEGER NOT NULL,
		deleted INTEGER NOT NULL,
		PRIMARY KEY (type, id)
	) WITHOUT ROWID, STRICT`,
	`PRAGMA user_version = 1`,
}

// migrate brings the file at conn to schemaVersion. It runs under the write
// lock (BEGIN IMMEDIATE) and re-reads user_version inside it, so two
// processes opening a new file at once create the schema once.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var v int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case v == schemaVersion:
	case v > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this Kiln understands (%d)", v, schemaVersion)
	case v == 0:
		for _, stmt := range schemaV1 {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
