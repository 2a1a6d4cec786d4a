package ingest_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkRun loads the Synthea bundles into a new SQLite file per
// iteration, in process: the import pipeline (reference rewriting, parse,
// stamp, index extraction, group commit) without the binary around it, so
// that -cpuprofile shows where an import's CPU goes (issue 4, Benchmarks;
// cmd/kiln BenchmarkIngest measures the binary against the ceiling).
func BenchmarkRun(b *testing.B) {
	ctx := context.Background()
	resources := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "kiln.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := ingest.Run(ctx, db, []string{syntheaDir}, ingest.Options{})
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
