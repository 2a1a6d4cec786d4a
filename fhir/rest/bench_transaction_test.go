package rest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// BenchmarkTransaction POSTs renewed Synthea transaction Bundles to the
// API over a real SQLite file on loopback HTTP, 4 at a time (issue 4's
// transaction workload), in one process, so that -cpuprofile shows where
// a transaction's CPU goes; cmd/kiln BenchmarkIngest measures the binary
// against the ceiling.
func BenchmarkTransaction(b *testing.B) {
	const dir = "../../testdata/synthea"
	bundles, err := synthea.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	var files [][]byte
	var counts []int
	for _, bd := range bundles {
		f, err := os.ReadFile(filepath.Join(dir, bd.File))
		if err != nil {
			b.Fatal(err)
		}
		files, counts = append(files, f), append(counts, len(bd.Entries))
	}
	// Renewed before the timer starts: every Bundle is new patients.
	bodies := make([][]byte, b.N)
	n := make([]int, b.N)
	for i := range bodies {
		if bodies[i], err = synthea.Renew(files[i%len(files)]); err != nil {
			b.Fatal(err)
		}
		n[i] = counts[i%len(files)]
	}
	srv := benchServer(b)
	var next, resources atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 4 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				resp, err := srv.Client().Post(srv.URL, "application/fhir+json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Error(fmt.Errorf("POST [base]: %d %.300s", resp.StatusCode, body))
					return
				}
				resources.Add(int64(n[i]))
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(resources.Load())/b.Elapsed().Seconds(), "resources/s")
}
