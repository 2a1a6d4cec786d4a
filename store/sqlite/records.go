package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

var _ store.Records = (*Store)(nil)

// Records (store.Records) live in one table, schema step 3. Every
// operation is a single statement, so it is atomic on its own: SQLite
// takes the write lock for the statement and, in WAL mode, another process
// that opened the same file waits for it (busy_timeout) like it waits for
// the resource writer. That is why records do not go through the group
// committer (writer.go): they are few, small and latency-bound, and a
// second write connection that each statement holds for microseconds is
// simpler than a second kind of queued call. Expired rows are invisible to
// reads (expires compared with the clock in the statement) and removed by
// the writes of the same kind.

func now() int64 { return time.Now().UnixMicro() }

func expiresCol(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromCol(kind, key string, value []byte, version, expires int64) store.Record {
	r := store.Record{Kind: kind, Key: key, Value: value, Version: version}
	if expires != 0 {
		r.Expires = time.UnixMicro(expires).UTC()
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	return r
}

// live is the SQL condition of a record that has not expired at ?.
const live = `(expires = 0 OR expires > ?)`

func (s *Store) recExec(ctx context.Context, op string, r store.Record, q string, args ...any) (sql.Result, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	res, err := s.xdb.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s record %s/%s: %w", op, r.Kind, r.Key, s.mapErr(ctx, err))
	}
	s.ckp.committed()
	return res, nil
}

// purge removes the expired records of kind; failures are left for the
// next write.
func (s *Store) purge(ctx context.Context, kind string) {
	_, _ = s.xdb.ExecContext(ctx, `DELETE FROM records WHERE kind = ? AND expires BETWEEN 1 AND ?`, kind, now())
}

// PutRecord implements store.Records.
func (s *Store) PutRecord(ctx context.Context, r store.Record) error {
	s.purge(ctx, r.Kind)
	_, err := s.recExec(ctx, "put", r, `INSERT INTO records (kind, key, value, version, expires) VALUES (?, ?, ?, 1, ?)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = records.version + 1, expires = excluded.expires`,
		r.Kind, r.Key, r.Value, expiresCol(r.Expires))
	return err
}

// InsertRecord implements store.Records: the upsert replaces only an
// expired row, so a live one leaves zero changed rows.
func (s *Store) InsertRecord(ctx context.Context, r store.Record) error {
	s.purge(ctx, r.Kind)
	res, err := s.recExec(ctx, "insert", r, `INSERT INTO records (kind, key, value, version, expires) VALUES (?, ?, ?, 1, ?)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, version = 1, expires = excluded.expires
		WHERE NOT `+live, r.Kind, r.Key, r.Value, expiresCol(r.Expires), now())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: insert record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
	}
	return nil
}

// GetRecord implements store.Records.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (store.Record, error) {
	var value []byte
	var version, expires int64
	err := s.rdb.QueryRowContext(ctx, `SELECT value, version, expires FROM records
		WHERE kind = ? AND key = ? AND `+live, kind, key, now()).Scan(&value, &version, &expires)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: get record %s/%s: %w", kind, key, s.mapErr(ctx, err))
	}
	return fromCol(kind, key, value, version, expires), nil
}

// TakeRecord implements store.Records with DELETE … RETURNING: one
// statement, so two takers cannot both see the row.
func (s *Store) TakeRecord(ctx context.Context, kind, key string) (store.Record, error) {
	if s.closed.Load() {
		return store.Record{}, errClosed
	}
	var value []byte
	var version, expires int64
	err := s.xdb.QueryRowContext(ctx, `DELETE FROM records WHERE kind = ? AND key = ? AND `+live+`
		RETURNING value, version, expires`, kind, key, now()).Scan(&value, &version, &expires)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: take record %s/%s: %w", kind, key, s.mapErr(ctx, err))
	}
	s.ckp.committed()
	return fromCol(kind, key, value, version, expires), nil
}

// SwapRecord implements store.Records.
func (s *Store) SwapRecord(ctx context.Context, r store.Record) error {
	res, err := s.recExec(ctx, "swap", r, `UPDATE records SET value = ?, version = version + 1, expires = ?
		WHERE kind = ? AND key = ? AND version = ? AND `+live,
		r.Value, expiresCol(r.Expires), r.Kind, r.Key, r.Version, now())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return nil
	}
	if _, err := s.GetRecord(ctx, r.Kind, r.Key); err != nil {
		return err
	}
	return fmt.Errorf("sqlite: swap record %s/%s: %w", r.Kind, r.Key, store.ErrVersionConflict)
}

// DeleteRecord implements store.Records.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string) error {
	_, err := s.recExec(ctx, "delete", store.Record{Kind: kind, Key: key},
		`DELETE FROM records WHERE kind = ? AND key = ?`, kind, key)
	return err
}

// ListRecords implements store.Records.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT key, value, version, expires FROM records
		WHERE kind = ? AND `+live+` ORDER BY key`, kind, now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records %s: %w", kind, s.mapErr(ctx, err))
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var key string
		var value []byte
		var version, expires int64
		if err := rows.Scan(&key, &value, &version, &expires); err != nil {
			return nil, fmt.Errorf("sqlite: list records %s: %w", kind, s.mapErr(ctx, err))
		}
		out = append(out, fromCol(kind, key, value, version, expires))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list records %s: %w", kind, s.mapErr(ctx, err))
	}
	return out, nil
}
