package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkExport1M is issue 6's export benchmark, on the cached
// population of conformance/population (≥ 1,000,000 resources;
// KILN_BENCH_POP_N and KILN_BENCH_CACHE as for BenchmarkSearch1M). The
// population's database is copied first, so that the export's job and
// files, which live in the store, leave the cache as it was. One run
// measures:
//
//   - baseline: every current resource read straight from the store
//     (store.Scanner, type by type, page by page) into a discarding
//     writer, one NDJSON line each, in this process;
//   - export: the kiln binary (--auth=none, defaults otherwise) doing a
//     system $export as a client sees it: kick-off, polling every 100 ms,
//     and downloading every file over loopback (4 at a time, as `kiln
//     export` does) into a discarding writer, each file's line count
//     checked against the manifest and the sum against the population.
//
// Reported: resources/s and MB/s of both, the export's share of the
// baseline, and the server's peak RSS (VmHWM). The targets
// (≥ 0.7× the baseline, ≥ 50,000 resources/s, peak RSS < 500 MB) are
// reported, not asserted.
//
//	go test -run '^$' -bench Export1M -benchtime 1x -timeout 60m ./cmd/kiln
func BenchmarkExport1M(b *testing.B) {
	ctx := context.Background()
	pop := openPopulation(b)
	data := b.TempDir()
	start := time.Now()
	if err := copyFile(filepath.Join(pop.Dir, "kiln.db"), filepath.Join(data, "kiln.db")); err != nil {
		b.Fatal(err)
	}
	b.Logf("copied the database in %v", time.Since(start).Round(time.Millisecond))

	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "kiln.db")})
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	cpu0 := selfCPU(b)
	count, size := scanAll(b, ctx, db)
	baseline, baselineCPU := time.Since(start), selfCPU(b)-cpu0
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if count != pop.Resources {
		b.Fatalf("baseline scanned %d resources, the population has %d", count, pop.Resources)
	}
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
	b.Logf("baseline: %d resources, %.0f MB in %v: %.0f resources/s, %.1f MB/s",
		count, float64(size)/(1<<20), baseline.Round(time.Millisecond), rate(count, baseline), mbps(size, baseline))

	k := startKiln(b, data)
	pid := k.cmd.Process.Pid
	c := &exportClient{cfg: exportConfig{url: k.base, quiet: true}, http: &http.Client{}}
	kilnCPU0 := processCPU(b, pid)
	start = time.Now()
	status, err := c.kickoff(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := pollManifest(b, ctx, c, status)
	written := time.Since(start)
	ecount, esize := downloadAll(b, ctx, c, m.Output)
	export := time.Since(start)
	mem := processMemory(b, pid)
	exportCPU := processCPU(b, pid) - kilnCPU0
	if ecount != pop.Resources || len(m.Error) > 0 {
		b.Fatalf("export: %d resources (and %d error files), the population has %d", ecount, len(m.Error), pop.Resources)
	}
	if res, err := c.request(ctx, http.MethodDelete, status, nil); err == nil {
		res.Body.Close()
	}
	k.stop()
	b.Logf("export:   %d resources, %.0f MB in %d files in %v (manifest after %v): %.0f resources/s, %.1f MB/s",
		ecount, float64(esize)/(1<<20), len(m.Output), export.Round(time.Millisecond), written.Round(time.Millisecond),
		rate(ecount, export), mbps(esize, export))
	b.Logf("memory:   kiln %v", mem)
	// CPU time is what the shared machine's load does not change: the
	// baseline's (this process scanning) against the server's for the
	// whole export (kick-off, job, polls, serving the files).
	b.Logf("CPU:      baseline %v (%.0f resources per CPU-second), kiln for the export %v (%.0f per CPU-second): %.2f",
		baselineCPU.Round(time.Millisecond), float64(count)/baselineCPU.Seconds(),
		exportCPU.Round(time.Millisecond), float64(ecount)/exportCPU.Seconds(), baselineCPU.Seconds()/exportCPU.Seconds())
	ratio := rate(ecount, export) / rate(count, baseline)
	b.Logf("targets: export/baseline %.2f (target ≥ 0.70), %.0f resources/s (target ≥ 50,000), peak RSS %.0f MB (target < 500)",
		ratio, rate(ecount, export), mem.peak)
	b.ReportMetric(0, "ns/op") // one pass of fixed work: ns/op means nothing
	b.ReportMetric(rate(count, baseline), "baseline-res/s")
	b.ReportMetric(mbps(size, baseline), "baseline-MB/s")
	b.ReportMetric(rate(ecount, export), "export-res/s")
	b.ReportMetric(mbps(esize, export), "export-MB/s")
	b.ReportMetric(ratio, "export/baseline")
	b.ReportMetric(mem.peak, "peak-RSS-MB")
	b.ReportMetric(baselineCPU.Seconds()/exportCPU.Seconds(), "export/baseline-CPU")
	b.ReportMetric(float64(pop.Resources), "resources")
}

// scanAll reads every current resource of every type through
// store.Scanner as of now, writing each body and a newline to a
// discarding writer, and returns how many and how many bytes.
func scanAll(b *testing.B, ctx context.Context, st store.Scanner) (int, int64) {
	b.Helper()
	w := bufio.NewWriterSize(io.Discard, 1<<20)
	at := time.Now()
	count, size := 0, int64(0)
	for _, typ := range resource.Types() {
		q := store.ScanQuery{Type: typ, At: at, Count: 1000}
		for {
			page, err := st.Scan(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page.Resources {
				n, _ := w.Write(r.Body)
				w.WriteByte('\n')
				size += int64(n) + 1
				count++
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	w.Flush()
	return count, size
}

// pollManifest polls the status URL every 100 ms (not at the server's
// Retry-After, whose whole seconds would blur the figure) until the
// manifest.
func pollManifest(b *testing.B, ctx context.Context, c *exportClient, status string) clientManifest {
	b.Helper()
	for {
		res, err := c.request(ctx, http.MethodGet, status, http.Header{"Accept": {"application/json"}})
		if err != nil {
			b.Fatal(err)
		}
		switch res.StatusCode {
		case http.StatusOK:
			var m clientManifest
			err := json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
			return m
		case http.StatusAccepted:
			res.Body.Close()
			time.Sleep(100 * time.Millisecond)
		default:
			err := serverError("export status", res)
			res.Body.Close()
			b.Fatal(err)
		}
	}
}

// downloadAll fetches every file, 4 at a time, into a discarding writer,
// checking each one's line count against the manifest.
func downloadAll(b *testing.B, ctx context.Context, c *exportClient, files []exportFile) (int, int64) {
	b.Helper()
	var (
		mu          sync.Mutex // guards lines, size, first
		lines       int
		size        int64
		first       error
		wg          sync.WaitGroup
		parallelism = make(chan struct{}, 4)
	)
	for _, f := range files {
		parallelism <- struct{}{}
		wg.Go(func() {
			defer func() { <-parallelism }()
			n, s, err := func() (int, int64, error) {
				res, err := c.request(ctx, http.MethodGet, f.URL, http.Header{"Accept": {"application/fhir+ndjson"}})
				if err != nil {
					return 0, 0, err
				}
				defer res.Body.Close()
				if res.StatusCode != http.StatusOK {
					return 0, 0, serverError("GET "+f.URL, res)
				}
				r := bufio.NewReaderSize(res.Body, 1<<20)
				n, s := 0, int64(0)
				for {
					line, err := r.ReadSlice('\n')
					s += int64(len(line))
					if len(line) > 0 && line[len(line)-1] == '\n' {
						n++
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
						return n, s, err
					}
				}
				if n != f.Count {
					return n, s, fmt.Errorf("%s: %d lines, the manifest says %d", f.URL, n, f.Count)
				}
				return n, s, nil
			}()
			mu.Lock()
			defer mu.Unlock()
			lines, size = lines+n, size+s
			if first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return lines, size
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
