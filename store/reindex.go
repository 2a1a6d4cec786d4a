package store

import (
	"context"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// IndexUpdate is the new index of one current version: what a reindex
// computed from the body it read at Version.
type IndexUpdate struct {
	Type    string
	ID      string
	Version int64
	Index   []search.Entry
}

// Reindexer replaces the search index entries of current versions in
// place, without writing a version: what `kiln reindex` and the background
// job of a custom SearchParameter do when the registry changed.
//
// The precondition is the one of Commit, read-only: an update applies only
// while Type/ID's current version is still Version and is not a delete. A
// resource written (or deleted) since it was read is left alone, since its
// write stored the entries of the newer version; Reindex counts only the
// updates it applied. Updates are applied one by one (each atomically with
// its precondition), not all or none: a reindex is idempotent and is simply
// run again.
type Reindexer interface {
	Reindex(ctx context.Context, updates ...IndexUpdate) (applied int, err error)
}
