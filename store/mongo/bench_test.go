package mongo_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkMongo measures, in one run, the same workload on the embedded
// store (store/sqlite) and on the MongoDB backend, at the store level: read
// by id, durable create (Commit returns once the change is durable) and a
// token search, each by benchClients closed-loop clients for a fixed time,
// the two stores interleaved phase by phase so that both see the same
// machine. It reports ops/s, p50 and p99 per store and the ratio
// mongo/sqlite.
//
// Against FerretDB (no KILN_TEST_MONGO_URI) the MongoDB figures measure the
// driver and wire path over FerretDB's SQLite handler, which evaluates
// filters by scanning the collection: they are not MongoDB's figures, and
// production figures need a real MongoDB. The dataset is small for that
// reason (the whole run takes under a minute there).
//
// Each phase runs for a fixed time whatever b.N: run it with -benchtime 1x
// (make bench). Any failed operation fails the benchmark.
func BenchmarkMongo(b *testing.B) {
	if testing.Short() {
		b.Skip("starts FerretDB and preloads both stores")
	}
	srv := mongotest.Start(b)
	if srv.FerretDB {
		b.Log("MongoDB side: FerretDB in-process (wire path only, not MongoDB production figures); set KILN_TEST_MONGO_URI for a real MongoDB")
	}
	// The store as `kiln serve` opens it, except for the read cache, which
	// is off: the figures compare storage paths (the MongoDB backend has
	// no cache of its own).
	sq, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "kiln.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sq.Close() })
	stores := []struct {
		name string
		s    store.Store
	}{{"sqlite", sq}, {"mongo", openStore(b, srv)}}

	b.Logf("preload %d Observations, one per Commit: sqlite %v, mongo %v", benchResources,
		benchPreload(b, stores[0].s).Round(time.Millisecond), benchPreload(b, stores[1].s).Round(time.Millisecond))

	// Each store's creates get ids of their own, past the preloaded ones.
	var seq atomic.Int64
	seq.Store(benchResources)
	workloads := []struct {
		name string
		op   func(ctx context.Context, s store.Store) error
	}{
		{"read", func(ctx context.Context, s store.Store) error {
			id := fmt.Sprintf("o%d", rand.IntN(benchResources))
			r, err := s.Read(ctx, "Observation", id)
			if err == nil && r.ID != id {
				err = fmt.Errorf("read %s answered %s", id, r.ID)
			}
			return err
		}},
		{"search", func(ctx context.Context, s store.Store) error {
			// code=N matches every 50th preloaded Observation: a full page.
			code := fmt.Sprint(rand.IntN(benchCodes))
			q := search.Query{Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{{Param: "code", Type: search.Token,
				Values: []search.Value{{Code: code}}}}}
			p, err := s.Search(ctx, &q)
			if err == nil && len(p.Matches) != 10 {
				err = fmt.Errorf("code=%s: %d matches on the first page, want 10", code, len(p.Matches))
			}
			return err
		}},
		// Last: it grows the collections the other two read.
		{"create", func(ctx context.Context, s store.Store) error {
			return s.Commit(ctx, benchObservation(int(seq.Add(1))))
		}},
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op") // fixed-time phases: ns/op means nothing
	for _, w := range workloads {
		var got [2]benchPhase
		for i, st := range stores {
			got[i] = runPhase(b, st.s, w.op)
			b.ReportMetric(got[i].rate(), st.name+"-"+w.name+"-ops/s")
			b.ReportMetric(ms(got[i].quantile(0.50)), st.name+"-"+w.name+"-p50-ms")
			b.ReportMetric(ms(got[i].quantile(0.99)), st.name+"-"+w.name+"-p99-ms")
		}
		ratio := got[1].rate() / got[0].rate()
		b.Logf("%-6s sqlite %v\n\t       mongo  %v; mongo/sqlite: %.3g × the ops/s, %.3g × the p50", w.name, got[0], got[1],
			ratio, float64(got[1].quantile(0.50))/float64(got[0].quantile(0.50)))
		b.ReportMetric(ratio, w.name+"-mongo/sqlite")
	}
}

// The benchmark's shape: small, because FerretDB scans collections.
const (
	benchResources = 500 // Observations preloaded in each store
	benchCodes     = 50  // distinct codes among them (benchObservation)
	benchClients   = 2   // FerretDB times out under more: it serialises on SQLite
	benchWarmup    = 500 * time.Millisecond
	benchPhaseTime = 4 * time.Second
)

func benchObservation(i int) store.Change {
	id := fmt.Sprintf("o%d", i)
	body := fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-03-01T12:00:00Z"},`+
		`"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"%d"}]},"subject":{"reference":"Patient/p%d"},`+
		`"valueQuantity":{"value":%d.5,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}`, id, i%benchCodes, i%100, i%200)
	ix, err := search.Extract("Observation", body)
	if err != nil {
		panic(err)
	}
	return store.Change{Type: "Observation", ID: id, Version: 1, LastUpdated: time.Now(), Method: store.MethodPost, Body: body, Index: ix}
}

// benchPreload commits the benchResources Observations one per Commit
// from benchClients writers, as a server creating them would.
func benchPreload(b *testing.B, s store.Store) time.Duration {
	b.Helper()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, benchClients)
	for w := range benchClients {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < benchResources && errs[w] == nil; i = int(next.Add(1)) - 1 {
				errs[w] = s.Commit(b.Context(), benchObservation(i))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatalf("preload: %v", err)
		}
	}
	return time.Since(start)
}

// benchPhase is what one phase measured: every operation's latency and
// the wall time from the first start to the last answer.
type benchPhase struct {
	latencies []time.Duration // sorted
	elapsed   time.Duration
}

func (p benchPhase) rate() float64 { return float64(len(p.latencies)) / p.elapsed.Seconds() }

// quantile is the nearest-rank q-quantile of the latencies.
func (p benchPhase) quantile(q float64) time.Duration {
	n := len(p.latencies)
	if n == 0 {
		return 0
	}
	return p.latencies[min(max(int(math.Ceil(q*float64(n)))-1, 0), n-1)]
}

func (p benchPhase) String() string {
	return fmt.Sprintf("%6d ops in %v: %8.0f ops/s, p50 %v, p99 %v", len(p.latencies), p.elapsed.Round(time.Millisecond),
		p.rate(), p.quantile(0.50).Round(time.Microsecond), p.quantile(0.99).Round(time.Microsecond))
}

// runPhase runs op from benchClients workers, each with one operation in
// flight: a warm-up, then benchPhaseTime measured.
func runPhase(b *testing.B, s store.Store, op func(context.Context, store.Store) error) benchPhase {
	b.Helper()
	run := func(d time.Duration) benchPhase {
		ctx := b.Context()
		var wg sync.WaitGroup
		lats := make([][]time.Duration, benchClients)
		errs := make([]error, benchClients)
		start := time.Now()
		stop := start.Add(d)
		for w := range benchClients {
			wg.Go(func() {
				for t0 := time.Now(); t0.Before(stop); t0 = time.Now() {
					if errs[w] = op(ctx, s); errs[w] != nil {
						return
					}
					lats[w] = append(lats[w], time.Since(t0))
				}
			})
		}
		wg.Wait()
		p := benchPhase{latencies: slices.Concat(lats...), elapsed: time.Since(start)}
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		if len(p.latencies) == 0 {
			b.Fatal("no operation completed")
		}
		slices.Sort(p.latencies)
		return p
	}
	run(benchWarmup)
	return run(benchPhaseTime)
}
