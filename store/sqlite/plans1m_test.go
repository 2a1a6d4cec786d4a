package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// openImmutable opens a database file for searches only, without a
// writer, a lock or a migration, and without writing a byte to it (SQLite's
// immutable=1): a built benchmark population can be examined in place.
// Its read connections are configured by KILN_PLANS_DSN (say
// "&_pragma=mmap_size(2147418112)", as Open would).
func openImmutable(tb testing.TB, path string) *Store {
	tb.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: abs}).EscapedPath()+"?mode=ro&immutable=1"+os.Getenv("KILN_PLANS_DSN"))
	if err != nil {
		tb.Fatal(err)
	}
	// A read cache as the server has (kiln serve --cache), for the count
	// cache and params snapshot that come with it: nothing writes, so
	// they never go stale.
	s := &Store{rdb: db, cache: newReadCache(64 << 20)}
	if s.maxPidStmt, err = db.Prepare(`SELECT coalesce(max(pid), 0) FROM params`); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.stmts.close(); s.maxPidStmt.Close(); db.Close() })
	return s
}

// BenchmarkPlans1M times the eight queries of issue 3's benchmark on a
// built population file in process, one at a time, and logs each one's
// page and count plans. KILN_PLANS_DB names the file (kiln.db of
// conformance/population's directory); it is opened immutable.
func BenchmarkPlans1M(b *testing.B) {
	path := os.Getenv("KILN_PLANS_DB")
	if path == "" {
		b.Skip("KILN_PLANS_DB is not set")
	}
	s := openImmutable(b, path)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "population.json"))
	if err != nil {
		b.Fatal(err)
	}
	var pop struct {
		Patients []struct{ ID, Family, MRN string }
	}
	if err := json.Unmarshal(raw, &pop); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	v := func(vs ...search.Value) []search.Value { return vs }
	tok := func(param, system, code string) search.Clause {
		return search.Clause{Param: param, Type: search.Token, Values: v(search.Value{System: system, Code: code, HasSystem: system != ""})}
	}
	ref := func(param, id string) search.Clause {
		return search.Clause{Param: param, Type: search.Reference, Values: v(search.Value{Ref: "Patient/" + id, RefType: "Patient"})}
	}
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	lab := tok("category", "", "laboratory")
	queries := []struct {
		name string
		q    func(i int) search.Query
	}{
		{"name", func(i int) search.Query {
			f := pop.Patients[i%len(pop.Patients)].Family
			return search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
				{Param: "name", Type: search.String, Values: v(search.Value{Raw: f, Text: search.Fold(f)})}}}
		}},
		{"identifier", func(i int) search.Query {
			return search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
				tok("identifier", "https://github.com/synthetichealth/synthea", pop.Patients[i%len(pop.Patients)].MRN)}}
		}},
		{"patient-category-date", func(i int) search.Query {
			return search.Query{Types: []string{"Observation"}, Count: 50, Filter: []search.Clause{
				ref("patient", pop.Patients[i%len(pop.Patients)].ID), lab,
				{Param: "date", Type: search.Date, Values: v(search.Value{Prefix: search.Ge, Start: since, End: since.AddDate(0, 0, 1)})}}}
		}},
		{"code-value-quantity", func(i int) search.Query {
			codes := []string{"8302-2", "29463-7", "39156-5", "8867-4", "2339-0"}
			return search.Query{Types: []string{"Observation"}, Count: 50, Filter: []search.Clause{
				tok("code", "http://loinc.org", codes[i%len(codes)]),
				{Param: "value-quantity", Type: search.Quantity, Values: v(search.Value{Prefix: search.Gt, Num: 5, Lo: 4.5, Hi: 5.5})}}}
		}},
		{"patient-sort-date", func(i int) search.Query {
			return search.Query{Types: []string{"Observation"}, Count: 10,
				Filter: []search.Clause{ref("patient", pop.Patients[i%len(pop.Patients)].ID)},
				Sort:   []search.SortKey{{Param: "date", Type: search.Date, Descending: true}}}
		}},
		{"encounter-patient", func(i int) search.Query {
			return search.Query{Types: []string{"Encounter"}, Count: 50,
				Filter: []search.Clause{ref("patient", pop.Patients[i%len(pop.Patients)].ID)}}
		}},
		{"has", func(i int) search.Query {
			codes := []string{"8302-2", "29463-7", "39156-5", "8867-4", "2339-0", "72514-3", "85354-9", "9279-1"}
			return search.Query{Types: []string{"Patient"}, Count: 50, Filter: []search.Clause{
				{Has: &search.Has{Type: "Observation", Param: "patient", Filter: tok("code", "http://loinc.org", codes[i%len(codes)])}}}}
		}},
		{"category-page", func(int) search.Query {
			return search.Query{Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{lab}}
		}},
		{"total-accurate", func(int) search.Query {
			return search.Query{Types: []string{"Observation"}, Count: 10, Total: search.TotalAccurate, Filter: []search.Clause{lab}}
		}},
	}
	for _, qc := range queries {
		b.Run(qc.name, func(b *testing.B) {
			q := qc.q(0)
			plan, err := s.plan(ctx, &q)
			if err != nil {
				b.Fatal(err)
			}
			if os.Getenv("KILN_PLANS_VERBOSE") != "" {
				fmt.Fprintf(os.Stderr, "%s page:\n%s\n%s\n", qc.name, plan.page.sql, explainArgs(b, s, plan.page))
				if q.Total == search.TotalAccurate {
					fmt.Fprintf(os.Stderr, "%s count:\n%s\n%s\n", qc.name, plan.count.sql, explainArgs(b, s, plan.count))
				}
			}
			var (
				mu  sync.Mutex
				lat []time.Duration
				n   atomic.Int64
			)
			b.SetParallelism(max(1, searchClients/runtime.GOMAXPROCS(0)))
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					q := qc.q(int(n.Add(1))*7919 + 13)
					t := time.Now()
					if _, err := s.Search(ctx, &q); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/search")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
