package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/conformance/load"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// The benchmark's shape. One pass takes about two minutes on two cores,
// most of it the preload (the store's single writer indexing 100,000
// resources).
const (
	benchConcurrency = 8
	benchResources   = 100_000 // at least this many resources preloaded
	preloadBatch     = 1000    // changes per Commit while preloading
	baselineBody     = 3 << 10 // bytes the bare server answers
	warmup           = time.Second
	baselineTime     = 8 * time.Second
	readTime         = 10 * time.Second
	createTime       = 10 * time.Second
	maxRequests      = 2_000_000 // per phase; the time budget ends it first
)

// BenchmarkREST measures, in one run with one load client at concurrency
// 8 over loopback:
//
//   - baseline: a bare net/http server answering 3 KB, in its own process
//     (this test binary re-executed), so that it competes for the CPUs
//     with the client exactly as kiln does;
//   - read: GET /Patient/{id} of random preloaded Patients (about 3.4 KB
//     each) from the kiln binary whose store holds ≥ 100,000 resources;
//   - create: POST /Observation of Synthea Observations.
//
// kiln runs as shipped except for --log-format json, which the harness
// reads its address from; it logs every request, as in production.
//
// The targets (reads ≥ 50% of the baseline's rate, ≥ 2,500
// creates/s) are reported, not asserted: shared machines are noisy. Any
// failed request fails the benchmark. Each phase runs for a fixed time
// whatever b.N, so -benchtime 1x is the way to run it (make bench).
func BenchmarkREST(b *testing.B) {
	if testing.Short() {
		b.Skip("starts processes and preloads 100,000 resources")
	}
	ctx := context.Background()
	kilnBinary(b) // build before anything is timed
	corpus := loadSynthea(b)
	data := b.TempDir()

	pre := preload(b, ctx, filepath.Join(data, "kiln.db"), corpus.resources, benchResources)
	b.Logf("preload: %d resources (%d Patients) in %v: %.0f resources/s",
		pre.count, len(pre.patients), pre.elapsed.Round(time.Millisecond), pre.rate())

	baseline := measureBaseline(b, ctx)
	b.Logf("baseline: %v", baseline)

	k := startKiln(b, data)
	pid := k.cmd.Process.Pid
	reads := measureReads(b, ctx, k, pre.patients)
	b.Logf("read:     %v; kiln %v", reads, processMemory(b, pid))
	creates := measureCreates(b, ctx, k, corpus.observations, pre.patients)
	b.Logf("create:   %v", creates)

	// Every 201 is in the store: the system history counts them.
	r := k.client(b).Do("GET", "/_history?_count=0", nil)
	var hist struct{ Total int }
	if err := json.Unmarshal(r.Body, &hist); r.Status != http.StatusOK || err != nil {
		b.Fatalf("system history: %d %v", r.Status, err)
	}
	if want := pre.count + creates.OK; hist.Total != want {
		b.Errorf("system history holds %d versions, want %d preloaded + %d created", hist.Total, pre.count, creates.OK)
	}
	mem := processMemory(b, pid)
	b.Logf("memory:   kiln %v", mem)
	k.stop()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	ratio := reads.Rate() / baseline.Rate()
	b.Logf("targets: read/baseline %.2f (target ≥ 0.50), creates %.0f/s (target ≥ 2500), peak RSS %.0f MB",
		ratio, creates.Rate(), mem.peak)
	b.ReportMetric(0, "ns/op") // one pass of fixed-time phases: ns/op means nothing
	b.ReportMetric(baseline.Rate(), "baseline-req/s")
	b.ReportMetric(reads.Rate(), "read-req/s")
	b.ReportMetric(ratio, "read/baseline")
	b.ReportMetric(ms(reads.Quantile(0.50)), "read-p50-ms")
	b.ReportMetric(ms(reads.Quantile(0.99)), "read-p99-ms")
	b.ReportMetric(creates.Rate(), "create/s")
	b.ReportMetric(ms(creates.Quantile(0.50)), "create-p50-ms")
	b.ReportMetric(ms(creates.Quantile(0.99)), "create-p99-ms")
	// Server CPU per request is steadier than rates on a shared machine.
	b.ReportMetric(baseline.cpuPerRequest(), "baseline-cpu-us/req")
	b.ReportMetric(reads.cpuPerRequest(), "read-cpu-us/req")
	b.ReportMetric(creates.cpuPerRequest(), "create-cpu-us/req")
	b.ReportMetric(mem.peak, "peak-RSS-MB")
	b.ReportMetric(mem.pss, "PSS-MB")
	b.ReportMetric(pre.rate(), "preload-res/s")
}

// syntheaData is the benchmark's data: every resource of the Synthea bundles,
// parsed, and their Observations as JSON.
type syntheaData struct {
	resources    []*resource.Resource
	observations []map[string]any
}

func loadSynthea(b *testing.B) syntheaData {
	b.Helper()
	entries, err := synthea.Entries("../../testdata/synthea")
	if err != nil {
		b.Fatal(err)
	}
	var s syntheaData
	for i, e := range entries {
		r, err := resource.Parse(e.Resource)
		if err != nil {
			b.Fatalf("Synthea entry %d: %v", i, err)
		}
		s.resources = append(s.resources, r)
		if r.Type == "Observation" {
			dec := json.NewDecoder(bytes.NewReader(e.Resource))
			dec.UseNumber() // decimals keep their text
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				b.Fatal(err)
			}
			s.observations = append(s.observations, m)
		}
	}
	if len(s.observations) == 0 {
		b.Fatal("no Observations in the Synthea bundles")
	}
	return s
}

type preloaded struct {
	count    int
	patients []string // ids
	elapsed  time.Duration
}

func (p preloaded) rate() float64 { return float64(p.count) / p.elapsed.Seconds() }

// preload writes copies of rs, each with a fresh id and meta stamped and
// its search index entries, as the server would write them, until at
// least atLeast resources are stored, straight through the store in large
// batches, then closes it.
//
// Stamping 100,000 resources through google/fhir's marshaller would take
// most of a minute on two cores, so each resource is stamped once with a
// placeholder id and its copies get the fresh id spliced in. That is
// exactly what Stamp would produce (the canonical bytes depend on the id
// only where it is written), and it is checked for every resource before
// use.
func preload(b *testing.B, ctx context.Context, path string, rs []*resource.Resource, atLeast int) preloaded {
	b.Helper()
	start := time.Now()
	now := start.UTC().Truncate(time.Microsecond)
	const placeholder = "00000000-0000-0000-0000-00000000000a"
	quoted := func(id string) []byte { return []byte(`"` + id + `"`) }
	templates := make([][]byte, len(rs))
	for i, r := range rs {
		tmpl, err := r.Stamp(placeholder, 1, now)
		if err != nil {
			b.Fatalf("stamp resource %d: %v", i, err)
		}
		if n := bytes.Count(tmpl, quoted(placeholder)); n != 1 {
			b.Fatalf("%s %d: the placeholder id occurs %d times", r.Type, i, n)
		}
		probe := uuid.Must(uuid.NewV7()).String()
		want, err := r.Stamp(probe, 1, now)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(bytes.Replace(tmpl, quoted(placeholder), quoted(probe), 1), want) {
			b.Fatalf("%s %d: splicing the id differs from Stamp", r.Type, i)
		}
		templates[i] = tmpl
	}

	copies := (atLeast + len(rs) - 1) / len(rs)
	db, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	// Several committers, so that the store's group commit has batches to
	// join.
	workers := runtime.GOMAXPROCS(0)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards patients and firstErr
		patients []string
		firstErr error
	)
	for w := range workers {
		wg.Go(func() {
			var (
				batch = make([]store.Change, 0, preloadBatch)
				mine  []string
				err   error
			)
			for c := w; c < copies && err == nil; c += workers {
				for i, r := range rs {
					id := uuid.Must(uuid.NewV7()).String()
					body := bytes.Replace(templates[i], quoted(placeholder), quoted(id), 1)
					var index []search.Entry
					if index, err = search.Extract(r.Type, body); err != nil {
						break
					}
					batch = append(batch, store.Change{Type: r.Type, ID: id, Version: 1,
						LastUpdated: now, Method: store.MethodPost, Body: body, Index: index})
					if r.Type == "Patient" {
						mine = append(mine, id)
					}
					if len(batch) == preloadBatch || (c+workers >= copies && i == len(rs)-1) {
						if err = db.Commit(ctx, batch...); err != nil {
							break
						}
						batch = batch[:0]
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			patients = append(patients, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if err := db.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		b.Fatalf("preload: %v", firstErr)
	}
	if len(patients) == 0 {
		b.Fatal("preload: no Patients in the Synthea bundles")
	}
	return preloaded{count: copies * len(rs), patients: patients, elapsed: time.Since(start)}
}

// phase is what one measured phase found.
type phase struct {
	*load.Result
	// cpu is the user+system CPU time the server process spent.
	cpu time.Duration
}

func (p phase) cpuPerRequest() float64 {
	return float64(p.cpu) / float64(time.Microsecond) / float64(p.OK)
}

func (p phase) String() string {
	return fmt.Sprintf("%v; server CPU %.0f µs/request", p.Result, p.cpuPerRequest())
}

// measure runs one phase against the server process pid: a warm-up, then
// the measurement proper. Any failed request fails the benchmark.
func measure(b *testing.B, ctx context.Context, what string, pid int, warm bool, cfg load.Config) phase {
	b.Helper()
	if warm {
		w := cfg
		w.Duration = warmup
		res, err := load.Run(ctx, w)
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%s warm-up: %v; first error: %v", what, res, res.Err)
		}
	}
	cpu0 := processCPU(b, pid)
	res, err := load.Run(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	cpu := processCPU(b, pid) - cpu0
	if res.Errors > 0 || res.OK == 0 {
		b.Fatalf("%s: %v; first error: %v", what, res, res.Err)
	}
	return phase{res, cpu}
}

// processCPU is the user+system time process pid has used so far
// (/proc/PID/stat fields 14 and 15, in USER_HZ ticks: 100 per second on
// Linux).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("server CPU time: %v", err)
	}
	// The command name (field 2) may hold spaces; fields count from
	// after its closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		b.Fatalf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

func measureBaseline(b *testing.B, ctx context.Context) phase {
	b.Helper()
	addr, pid := startBaseline(b)
	url := "http://" + addr + "/"
	return measure(b, ctx, "baseline", pid, true, load.Config{
		Concurrency: benchConcurrency,
		Requests:    maxRequests,
		Duration:    baselineTime,
		New:         func(int) (*http.Request, error) { return http.NewRequest("GET", url, nil) },
		Check: func(_ int, resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || len(body) != baselineBody {
				return fmt.Errorf("baseline answered %d with %d bytes", resp.StatusCode, len(body))
			}
			return nil
		},
	})
}

func measureReads(b *testing.B, ctx context.Context, k *kiln, patients []string) phase {
	b.Helper()
	picks := make([]int32, maxRequests)
	for i := range picks {
		picks[i] = int32(rand.IntN(len(patients)))
	}
	return measure(b, ctx, "read", k.cmd.Process.Pid, true, load.Config{
		Concurrency: benchConcurrency,
		Requests:    maxRequests,
		Duration:    readTime,
		New: func(i int) (*http.Request, error) {
			return http.NewRequest("GET", k.base+"/Patient/"+patients[picks[i]], nil)
		},
		Check: func(i int, resp *http.Response, body []byte) error {
			id := patients[picks[i]]
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"id":"`+id+`"`)) {
				return fmt.Errorf("GET /Patient/%s: %d %.200s", id, resp.StatusCode, body)
			}
			return nil
		},
	})
}

// measureCreates posts the Synthea Observations, each without its id and
// with its urn:uuid subject replaced by a preloaded Patient.
func measureCreates(b *testing.B, ctx context.Context, k *kiln, observations []map[string]any, patients []string) phase {
	b.Helper()
	bodies := make([][]byte, len(observations))
	for i, o := range observations {
		o = maps.Clone(o) // the corpus stays as read
		delete(o, "id")
		o["subject"] = map[string]any{"reference": "Patient/" + patients[i%len(patients)]}
		body, err := json.Marshal(o)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	return measure(b, ctx, "create", k.cmd.Process.Pid, false, load.Config{
		Concurrency: benchConcurrency,
		Requests:    maxRequests,
		Duration:    createTime,
		New: func(i int) (*http.Request, error) {
			req, err := http.NewRequest("POST", k.base+"/Observation", bytes.NewReader(bodies[i%len(bodies)]))
			if err == nil {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			return req, err
		},
		Check: func(_ int, resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("POST /Observation: %d %.300s", resp.StatusCode, body)
			}
			return nil
		},
	})
}

// memory is a process's resident memory in MB: the peak (VmHWM, which
// the issue asks for), and now, the anonymous part (heap, stacks), the
// part backed by files, and the proportional set size. SQLite's read
// connections each mmap the database, so a page of it counts in RSS once
// per connection that touched it; PSS counts it once.
type memory struct{ peak, anon, file, pss float64 }

func (m memory) String() string {
	return fmt.Sprintf("peak RSS %.0f MB (now %.0f MB anonymous + %.0f MB file-backed; PSS %.0f MB)",
		m.peak, m.anon, m.file, m.pss)
}

func processMemory(b *testing.B, pid int) memory {
	b.Helper()
	var m memory
	for _, f := range []string{"status", "smaps_rollup"} {
		text, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			b.Fatalf("server memory: %v", err)
		}
		for _, line := range strings.Split(string(text), "\n") {
			key, v, _ := strings.Cut(line, ":")
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				continue
			}
			switch key {
			case "VmHWM":
				m.peak = kb / 1024
			case "RssAnon":
				m.anon = kb / 1024
			case "RssFile":
				m.file = kb / 1024
			case "Pss":
				m.pss = kb / 1024
			}
		}
	}
	if m.peak == 0 {
		b.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	return m
}

// baselineEnv, when set, makes the test binary serve the baseline instead
// of running tests (TestMain).
const baselineEnv = "KILN_TEST_BASELINE_SERVER"

// startBaseline re-executes this test binary as the bare server and
// returns its address and process id; it stops when its stdin closes.
func startBaseline(b *testing.B) (string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), baselineEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("baseline server: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}

// serveBaseline is the baseline process: a bare net/http handler
// answering a 3 KB JSON body to every request, on a loopback port it
// prints, until stdin closes.
func serveBaseline() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	const head, foot = `{"resourceType":"Basic","text":"`, `"}`
	body := []byte(head + strings.Repeat("x", baselineBody-len(head)-len(foot)) + foot)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}
