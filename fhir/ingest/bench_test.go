package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkRun loads ten renewed copies of the Synthea bundles (as
// cmd/kiln BenchmarkIngest's large import does) into a new SQLite file per
// iteration, in process: the import pipeline (reference rewriting, parse,
// stamp, index extraction, group commit) without the binary around it, so
// that -cpuprofile shows where an import's CPU goes (issue 4, Benchmarks;
// BenchmarkIngest measures the binary against the ceiling).
func BenchmarkRun(b *testing.B) {
	ctx := context.Background()
	bundles, err := synthea.Load(syntheaDir)
	if err != nil {
		b.Fatal(err)
	}
	src := b.TempDir()
	for copy := range 10 {
		for _, bd := range bundles {
			raw, err := os.ReadFile(filepath.Join(syntheaDir, bd.File))
			if err != nil {
				b.Fatal(err)
			}
			fresh, err := synthea.Renew(raw)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("%d-%s", copy, bd.File)), fresh, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	resources := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "kiln.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := ingest.Run(ctx, db, []string{src}, ingest.Options{Workers: 2})
		if err != nil || sum.Rejected > 0 {
			b.Fatalf("import: %v, %d rejected: %v", err, sum.Rejected, sum.Reasons)
		}
		resources += sum.Loaded()
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
}
