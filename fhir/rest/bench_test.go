package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkCreate POSTs Synthea Observations to the API over a real
// SQLite file on loopback HTTP, 8 at a time (issue 2's create workload),
// in one process, so that -cpuprofile shows where a create's CPU goes;
// cmd/kiln BenchmarkREST measures the binary against the target.
func BenchmarkCreate(b *testing.B) {
	entries, err := synthea.Entries("../../testdata/synthea")
	if err != nil {
		b.Fatal(err)
	}
	var bodies [][]byte
	for _, e := range entries {
		var m map[string]any
		if json.Unmarshal(e.Resource, &m) != nil || m["resourceType"] != "Observation" {
			continue
		}
		// The bundle's urn:uuid references mean nothing outside it.
		m["subject"] = map[string]any{"reference": "Patient/p1"}
		delete(m, "encounter")
		body, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	srv := benchServer(b)
	b.ResetTimer()
	eightClients(b, func(i int64) error {
		resp, err := srv.Client().Post(srv.URL+"/Observation", "application/fhir+json", bytes.NewReader(bodies[i%int64(len(bodies))]))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /Observation: %d", resp.StatusCode)
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// benchServer is the API over a real SQLite file, on loopback HTTP, with
// a client that keeps a connection for each of eight callers.
func benchServer(b *testing.B) *httptest.Server {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(b.TempDir(), "kiln.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(rest.New(rest.Config{}, db))
	b.Cleanup(srv.Close)
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 8
	return srv
}

// eightClients calls do for i = 0 … b.N-1 from eight goroutines, as issue
// 2's and 3's benchmarks load the server; the first error stops them.
func eightClients(b *testing.B, do func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := do(i); err != nil {
					b.Error(err)
					next.Store(int64(b.N))
					return
				}
			}
		}()
	}
	wg.Wait()
}
