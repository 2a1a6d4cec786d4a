package rest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// BenchmarkSearchPatient runs the single-patient searches of issue 3's
// benchmark against the API in one process (Synthea bundles loaded a few
// times over with fresh ids), 8 clients at a time, so that -cpuprofile
// shows where a search's CPU goes; cmd/kiln BenchmarkSearch1M measures
// the binary at a million resources against the target.
func BenchmarkSearchPatient(b *testing.B) {
	files, err := filepath.Glob("../../testdata/synthea/*.json")
	if err != nil || len(files) == 0 {
		b.Fatalf("no Synthea bundles: %v", err)
	}
	srv := benchServer(b)
	client := srv.Client()
	for range 4 {
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			if raw, err = synthea.Renew(raw); err != nil {
				b.Fatal(err)
			}
			resp, err := client.Post(srv.URL+"/", "application/fhir+json", bytes.NewReader(raw))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("transaction %s: %d", filepath.Base(f), resp.StatusCode)
			}
		}
	}
	resp, err := client.Get(srv.URL + "/Patient?_elements=id&_count=1000")
	if err != nil {
		b.Fatal(err)
	}
	var page struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || len(page.Entry) == 0 {
		b.Fatalf("patients: %v (%d)", err, len(page.Entry))
	}
	for _, q := range []struct{ name, query string }{
		{"category+date", "/Observation?category=laboratory&date=ge2000-01-01&patient="},
		{"sort", "/Observation?_sort=-date&_count=10&patient="},
		{"revinclude", "/Encounter?_revinclude=Observation:encounter&patient="},
	} {
		b.Run(q.name, func(b *testing.B) {
			eightClients(b, func(i int64) error {
				id := page.Entry[i%int64(len(page.Entry))].Resource.ID
				resp, err := client.Get(srv.URL + q.query + id)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: %d", q.name, resp.StatusCode)
				}
				return nil
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
		})
	}
}
