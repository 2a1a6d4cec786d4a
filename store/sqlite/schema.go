package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// The schema version is kept in PRAGMA user_version, so a file written by a
// newer Kiln is refused instead of being misread. A layout change is a new
// entry at the end of steps; a file at version v runs every step after v.
//
// 2: search index tables; current gained rid and last_updated.
// 3: records (store.Records: the authorization server's state).
// 4: background jobs and their files (jobs.go).
var steps = []step{
	{2, schemaV2},
	{3, schemaV3},
	{4, schemaJobs},
}

// step brings a file of version to-1 (or 0 for the first step: a new
// file) to version to.
type step struct {
	to    int
	stmts []string
}

// schemaVersion is the version this Kiln writes.
var schemaVersion = steps[len(steps)-1].to

// schemaV2 is the file layout.
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
// current has one row per resource ever written, pointing at its latest
// version, so that Read is an index lookup plus two rowid lookups and the
// compare-and-set in Commit reads one small row. Its rowid, rid, is the
// resource's compact key: index rows carry it instead of (type, id), search
// results are ordered by it when no _sort is given, and it is the final
// tie-break of every sort. A resource keeps its rid across updates, deletes
// and re-creation. deleted and last_updated are there for search: listing a
// type (current_type) and _lastUpdated (current_updated) never touch
// versions.
//
// History statements name the index they use (INDEXED BY, history.go): the
// planner has no statistics on a new file and would otherwise pick, say, the
// type index for an instance history. INDEXED BY also turns a dropped or
// renamed index into an error at Open instead of a silent full scan.
//
// Search index (search.go, index.go). params gives each (resource type,
// parameter, kind) a small integer, pid, so that index rows carry one
// integer instead of two strings and a type-level search is a seek on one
// pid (a system-level one on a few). kind is the table the rows live in
// ("string", "token", …; number and quantity share ix_number), recorded so
// that a composite's components can be compiled without the registry.
// Besides the parameters themselves, params holds derived names:
//
//	name$i           component i of a composite (or special) parameter
//	                 that ix_comp does not hold, one row per tuple, the
//	                 tuples told apart by tup
//	name:of-type     token rows of an identifier's type codings, sharing
//	                 the identifier row's tup, for :of-type
//	name:identifier  token rows of a reference's identifier, for :identifier
//
// Each ix_ table holds the entries of current, non-deleted versions only:
// writer.applyChange replaces a resource's rows in the same transaction as
// the version (the new rows buffered until the batch's end, index.go), and
// a delete removes them. A union parameter (index.go, unions: Observation's
// combo-*) has no rows of its own: searches read its parts'. Every table is WITHOUT ROWID
// with its primary key ordered for the seek that answers a clause (pid
// first, then the compared value, then rid), and one secondary index on
// (rid, pid) that serves deleting a resource's rows, probing a candidate
// resource for a clause (EXISTS), joining a composite's components by
// (rid, tup) and computing sort keys. Secondary indexes of a WITHOUT ROWID
// table carry the primary key, so every probe is index-only. Range types
// (date, number, quantity) have a partial second index on (pid, hi) for
// the ranges wide enough that a seek on lo cannot bound hi (gt, ge, ne,
// ap seek the upper end). tup is 0 except in rows that belong to a tuple
// (above).
//
// Write cost is what shaped the keys. Each index row dirties the leaf
// page of every b-tree it enters, and a COMMIT writes each dirty page to
// the WAL (two write calls per page); on these machines that, not the
// statements, is most of a create. So rows enter two b-trees (three for a
// wide range), and ix_ref leads with the referenced resource rather than
// pid: the subject and patient rows of one Observation, and the rows of
// one patient's resources written together, share leaf pages.
//
//	ix_string  text = search.Fold(value) (or the phonetic key), value as
//	           written for :exact
//	ix_token   code, system ('' when none), text: the folded display or
//	           text, for :text (a CodeableConcept's text alone is a row
//	           with code and system ''); :text walks the parameter's
//	           rows, as it is rare and a row of its own per display would
//	           tax every write
//	ix_comp    a composite of two components, the first a token (all but
//	           six of R4's): one row per tuple, code and system of the
//	           first, the second in the columns of its kind (lo, hi as in
//	           ix_date or ix_number; vcode, vsystem, unit of a quantity or
//	           token; text, value of a string; value of a uri). A search
//	           seeks the code and tests the value in the same row. kind is
//	           "composite-" + the second component's type.
//	ix_date    lo, hi: [lo, hi) in unix milliseconds
//	ix_number  lo, hi: the value, or a Range's bounds, or an open side
//	           (±MaxNumber) for a comparator; system, code, unit (unit ''
//	           when it equals code) for quantities
//	ix_ref     ref_type, ref_id: "Patient/123" is ('Patient', '123') so
//	           that a bare id seeks (pid, ref_id) whatever the type; an
//	           absolute, contained or canonical reference keeps the whole
//	           string in ref_id with ref_type ''; ver: the version of a
//	           versioned or canonical reference
//	ix_uri     value
var schemaV2 = []string{
	`CREATE TABLE versions (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT,
		type         TEXT    NOT NULL,
		id           TEXT    NOT NULL,
		rid          INTEGER NOT NULL,
		version      INTEGER NOT NULL,
		last_updated INTEGER NOT NULL,
		method       TEXT    NOT NULL,
		body         BLOB
	) STRICT`,
	// VRead, instance history, and the successor lookup of _at, by the
	// resource's rid (current): a create appends to this index, where
	// (type, id, version) put every create on a random page.
	`CREATE UNIQUE INDEX versions_instance ON versions (rid, version)`,
	// Type history in seq order; last_updated rides along so that counting
	// a type's versions since an instant reads only the index.
	`CREATE INDEX versions_type ON versions (type, seq, last_updated)`,
	// System history bounded by _since or _at, and the small index that
	// system-level counts scan instead of the table and its bodies.
	`CREATE INDEX versions_last_updated ON versions (last_updated)`,
	`CREATE TABLE current (
		rid          INTEGER PRIMARY KEY,
		type         TEXT    NOT NULL,
		id           TEXT    NOT NULL,
		version      INTEGER NOT NULL,
		seq          INTEGER NOT NULL,
		deleted      INTEGER NOT NULL,
		last_updated INTEGER NOT NULL
	) STRICT`,
	`CREATE UNIQUE INDEX current_id ON current (type, id)`,
	// A type's live resources in rid order: searches without a selective
	// clause, :missing=true, :not.
	`CREATE INDEX current_type ON current (type, deleted)`,
	// _lastUpdated clauses and sorts.
	`CREATE INDEX current_updated ON current (type, deleted, last_updated)`,

	`CREATE TABLE params (
		pid  INTEGER PRIMARY KEY,
		type TEXT NOT NULL,
		name TEXT NOT NULL,
		kind TEXT NOT NULL,
		UNIQUE (type, name, kind)
	) STRICT`,
	`CREATE TABLE ix_string (
		pid   INTEGER NOT NULL,
		text  TEXT    NOT NULL,
		value TEXT    NOT NULL,
		rid   INTEGER NOT NULL,
		tup   INTEGER NOT NULL,
		PRIMARY KEY (pid, text, value, rid, tup)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX ix_string_rid ON ix_string (rid, pid)`,
	`CREATE TABLE ix_token (
		pid    INTEGER NOT NULL,
		code   TEXT    NOT NULL,
		system TEXT    NOT NULL,
		rid    INTEGER NOT NULL,
		tup    INTEGER NOT NULL,
		text   TEXT    NOT NULL,
		PRIMARY KEY (pid, code, system, rid, tup, text)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX ix_token_rid ON ix_token (rid, pid)`,
	`CREATE TABLE ix_date (
		pid INTEGER NOT NULL,
		lo  INTEGER NOT NULL,
		hi  INTEGER NOT NULL,
		rid INTEGER NOT NULL,
		tup INTEGER NOT NULL,
		PRIMARY KEY (pid, lo, hi, rid, tup)
	) WITHOUT ROWID, STRICT`,
	// Only ranges wider than a day: gt, ge, ap find the others through
	// the primary key (lo > E - 1 day), so most rows (instants, days)
	// cost no second index.
	`CREATE INDEX ix_date_hi ON ix_date (pid, hi) WHERE hi - lo > 86400000`,
	`CREATE INDEX ix_date_rid ON ix_date (rid, pid)`,
	`CREATE TABLE ix_number (
		pid    INTEGER NOT NULL,
		lo     REAL    NOT NULL,
		hi     REAL    NOT NULL,
		rid    INTEGER NOT NULL,
		tup    INTEGER NOT NULL,
		system TEXT    NOT NULL,
		code   TEXT    NOT NULL,
		unit   TEXT    NOT NULL,
		PRIMARY KEY (pid, lo, hi, rid, tup, system, code, unit)
	) WITHOUT ROWID, STRICT`,
	// Only ranges (and open sides): a plain value has lo = hi.
	`CREATE INDEX ix_number_hi ON ix_number (pid, hi) WHERE hi > lo`,
	`CREATE INDEX ix_number_rid ON ix_number (rid, pid)`,
	`CREATE TABLE ix_ref (
		pid      INTEGER NOT NULL,
		ref_id   TEXT    NOT NULL,
		ref_type TEXT    NOT NULL,
		rid      INTEGER NOT NULL,
		tup      INTEGER NOT NULL,
		ver      TEXT    NOT NULL,
		PRIMARY KEY (ref_id, ref_type, pid, rid, tup, ver)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX ix_ref_rid ON ix_ref (rid, pid)`,
	`CREATE TABLE ix_uri (
		pid   INTEGER NOT NULL,
		value TEXT    NOT NULL,
		rid   INTEGER NOT NULL,
		tup   INTEGER NOT NULL,
		PRIMARY KEY (pid, value, rid, tup)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX ix_uri_rid ON ix_uri (rid, pid)`,
	`CREATE TABLE ix_comp (
		pid     INTEGER NOT NULL,
		code    TEXT    NOT NULL,
		system  TEXT    NOT NULL,
		rid     INTEGER NOT NULL,
		tup     INTEGER NOT NULL,
		lo      ANY,
		hi      ANY,
		vcode   TEXT    NOT NULL,
		vsystem TEXT    NOT NULL,
		unit    TEXT    NOT NULL,
		text    TEXT    NOT NULL,
		value   TEXT    NOT NULL,
		PRIMARY KEY (pid, code, system, rid, tup)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX ix_comp_rid ON ix_comp (rid, pid)`,
}

// schemaV3 adds records (records.go). expires is unix microseconds, 0
// for never; records_expires serves the purge of expired rows.
var schemaV3 = []string{
	`CREATE TABLE records (
		kind    TEXT    NOT NULL,
		key     TEXT    NOT NULL,
		value   BLOB    NOT NULL,
		version INTEGER NOT NULL,
		expires INTEGER NOT NULL,
		PRIMARY KEY (kind, key)
	) WITHOUT ROWID, STRICT`,
	`CREATE INDEX records_expires ON records (kind, expires) WHERE expires > 0`,
}

// migrate brings the file at conn to schemaVersion. It runs under the write
// lock (BEGIN IMMEDIATE) and re-reads user_version inside it, so two
// processes opening a new file at once create the schema once.
//
// A file of schema 1 (no search index) is refused rather than migrated:
// its index entries would have to be computed from the bodies with the
// search registry, which this package does not own; re-import it (kiln
// export, then kiln import) instead.
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
	case v > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this Kiln understands (%d)", v, schemaVersion)
	case v != 0 && v < steps[0].to:
		return fmt.Errorf("schema version %d has no search index: this Kiln needs %d; re-import the data into a new file", v, schemaVersion)
	}
	for _, st := range steps {
		if st.to <= v {
			continue
		}
		for _, stmt := range st.stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("schema step %d: %w", st.to, err)
			}
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", st.to)); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
