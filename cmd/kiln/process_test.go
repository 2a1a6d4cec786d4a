package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
)

// TestAPIOnBinary runs the HTTP conformance suite against the real binary,
// so that the wiring in serve.go (flags, operational endpoints, store) is
// what answers.
func TestAPIOnBinary(t *testing.T) {
	const maxBody = 1 << 20
	k := startKiln(t, t.TempDir(), "--max-body", fmt.Sprint(maxBody))
	apitest.Run(t, k.base, apitest.Options{MaxBody: maxBody, SkipCorpus: true})
}

func TestHealthAndReadiness(t *testing.T) {
	k := startKiln(t, t.TempDir())
	c := k.client(t)
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		r := c.Do("GET", path, nil)
		if r.Status != http.StatusOK || string(r.Body) != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, r.Status, r.Body, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	k := startKiln(t, t.TempDir())
	c := k.client(t)
	created := c.Do("POST", "/Patient", []byte(`{"resourceType":"Patient","active":true}`))
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	id := jsonObject(t, created.Body)["id"].(string)
	for range 2 { // the second read is a hit of the read cache
		if r := c.Do("GET", "/Patient/"+id, nil); r.Status != http.StatusOK {
			t.Fatalf("read: %d %s", r.Status, r.Body)
		}
	}
	if r := c.Do("GET", "/Patient/no-such-patient", nil); r.Status != http.StatusNotFound {
		t.Fatalf("read of a missing patient: %d, want 404", r.Status)
	}

	m := k.metrics(t)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64 // exact for counters of this fresh server; > 0 for histograms
	}{
		{"kiln_http_requests_total", map[string]string{"interaction": "create", "type": "Patient", "status": "201"}, 1},
		{"kiln_http_requests_total", map[string]string{"interaction": "read", "type": "Patient", "status": "200"}, 2},
		{"kiln_http_requests_total", map[string]string{"interaction": "read", "type": "Patient", "status": "404"}, 1},
		{"kiln_http_request_duration_seconds_count", map[string]string{"interaction": "read"}, 3},
		{"kiln_store_operation_duration_seconds_count", map[string]string{"backend": "sqlite", "operation": "commit", "result": "ok"}, 1},
		{"kiln_store_operation_duration_seconds_count", map[string]string{"backend": "sqlite", "operation": "read", "result": "ok"}, 2},
		{"kiln_store_operation_duration_seconds_count", map[string]string{"backend": "sqlite", "operation": "read", "result": "answer"}, 1},
		// The first read and the 404 missed; the second read hit.
		{"kiln_store_cache_hits_total", nil, 1},
		{"kiln_store_cache_misses_total", nil, 2},
	} {
		got, ok := metricValue(m, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(m, "\n"+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", m)
	}
}

// TestRequestLog checks the one log line per request: it carries the
// request id and never patient data, neither from bodies nor from query
// strings (style.md habit 5).
func TestRequestLog(t *testing.T) {
	// Distinctive values that must never reach the log.
	secrets := []string{"Quetzalcoatlova", "Xiomarabelle", "999-88-7777", "1901-02-03", "1901-02-30"}
	k := startKiln(t, t.TempDir())
	c := k.client(t)

	patient := `{"resourceType":"Patient",
		"identifier":[{"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-88-7777"}],
		"name":[{"family":"Quetzalcoatlova","given":["Xiomarabelle"]}],
		"birthDate":"1901-02-03"}`
	created := c.Do("POST", "/Patient", []byte(patient), "X-Request-Id", "log-test.create-1")
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	id := jsonObject(t, created.Body)["id"].(string)

	// Every one of these puts patient data in the query string or the
	// body; the invalid body makes the server build diagnostics from it.
	type sent struct {
		method, path, body, requestID string
	}
	requests := []sent{
		{"GET", "/Patient/" + id + "?_elements=name&family=Quetzalcoatlova", "", "log-test.read-1"},
		{"GET", "/Patient?family=Quetzalcoatlova&birthdate=1901-02-03&identifier=999-88-7777", "", "log-test.search-1"},
		{"GET", "/Patient/" + id + "/_history?_since=1901-02-03", "", "log-test.history-1"},
		{"POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Quetzalcoatlova"}],"birthDate":"1901-02-30"}`, "log-test.invalid-1"},
		{"PUT", "/Patient/" + id, `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Quetzalcoatlova","given":["Xiomarabelle"]}]}`, "log-test.update-1"},
		{"GET", "/Patient/" + id + "?_summary=Quetzalcoatlova", "", "log-test.summary-1"},
	}
	for _, rq := range requests {
		var body []byte
		if rq.body != "" {
			body = []byte(rq.body)
		}
		r := c.Do(rq.method, rq.path, body, "X-Request-Id", rq.requestID)
		if got := r.Header.Get("X-Request-Id"); got != rq.requestID {
			t.Errorf("%s %s: X-Request-Id %q, want the client's %q echoed", rq.method, rq.path, got, rq.requestID)
		}
	}
	// Without a usable id, the server makes one up and reports it.
	generated := c.Do("GET", "/Patient/"+id, nil, "X-Request-Id", "not an id; Quetzalcoatlova")
	genID := generated.Header.Get("X-Request-Id")
	if genID == "" || strings.ContainsAny(genID, " ;") {
		t.Errorf("X-Request-Id %q: want a server-made id instead of the hostile one", genID)
	}
	requests = append(requests, sent{"POST", "/Patient", "", "log-test.create-1"}, sent{"GET", "/Patient/" + id, "", genID})

	// The log line is written after the response; poll until the last
	// one is there.
	k.waitLog("the last request", func(rec map[string]any) bool { return rec["request_id"] == genID })
	logs := k.logs()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains patient data %q", s)
		}
	}
	for _, q := range []string{"family=", "birthdate=", "identifier=", "_elements", "_since", "_summary"} {
		if strings.Contains(logs, q) {
			t.Errorf("the log contains query text %q", q)
		}
	}
	byID := map[string]map[string]any{}
	for _, rec := range k.logRecords() {
		if rec["msg"] != "request" {
			continue
		}
		rid, _ := rec["request_id"].(string)
		if rid == "" {
			t.Errorf("request log line without request_id: %v", rec)
		}
		byID[rid] = rec
	}
	for _, rq := range requests {
		rec, ok := byID[rq.requestID]
		if !ok {
			t.Errorf("%s %s: no log line with request_id %q", rq.method, rq.path, rq.requestID)
			continue
		}
		if rec["method"] != rq.method {
			t.Errorf("log line %q: method %v, want %s", rq.requestID, rec["method"], rq.method)
		}
	}
	if rec := byID["log-test.read-1"]; rec != nil && (rec["interaction"] != "read" || rec["type"] != "Patient" || rec["status"] != float64(200)) {
		t.Errorf("read log line %v: want interaction read, type Patient, status 200", rec)
	}
	if rec := byID["log-test.invalid-1"]; rec != nil && (rec["status"] != float64(400) || rec["outcome"] == nil) {
		t.Errorf("invalid create log line %v: want status 400 and the outcome codes", rec)
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	data := t.TempDir()
	k := spawn(t, []string{
		"KILN_ADDR=127.0.0.1:0", "KILN_DATA=" + data, "KILN_AUTH=none",
		"KILN_LOG_FORMAT=json", "KILN_MAX_BODY=2000",
	}, "serve")
	k.waitServing()
	if rec := k.waitLog(`"kiln serving"`, msgIs("kiln serving")); rec["data"] != data {
		t.Errorf("serving data %v, want KILN_DATA %s", rec["data"], data)
	}
	if _, err := os.Stat(filepath.Join(data, "kiln.db")); err != nil {
		t.Errorf("no store in KILN_DATA: %v", err)
	}
	c := k.client(t)
	if r := c.Do("POST", "/Patient", []byte(`{"resourceType":"Patient"}`)); r.Status != http.StatusCreated {
		t.Errorf("create: %d %s", r.Status, r.Body)
	}
	big := `{"resourceType":"Patient","name":[{"text":"` + strings.Repeat("a", 3000) + `"}]}`
	if r := c.Do("POST", "/Patient", []byte(big)); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("create of 3 KB with KILN_MAX_BODY=2000: %d, want 413", r.Status)
	}
	k.stop()
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	envData, flagData := t.TempDir(), t.TempDir()
	k := spawn(t, []string{
		// Each of these would fail or differ if it won.
		"KILN_ADDR=192.0.2.1:1", "KILN_DATA=" + envData, "KILN_AUTH=smart",
		"KILN_LOG_FORMAT=xml", "KILN_MAX_BODY=10",
	}, "serve", "--addr", "127.0.0.1:0", "--data", flagData, "--auth=none", "--log-format", "json", "--max-body", "100000")
	k.waitServing()
	if _, err := os.Stat(filepath.Join(flagData, "kiln.db")); err != nil {
		t.Errorf("no store in --data: %v", err)
	}
	if entries, _ := os.ReadDir(envData); len(entries) != 0 {
		t.Errorf("KILN_DATA was used although --data was given: %v", entries)
	}
	if r := k.client(t).Do("POST", "/Patient", []byte(`{"resourceType":"Patient","active":true}`)); r.Status != http.StatusCreated {
		t.Errorf("create with --max-body over KILN_MAX_BODY=10: %d %s", r.Status, r.Body)
	}
	k.stop()
}

// TestInvalidEnvironmentFailsStartup: a malformed number in the
// environment must stop the server, as the same value in a flag does,
// rather than run with a limit nobody asked for.
func TestInvalidEnvironmentFailsStartup(t *testing.T) {
	for _, v := range []string{"2kb", "lots", "1e6"} {
		t.Run(v, func(t *testing.T) {
			k := spawn(t, []string{"KILN_MAX_BODY=" + v}, "serve", "--auth=none", "--addr", "127.0.0.1:0",
				"--data", t.TempDir(), "--log-format", "json")
			// Fail as soon as it serves, rather than at the exit timeout.
			for deadline := time.Now().Add(startTimeout); !k.exited() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				for _, rec := range k.logRecords() {
					if rec["msg"] == "kiln serving" {
						t.Fatalf("KILN_MAX_BODY=%s: the server started", v)
					}
				}
			}
			err := k.wait(startTimeout)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(k.logs(), "KILN_MAX_BODY") {
				t.Errorf("KILN_MAX_BODY=%s: exit %v, output %q; want status 1 naming KILN_MAX_BODY", v, err, k.logs())
			}
		})
	}
}

func TestServeRejectsUnknownAuthMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag value", []string{"--auth=basic"}, nil, `--auth must be smart or none, not "basic"`},
		{"unknown env value", nil, []string{"KILN_AUTH=oauth"}, `--auth must be smart or none, not "oauth"`},
		{"half an upstream provider", []string{"--oidc-issuer=https://idp.example"}, nil, "--oidc-issuer and --oidc-client-id go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			k := spawn(t, tc.env, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, tc.args...)...)
			err := k.wait(startTimeout)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("kiln serve %v exited with %v, want status 1", tc.args, err)
			}
			if logs := k.logs(); !strings.Contains(logs, "kiln: "+tc.want) {
				t.Errorf("output %q does not say %q", logs, tc.want)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory was created before the configuration was rejected (%v)", err)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"version"}, 0, "kiln test"},
		{nil, 1, "missing command"},
		{[]string{"frobnicate"}, 1, `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, 1, "flag provided but not defined: -no-such-flag"},
	} {
		k := spawn(t, nil, tc.args...)
		err := k.wait(startTimeout)
		status := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			status = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tc.status || !strings.Contains(k.logs(), tc.want) {
			t.Errorf("kiln %v: status %d, output %q; want status %d and %q", tc.args, status, k.logs(), tc.status, tc.want)
		}
	}
}

// TestGracefulShutdown sends SIGTERM while a large create is half-way
// through its body: the server stops accepting connections, finishes the
// request with 201, exits 0, and the resource is in the store on restart.
func TestGracefulShutdown(t *testing.T) {
	data := t.TempDir()
	k := startKiln(t, data)
	addr := strings.TrimPrefix(k.base, "http://")

	body := largePatient(20000) // about 1 MB
	pr, pw := io.Pipe()
	defer pr.Close()
	req, err := http.NewRequest("POST", k.base+"/Patient", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	// With Expect: 100-continue the server says when the handler starts
	// reading the body: from then on the request is in flight.
	req.Header.Set("Expect", "100-continue")
	inHandler := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { close(inHandler) },
	})
	client := &http.Client{
		Transport: &http.Transport{ExpectContinueTimeout: startTimeout},
		Timeout:   3 * startTimeout,
	}
	type answer struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, resp.Header, b, err}
	}()
	select {
	case <-inHandler:
	case a := <-answered:
		t.Fatalf("answered before the body was sent: %d %s %v", a.status, a.body, a.err)
	case <-time.After(startTimeout):
		t.Fatal("no 100 Continue: the handler never started reading")
	}
	half := len(body) / 2
	if _, err := pw.Write(body[:half]); err != nil {
		t.Fatal(err)
	}

	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	k.waitLog(`"shutting down"`, msgIs("shutting down"))
	// Shutdown closes the listener first: wait for new connections to be
	// refused, so the rest of the body provably arrives during shutdown.
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if k.exited() {
		t.Fatalf("kiln exited (%v) with a request in flight", k.err)
	}
	// The rest, slowly: in small chunks, each written only once the
	// server has consumed the previous one (io.Pipe is synchronous).
	for rest := body[half:]; len(rest) > 0; {
		n := min(len(rest), 16<<10)
		if _, err := pw.Write(rest[:n]); err != nil {
			t.Fatalf("streaming the body during shutdown: %v", err)
		}
		rest = rest[n:]
	}
	pw.Close()

	var a answer
	select {
	case a = <-answered:
	case <-time.After(3 * startTimeout):
		t.Fatal("no answer to the in-flight create")
	}
	if a.err != nil || a.status != http.StatusCreated {
		t.Fatalf("in-flight create during shutdown: %d %v %.300s, want 201", a.status, a.err, a.body)
	}
	id, _ := jsonObject(t, a.body)["id"].(string)
	if id == "" || !strings.Contains(a.header.Get("Location"), "/Patient/"+id+"/_history/1") {
		t.Fatalf("create answered id %q, Location %q", id, a.header.Get("Location"))
	}
	if err := k.wait(startTimeout); err != nil {
		t.Fatalf("kiln exited with %v after SIGTERM, want status 0", err)
	}
	k.waitLog(`"stopped"`, msgIs("stopped"))

	k2 := startKiln(t, data)
	r := k2.client(t).Do("GET", "/Patient/"+id, nil)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, a.body) {
		t.Fatalf("after restart GET /Patient/%s: %d, body equal to the create's: %v", id, r.Status, bytes.Equal(r.Body, a.body))
	}
	k2.stop()
}

// largePatient is a valid Patient of n identifiers (about 50 bytes each).
func largePatient(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Patient","identifier":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"system":"urn:kiln:test","value":"id-%07d"}`, i)
	}
	b.WriteString(`],"active":true}`)
	return b.Bytes()
}

// TestSearchHandlingDefault: --search-handling=strict makes an unknown
// search parameter a 400 unless the request asks for lenient handling.
func TestSearchHandlingDefault(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		prefer string
		want   int
	}{
		{"lenient", "", http.StatusOK},
		{"lenient", "handling=strict", http.StatusBadRequest},
		{"strict", "", http.StatusBadRequest},
		{"strict", "handling=lenient", http.StatusOK},
	} {
		t.Run(tc.mode+"/"+tc.prefer, func(t *testing.T) {
			k := startKiln(t, t.TempDir(), "--search-handling", tc.mode)
			r := k.client(t).Do("GET", "/Patient?no-such-param=1", nil, "Prefer", tc.prefer)
			if r.Status != tc.want {
				t.Errorf("status %d, want %d: %s", r.Status, tc.want, r.Body)
			}
			k.stop()
		})
	}
	k := spawn(t, nil, "serve", "--auth=none", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--search-handling", "sloppy")
	if err := k.wait(startTimeout); err == nil || !strings.Contains(k.logs(), "--search-handling") {
		t.Errorf("--search-handling=sloppy: exit %v, output %q; want a failure naming the flag", err, k.logs())
	}
}
