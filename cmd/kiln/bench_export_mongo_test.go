package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/population"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkExportMongo's population by default: on a real MongoDB
// (KILN_TEST_MONGO_URI), and much smaller on FerretDB, the in-process
// stand-in, which evaluates every filter but _id equality by reading and
// decoding the whole collection: each page of each type's scan reads
// every stored version.
const (
	exportMongoN         = 20_000
	exportMongoNFerretDB = 2_000
)

// BenchmarkExportMongo is issue 6's export figure on the MongoDB backend
// beside the embedded store's, in one run, on the same data: the
// population of conformance/population with KILN_BENCH_MONGO_EXPORT_N
// resources (default exportMongoN; cached like BenchmarkExport1M's),
// written out as NDJSON and loaded into MongoDB with `kiln import
// --mongo-uri` (FerretDB in-process, or KILN_TEST_MONGO_URI). Then, for
// the embedded store and for MongoDB:
//
//   - baseline: every current resource read straight from the store
//     (store.Scanner, type by type, page by page) into a discarding
//     writer, in this process;
//   - export: a kiln binary (--auth=none) on that store doing a system
//     $export as a client sees it (kick-off, polling every 100 ms,
//     downloading every file 4 at a time, each file's lines checked
//     against the manifest and the sum against the population).
//
// Both read the population's own types only (the export with _type
// naming them): a system export without _type also scans the ~130 types
// the population has none of, an index seek each on the embedded store
// and on MongoDB, but a read of the whole versions collection each on
// FerretDB, which would be most of the figure there.
//
// Reported: resources/s of each, each export's share of its own
// baseline, and MongoDB's export over the embedded store's. Against
// FerretDB the MongoDB figures measure the wire path over a server that
// scans whole collections; production figures need a real MongoDB.
//
//	go test -run '^$' -bench ExportMongo -benchtime 1x -timeout 60m ./cmd/kiln
func BenchmarkExportMongo(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a population and starts FerretDB and two kiln processes")
	}
	ctx := context.Background()
	kilnBinary(b)
	srv := mongotest.Start(b)
	n := exportMongoN
	// A FerretDB scan of a large collection takes seconds: past the
	// default 5 s operation timeout on a loaded machine.
	timeout := 5 * time.Second
	if srv.FerretDB {
		b.Log("MongoDB side: FerretDB in-process (wire path only, not MongoDB production figures); set KILN_TEST_MONGO_URI for a real MongoDB")
		n, timeout = exportMongoNFerretDB, 5*time.Minute
	}
	if v := os.Getenv("KILN_BENCH_MONGO_EXPORT_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("KILN_BENCH_MONGO_EXPORT_N=%q is not a positive number", v)
		}
	}
	pop, err := population.Open(ctx, population.Config{N: n, Synthea: "../../testdata/synthea", Progress: os.Stderr})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("population (cached %v): %v", pop.Cached, pop)
	data := b.TempDir()
	if err := copyFile(filepath.Join(pop.Dir, "kiln.db"), filepath.Join(data, "kiln.db")); err != nil {
		b.Fatal(err)
	}

	dbName := fmt.Sprintf("kiln_export_%d", time.Now().UnixNano())
	ndjson := b.TempDir()
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "kiln.db")})
	if err != nil {
		b.Fatal(err)
	}
	types, dumped := dumpNDJSON(b, ctx, db, ndjson)
	if dumped != pop.Resources {
		b.Fatalf("wrote %d resources as NDJSON, the population has %d", dumped, pop.Resources)
	}
	start := time.Now()
	out, err := exec.Command(kilnBinary(b), "import", "--mongo-uri", srv.URI, "--mongo-db", dbName, "--quiet", ndjson).CombinedOutput()
	if err != nil {
		b.Fatalf("kiln import --mongo-uri: %v\n%s", err, tail(string(out), 20))
	}
	b.Logf("kiln import --mongo-uri: %d resources in %v", pop.Resources, time.Since(start).Round(time.Millisecond))
	ms, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: dbName, Timeout: timeout})
	if err != nil {
		b.Fatal(err)
	}

	type figures struct {
		baseline, export float64 // resources/s
	}
	var got [2]figures
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	for i, side := range []struct {
		name  string
		st    store.Scanner
		close func() error
		args  []string
	}{
		{"sqlite", db, db.Close, nil},
		{"mongo", ms, ms.Close, []string{"--mongo-uri", srv.URI, "--mongo-db", dbName, "--mongo-timeout", timeout.String()}},
	} {
		start := time.Now()
		count := scanTypes(b, ctx, side.st, types)
		baseline := time.Since(start)
		if err := side.close(); err != nil {
			b.Fatal(err)
		}
		if count != pop.Resources {
			b.Fatalf("%s baseline scanned %d resources, the population has %d", side.name, count, pop.Resources)
		}
		dir := data
		if side.args != nil {
			dir = b.TempDir()
		}
		k := startKiln(b, dir, side.args...)
		c := &exportClient{cfg: exportConfig{url: k.base, types: strings.Join(types, ","), quiet: true}, http: &http.Client{}}
		start = time.Now()
		status, err := c.kickoff(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m := pollManifest(b, ctx, c, status)
		ecount, _ := downloadAll(b, ctx, c, m.Output)
		export := time.Since(start)
		if ecount != pop.Resources || len(m.Error) > 0 {
			b.Fatalf("%s export: %d resources (and %d error files), the population has %d", side.name, ecount, len(m.Error), pop.Resources)
		}
		k.stop()
		got[i] = figures{rate(count, baseline), rate(ecount, export)}
		b.Logf("%-6s baseline %d resources in %v: %.0f resources/s; export in %v: %.0f resources/s, %.2f × the baseline",
			side.name, count, baseline.Round(time.Millisecond), got[i].baseline, export.Round(time.Millisecond), got[i].export,
			got[i].export/got[i].baseline)
		b.ReportMetric(got[i].baseline, side.name+"-baseline-res/s")
		b.ReportMetric(got[i].export, side.name+"-export-res/s")
		b.ReportMetric(got[i].export/got[i].baseline, side.name+"-export/baseline")
	}
	b.Logf("mongo/sqlite: export %.3g ×, baseline %.3g ×", got[1].export/got[0].export, got[1].baseline/got[0].baseline)
	b.ReportMetric(0, "ns/op") // one pass of fixed work: ns/op means nothing
	b.ReportMetric(got[1].export/got[0].export, "export-mongo/sqlite")
	b.ReportMetric(float64(pop.Resources), "resources")
}

// dumpNDJSON writes every current resource of st as dir/<Type>.ndjson
// and returns the types it found and how many resources.
func dumpNDJSON(b *testing.B, ctx context.Context, st store.Scanner, dir string) ([]string, int) {
	b.Helper()
	var types []string
	count := 0
	at := time.Now()
	for _, typ := range resource.Types() {
		var w *bufio.Writer
		var f *os.File
		q := store.ScanQuery{Type: typ, At: at, Count: 1000}
		for {
			page, err := st.Scan(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page.Resources {
				if w == nil {
					if f, err = os.Create(filepath.Join(dir, typ+".ndjson")); err != nil {
						b.Fatal(err)
					}
					w = bufio.NewWriterSize(f, 1<<20)
					types = append(types, typ)
				}
				w.Write(r.Body)
				w.WriteByte('\n')
				count++
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
		if w != nil {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	return types, count
}

// scanTypes reads every current resource of types through store.Scanner
// as of now into a discarding writer, one NDJSON line each (the baseline
// of BenchmarkExport1M, for the given types), and returns how many.
func scanTypes(b *testing.B, ctx context.Context, st store.Scanner, types []string) int {
	b.Helper()
	w := bufio.NewWriterSize(io.Discard, 1<<20)
	at := time.Now()
	count := 0
	for _, typ := range types {
		q := store.ScanQuery{Type: typ, At: at, Count: 1000}
		for {
			page, err := st.Scan(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page.Resources {
				w.Write(r.Body)
				w.WriteByte('\n')
				count++
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	w.Flush()
	return count
}
