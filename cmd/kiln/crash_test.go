package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/load"
)

// crashIdentifiers is how many identifiers each crash-test Patient
// carries: enough that a torn write would show as a short list.
const crashIdentifiers = 20

// ack is a create the server answered 201.
type ack struct {
	id      string
	version string
	body    []byte // the 201's body; nil when the answer was cut off after the headers
}

// TestCrashKeepsAcknowledgedCreates kills the server with SIGKILL during a
// stream of concurrent creates, at several moments, on one data
// directory. After every restart each create ever answered 201 must read
// back as answered, system history must page through the whole store,
// and every stored version must be a complete resource: a 201 is sent only
// after the store's COMMIT (synchronous=FULL), so no acknowledged write
// may be lost and no write may be half there.
func TestCrashKeepsAcknowledgedCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server several times")
	}
	data := t.TempDir()
	acked := map[string]ack{}
	// Kill after the first answer (the writer is busy with its first
	// batches), after a few hundred and after a thousand.
	for round, killAfter := range []int{1, 300, 1000} {
		k := startKiln(t, data)
		checkStore(t, k, acked)
		for id, a := range createUntilKilled(t, k, round, killAfter) {
			acked[id] = a
		}
		t.Logf("round %d: %d creates acknowledged so far", round, len(acked))
	}
	k := startKiln(t, data)
	checkStore(t, k, acked)
	k.stop()
}

// createUntilKilled runs concurrent creates until killAfter of them got
// 201, kills the server with SIGKILL and returns what was acknowledged.
func createUntilKilled(t *testing.T, k *kiln, round, killAfter int) map[string]ack {
	t.Helper()
	const workers = 6
	var (
		mu       sync.Mutex // guards acks and failure
		acks     = map[string]ack{}
		failure  error
		killing  atomic.Bool
		count    atomic.Int64
		reached  = make(chan struct{})
		once     sync.Once
		wg       sync.WaitGroup
		ctx, end = context.WithCancel(context.Background())
	)
	defer end()
	client := &http.Client{Timeout: 2 * startTimeout}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failure == nil {
			failure = err
		}
	}
	// Each worker stops on its own after a bounded number of creates, so
	// the test ends even if the server stalls.
	perWorker := killAfter + 200
	for w := range workers {
		wg.Go(func() {
			for seq := range perWorker {
				if ctx.Err() != nil {
					return
				}
				req, err := http.NewRequestWithContext(ctx, "POST", k.base+"/Patient",
					bytes.NewReader(crashPatient(round, w, seq)))
				if err != nil {
					fail(err)
					return
				}
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := client.Do(req)
				if err != nil {
					if !killing.Load() {
						fail(fmt.Errorf("create before the kill: %w", err))
					}
					return
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					if !killing.Load() {
						fail(fmt.Errorf("create before the kill: status %d: %.300s", resp.StatusCode, body))
					}
					return
				}
				// The status line is the acknowledgement: the server
				// sends it only after the commit.
				id, version, ok := parseLocation(resp.Header.Get("Location"))
				if !ok {
					fail(fmt.Errorf("201 with Location %q", resp.Header.Get("Location")))
					return
				}
				if rerr != nil {
					body = nil
				}
				mu.Lock()
				acks[id] = ack{id: id, version: version, body: body}
				mu.Unlock()
				if count.Add(1) >= int64(killAfter) {
					once.Do(func() { close(reached) })
				}
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-reached:
	case <-allDone:
	case <-time.After(5 * startTimeout):
	}
	killing.Store(true)
	k.kill()
	end()
	<-allDone

	mu.Lock()
	defer mu.Unlock()
	if failure != nil {
		t.Fatalf("round %d: %v", round, failure)
	}
	if len(acks) < killAfter {
		t.Fatalf("round %d: only %d creates acknowledged, want at least %d before the kill", round, len(acks), killAfter)
	}
	return acks
}

// crashPatient is a Patient whose identifiers say who sent it.
func crashPatient(round, worker, seq int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"resourceType":"Patient","active":true,"name":[{"family":"Crash","given":["R%dW%dS%d"]}],"identifier":[`, round, worker, seq)
	for i := range crashIdentifiers {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"system":"urn:kiln:crash","value":"r%d-w%d-s%d-%d"}`, round, worker, seq, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// parseLocation reads id and version from [base]/Patient/{id}/_history/{v}.
func parseLocation(loc string) (id, version string, ok bool) {
	i := strings.Index(loc, "/Patient/")
	if i < 0 {
		return "", "", false
	}
	parts := strings.Split(loc[i+len("/Patient/"):], "/")
	if len(parts) != 3 || parts[1] != "_history" || parts[0] == "" {
		return "", "", false
	}
	return parts[0], parts[2], true
}

// checkStore verifies a restarted server: every acknowledged create reads
// back as it was answered, and system history pages through versions
// that are all complete crash-test Patients (including those committed
// but never acknowledged because the kill came first).
func checkStore(t *testing.T, k *kiln, acked map[string]ack) {
	t.Helper()
	c := k.client(t)
	if r := c.Do("GET", "/readyz", nil); r.Status != http.StatusOK {
		t.Fatalf("/readyz after restart: %d", r.Status)
	}

	stored := map[string]bool{}
	next := "/_history?_count=500"
	total := -1
	for pages := 0; next != ""; pages++ {
		if pages > 1000 {
			t.Fatal("system history does not end")
		}
		r := c.Do("GET", next, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", next, r.Status, r.Body)
		}
		var page struct {
			Total int `json:"total"`
			Link  []struct {
				Relation, URL string
			} `json:"link"`
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
				Request  struct{ Method string }
			} `json:"entry"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatalf("history page: %v", err)
		}
		total = page.Total
		for _, e := range page.Entry {
			id := checkCrashPatient(t, e.Resource)
			if e.Request.Method != "POST" {
				t.Errorf("history entry %s: method %q, want POST", id, e.Request.Method)
			}
			if stored[id] {
				t.Errorf("history lists %s twice", id)
			}
			stored[id] = true
		}
		next = ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	if total != len(stored) {
		t.Errorf("history total %d, but its pages hold %d versions", total, len(stored))
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("acknowledged create Patient/%s is missing from history", id)
		}
	}
	t.Logf("after restart: %d versions stored, %d of them acknowledged", len(stored), len(acked))

	// Read every stored resource; acknowledged ones must be byte for byte
	// what the 201 carried.
	ids := make([]string, 0, len(stored))
	for id := range stored {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	res, err := load.Run(context.Background(), load.Config{
		Concurrency: 4,
		Requests:    len(ids),
		Duration:    10 * startTimeout,
		New: func(i int) (*http.Request, error) {
			return http.NewRequest("GET", k.base+"/Patient/"+ids[i], nil)
		},
		Check: func(i int, resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET Patient/%s: status %d", ids[i], resp.StatusCode)
			}
			a, ok := acked[ids[i]]
			if ok && a.body != nil && !bytes.Equal(body, a.body) {
				return fmt.Errorf("GET Patient/%s: body differs from the 201's:\n%s\n%s", ids[i], body, a.body)
			}
			if ok && resp.Header.Get("ETag") != `W/"`+a.version+`"` {
				return fmt.Errorf("GET Patient/%s: ETag %s, want version %s", ids[i], resp.Header.Get("ETag"), a.version)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != len(ids) {
		t.Fatalf("reads after restart: %v; first error: %v", res, res.Err)
	}
}

// checkCrashPatient checks one stored version is a whole crash-test
// Patient and returns its id.
func checkCrashPatient(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var p struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			VersionID   string `json:"versionId"`
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Identifier []struct{ Value string } `json:"identifier"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("stored version is not JSON: %v\n%.300s", err, raw)
	}
	if p.ResourceType != "Patient" || p.ID == "" || p.Meta.VersionID != "1" || p.Meta.LastUpdated == "" {
		t.Errorf("stored version is not a stamped Patient: %.300s", raw)
	}
	if len(p.Identifier) != crashIdentifiers {
		t.Errorf("Patient/%s holds %d identifiers, want %d: a partial resource", p.ID, len(p.Identifier), crashIdentifiers)
	} else {
		sender := strings.TrimSuffix(p.Identifier[0].Value, "-0")
		for i, idf := range p.Identifier {
			if idf.Value != fmt.Sprintf("%s-%d", sender, i) {
				t.Errorf("Patient/%s identifier %d is %q: a mixed or partial resource", p.ID, i, idf.Value)
			}
		}
	}
	return p.ID
}
