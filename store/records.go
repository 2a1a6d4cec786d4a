package store

import (
	"context"
	"time"
)

// Record is one piece of small, non-FHIR state that several Kiln processes
// sharing a backend must agree on: the authorization server's clients,
// users, authorization codes, token grants, revocations, the replay cache
// of assertion jtis, signing keys, launch contexts, login-failure
// counters. Value is opaque to the backend (JSON, as the owner chooses).
type Record struct {
	Kind  string
	Key   string
	Value []byte
	// Version is assigned by the backend: 1 on creation, one more on
	// every replacement (SwapRecord, or PutRecord over an existing
	// record), so a compare-and-set never mistakes a replaced record for
	// the one it read.
	Version int64
	// Expires, when not zero, is the instant after which the record is
	// gone: reads answer ErrNotFound and the backend may remove it.
	Expires time.Time
}

// Records is a small key-value contract keyed by (kind, key), with the
// atomic operations that OAuth needs and that every backend offers in one
// statement: create-if-absent (a jti seen twice), get-and-delete (an
// authorization code used twice) and compare-and-set (a login-failure
// counter raised by two processes at once).
type Records interface {
	// PutRecord creates or replaces the record.
	PutRecord(ctx context.Context, r Record) error
	// InsertRecord creates the record only if no live (unexpired) record
	// has its kind and key; otherwise ErrVersionConflict.
	InsertRecord(ctx context.Context, r Record) error
	// GetRecord returns the live record, or ErrNotFound.
	GetRecord(ctx context.Context, kind, key string) (Record, error)
	// TakeRecord deletes the live record and returns it, atomically: of
	// two callers at most one gets it, the other ErrNotFound.
	TakeRecord(ctx context.Context, kind, key string) (Record, error)
	// SwapRecord replaces the live record whose version is r.Version
	// with r (its version becomes r.Version+1): ErrVersionConflict when
	// the stored version differs, ErrNotFound when there is none.
	SwapRecord(ctx context.Context, r Record) error
	// DeleteRecord removes the record; deleting a missing one is not an
	// error.
	DeleteRecord(ctx context.Context, kind, key string) error
	// ListRecords returns the live records of kind, ordered by key.
	ListRecords(ctx context.Context, kind string) ([]Record, error)
}
