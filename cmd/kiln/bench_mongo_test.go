package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/load"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// The shape of BenchmarkRESTMongo: small, because FerretDB (the MongoDB
// stand-in without KILN_TEST_MONGO_URI) evaluates every filter over the
// whole collection.
const (
	storesResources   = 500 // Observations created in each server first
	storesCodes       = 50  // distinct codes among them: code=N fills a page of 10
	storesConcurrency = 2   // FerretDB times out under BenchmarkREST's 8
	storesPhaseTime   = 4 * time.Second
)

// BenchmarkRESTMongo measures, in one run, the same HTTP workload on two
// kiln binaries started as shipped with --auth=none: one on the embedded
// store (read cache on, the default) and one with --mongo-uri (FerretDB
// in-process, or KILN_TEST_MONGO_URI). Each first gets storesResources
// Observations POSTed; then, the two servers interleaved phase by phase,
// storesConcurrency clients for storesPhaseTime each: GET
// /Observation/{id}, GET /Observation?code=N&_count=10 and POST
// /Observation. It reports requests/s, p50/p99 per server and the ratio
// mongo/sqlite. Against FerretDB the MongoDB figures measure the wire
// path only; production figures need a real MongoDB. Run it with
// -benchtime 1x, as BenchmarkREST.
func BenchmarkRESTMongo(b *testing.B) {
	if testing.Short() {
		b.Skip("starts FerretDB and two kiln processes")
	}
	ctx := context.Background()
	kilnBinary(b) // build before anything is timed
	srv := mongotest.Start(b)
	if srv.FerretDB {
		b.Log("MongoDB side: FerretDB in-process (wire path only, not MongoDB production figures); set KILN_TEST_MONGO_URI for a real MongoDB")
	}
	servers := []struct {
		name string
		k    *kiln
		ids  []string
	}{
		{name: "sqlite", k: startKiln(b, b.TempDir())},
		{name: "mongo", k: startKiln(b, b.TempDir(), "--mongo-uri", srv.URI,
			"--mongo-db", fmt.Sprintf("kiln_bench_%d", time.Now().UnixNano()))},
	}
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"resourceType":"Observation","status":"final",`+
			`"code":{"coding":[{"system":"http://loinc.org","code":"%d"}]},"subject":{"reference":"Patient/p%d"},`+
			`"valueQuantity":{"value":%d.5,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`, i%storesCodes, i%100, i%200)
	}
	for i := range servers {
		s := &servers[i]
		c := s.k.client(b)
		start := time.Now()
		for n := range storesResources {
			r := c.Do("POST", "/Observation", body(n), "Content-Type", "application/fhir+json")
			loc := r.Header.Get("Location")
			if r.Status != http.StatusCreated || loc == "" {
				b.Fatalf("%s: POST /Observation: %d %.300s", s.name, r.Status, r.Body)
			}
			// Location: [base]/Observation/{id}/_history/1
			s.ids = append(s.ids, path.Base(path.Dir(path.Dir(loc))))
		}
		b.Logf("preload %-6s %d POSTs in %v", s.name, storesResources, time.Since(start).Round(time.Millisecond))
	}

	workloads := []struct {
		name string
		cfg  func(base string, ids []string) load.Config
	}{
		{"read", func(base string, ids []string) load.Config {
			return load.Config{New: func(i int) (*http.Request, error) {
				return http.NewRequest("GET", base+"/Observation/"+ids[i%len(ids)], nil)
			}, Check: func(i int, resp *http.Response, body []byte) error {
				if id := ids[i%len(ids)]; resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"id":"`+id+`"`)) {
					return fmt.Errorf("GET /Observation/%s: %d %.200s", id, resp.StatusCode, body)
				}
				return nil
			}}
		}},
		{"search", func(base string, _ []string) load.Config {
			return load.Config{New: func(i int) (*http.Request, error) {
				return http.NewRequest("GET", fmt.Sprintf("%s/Observation?code=%d&_count=10", base, i%storesCodes), nil)
			}, Check: func(i int, resp *http.Response, body []byte) error {
				// A full page: 10 entries, each with its search mode.
				if resp.StatusCode != http.StatusOK || bytes.Count(body, []byte(`"mode":"match"`)) != 10 {
					return fmt.Errorf("GET /Observation?code=%d: %d %.200s", i%storesCodes, resp.StatusCode, body)
				}
				return nil
			}}
		}},
		// Last: it grows what the other two read.
		{"create", func(base string, _ []string) load.Config {
			return load.Config{New: func(i int) (*http.Request, error) {
				req, err := http.NewRequest("POST", base+"/Observation", bytes.NewReader(body(i)))
				if err == nil {
					req.Header.Set("Content-Type", "application/fhir+json")
				}
				return req, err
			}, Check: func(_ int, resp *http.Response, body []byte) error {
				if resp.StatusCode != http.StatusCreated {
					return fmt.Errorf("POST /Observation: %d %.300s", resp.StatusCode, body)
				}
				return nil
			}}
		}},
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op") // fixed-time phases: ns/op means nothing
	for _, w := range workloads {
		var got [2]phase
		for i, s := range servers {
			ids := append([]string(nil), s.ids...)
			rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			cfg := w.cfg(s.k.base, ids)
			cfg.Concurrency, cfg.Requests, cfg.Duration = storesConcurrency, maxRequests, storesPhaseTime
			got[i] = measure(b, ctx, s.name+" "+w.name, s.k.cmd.Process.Pid, w.name != "create", cfg)
			b.ReportMetric(got[i].Rate(), s.name+"-"+w.name+"-req/s")
			b.ReportMetric(ms(got[i].Quantile(0.50)), s.name+"-"+w.name+"-p50-ms")
			b.ReportMetric(ms(got[i].Quantile(0.99)), s.name+"-"+w.name+"-p99-ms")
		}
		ratio := got[1].Rate() / got[0].Rate()
		b.Logf("%-6s sqlite %v\n\t       mongo  %v; mongo/sqlite: %.3g × the req/s, %.3g × the p50", w.name, got[0], got[1],
			ratio, float64(got[1].Quantile(0.50))/float64(got[0].Quantile(0.50)))
		b.ReportMetric(ratio, w.name+"-mongo/sqlite")
	}
}
