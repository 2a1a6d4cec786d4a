package bulk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// BenchmarkExport measures a full system export against its baseline in
// the same run: reading every current resource straight from the store
// (store.Scanner, page by page) into a discarding writer. The export is the
// whole path a client sees: kick-off, the job writing NDJSON chunks into
// the store, polling, and downloading every file over loopback HTTP.
//
// KILN_BENCH_EXPORT_N sets the number of resources (default 100,000; the
// issue's target is measured at 1,000,000). Reported: resources/s and MB/s
// of each, the export's share of the baseline, and the process's peak RSS
// (VmHWM, which includes loading the store).
//
// KILN_BENCH_EXPORT_DB names a kiln.db to export instead (e.g. the
// population of conformance/population, for realistic resources): it is
// copied first, never written, and every type is exported and scanned.
func BenchmarkExport(b *testing.B) {
	n := 100_000
	if v := os.Getenv("KILN_BENCH_EXPORT_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("KILN_BENCH_EXPORT_N=%q", v)
		}
	}
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "kiln.db")
	from := os.Getenv("KILN_BENCH_EXPORT_DB")
	if from != "" {
		if err := copyDB(from, path); err != nil {
			b.Fatal(err)
		}
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	types := []string{"Observation", "Patient"}
	if from == "" {
		fill(b, st, n)
	} else {
		types = resource.Types()
		n, _ = scanAll(b, st, types)
	}

	var baseline, export, baselineCPU, exportCPU float64
	b.Run("baseline-scan", func(b *testing.B) {
		for b.Loop() {
			start, cpu := time.Now(), cpuTime()
			count, size := scanAll(b, st, types)
			if count != n {
				b.Fatalf("scanned %d resources, stored %d", count, n)
			}
			baseline = report(b, "baseline", count, size, time.Since(start))
			baselineCPU = float64(count) / (cpuTime() - cpu).Seconds()
		}
	})
	export1 := func(format string, rate, rateCPU *float64) func(b *testing.B) {
		return func(b *testing.B) {
			// Polled every 10 ms, not to miss the end: MinPoll off.
			h := New(Config{Settle: -1, Poll: 10 * time.Millisecond, MinPoll: -1, Expiry: time.Minute}, st)
			defer h.Close()
			for b.Loop() {
				start, cpu := time.Now(), cpuTime()
				count, size := exportAll(b, h, format)
				if count != n {
					b.Fatalf("exported %d resources, stored %d", count, n)
				}
				*rate = report(b, "export "+format, count, size, time.Since(start))
				*rateCPU = float64(count) / (cpuTime() - cpu).Seconds()
			}
		}
	}
	b.Run("system-export", export1("ndjson", &export, &exportCPU))
	if baseline > 0 && export > 0 {
		// The machine is shared: when other processes take the cores,
		// wall time measures them too. Resources per CPU-second of this
		// process is the cost of each path whatever the load.
		b.Logf("export at %.0f%% of the baseline (wall time), %.0f%% per CPU-second (%.0f and %.0f resources per CPU-second); peak RSS %s",
			100*export/baseline, 100*exportCPU/baselineCPU, exportCPU, baselineCPU, peakRSS())
	}
	var parquet, parquetCPU float64
	b.Run("system-export-parquet", export1("parquet", &parquet, &parquetCPU))
	if baseline > 0 && parquet > 0 {
		b.Logf("Parquet export at %.0f%% of the baseline (wall time), %.0f%% per CPU-second; peak RSS %s",
			100*parquet/baseline, 100*parquetCPU/baselineCPU, peakRSS())
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fill commits n Patients and Observations (one Patient per 9
// Observations) of about 1 KB each, in batches.
func fill(b *testing.B, st *sqlite.Store, n int) {
	b.Helper()
	now := time.Now().UTC().Add(-time.Hour)
	var batch []store.Change
	for i := range n {
		typ, body := "Observation", ""
		id := fmt.Sprintf("r%08d", i)
		if i%10 == 0 {
			typ = "Patient"
			body = fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"1"},"gender":"female","name":[{"family":"F%d","given":["G"]}],"note":%q}`,
				id, i, strings.Repeat("x", 900))
		} else {
			body = fmt.Sprintf(`{"resourceType":"Observation","id":%q,"meta":{"versionId":"1"},"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/r%08d"},"valueQuantity":{"value":72,"unit":"/min"},"note":[{"text":%q}]}`,
				id, i/10*10, strings.Repeat("x", 800))
		}
		batch = append(batch, store.Change{Type: typ, ID: id, Version: 1, LastUpdated: now, Method: store.MethodPost, Body: []byte(body)})
		if len(batch) == 1000 || i == n-1 {
			if err := st.Commit(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func scanAll(b *testing.B, st store.Scanner, types []string) (int, int64) {
	count, size := 0, int64(0)
	for _, typ := range types {
		q := store.ScanQuery{Type: typ, At: time.Now(), Count: 500}
		for {
			page, err := st.Scan(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range page.Resources {
				w, _ := io.Discard.Write(append(r.Body, '\n'))
				size += int64(w)
				count++
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	return count, size
}

// exportAll runs a system export in format (ndjson, parquet) through the handler (in process, over
// HTTP on loopback) and downloads every file into a discarding writer.
func exportAll(b *testing.B, h *Handler, format string) (int, int64) {
	srv := newHTTPServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/$export?_outputFormat="+format, nil)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 202 {
		b.Fatalf("kick-off: %v %v", res, err)
	}
	res.Body.Close()
	status := res.Header.Get("Content-Location")
	var m manifestT
	for {
		res, err := http.Get(status)
		if err != nil {
			b.Fatal(err)
		}
		if res.StatusCode == 200 {
			err := jsonDecode(res.Body, &m)
			res.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
			break
		}
		res.Body.Close()
		if res.StatusCode != 202 {
			b.Fatalf("poll: %d", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	written := time.Now()
	count, size := 0, int64(0)
	defer func() { b.Logf("download: %s", time.Since(written).Round(time.Millisecond)) }()
	for _, f := range m.Output {
		res, err := http.Get(f.URL)
		if err != nil {
			b.Fatal(err)
		}
		w, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		size += w
		count += f.Count
	}
	req, _ = http.NewRequest("DELETE", status, nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	return count, size
}

// copyDB copies a database file (checkpointed: the population's are).
func copyDB(from, to string) error {
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

func newHTTPServer(h *Handler) *httptest.Server { return httptest.NewServer(h) }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func report(b *testing.B, what string, count int, size int64, d time.Duration) float64 {
	rate := float64(count) / d.Seconds()
	b.ReportMetric(rate, "resources/s")
	b.ReportMetric(float64(size)/(1<<20)/d.Seconds(), "MB/s")
	b.Logf("%s: %d resources, %.1f MB in %s: %.0f resources/s, %.1f MB/s, GOMAXPROCS %d",
		what, count, float64(size)/(1<<20), d.Round(time.Millisecond), rate, float64(size)/(1<<20)/d.Seconds(), runtime.GOMAXPROCS(0))
	return rate
}

// peakRSS reads the process's high-water resident set (Linux).
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
