// Package store defines what Kiln needs from a storage backend: small
// interfaces, plain value types and sentinel errors. Backends (store/sqlite,
// store/mongo) live in sibling packages, import only this one, and translate
// their driver errors into the sentinels below at their edge.
//
// The contract is backend-neutral on purpose: every operation is expressed
// as versions of (type, id) plus opaque cursors, so a document store and a
// relational store implement it equally well.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// Sentinel errors. Callers use errors.Is; backends wrap them with context.
var (
	// ErrNotFound: the resource (or version) never existed.
	ErrNotFound = errors.New("not found")
	// ErrGone: the resource existed and its latest version is a delete.
	ErrGone = errors.New("gone")
	// ErrVersionConflict: a Change's precondition on the current version
	// failed (compare-and-set lost, or the id was taken by a concurrent
	// create).
	ErrVersionConflict = errors.New("version conflict")
	// ErrInvalidCursor: a paging cursor was not produced by this backend or
	// was tampered with.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrUnavailable: the backend cannot be reached right now; the request
	// may succeed later (HTTP 503).
	ErrUnavailable = errors.New("store unavailable")
	// ErrUnsupported: the backend cannot answer this search (a modifier
	// that needs a terminology server, sorting on a composite, …). It is
	// the client's query that is refused (HTTP 400), not a failure.
	ErrUnsupported = errors.New("unsupported search")
	// ErrNoTransactions: the backend cannot apply several changes
	// atomically (a MongoDB server that is not a replica set), so a Commit
	// of more than one change is refused before anything is written. It is
	// the deployment that cannot serve the request (HTTP 501), never a
	// half-applied bundle.
	ErrNoTransactions = errors.New("multi-document transactions are not available on this deployment")
	// ErrTooLarge: the resource is larger than the backend can store (a
	// MongoDB document holds 16 MiB); the request is refused (HTTP 413).
	ErrTooLarge = errors.New("resource too large for the store")
)

// Method says how a version came to be, as history bundles report it
// (Bundle.entry.request.method).
type Method string

const (
	MethodPost   Method = "POST"
	MethodPut    Method = "PUT"
	MethodDelete Method = "DELETE"
)

// Resource is one stored version of a resource. Body is the canonical JSON
// produced at write time (with id and meta.versionId/lastUpdated already
// set), served to clients as is; it is nil when the version is a delete.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Method      Method
	Body        []byte
}

// Deleted reports whether this version records a delete.
func (r Resource) Deleted() bool { return r.Method == MethodDelete }

// Change is one write: version Version of Type/ID. The precondition is
// compare-and-set on the version sequence: the change applies only if the
// latest stored version of Type/ID is Version-1 (0 meaning "no version at
// all"). So a create is Version 1, an update after reading version n is
// n+1, and a delete is a new version with Method DELETE and no Body. Two
// writers that read the same version can never both win.
type Change struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Method      Method
	Body        []byte
	// Index holds the search index entries of Body (search.Extract); nil
	// for deletes. The backend stores them with the version, atomically,
	// so that searches see exactly the current versions.
	Index []search.Entry
}

// Resources reads and writes versioned resources.
type Resources interface {
	// Read returns the latest version of type/id: ErrNotFound when it never
	// existed; ErrGone, together with the delete version, when the latest
	// version is a delete.
	Read(ctx context.Context, typ, id string) (Resource, error)
	// VRead returns one version: ErrNotFound when there is no such version;
	// ErrGone, together with the version, when that version is a delete.
	VRead(ctx context.Context, typ, id string, version int64) (Resource, error)
	// Commit applies every change or none (ErrVersionConflict names the
	// first change whose precondition failed, via *ConflictError). Once it
	// returns nil the changes are durable.
	Commit(ctx context.Context, changes ...Change) error
}

// ConflictError tells which change of a Commit lost its compare-and-set.
// errors.Is(err, ErrVersionConflict) holds for it.
type ConflictError struct {
	Index   int   // position in the Commit call
	Current int64 // the version actually current (0: none)
}

func (e *ConflictError) Error() string { return "version conflict" }
func (e *ConflictError) Unwrap() error { return ErrVersionConflict }

// HistoryQuery selects versions for a history interaction. Type and ID
// narrow the level: both empty is system history, Type alone is type
// history, both set is instance history.
type HistoryQuery struct {
	Type string
	ID   string
	// Since keeps versions with LastUpdated >= Since (zero: no bound).
	Since time.Time
	// AtStart..AtEnd (both zero: no bound) keeps versions that were current
	// at some instant of [AtStart, AtEnd): written before AtEnd and not
	// replaced before AtStart (history.html `_at`).
	AtStart, AtEnd time.Time
	// Only, when non-nil, keeps the versions of these resources alone
	// (http.html#history `_list`: the resources a List holds): every
	// version of an entry whose Version is 0, that version alone of one
	// whose Version is set. Empty but non-nil selects nothing. The other
	// bounds (level, Since, At) still apply.
	Only []VersionRef
	// Count is the page size (> 0).
	Count int
	// Cursor continues a previous page; empty starts at the newest version.
	Cursor string
}

// VersionRef names a resource, or one version of it (Version > 0).
type VersionRef struct {
	Type    string
	ID      string
	Version int64
}

// HistoryPage is one page of versions, newest first.
type HistoryPage struct {
	Versions []Resource
	// Next is the cursor of the following page, empty on the last page.
	Next string
	// Total is the number of versions the query selects over all pages.
	// The pages of one paging list the versions there were when its first
	// page was read, so Total is the same on every page of it.
	Total int
}

// History pages through versions, newest first, deletes included.
// Cursors are keyset positions: a page does not shift when versions are
// written while a client pages.
type History interface {
	History(ctx context.Context, q HistoryQuery) (HistoryPage, error)
}

// SearchPage is one page of search matches.
type SearchPage struct {
	Matches []Resource
	// Next is the cursor of the following page, empty on the last page.
	Next string
	// Prev is the cursor of the page before, empty on the first page
	// (and when a backend cannot page backwards). Like Next it is a
	// keyset position: the page before is the matches that sort just
	// before this page's first, as they are when it is read.
	Prev string
	// Total is the number of matches over all pages, or -1 when the query
	// asked for no total (search.TotalNone) and the backend did not count.
	Total int
}

// Searcher answers searches over current (non-deleted) versions. The
// query is typed and normalised (search.Parse); the backend compiles it to
// its own query language with bound parameters only, and must answer every
// clause through its indexes, not by filtering in Go.
type Searcher interface {
	Search(ctx context.Context, q *search.Query) (SearchPage, error)
}

// Pinger reports whether the backend is reachable (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Store is everything a backend provides. Consumers should accept the
// narrowest of the interfaces above instead.
type Store interface {
	Resources
	History
	Searcher
	Pinger
	Close() error
}

// IsAnswer reports whether err is one of the sentinels that answer a
// request (not found, gone, version conflict, bad cursor, unsupported
// search) rather than a failure of the backend.
func IsAnswer(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrGone) ||
		errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrInvalidCursor) ||
		errors.Is(err, ErrUnsupported)
}
