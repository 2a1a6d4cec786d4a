package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/fhir/reindex"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// importFiles is `kiln import [flags] FILE|DIR…`: loads Bundles and NDJSON
// into the store of --data (fhir/ingest). Run it while the server is
// stopped, or against a data directory no server has open.
func importFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln import", flag.ContinueOnError)
	data := fs.String("data", env("KILN_DATA", "./data"), "data directory of the embedded store (KILN_DATA)")
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
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(*data, "kiln.db")})
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
