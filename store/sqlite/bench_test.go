package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// benchClients is the number of concurrent callers the benchmarks model:
// the target is 8 HTTP clients on 2 cores.
const benchClients = 8

// benchBody is an Observation of about size bytes, padded in its text.
func benchBody(id string, size int) []byte {
	b := fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"meta":{"versionId":"1",`+
		`"lastUpdated":"2024-03-01T12:00:00.000Z"},"status":"final","code":{"coding":[{"system":`+
		`"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":`+
		`"Patient/example"},"valueQuantity":{"value":72,"unit":"beats/minute","system":`+
		`"http://unitsofmeasure.org","code":"/min"},"note":[{"text":"`, id)
	for len(b) < size-4 {
		b = append(b, 'x')
	}
	return append(b, `"}]}`...)
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), Config{Path: filepath.Join(b.TempDir(), "kiln.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkCommitParallel: durable single-resource creates of a 2 KB body
// from benchClients goroutines, each waiting for its own Commit, as HTTP
// handlers do.
func BenchmarkCommitParallel(b *testing.B) {
	s := openBench(b)
	body := benchBody("bench", 2048)
	var n atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := strconv.FormatInt(n.Add(1), 36)
			err := s.Commit(context.Background(), store.Change{Type: "Observation", ID: id, Version: 1,
				LastUpdated: time.Now(), Method: store.MethodPost, Body: body})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	b.ReportMetric(float64(b.N)/float64(max(1, s.w.batches.Load())), "commits/txn")
}

// BenchmarkRead: random Reads over 100,000 resources of 2 KB.
func BenchmarkRead(b *testing.B) {
	const resources, batch = 100_000, 1000
	s := openBench(b)
	start := time.Now()
	for i := 0; i < resources; i += batch {
		changes := make([]store.Change, 0, batch)
		for j := i; j < i+batch; j++ {
			id := strconv.Itoa(j)
			changes = append(changes, store.Change{Type: "Observation", ID: id, Version: 1,
				LastUpdated: time.Now(), Method: store.MethodPost, Body: benchBody(id, 2048)})
		}
		if err := s.Commit(context.Background(), changes...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d resources in %s", resources, time.Since(start).Round(time.Millisecond))

	b.Run("random", func(b *testing.B) {
		b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := strconv.Itoa(rand.IntN(resources))
				r, err := s.Read(context.Background(), "Observation", id)
				if err != nil || len(r.Body) < 2000 {
					b.Errorf("Read %s: %d bytes, %v", id, len(r.Body), err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
}
