package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
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

// BenchmarkCommitParallel: durable single-resource creates from
// benchClients goroutines, each waiting for its own Commit, as HTTP
// handlers do. "bare" writes a 2 KB body without index entries; "synthea"
// writes the Synthea resources of testdata (3.6 KB on average) with the
// index entries search.Extract computes for them (15 a resource on
// average, 19 for an Observation), computed once beforehand: extraction
// is the REST layer's cost, not the store's.
func BenchmarkCommitParallel(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		body := benchBody("bench", 2048)
		benchCommit(b, func(int) ([]byte, []search.Entry, string) { return body, nil, "Observation" })
	})
	b.Run("synthea-noindex", func(b *testing.B) {
		corpus := loadSynthea(b)
		b.ResetTimer()
		benchCommit(b, func(i int) ([]byte, []search.Entry, string) {
			r := &corpus[i%len(corpus)]
			_, body, _ := r.replica(1 + i/len(corpus))
			return body, nil, r.typ
		})
	})
	b.Run("synthea", func(b *testing.B) {
		corpus := loadSynthea(b)
		b.ResetTimer()
		benchCommit(b, func(i int) ([]byte, []search.Entry, string) {
			r := &corpus[i%len(corpus)]
			_, body, index := r.replica(1 + i/len(corpus))
			return body, index, r.typ
		})
	})
	// Issue 2's create workload: Synthea Observations alone.
	b.Run("synthea-observation", func(b *testing.B) {
		corpus := slices.DeleteFunc(loadSynthea(b), func(r syntheaResource) bool { return r.typ != "Observation" })
		b.ResetTimer()
		benchCommit(b, func(i int) ([]byte, []search.Entry, string) {
			r := &corpus[i%len(corpus)]
			_, body, index := r.replica(1 + i/len(corpus))
			return body, index, r.typ
		})
	})
}

func benchCommit(b *testing.B, next func(i int) ([]byte, []search.Entry, string)) {
	s := openBench(b)
	var n atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body, index, typ := next(int(i))
			err := s.Commit(context.Background(), store.Change{Type: typ, ID: strconv.FormatInt(i, 36), Version: 1,
				LastUpdated: time.Now(), Method: store.MethodPost, Body: body, Index: index})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	b.ReportMetric(float64(b.N)/float64(max(1, s.w.batches.Load())), "commits/txn")
	// CPU per create is steadier than the rate on a shared machine.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/create")
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

// searchClients is the concurrency of BenchmarkSearch's queries:
// benchClients, or KILN_BENCH_CLIENTS.
var searchClients = func() int {
	if n, err := strconv.Atoi(os.Getenv("KILN_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return benchClients
}()

// BenchmarkSearch loads about 100,000 resources — the Synthea bundles of
// testdata replicated with fresh ids, references rewritten to the
// replica's resources — and times typical searches from benchClients
// goroutines, reporting p50 and p99 latency. The load rate and the file
// size per resource are logged.
//
//	go test ./store/sqlite -run '^$' -bench BenchmarkSearch -benchtime 2000x
func BenchmarkSearch(b *testing.B) {
	const target = 100_000
	corpus := loadSynthea(b)
	replicas := (target + len(corpus) - 1) / len(corpus)
	s := openBench(b)
	ctx := context.Background()

	start := time.Now()
	next := make(chan int)
	go func() {
		for r := range replicas {
			next <- r
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				changes := make([]store.Change, 0, len(corpus))
				for i := range corpus {
					id, body, index := corpus[i].replica(r)
					changes = append(changes, store.Change{Type: corpus[i].typ, ID: id, Version: 1,
						LastUpdated: time.Now(), Method: store.MethodPost, Body: body, Index: index})
				}
				if err := s.Commit(ctx, changes...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	loaded := replicas * len(corpus)
	elapsed := time.Since(start)
	b.Logf("loaded %d resources in %s: %.0f resources/s", loaded, elapsed.Round(time.Millisecond), float64(loaded)/elapsed.Seconds())
	logSizes(b, s, loaded)

	// The replica in the middle; its patient with the most observations.
	k := replicas / 2
	counts := map[string]int{}
	var family string
	for i := range corpus {
		for _, e := range corpus[i].index {
			if corpus[i].typ == "Observation" && e.Param == "patient" {
				counts[e.Ref]++
			}
		}
	}
	patient := ""
	for ref, n := range counts {
		if patient == "" || n > counts[patient] {
			patient = ref
		}
	}
	patientID := replicaID(strings.TrimPrefix(patient, "Patient/"), k)
	var mrn string // Synthea's own identifier of the patient
	for i := range corpus {
		if corpus[i].typ == "Patient" && "Patient/"+corpus[i].id == patient {
			for _, e := range corpus[i].index {
				switch {
				case e.Param == "family":
					family = e.Value
				case e.Param == "identifier" && e.System == "https://github.com/synthetichealth/synthea":
					mrn = replicaID(e.Code, k)
				}
			}
		}
	}

	v := func(vs ...search.Value) []search.Value { return vs }
	tok := func(param, system, code string) search.Clause {
		return search.Clause{Param: param, Type: search.Token, Values: v(search.Value{System: system, Code: code, HasSystem: system != ""})}
	}
	ref := func(param, ref string) search.Clause {
		return search.Clause{Param: param, Type: search.Reference, Values: v(search.Value{Ref: ref, RefType: "Patient"})}
	}
	since := time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		q    search.Query
	}{
		{"Patient?name", search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
			{Param: "name", Type: search.String, Values: v(search.Value{Raw: family, Text: search.Fold(family)})}}}},
		{"Patient?identifier", search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
			tok("identifier", "https://github.com/synthetichealth/synthea", mrn)}}},
		{"Observation?patient&category&date", search.Query{Types: []string{"Observation"}, Count: 50, Filter: []search.Clause{
			ref("patient", "Patient/"+patientID),
			tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"),
			{Param: "date", Type: search.Date, Values: v(search.Value{Prefix: search.Ge, Start: since, End: since.AddDate(0, 0, 1)})}}}},
		{"Observation?code&value-quantity=gt", search.Query{Types: []string{"Observation"}, Count: 50, Filter: []search.Clause{
			tok("code", "http://loinc.org", "8302-2"),
			{Param: "value-quantity", Type: search.Quantity, Values: v(search.Value{Prefix: search.Gt, Num: 150, Lo: 149.5, Hi: 150.5})}}}},
		{"Observation?patient&_sort=-date&_count=10", search.Query{Types: []string{"Observation"}, Count: 10,
			Filter: []search.Clause{ref("patient", "Patient/"+patientID)},
			Sort:   []search.SortKey{{Param: "date", Type: search.Date, Descending: true}}}},
		{"Patient?_has:Observation:patient:code", search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
			{Has: &search.Has{Type: "Observation", Param: "patient", Filter: tok("code", "http://loinc.org", "2339-0")}}}}},
		{"Observation?category&_total=accurate", search.Query{Types: []string{"Observation"}, Count: 10, Total: search.TotalAccurate,
			Filter: []search.Clause{tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")}}},
	} {
		first, err := s.Search(ctx, &tc.q)
		if err != nil {
			b.Fatalf("%s: %v", tc.name, err)
		}
		b.Run(tc.name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(max(1, searchClients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t := time.Now()
					if _, err := s.Search(ctx, &tc.q); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			b.ReportMetric(float64(len(first.Matches)), "matches")
			if tc.q.Total == search.TotalAccurate {
				b.ReportMetric(float64(first.Total), "total")
			}
		})
	}
}

// logSizes logs the file size per resource, and the share of the index
// tables when SQLite's dbstat table is compiled in.
func logSizes(b *testing.B, s *Store, n int) {
	if _, err := s.cdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Logf("checkpoint: %v", err)
	}
	var pages, pageSize int64
	s.rdb.QueryRow("PRAGMA page_count").Scan(&pages)
	s.rdb.QueryRow("PRAGMA page_size").Scan(&pageSize)
	b.Logf("file: %.1f MB, %.0f bytes per resource", float64(pages*pageSize)/1e6, float64(pages*pageSize)/float64(n))
	rows, err := s.rdb.Query(`SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`)
	if err != nil {
		b.Logf("dbstat: %v", err)
		return
	}
	defer rows.Close()
	var index, other int64
	var detail []string
	for rows.Next() {
		var name string
		var size int64
		rows.Scan(&name, &size)
		if strings.HasPrefix(name, "ix_") || name == "params" {
			index += size
		} else {
			other += size
		}
		detail = append(detail, fmt.Sprintf("%s %.0f", name, float64(size)/float64(n)))
	}
	b.Logf("index tables %.0f bytes per resource, the rest %.0f; per table: %s",
		float64(index)/float64(n), float64(other)/float64(n), strings.Join(detail, ", "))
}
