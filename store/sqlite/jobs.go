package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// Background jobs and their files (bulk export), kept in the file so that
// a job survives a restart and several processes sharing the file can share
// the work.
//
// jobs: one row per job. A worker claims a job with one UPDATE … RETURNING
// that picks the oldest queued job or a running one whose lease has run
// out; a single statement runs under SQLite's write lock, so two workers
// (in one process or two) never claim the same job. Every later write of
// the worker is conditional on owner: a worker that lost its lease (it
// stalled past lease_until and another took over) gets
// store.ErrVersionConflict, and one whose job was cancelled (deleted) gets
// store.ErrNotFound, instead of overwriting the new owner's work.
//
// job_chunks: the files' contents, in numbered chunks of at most a few
// MiB, so neither writing nor serving a file ever holds it whole (the
// GridFS layout, on this backend). A chunk is only written while its job
// exists (INSERT … WHERE EXISTS), so a worker racing a cancel cannot leave
// chunks behind. Instants are unix microseconds, as in versions.
var schemaJobs = []string{
	`CREATE TABLE jobs (
		id          TEXT    PRIMARY KEY,
		kind        TEXT    NOT NULL,
		state       TEXT    NOT NULL,
		owner       TEXT    NOT NULL,
		lease_until INTEGER NOT NULL,
		attempts    INTEGER NOT NULL,
		created     INTEGER NOT NULL,
		expires     INTEGER NOT NULL,
		spec        BLOB    NOT NULL,
		progress    TEXT    NOT NULL,
		result      BLOB
	) STRICT`,
	`CREATE INDEX jobs_claim ON jobs (kind, state, created)`,
	`CREATE TABLE job_chunks (
		job  TEXT    NOT NULL,
		file TEXT    NOT NULL,
		n    INTEGER NOT NULL,
		data BLOB    NOT NULL,
		UNIQUE (job, file, n)
	) STRICT`,
}

// openJobs opens the connection that writes jobs and chunks. It is not the
// writer's: job writes are rare and large (chunks), and must not queue
// behind resource commits or hold their batches up. The two connections
// take turns at SQLite's write lock (busy timeout).
//
// synchronous=NORMAL: its commits are not fsynced one by one (an export
// writes a chunk a MiB). In WAL mode a power loss can then only lose a
// suffix of the committed transactions, never reorder them, so a job
// recorded done still has every chunk written before; a lost suffix leaves
// the job running with a lease that runs out, and it is exported again.
func (s *Store) openJobs(base string) error {
	db, err := sql.Open("sqlite", base+"&_synchronous=NORMAL")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	s.jdb = db
	return nil
}

const jobColumns = `id, kind, state, owner, lease_until, attempts, created, expires, spec, progress, result`

func scanJob(row interface{ Scan(...any) error }) (store.Job, error) {
	var j store.Job
	var lease, created, expires int64
	err := row.Scan(&j.ID, &j.Kind, &j.State, &j.Owner, &lease, &j.Attempts, &created, &expires, &j.Spec, &j.Progress, &j.Result)
	if err != nil {
		return store.Job{}, err
	}
	j.LeaseUntil, j.Created = micros(lease), micros(created)
	if expires != 0 {
		j.Expires = micros(expires)
	}
	return j, nil
}

func micros(u int64) time.Time { return time.UnixMicro(u).UTC() }

func microsOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// jobWritten lets the checkpointer copy what a job write added to the WAL.
func (s *Store) jobWritten() { s.ckp.committed() }

// CreateJob stores a new job; ErrVersionConflict when the id is taken.
func (s *Store) CreateJob(ctx context.Context, j store.Job) error {
	if j.Spec == nil {
		j.Spec = []byte{}
	}
	_, err := s.jdb.ExecContext(ctx, `INSERT INTO jobs (`+jobColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Kind, string(j.State), j.Owner, microsOf(j.LeaseUntil), j.Attempts, microsOf(j.Created),
		microsOf(j.Expires), j.Spec, j.Progress, j.Result)
	if err != nil {
		var e interface{ Code() int }
		if errors.As(err, &e) && e.Code()&0xff == 19 { // SQLITE_CONSTRAINT
			return fmt.Errorf("sqlite: create job %s: %w", j.ID, store.ErrVersionConflict)
		}
		return fmt.Errorf("sqlite: create job %s: %w", j.ID, s.mapErr(ctx, err))
	}
	s.jobWritten()
	return nil
}

// Job reads a job; ErrNotFound when there is none (never was, cancelled,
// or expired and removed).
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	j, err := scanJob(s.rdb.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return store.Job{}, fmt.Errorf("sqlite: job %s: %w", id, s.mapErr(ctx, err))
	}
	return j, nil
}

// ClaimJob gives owner the oldest job of kind that is queued, or running
// with a lease that ended before now, as running until now+lease, with
// Attempts counted up. ErrNotFound when there is none.
func (s *Store) ClaimJob(ctx context.Context, kind, owner string, now time.Time, lease time.Duration) (store.Job, error) {
	j, err := scanJob(s.jdb.QueryRowContext(ctx, `UPDATE jobs SET state = 'running', owner = ?1,
			lease_until = ?2, attempts = attempts + 1
		WHERE id = (SELECT id FROM jobs INDEXED BY jobs_claim
			WHERE kind = ?3 AND (state = 'queued' OR (state = 'running' AND lease_until < ?4))
			ORDER BY created, id LIMIT 1)
		RETURNING `+jobColumns, owner, now.Add(lease).UnixMicro(), kind, now.UnixMicro()))
	if err != nil {
		return store.Job{}, fmt.Errorf("sqlite: claim %s job: %w", kind, s.mapErr(ctx, err))
	}
	s.jobWritten()
	return j, nil
}

// UpdateJob writes j's state, lease, expiry, progress and result, if
// j.Owner still holds the job: ErrNotFound when the job is gone
// (cancelled), ErrVersionConflict when another owner holds it.
func (s *Store) UpdateJob(ctx context.Context, j store.Job) error {
	res, err := s.jdb.ExecContext(ctx, `UPDATE jobs SET state = ?, lease_until = ?, expires = ?, progress = ?, result = ?
		WHERE id = ? AND owner = ?`,
		string(j.State), microsOf(j.LeaseUntil), microsOf(j.Expires), j.Progress, j.Result, j.ID, j.Owner)
	if err != nil {
		return fmt.Errorf("sqlite: update job %s: %w", j.ID, s.mapErr(ctx, err))
	}
	if n, _ := res.RowsAffected(); n == 1 {
		s.jobWritten()
		return nil
	}
	if _, err := s.Job(ctx, j.ID); err != nil {
		return fmt.Errorf("sqlite: update job %s: %w", j.ID, err)
	}
	return fmt.Errorf("sqlite: update job %s: %w", j.ID, store.ErrVersionConflict)
}

// DeleteJob removes a job and its files, in one transaction; ErrNotFound
// when there was no such job.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	tx, err := s.jdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete job %s: %w", id, s.mapErr(ctx, err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete job %s: %w", id, s.mapErr(ctx, err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM job_chunks WHERE job = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete job %s: %w", id, s.mapErr(ctx, err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete job %s: %w", id, s.mapErr(ctx, err))
	}
	s.jobWritten()
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: delete job %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Jobs lists the jobs of kind without their spec, progress and result,
// oldest first: what the server needs to count running jobs and find
// expired ones.
func (s *Store) Jobs(ctx context.Context, kind string) ([]store.Job, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, kind, state, owner, lease_until, attempts, created, expires,
		x'', '', NULL FROM jobs WHERE kind = ? ORDER BY created, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list %s jobs: %w", kind, s.mapErr(ctx, err))
	}
	defer rows.Close()
	var out []store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list %s jobs: %w", kind, s.mapErr(ctx, err))
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list %s jobs: %w", kind, s.mapErr(ctx, err))
	}
	return out, nil
}

// PutChunk stores chunk n of a job's file, if owner still holds the job
// (ErrNotFound when the job is gone, ErrVersionConflict when another owner
// holds it). Writing a chunk again replaces it.
func (s *Store) PutChunk(ctx context.Context, job, owner, file string, n int, data []byte) error {
	res, err := s.jdb.ExecContext(ctx, `INSERT OR REPLACE INTO job_chunks (job, file, n, data)
		SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND owner = ?5)`,
		job, file, n, data, owner)
	if err != nil {
		return fmt.Errorf("sqlite: put chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	if k, _ := res.RowsAffected(); k == 1 {
		s.jobWritten()
		return nil
	}
	if _, err := s.Job(ctx, job); err != nil {
		return fmt.Errorf("sqlite: put chunk %s/%s/%d: %w", job, file, n, err)
	}
	return fmt.Errorf("sqlite: put chunk %s/%s/%d: %w", job, file, n, store.ErrVersionConflict)
}

// Chunk reads chunk n of a job's file; ErrNotFound past its last chunk.
func (s *Store) Chunk(ctx context.Context, job, file string, n int) ([]byte, error) {
	var data []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT data FROM job_chunks WHERE job = ? AND file = ? AND n = ?`,
		job, file, n).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("sqlite: chunk %s/%s/%d: %w", job, file, n, s.mapErr(ctx, err))
	}
	return data, nil
}

// DeleteChunks removes every file of a job, if owner holds it: a worker
// that takes a job over starts its files afresh.
func (s *Store) DeleteChunks(ctx context.Context, job, owner string) error {
	_, err := s.jdb.ExecContext(ctx, `DELETE FROM job_chunks WHERE job = ?1
		AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND owner = ?2)`, job, owner)
	if err != nil {
		return fmt.Errorf("sqlite: delete chunks of %s: %w", job, s.mapErr(ctx, err))
	}
	s.jobWritten()
	return nil
}
