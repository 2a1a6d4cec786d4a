package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
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
	// As kiln serve runs it: with the read cache (and the count cache and
	// params snapshot that come with it).
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(b.TempDir(), "kiln.db"), CacheBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(rest.New(rest.Config{}, db))
	b.Cleanup(srv.Close)
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 8
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
	resp, err := client.Get(srv.URL + "/Patient?_elements=id,identifier&_count=1000")
	if err != nil {
		b.Fatal(err)
	}
	var page struct {
		Entry []struct {
			Resource struct {
				ID         string
				Identifier []struct{ System, Value string }
			} `json:"resource"`
		} `json:"entry"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || len(page.Entry) == 0 {
		b.Fatalf("patients: %v (%d)", err, len(page.Entry))
	}
	// read and identifier compare a search that finds one resource with
	// a read of it: what a search costs beyond the read is its fixed cost.
	id := func(i int64) string { return page.Entry[i%int64(len(page.Entry))].Resource.ID }
	for _, q := range []struct {
		name string
		path func(i int64) string
	}{
		{"read", func(i int64) string { return "/Patient/" + id(i) }},
		{"identifier", func(i int64) string {
			p := page.Entry[i%int64(len(page.Entry))].Resource
			return "/Patient?identifier=" + url.QueryEscape(p.Identifier[0].System+"|"+p.Identifier[0].Value)
		}},
		{"category+date", func(i int64) string { return "/Observation?category=laboratory&date=ge2000-01-01&patient=" + id(i) }},
		{"sort", func(i int64) string { return "/Observation?_sort=-date&_count=10&patient=" + id(i) }},
		{"revinclude", func(i int64) string { return "/Encounter?_revinclude=Observation:encounter&patient=" + id(i) }},
	} {
		b.Run(q.name, func(b *testing.B) {
			eightClients(b, func(i int64) error {
				resp, err := client.Get(srv.URL + q.path(i))
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
