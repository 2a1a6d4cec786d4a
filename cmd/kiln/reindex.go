package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kiln-fhir/kiln/fhir/reindex"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// reindexStore is what `kiln reindex` opens: the rebuild itself, the
// custom SearchParameters it indexes too, and a record of where it is.
type reindexStore interface {
	reindex.RegistryStore
	store.Records
	Close() error
}

// reindexRecord is where an interrupted `kiln reindex` stopped, kept in
// the store (kind reindexKind) so that the next run resumes there.
type reindexRecord struct {
	Types  []string       `json:"types"`
	At     reindex.Cursor `json:"at"`
	Counts reindex.Counts `json:"counts"`
}

const reindexKind, reindexKey = "kiln.reindex", "cli"

// reindexCmd is `kiln reindex`: it rebuilds the search index entries of
// every current resource (or of the --type list) from the registry, the
// built-in parameters and the custom SearchParameters stored, with a
// progress bar, and prints a summary. It changes no version, so it is safe
// to run again; interrupted, it resumes where it stopped.
//
// Beside a running server: on MongoDB, and on the embedded store of a
// server started with --cache 0, it runs alongside (each update applies
// only to the version it read, so a write made meanwhile always wins). A
// server with its read cache on holds the data directory's lock; stop it
// first, or let the server's own reindex jobs do the work (custom
// SearchParameters are reindexed by the server, without this command).
func reindexCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln reindex", flag.ContinueOnError)
	data := addStoreFlags(fs)
	var types listFlag
	fs.Var(&types, "type", "a resource type to reindex (repeat, or a comma-separated list); default every type")
	quiet := fs.Bool("quiet", false, "no progress bar")
	restart := fs.Bool("restart", false, "start over instead of resuming an interrupted run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("reindex: unexpected argument %q", fs.Arg(0))
	}
	st, err := openReindexStore(ctx, data)
	if err != nil {
		return err
	}
	defer st.Close()
	// The registry a server would extract with: the built-in parameters
	// and every active custom one (searchable or still being indexed).
	mgr, err := reindex.New(ctx, reindex.Config{NoWorker: true}, st)
	if err != nil {
		return err
	}
	defer mgr.Close()
	reg := mgr.Index()

	var want []string
	for _, t := range types {
		for _, t := range strings.Split(t, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if !slices.Contains(reg.Types(), t) {
				return fmt.Errorf("reindex: %q is not an R4 resource type", t)
			}
			want = append(want, t)
		}
	}
	if len(want) == 0 {
		want = reg.Types()
	}
	slices.Sort(want)
	want = slices.Compact(want)

	var rec reindexRecord
	if !*restart {
		if r, err := st.GetRecord(ctx, reindexKind, reindexKey); err == nil && json.Unmarshal(r.Value, &rec) == nil && slices.Equal(rec.Types, want) {
			fmt.Fprintf(stderr, "resuming an interrupted reindex at %s (%d resources done)\n", typeAt(want, rec.At), rec.Counts.Read)
		} else {
			rec = reindexRecord{}
		}
	}
	if rec.Types == nil {
		total, err := reindex.Count(ctx, st, want)
		if err != nil {
			return err
		}
		rec = reindexRecord{Types: want, Counts: reindex.Counts{Total: total}}
	}

	var bar *progressbar.ProgressBar
	if !*quiet {
		bar = progressbar.NewOptions(rec.Counts.Total, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("reindexing"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("resources"), progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond))
		_ = bar.Set(rec.Counts.Read)
	}
	var saved time.Time
	start := time.Now()
	rb := reindex.Rebuild{Store: st, Registry: reg, Types: want, Page: 500,
		Progress: func(ctx context.Context, at reindex.Cursor, n reindex.Counts) error {
			if bar != nil {
				bar.Describe("reindexing " + typeAt(want, at))
				_ = bar.Set(n.Read)
			}
			if time.Since(saved) < time.Second {
				return nil
			}
			saved = time.Now()
			rec.At, rec.Counts = at, n
			v, _ := json.Marshal(rec)
			return st.PutRecord(ctx, store.Record{Kind: reindexKind, Key: reindexKey, Value: v})
		}}
	n, err := rb.Run(ctx, rec.At, rec.Counts)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fmt.Errorf("%w (run kiln reindex again to resume)", err)
	}
	if err := st.DeleteRecord(ctx, reindexKind, reindexKey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d types in %.1fs: %d resources read, %d updated, %d skipped (written meanwhile), %d failed\n",
		len(want), time.Since(start).Seconds(), n.Read, n.Updated, n.Skipped, n.Failed)
	if n.Failed > 0 {
		fmt.Fprintf(stdout, "  could not be indexed (a custom SearchParameter's expression fails on them; entries left as they were): %s\n",
			strings.Join(n.FailedIDs, " "))
	}
	return nil
}

// typeAt names the type a cursor is in.
func typeAt(types []string, at reindex.Cursor) string {
	if at.Type < len(types) {
		return types[at.Type]
	}
	return "the end"
}

func openReindexStore(ctx context.Context, f storeFlags) (reindexStore, error) {
	// No read cache: a shared lock, so it runs beside a server started
	// with --cache 0, never under one whose cache it would make stale.
	st, err := f.openWith(ctx, sqlite.Config{})
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, fmt.Errorf("a kiln server with its read cache on is using %s: stop it (or run it with --cache 0) to reindex: %w", *f.data, err)
	}
	return st, err
}
