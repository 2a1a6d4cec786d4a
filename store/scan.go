package store

import (
	"context"
	"time"
)

// ScanQuery selects, for every resource of one type, the version that was
// current at an instant: the consistent snapshot a bulk export reads
// (Bulk Data IG, transactionTime: everything modified up to and including
// it, nothing after).
type ScanQuery struct {
	Type string
	// At picks, per resource, its latest version with LastUpdated <= At.
	// Resources first written after At are left out. Zero: the latest
	// version.
	At time.Time
	// Since keeps only resources whose version at At was written after
	// Since (LastUpdated > Since, the IG's _since). Zero: no bound.
	Since time.Time
	// Deleted also returns resources whose version at At is a delete
	// (Method DELETE, no Body), so that an incremental export can list
	// them; otherwise they are left out.
	Deleted bool
	// After continues a scan: only ids greater than After (byte order).
	// Empty starts at the first id.
	After string
	// Count is the page size (> 0).
	Count int
}

// ScanPage is one page of a scan, in ascending id order.
type ScanPage struct {
	Resources []Resource
	// Next is the After of the following page, empty on the last page.
	Next string
}

// Scanner reads a type's resources as of an instant, page by page. Pages
// are keyset windows on the id, so a scan can stop and resume anywhere,
// and writes made while it runs do not shift it (nor, with At set, change
// what it returns).
type Scanner interface {
	Scan(ctx context.Context, q ScanQuery) (ScanPage, error)
}
