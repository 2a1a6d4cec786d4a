package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"

	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/fhir/reindex"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// importFiles is `kiln import [flags] FILE|DIR…`: loads Bundles and NDJSON
// into the store of --data (fhir/ingest), or with --mongo-uri into the
// MongoDB database the servers share. With the embedded store, run it
// while the server is stopped, or against a data directory no server has
// open; with MongoDB, servers may keep running (every write is the same
// compare-and-set they use).
func importFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln import", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory of the embedded store (KILN_DATA)")
	mongoURI := fs.String("mongo-uri", env("KILN_MONGO_URI", ""), "MongoDB connection string; load into MongoDB instead of --data (KILN_MONGO_URI)")
	mongoDB := fs.String("mongo-db", env("KILN_MONGO_DB", ""), "MongoDB database name; default the URI's, else kiln (KILN_MONGO_DB)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "units (bundles, runs of NDJSON lines) loaded at once")
	quiet := fs.Bool("quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: kiln import [flags] FILE|DIR…  (*.json Bundles or resources, *.ndjson, *.ndjson.gz)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("import: name at least one file or directory")
	}
	db, err := importStore(ctx, *data, *mongoURI, *mongoDB, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	// Index with the registry a server would: custom SearchParameters
	// stored before included (those in the files themselves join when a
	// server starts and reindexes for them).
	params, err := reindex.New(ctx, reindex.Config{NoWorker: true}, db)
	if err != nil {
		return err
	}
	defer params.Close()
	opts := ingest.Options{Workers: *workers, Registry: params.Index()}
	if !*quiet {
		opts.Progress = stderr
	}
	// An import allocates fast and keeps little (the units in flight, some
	// 40 MB of heap on Synthea data): at the default GOGC=100 the collector
	// ran every few hundred milliseconds, 6-8% of the CPU (issue 4). A
	// larger heap goal collects a third as often; the peak stays a fixed
	// multiple of the units in flight, not of the input. GOGC, when set,
	// decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(importGCPercent)
	}
	sum, err := ingest.Run(ctx, db, fs.Args(), opts)
	fmt.Fprintf(stdout, "%d files in %.1fs: %d loaded (%d created, %d updated, %d unchanged), %d rejected\n",
		sum.Files, sum.Elapsed.Seconds(), sum.Loaded(), sum.Created, sum.Updated, sum.Unchanged, sum.Rejected)
	reasons := make([]string, 0, len(sum.Reasons))
	for r := range sum.Reasons {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Fprintf(stdout, "  rejected %d: %s (first: %s)\n", sum.Reasons[r], r, sum.Examples[r])
	}
	return err
}

// importGCPercent is the GOGC of `kiln import` unless the environment
// sets one.
const importGCPercent = 300

// importDB is the store an import writes to.
type importDB interface {
	ingest.Store
	// The registry reads the stored custom SearchParameters through it.
	reindex.RegistryStore
	Close() error
}

// importStore opens the store of --data, or of --mongo-uri.
func importStore(ctx context.Context, data, mongoURI, mongoDB string, stderr io.Writer) (importDB, error) {
	if mongoURI == "" {
		if mongoDB != "" {
			return nil, errors.New("--mongo-db needs --mongo-uri")
		}
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "kiln.db")})
	}
	// Startup notes at warn level: the summary is the output.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := mongo.Open(ctx, mongoURI, mongo.Options{Database: mongoDB, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	if st.Transactions {
		return st, nil
	}
	return oneByOne{st}, nil
}

// oneByOne commits each change of a Commit on its own, for a MongoDB
// deployment without multi-document transactions (a standalone server,
// FerretDB), which refuses a Commit of several changes. A Bundle then
// loads resource by resource rather than all at once: a crash can leave
// part of a transaction Bundle stored. That is sound for an import, which
// is not a transaction but an idempotent, resumable load: validation still
// rejects a transaction Bundle whole before anything is written, and
// running the import again writes exactly what is missing. On a replica
// set or sharded cluster each Bundle is one multi-document transaction.
type oneByOne struct{ *mongo.Store }

// CommitsPiecewise tells fhir/ingest that a Commit may stop half-way.
func (oneByOne) CommitsPiecewise() bool { return true }

func (o oneByOne) Commit(ctx context.Context, changes ...store.Change) error {
	for i, c := range changes {
		err := o.Store.Commit(ctx, c)
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			return &store.ConflictError{Index: i, Current: ce.Current}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
