package main

// The tests of this package run the real binary as a child process: they
// build it once per test run (only when a test or benchmark asks for it),
// start `kiln serve` on a loopback port the kernel picks, and read the
// address it reports from its JSON log.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
)

// startTimeout bounds how long a child takes to serve; generous, because
// a loaded 2-core machine may be running other packages' tests too.
const startTimeout = 90 * time.Second

var (
	binDir   string // removed by TestMain after the run
	buildBin = sync.OnceValues(func() (string, error) {
		path := filepath.Join(binDir, "kiln")
		// go test puts its own GOROOT/bin first on the PATH of tests.
		gobin, err := exec.LookPath("go")
		if err != nil {
			return "", err
		}
		// The build settings of `go test` itself, not those of `make
		// build` (-trimpath, CGO_ENABLED=0): then every package comes from
		// the build cache the test binary just filled and only the link
		// is new. Neither setting changes the code the benchmarks run.
		cmd := exec.Command(gobin, "build", "-ldflags", "-X main.version=test", "-o", path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return path, nil
	})
)

func TestMain(m *testing.M) {
	if os.Getenv(baselineEnv) != "" {
		// Re-executed as the benchmarks' bare net/http server.
		serveBaseline()
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "kiln-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kilnBinary returns the path of the built binary, building it on first
// use.
func kilnBinary(t testing.TB) string {
	t.Helper()
	path, err := buildBin()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// kiln is one child process of the binary.
type kiln struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string        // stdout and stderr of the child
	done    chan struct{} // closed once the child has exited and err is set
	err     error         // cmd.Wait's answer
	base    string        // http://127.0.0.1:port once serving
}

// spawn starts the binary with args and, on top of this process's
// environment without any KILN_* variable, env. It does not wait for
// anything; the cleanup kills the child if it still runs.
func spawn(t testing.TB, env []string, args ...string) *kiln {
	t.Helper()
	bin := kilnBinary(t)
	logf, err := os.CreateTemp(t.TempDir(), "kiln-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KILN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	// A file, not a pipe: the child never blocks on a slow reader, and
	// reading it costs the benchmarks' client nothing.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &kiln{t: t, cmd: cmd, logPath: logf.Name(), done: make(chan struct{})}
	go func() {
		k.err = cmd.Wait()
		close(k.done)
	}()
	t.Cleanup(func() {
		if !k.exited() {
			cmd.Process.Kill()
			<-k.done
		}
		if t.Failed() {
			t.Logf("kiln %s log (last 60 lines):\n%s", strings.Join(args, " "), tail(k.logs(), 60))
		}
	})
	return k
}

// startKiln runs `kiln serve --auth=none` on data with a JSON log and
// waits until it answers /healthz.
func startKiln(t testing.TB, data string, extra ...string) *kiln {
	t.Helper()
	args := append([]string{"serve", "--auth=none", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json"}, extra...)
	k := spawn(t, nil, args...)
	k.waitServing()
	return k
}

func (k *kiln) exited() bool {
	select {
	case <-k.done:
		return true
	default:
		return false
	}
}

func (k *kiln) logs() string {
	b, err := os.ReadFile(k.logPath)
	if err != nil {
		k.t.Fatal(err)
	}
	return string(b)
}

// logRecords returns the JSON log records of the child (other lines are
// skipped).
func (k *kiln) logRecords() []map[string]any {
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(k.logs()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// waitLog polls the log until a record satisfies match, and returns it.
func (k *kiln) waitLog(what string, match func(map[string]any) bool) map[string]any {
	k.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		for _, rec := range k.logRecords() {
			if match(rec) {
				return rec
			}
		}
		if k.exited() {
			k.t.Fatalf("kiln exited (%v) before logging %s", k.err, what)
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("kiln did not log %s within %v", what, startTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func msgIs(msg string) func(map[string]any) bool {
	return func(rec map[string]any) bool { return rec["msg"] == msg }
}

// waitServing reads the listening address from the log and polls
// /healthz until it answers 200.
func (k *kiln) waitServing() {
	k.t.Helper()
	rec := k.waitLog(`"kiln serving"`, msgIs("kiln serving"))
	addr, _ := rec["addr"].(string)
	if addr == "" {
		k.t.Fatalf("no addr in %v", rec)
	}
	k.base = "http://" + addr
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := hc.Get(k.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if k.exited() {
			k.t.Fatalf("kiln exited (%v) before /healthz answered", k.err)
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("/healthz did not answer 200 within %v (last: %v)", startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a FHIR client of the child.
func (k *kiln) client(t testing.TB) *apitest.Client {
	return &apitest.Client{T: t, Base: k.base, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// wait waits for the child to exit and returns cmd.Wait's answer.
func (k *kiln) wait(timeout time.Duration) error {
	k.t.Helper()
	select {
	case <-k.done:
		return k.err
	case <-time.After(timeout):
		k.t.Fatalf("kiln did not exit within %v", timeout)
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (k *kiln) stop() {
	k.t.Helper()
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		k.t.Fatal(err)
	}
	if err := k.wait(startTimeout); err != nil {
		k.t.Fatalf("kiln exited with %v after SIGTERM, want status 0", err)
	}
}

// kill sends SIGKILL: no handler runs, nothing is flushed.
func (k *kiln) kill() {
	k.t.Helper()
	if err := k.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		k.t.Fatal(err)
	}
	k.wait(startTimeout)
}

// metrics scrapes /metrics.
func (k *kiln) metrics(t testing.TB) string {
	t.Helper()
	r := k.client(t).Do("GET", "/metrics", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", r.Status)
	}
	return string(r.Body)
}

// metricValue finds the sample of name whose labels include want in
// Prometheus text exposition.
func metricValue(exposition, name string, want map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(nil, 1<<20)
sample:
	for sc.Scan() {
		line := sc.Text()
		var labelText, valueText string
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			valueText = rest // a metric without labels
		} else if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			if labelText, valueText, ok = strings.Cut(rest, "} "); !ok {
				continue
			}
		} else {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(labelText, ",") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		for k, v := range want {
			if labels[k] != v {
				continue sample
			}
		}
		var f float64
		if _, err := fmt.Sscan(valueText, &f); err != nil {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// jsonObject decodes a JSON object, keeping numbers as text.
func jsonObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v\n%.500s", err, b)
	}
	return m
}
