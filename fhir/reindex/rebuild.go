// Package reindex rebuilds search index entries when the search parameter
// registry changes, and runs the custom SearchParameters created through
// the API (Registry).
//
// Index entries are extracted at write time with the registry of the
// moment and stored with the version (store.Change.Index). When the
// registry changes, the entries of resources already stored are stale:
// Rebuild reads every current resource of some types (store.Scanner),
// extracts its entries again and replaces them in place
// (store.Reindexer), without writing a version. The replacement applies
// only while the version read is still current, so a write made meanwhile
// (which indexed itself) is never overwritten with older entries; running
// Rebuild again changes nothing, and it can resume from any Cursor.
//
// `kiln reindex` runs Rebuild over every type (or the --type list); a
// custom SearchParameter runs it over its base types as a background job
// (registry.go, job.go).
package reindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Store is what a rebuild reads and writes.
type Store interface {
	store.Scanner
	store.Reindexer
}

// Cursor is where a rebuild is: the index of the type in the list, and
// the last id done in it ("" at its start). It is what a resumed rebuild
// starts from.
type Cursor struct {
	Type  int    `json:"type"`
	After string `json:"after,omitempty"`
}

// Counts are a rebuild's figures so far.
type Counts struct {
	// Total is the number of resources the rebuild will read, when it was
	// counted beforehand (Count); 0 when unknown.
	Total int `json:"total,omitempty"`
	// Read is the number of current resources read so far.
	Read int `json:"read"`
	// Updated is how many of them had their entries replaced.
	Updated int `json:"updated"`
	// Skipped were written or deleted between the read and the
	// replacement: their write indexed them.
	Skipped int `json:"skipped"`
	// Failed could not be indexed with the registry (a custom expression
	// that fails on them); their entries are left as they were, and
	// FailedIDs names the first few ("Type/id").
	Failed    int      `json:"failed"`
	FailedIDs []string `json:"failedIds,omitempty"`
}

// maxFailedIDs bounds Counts.FailedIDs.
const maxFailedIDs = 10

// Rebuild describes one rebuild.
type Rebuild struct {
	Store    Store
	Registry *search.Registry
	// Types are rebuilt in order.
	Types []string
	// Since, when not zero, keeps only resources whose current version
	// was written after it (a catch-up pass over what changed while a
	// rebuild ran).
	Since time.Time
	// Page is how many resources are read and replaced at once (0: 200).
	Page int
	// Progress, if set, is called after every page with where the
	// rebuild is and its counts; an error stops the rebuild with it.
	Progress func(ctx context.Context, at Cursor, n Counts) error
}

// Run rebuilds from the cursor at with the counts so far, to the end.
func (b Rebuild) Run(ctx context.Context, at Cursor, n Counts) (Counts, error) {
	if b.Page <= 0 {
		b.Page = 200
	}
	for ; at.Type < len(b.Types); at = (Cursor{Type: at.Type + 1}) {
		typ := b.Types[at.Type]
		for {
			page, err := b.Store.Scan(ctx, store.ScanQuery{Type: typ, Since: b.Since, After: at.After, Count: b.Page})
			if err != nil {
				return n, fmt.Errorf("reindex %s: %w", typ, err)
			}
			updates := make([]store.IndexUpdate, 0, len(page.Resources))
			for _, r := range page.Resources {
				n.Read++
				entries, err := b.Registry.Extract(r.Type, r.Body)
				if err != nil {
					n.Failed++
					if len(n.FailedIDs) < maxFailedIDs {
						n.FailedIDs = append(n.FailedIDs, r.Type+"/"+r.ID)
					}
					continue
				}
				updates = append(updates, store.IndexUpdate{Type: r.Type, ID: r.ID, Version: r.Version, Index: entries})
			}
			applied, err := b.Store.Reindex(ctx, updates...)
			if err != nil {
				return n, fmt.Errorf("reindex %s: %w", typ, err)
			}
			n.Updated += applied
			n.Skipped += len(updates) - applied
			if len(page.Resources) > 0 {
				at.After = page.Resources[len(page.Resources)-1].ID
			}
			if page.Next == "" {
				break
			}
			at.After = page.Next
			if b.Progress != nil {
				if err := b.Progress(ctx, at, n); err != nil {
					return n, err
				}
			}
		}
		if b.Progress != nil {
			if err := b.Progress(ctx, Cursor{Type: at.Type + 1}, n); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Count returns how many current resources of types there are: the total
// a progress bar runs to.
func Count(ctx context.Context, st store.Searcher, types []string) (int, error) {
	total := 0
	for _, t := range types {
		page, err := st.Search(ctx, &search.Query{Types: []string{t}, Count: 0, Total: search.TotalAccurate})
		if err != nil {
			return 0, fmt.Errorf("reindex: counting %s: %w", t, err)
		}
		if page.Total < 0 {
			return 0, errors.New("reindex: the store did not count " + t)
		}
		total += page.Total
	}
	return total, nil
}
