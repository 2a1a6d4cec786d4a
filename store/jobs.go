package store

import (
	"context"
	"time"
)

// JobState is where a background job is in its life.
type JobState string

const (
	// JobQueued: accepted, waiting for a worker to claim it.
	JobQueued JobState = "queued"
	// JobRunning: claimed by Owner until LeaseUntil. A worker that stops
	// renewing its lease (a crash, a restart) loses the job to the next
	// ClaimJob after LeaseUntil.
	JobRunning JobState = "running"
	// JobDone and JobFailed are final; Result says how it ended.
	JobDone   JobState = "done"
	JobFailed JobState = "failed"
)

// Job is a background job (a bulk export) kept in the store, so that it
// survives a restart and any Kiln process sharing the store can run it.
// Spec, Progress and Result are the job kind's own (JSON); the store
// keeps them as bytes.
type Job struct {
	ID         string
	Kind       string
	State      JobState
	Owner      string // the worker holding the lease; empty while queued
	LeaseUntil time.Time
	Attempts   int // how many times a worker claimed it
	Created    time.Time
	// Expires is when a finished job and its files may be removed (zero:
	// not before it finishes).
	Expires  time.Time
	Spec     []byte
	Progress string
	Result   []byte
}

// Jobs keeps background jobs (bulk exports, reindexing) and the files
// they write, as numbered chunks. The store owns atomicity: a
// claim hands a job to one owner, and UpdateJob, PutChunk and DeleteChunks
// only apply while that owner holds it (ErrVersionConflict when
// another owner took over, ErrNotFound when the job was cancelled).
type Jobs interface {
	CreateJob(ctx context.Context, j Job) error
	Job(ctx context.Context, id string) (Job, error)
	ClaimJob(ctx context.Context, kind, owner string, now time.Time, lease time.Duration) (Job, error)
	UpdateJob(ctx context.Context, j Job) error
	DeleteJob(ctx context.Context, id string) error
	Jobs(ctx context.Context, kind string) ([]Job, error)
	PutChunk(ctx context.Context, job, owner, file string, n int, data []byte) error
	Chunk(ctx context.Context, job, file string, n int) ([]byte, error)
	DeleteChunks(ctx context.Context, job, owner string) error
}
