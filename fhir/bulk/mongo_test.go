package bulk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// TestOnMongo runs the client flow of issue 6 on MongoDB (FerretDB in
// process, or KILN_TEST_MONGO_URI) as the other tests run it on SQLite:
// kick-off → poll → download → verify for system, Patient and Group
// exports, _type, _since with updates and deletions, _typeFilter,
// _elements, cancel, restart mid-job, expired files, downloads without or
// with the wrong token, two concurrent exports, a Parquet export and
// includeAssociatedData. Each test gets a database of its own.
func TestOnMongo(t *testing.T) {
	srv := mongotest.Start(t)
	n := 0
	defer func(open func(*testing.T) backend) { openBackend = open }(openBackend)
	openBackend = func(t *testing.T) backend {
		n++
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := mongo.Open(ctx, srv.URI, mongo.Options{
			Database: fmt.Sprintf("bulk_%s_%d", strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""), n),
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"Levels", TestExportLevels},
		{"POST", TestExportPOST},
		{"Elements", TestElements},
		{"Since", TestSince},
		{"Snapshot", TestSnapshot},
		{"Cancel", TestCancel},
		{"CancelAfterCompletion", TestCancelAfterCompletionRemovesFiles},
		{"Expiry", TestExpiry},
		{"Concurrent", TestConcurrentExports},
		{"Restart", TestRestart},
		{"Authorization", TestAuthorization},
		// One Parquet export: TestParquet's dozen would take a minute on
		// FerretDB, and the format does not depend on the backend.
		{"Parquet", TestParquetSplit},
		{"IncludeAssociatedData", TestIncludeAssociatedData},
		{"PollTooOften", TestPollTooOften},
		{"BinaryAsDocumentReference", TestBinaryAsDocumentReference},
	} {
		t.Run(tc.name, tc.test)
	}
}

// TestTakeOverOnMongo: two export services on one MongoDB database stand
// for two Kiln processes (issue 7, scale-out). The one that claims the
// export hangs mid-job (a page read, then nothing: a process that died
// or stalled); once its lease runs out the other takes the job over, runs
// it from the start and serves the manifest and files, and the first
// one's late writes are refused.
func TestTakeOverOnMongo(t *testing.T) {
	srv := mongotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: "bulk_takeover_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api := rest.New(rest.Config{}, st)
	front := func(h *Handler) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h.Match(r) {
				h.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		}))
	}
	do := func(method, url string, body string, header ...string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, b
	}

	block := make(chan struct{})
	var unblock sync.Once
	reached := make(chan struct{}, 100)
	a := New(testConfig(Config{Workers: 1, Lease: time.Second, pageSize: 1, pageHook: func(string, string) {
		reached <- struct{}{}
		<-block
	}}), st)
	defer func() {
		unblock.Do(func() { close(block) })
		a.Close()
	}()
	srvA := front(a)
	defer srvA.Close()

	want := []string{"Observation/o1", "Patient/p1", "Patient/p2", "Patient/p3"}
	for _, k := range want {
		typ, id, _ := strings.Cut(k, "/")
		body := `{"resourceType":"` + typ + `","id":"` + id + `"` + map[string]string{
			"Observation": `,"status":"final","code":{"text":"x"}`}[typ] + `}`
		if code, _, b := do("PUT", srvA.URL+"/"+k, body, "Content-Type", "application/fhir+json"); code != 201 {
			t.Fatalf("PUT %s: %d %s", k, code, b)
		}
	}
	code, h, b := do("GET", srvA.URL+"/$export?_type=Patient,Observation", "", kickoffHeaders...)
	if code != http.StatusAccepted {
		t.Fatalf("kick-off: %d %s", code, b)
	}
	<-reached // A holds the job and has stopped working on it

	b2 := New(testConfig(Config{Workers: 1, Lease: time.Second, pageSize: 1}), st)
	defer b2.Close()
	srvB := front(b2)
	defer srvB.Close()
	status := strings.Replace(h.Get("Content-Location"), srvA.URL, srvB.URL, 1)

	var m manifestT
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, body := do("GET", status, "")
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("poll at B: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []string
	for _, f := range m.Output {
		code, _, body := do("GET", strings.Replace(f.URL, srvA.URL, srvB.URL, 1), "")
		if code != 200 {
			t.Fatalf("file at B: %d %s", code, body)
		}
		for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var r struct{ ResourceType, ID string }
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, r.ResourceType+"/"+r.ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("exported after the take-over:\n%v\nwant\n%v", got, want)
	}
	j, err := st.Job(ctx, jobID(status))
	if err != nil || j.Attempts != 2 || !strings.HasPrefix(j.Owner, b2.owner) {
		t.Errorf("job after the take-over: attempts %d owner %q (B is %q), %v; want 2 and B", j.Attempts, j.Owner, b2.owner, err)
	}

	// A wakes up: its writes are refused, and the finished export stands.
	unblock.Do(func() { close(block) })
	time.Sleep(300 * time.Millisecond)
	code, _, body := do("GET", status, "")
	var again manifestT
	if code != http.StatusOK || json.Unmarshal(body, &again) != nil || len(again.Output) != len(m.Output) {
		t.Errorf("poll after the old owner woke: %d %s", code, body)
	}
}
