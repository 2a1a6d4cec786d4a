package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// TestExportOwnerKilled is issue 7's "a test kills the owner mid-job"
// across real processes: two `kiln serve` on one MongoDB database, an
// export kicked off at A and claimed by A, A killed with SIGKILL while
// the job runs. B takes the job over once A's lease (--export-lease)
// has run out, runs it again from the start and serves a complete
// manifest whose files hold exactly the stored resources, byte for byte.
func TestExportOwnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("imports the Synthea bundles into MongoDB and exports them twice")
	}
	srv := mongotest.Start(t)
	db := fmt.Sprintf("kiln_takeover_%d", time.Now().UnixNano())
	src, entries := syntheaFor(t, srv)
	// Enough data that the export is still running when A is killed.
	if got := importCounts(t, "--mongo-uri", srv.URI, "--mongo-db", db, src); got[0] != len(entries) || got[4] != 0 {
		t.Fatalf("import: %v, want %d loaded", got, len(entries))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs := func() []store.Job {
		t.Helper()
		js, err := st.Jobs(ctx, "export")
		if err != nil {
			t.Fatal(err)
		}
		return js
	}

	// Short enough for a quick take-over, long enough that A's own
	// renewals (every fifth of it) keep the job on a loaded machine, where
	// a FerretDB write can take seconds.
	const lease = "10s"
	a := startKilnMongo(t, srv.URI, db, "--export-lease", lease)
	// The types loaded: a system export of all ~150 types scans each on
	// FerretDB, minutes on a loaded machine.
	var types []string
	for _, e := range entries {
		if !slices.Contains(types, e.Type) {
			types = append(types, e.Type)
		}
	}
	r := a.client(t).Do("GET", "/$export?_type="+strings.Join(types, ","), nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off at A: %d %s", r.Status, r.Body)
	}
	status, err := url.Parse(r.Header.Get("Content-Location"))
	if err != nil {
		t.Fatal(err)
	}
	// A is the only process: once the job runs, A owns it.
	deadline := time.Now().Add(time.Minute)
	for {
		js := jobs()
		if len(js) == 1 && js[0].State == store.JobRunning {
			if js[0].Attempts != 1 {
				t.Fatalf("job at its first claim: attempts %d", js[0].Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A did not start the export: %+v", js)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.kill()
	js := jobs()
	if len(js) != 1 || js[0].State != store.JobRunning {
		t.Fatalf("after A was killed the job is %+v, want still running (A killed mid-job)", js)
	}
	owner := js[0].Owner
	t.Logf("A killed during %q", js[0].Progress)

	b := startKilnMongo(t, srv.URI, db, "--export-lease", lease)
	cb := b.client(t)
	var m exportManifest
	deadline = time.Now().Add(4 * time.Minute)
	for m.Output == nil {
		r := cb.Do("GET", status.Path, nil, "Accept", "application/json")
		switch {
		case r.Status == http.StatusOK:
			if err := json.Unmarshal(r.Body, &m); err != nil || m.Output == nil {
				t.Fatalf("manifest at B: %v %s", err, r.Body)
			}
		case r.Status != http.StatusAccepted:
			t.Fatalf("poll at B: %d %s", r.Status, r.Body)
		case time.Now().After(deadline):
			t.Fatalf("B did not finish the export taken over from A (%s)", r.Header.Get("X-Progress"))
		default:
			time.Sleep(200 * time.Millisecond)
		}
	}
	j, err := st.Job(ctx, js[0].ID)
	if err != nil || j.Attempts != 2 || j.Owner == owner || j.State != store.JobDone {
		t.Fatalf("job after the take-over: %+v %v; want done by another owner than %q at attempt 2", j, err, owner)
	}

	// The files hold every stored resource once, as stored.
	var got []string
	for _, f := range m.Output {
		u, _ := url.Parse(f.URL)
		r := cb.Do("GET", u.Path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s at B: %d %s", u.Path, r.Status, r.Body)
		}
		for _, l := range bytes.Split(bytes.TrimSpace(r.Body), []byte("\n")) {
			var res struct{ ResourceType, ID string }
			if err := json.Unmarshal(l, &res); err != nil || res.ResourceType != f.Type {
				t.Fatalf("%s: line %.80s: %v", f.Type, l, err)
			}
			stored, err := st.Read(ctx, res.ResourceType, res.ID)
			if err != nil || !bytes.Equal(stored.Body, l) {
				t.Fatalf("%s/%s: exported line differs from the stored resource (%v)", res.ResourceType, res.ID, err)
			}
			got = append(got, res.ResourceType+"/"+res.ID)
		}
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.Type+"/"+strings.TrimPrefix(e.FullURL, "urn:uuid:"))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("export after the take-over: %d resources, want the %d stored (each once)", len(got), len(want))
	}
}
