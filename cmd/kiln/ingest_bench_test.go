package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/kiln-fhir/kiln/conformance/load"
	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// The ingest benchmark's shape. One pass takes about a minute and a half
// on two cores.
const (
	ceilingTime   = 8 * time.Second
	txConcurrency = 4 // the concurrency for (a)
	txTime        = 15 * time.Second
	txCopies      = 40 // renewed copies of the bundles prepared for (a); the time budget ends it first
	importScale   = 10 // the large import is this many times the small one
)

// BenchmarkIngest measures, in one run, how fast Synthea data gets in,
// against the ceiling of parsing it (issue 4, "Benchmarks"):
//
//   - ceiling: resources/s of bare google/fhir jsonformat unmarshal (which
//     validates) of every Synthea resource, on GOMAXPROCS goroutines in
//     this process — what any Go server built on google/fhir must spend;
//   - tx: the Synthea transaction Bundles POSTed to [base] of the kiln
//     binary (SQLite store, as shipped, logging every request) by a load
//     client at concurrency 4 over loopback, resources/s;
//   - import: `kiln import` of the same files, resources/s, at 1× (the
//     seven files) and importScale× (as many renewed copies of them).
//
// Every Bundle sent or file imported is a renewed copy (synthea.Renew:
// fresh uuids in fullUrls, ids and references), so every resource is new
// to the store and the work is real. Peak RSS is VmHWM of the server and
// the maximum resident set of each import process; importing
// importScale× the data must not take importScale× the memory.
//
// The targets (tx ≥ 0.6 of the ceiling, import ≥ 0.75) are reported, not
// asserted: shared machines are noisy. Any failed request, rejected
// resource or count that does not add up fails the benchmark. Each phase
// runs for a fixed time or amount of data whatever b.N: run it with
// -benchtime 1x (make bench).
func BenchmarkIngest(b *testing.B) {
	if testing.Short() {
		b.Skip("starts processes and loads tens of thousands of resources")
	}
	ctx := context.Background()
	kilnBinary(b) // build before anything is timed
	files, counts := syntheaFiles(b)

	ceiling := measureCeiling(b, ceilingTime)
	b.Logf("ceiling:  %d resources in %v: %.0f resources/s (jsonformat unmarshal+validate, %d goroutines); CPU %.0f µs/resource",
		ceiling.resources, ceiling.elapsed.Round(time.Millisecond), ceiling.rate(), runtime.GOMAXPROCS(0), ceiling.cpuPerResource())

	tx := measureTransactions(b, ctx, files, counts)
	b.Logf("tx:       %v", tx)

	small := measureImport(b, files, counts, 1)
	b.Logf("import:   1×  %v", small)
	large := measureImport(b, files, counts, importScale)
	b.Logf("import:   %d× %v", importScale, large)

	// Two ratios each: of rates (the issue's), and of CPU time per
	// resource (the ceiling's over the phase's), which other processes on
	// a shared machine disturb far less. tx's CPU is the server's only.
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	txRatio, importRatio := tx.rate()/ceiling.rate(), large.rate()/ceiling.rate()
	txCPURatio, importCPURatio := ceiling.cpuPerResource()/tx.cpuPerResource(), ceiling.cpuPerResource()/large.cpuPerResource()
	b.Logf("targets: tx/ceiling %.2f (CPU %.2f; target ≥ 0.60), import/ceiling %.2f (CPU %.2f; target ≥ 0.75); "+
		"import peak RSS %.0f MB at 1×, %.0f MB at %d× (%.2f×)",
		txRatio, txCPURatio, importRatio, importCPURatio, small.peakMB, large.peakMB, importScale, large.peakMB/small.peakMB)
	b.ReportMetric(0, "ns/op") // one pass of fixed phases: ns/op means nothing
	b.ReportMetric(ceiling.rate(), "ceiling-res/s")
	b.ReportMetric(ceiling.cpuPerResource(), "ceiling-cpu-us/res")
	b.ReportMetric(tx.rate(), "tx-res/s")
	b.ReportMetric(txRatio, "tx/ceiling")
	b.ReportMetric(txCPURatio, "tx/ceiling-cpu")
	b.ReportMetric(ms(tx.Quantile(0.50)), "tx-p50-ms")
	b.ReportMetric(ms(tx.Quantile(0.99)), "tx-p99-ms")
	b.ReportMetric(tx.cpuPerResource(), "tx-cpu-us/res")
	b.ReportMetric(tx.mem.peak, "tx-peak-RSS-MB")
	b.ReportMetric(small.rate(), "import-1x-res/s")
	b.ReportMetric(large.rate(), "import-res/s")
	b.ReportMetric(importRatio, "import/ceiling")
	b.ReportMetric(importCPURatio, "import/ceiling-cpu")
	b.ReportMetric(large.cpuPerResource(), "import-cpu-us/res")
	b.ReportMetric(small.peakMB, "import-1x-peak-RSS-MB")
	b.ReportMetric(large.peakMB, "import-10x-peak-RSS-MB")
}

// syntheaFiles returns the bytes of every Synthea bundle file and its
// number of entries.
func syntheaFiles(b *testing.B) ([][]byte, []int) {
	b.Helper()
	const dir = "../../testdata/synthea"
	bundles, err := synthea.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	files := make([][]byte, len(bundles))
	counts := make([]int, len(bundles))
	for i, bd := range bundles {
		if files[i], err = os.ReadFile(filepath.Join(dir, bd.File)); err != nil {
			b.Fatal(err)
		}
		counts[i] = len(bd.Entries)
	}
	return files, counts
}

// renewed returns copies renewed copies of every file, and the entries of
// each.
func renewed(b *testing.B, files [][]byte, counts []int, copies int) ([][]byte, []int) {
	b.Helper()
	var out [][]byte
	var n []int
	for range copies {
		for i, f := range files {
			fresh, err := synthea.Renew(f)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, fresh)
			n = append(n, counts[i])
		}
	}
	return out, n
}

// ceilingRun is what the ceiling phase measured.
type ceilingRun struct {
	resources int
	elapsed   time.Duration
	cpu       time.Duration // user+system time of this process meanwhile
}

func (c ceilingRun) rate() float64 { return float64(c.resources) / c.elapsed.Seconds() }

func (c ceilingRun) cpuPerResource() float64 {
	return float64(c.cpu) / float64(time.Microsecond) / float64(c.resources)
}

// measureCeiling unmarshals every Synthea resource with google/fhir's
// jsonformat on GOMAXPROCS goroutines for d. The unmarshaller is
// configured as fhir/resource configures it (R4, UTC).
func measureCeiling(b *testing.B, d time.Duration) ceilingRun {
	b.Helper()
	entries, err := synthea.Entries("../../testdata/synthea")
	if err != nil {
		b.Fatal(err)
	}
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		b.Fatal(err)
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	cpu0 := selfCPU(b)
	start := time.Now()
	deadline := start.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				e := entries[i%int64(len(entries))]
				if _, err := um.Unmarshal(e.Resource); err != nil {
					mu.Lock()
					firstErr = fmt.Errorf("%s entry %d: %w", e.Type, i, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("ceiling: %v", firstErr)
	}
	elapsed, cpu := time.Since(start), selfCPU(b)-cpu0
	return ceilingRun{resources: int(next.Load()), elapsed: elapsed, cpu: cpu}
}

// selfCPU is the user+system time this process has used so far.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// txPhase is what the transactions phase found.
type txPhase struct {
	phase
	resources int // in the Bundles answered 200
	mem       memory
}

func (p txPhase) rate() float64 { return float64(p.resources) / p.Elapsed.Seconds() }

func (p txPhase) cpuPerResource() float64 {
	return float64(p.cpu) / float64(time.Microsecond) / float64(p.resources)
}

func (p txPhase) String() string {
	return fmt.Sprintf("%d Bundles, %d resources in %v: %.0f resources/s, p50 %v, p99 %v per Bundle; "+
		"server CPU %.0f µs/resource; kiln %v",
		p.OK, p.resources, p.Elapsed.Round(time.Millisecond), p.rate(),
		p.Quantile(0.5).Round(time.Millisecond), p.Quantile(0.99).Round(time.Millisecond),
		p.cpuPerResource(), p.mem)
}

// measureTransactions POSTs renewed Synthea transaction Bundles to a fresh
// kiln at concurrency txConcurrency until txTime or the Bundles run out,
// then checks that the store holds exactly the resources of the Bundles
// answered 200.
func measureTransactions(b *testing.B, ctx context.Context, files [][]byte, counts []int) txPhase {
	b.Helper()
	bodies, n := renewed(b, files, counts, txCopies)
	k := startKiln(b, b.TempDir())
	pid := k.cmd.Process.Pid
	var stored atomic.Int64
	p := measure(b, ctx, "tx", pid, false, load.Config{
		Concurrency: txConcurrency,
		Requests:    len(bodies),
		Duration:    txTime,
		Timeout:     2 * time.Minute,
		New: func(i int) (*http.Request, error) {
			req, err := http.NewRequest("POST", k.base, bytes.NewReader(bodies[i]))
			if err == nil {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			return req, err
		},
		Check: func(i int, resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"transaction-response"`)) {
				return fmt.Errorf("POST [base] transaction: %d %.300s", resp.StatusCode, body)
			}
			stored.Add(int64(n[i]))
			return nil
		},
	})
	res := txPhase{phase: p, resources: int(stored.Load()), mem: processMemory(b, pid)}

	// Every resource of every Bundle answered 200 is in the store, once.
	r := k.client(b).Do("GET", "/_history?_count=0", nil)
	var hist struct{ Total int }
	if err := json.Unmarshal(r.Body, &hist); r.Status != http.StatusOK || err != nil {
		b.Fatalf("system history: %d %v", r.Status, err)
	}
	if hist.Total != res.resources {
		b.Errorf("system history holds %d versions, want the %d resources of %d Bundles", hist.Total, res.resources, p.OK)
	}
	k.stop()
	return res
}

// importRun is what one `kiln import` did.
type importRun struct {
	files, resources int
	elapsed          time.Duration // the process's wall time, start to exit
	cpu              time.Duration // its user+system time
	peakMB           float64       // its maximum resident set
}

func (r importRun) rate() float64 { return float64(r.resources) / r.elapsed.Seconds() }

func (r importRun) cpuPerResource() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(r.resources)
}

func (r importRun) String() string {
	return fmt.Sprintf("%d files, %d resources in %v: %.0f resources/s; CPU %.0f µs/resource; peak RSS %.0f MB",
		r.files, r.resources, r.elapsed.Round(time.Millisecond), r.rate(), r.cpuPerResource(), r.peakMB)
}

// measureImport writes scale renewed copies of the Synthea files to a
// directory and runs `kiln import` of it into a fresh data directory, as
// shipped (workers: GOMAXPROCS). Every resource must be created.
func measureImport(b *testing.B, files [][]byte, counts []int, scale int) importRun {
	b.Helper()
	src, data := b.TempDir(), b.TempDir()
	bodies, n := renewed(b, files, counts, scale)
	want := 0
	for i, body := range bodies {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("bundle-%04d.json", i)), body, 0o600); err != nil {
			b.Fatal(err)
		}
		want += n[i]
	}
	start := time.Now()
	k := spawn(b, nil, "import", "--data", data, "--quiet", src)
	if err := k.wait(10 * time.Minute); err != nil {
		b.Fatalf("kiln import: %v\n%s", err, k.logs())
	}
	elapsed := time.Since(start)
	m := summaryLine.FindStringSubmatch(k.logs())
	if m == nil {
		b.Fatalf("no summary in the output:\n%s", k.logs())
	}
	loaded, _ := strconv.Atoi(m[1])
	created, _ := strconv.Atoi(m[2])
	if loaded != want || created != want {
		b.Fatalf("kiln import of %d resources: %s", want, m[0])
	}
	ru, ok := k.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no resource usage for the import process")
	}
	// Maxrss is in KB on Linux.
	return importRun{files: len(bodies), resources: want, elapsed: elapsed,
		cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), peakMB: float64(ru.Maxrss) / 1024}
}
