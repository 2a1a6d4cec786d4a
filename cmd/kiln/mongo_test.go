package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// startKilnMongo runs `kiln serve` on the MongoDB at uri, database db.
func startKilnMongo(t *testing.T, uri, db string, extra ...string) *kiln {
	t.Helper()
	args := append([]string{"--mongo-uri", uri, "--mongo-db", db}, extra...)
	return startKiln(t, t.TempDir(), args...)
}

// TestAPIOnMongo runs the HTTP conformance suite against the binary on the MongoDB backend: FerretDB in-process, or
// KILN_TEST_MONGO_URI.
func TestAPIOnMongo(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the search corpus into MongoDB")
	}
	srv := mongotest.Start(t)
	const maxBody = 4 << 20
	extra := []string{"--max-body", fmt.Sprint(maxBody)}
	if srv.FerretDB && os.Getenv(corpusOnFerretDB) != "" {
		// A corpus search reads the whole collection on FerretDB: tens of
		// seconds each on a loaded machine, past the default 5 s (503).
		extra = append(extra, "--mongo-timeout", "5m")
	}
	k := startKilnMongo(t, srv.URI, fmt.Sprintf("kiln_api_%d", time.Now().UnixNano()), extra...)
	if !strings.Contains(k.logs(), `"store":"mongo"`) {
		t.Fatalf("kiln did not log the mongo store:\n%s", tail(k.logs(), 10))
	}
	opts := apitest.Options{MaxBody: maxBody, Examples: apitest.LoadExamples(t, "../../testdata/examples"), Invalid: apitest.InvalidExamples}
	// What the server detected decides, not the kind of server: a
	// standalone MongoDB has no transactions either, a replica set has.
	switch logs := k.logs(); {
	case strings.Contains(logs, `"transactions":false`):
		t.Log("the database has no multi-document transactions: scenarios with transactions of several changes " +
			"(and the Synthea bundles) are skipped; their refusal (501, nothing stored) is checked instead")
		opts.NoTransactions = true
	case !strings.Contains(logs, `"transactions":true`):
		t.Fatalf("kiln did not log whether the database has transactions:\n%s", tail(logs, 10))
	}
	if srv.FerretDB && os.Getenv(corpusOnFerretDB) == "" {
		// FerretDB v1.24.2's SQLite handler answers only a filter that
		// is exactly {_id: value} from an index (and only since mongotest
		// adds the index its lookups can use: its own _id index is on
		// another expression). Every other filter, count and aggregation
		// reads and decodes every document of the collection in Go. What
		// that costs, measured with KILN_TEST_FERRETDB_CORPUS=1 on two
		// cores under load 12-17 (7 Dec 2026, with the driver's command
		// monitor logging each command and its duration):
		//   - loading the 1,615-resource corpus: 47 resources/s, 34 s
		//     (3 resources/s, 9 minutes, before the _id index: each PUT's
		//     read by _id scanned the collection). A PUT is now three
		//     _id-keyed commands (read, insert version, insert current).
		//   - a search: each parameter is an aggregation over the whole
		//     resources collection ($elemMatch of several conditions is
		//     not available on FerretDB), then a find and a count, each
		//     again over the whole collection: 7-13 s per aggregation,
		//     so 20-40 s per case. No case finished within 5 minutes of the
		//     load; the 337 cases would take hours.
		//   - on the same machine quiet (load 2-6, 00:28 UTC 8 Dec): the
		//     load took 8 s (200/s), and the first 29 cases (string
		//     search) ran in 225 s, none failing: 7.8 s per case, about
		//     45 minutes for the corpus.
		//   - meanwhile each kiln process re-reads the SearchParameters
		//     every 2 s (fhir/reindex), a Scan of the versions collection
		//     that FerretDB answers by decoding all of it (7 s per poll
		//     once the corpus, with its SearchParameter examples, is in).
		// So the corpus does not fit the test budget on FerretDB; none of
		// its cases is known to fail there. The corpus and all the
		// examples run against a real MongoDB (KILN_TEST_MONGO_URI); the
		// store-level search suite (conformance/storetest) passes on
		// FerretDB.
		t.Log("search corpus skipped on FerretDB (too slow for the test budget); set " + mongotest.EnvURI + " to run it, or " +
			corpusOnFerretDB + "=1 to run it on FerretDB anyway")
		opts.SkipCorpus = true
		all := len(opts.Examples)
		opts.Examples = examplesPerType(t, opts.Examples, opts.Invalid)
		t.Logf("examples round trip on FerretDB: %d of %d examples (the smallest of each resource type, and every invalid one); "+
			"set %s to run all", len(opts.Examples), all, mongotest.EnvURI)
	}
	apitest.Run(t, k.base, opts)
}

// corpusOnFerretDB, set, runs the search corpus and every example on
// FerretDB too (about half an hour on two cores).
const corpusOnFerretDB = "KILN_TEST_FERRETDB_CORPUS"

// examplesPerType keeps the smallest example of each resource type (the
// first by name among equals) and every example in invalid.
func examplesPerType(t *testing.T, all map[string][]byte, invalid map[string]string) map[string][]byte {
	t.Helper()
	best := map[string]string{} // resource type → file name
	for name, b := range all {
		var head struct{ ResourceType string }
		if err := json.Unmarshal(b, &head); err != nil || head.ResourceType == "" {
			t.Fatalf("%s: no resourceType: %v", name, err)
		}
		cur, ok := best[head.ResourceType]
		if !ok || len(b) < len(all[cur]) || (len(b) == len(all[cur]) && name < cur) {
			best[head.ResourceType] = name
		}
	}
	out := map[string][]byte{}
	for _, name := range best {
		out[name] = all[name]
	}
	for name := range invalid {
		if b, ok := all[name]; ok {
			out[name] = b
		}
	}
	return out
}

// TestTwoProcessesOneMongo: with --mongo-uri Kiln processes keep no state
// of their own, so what one writes the other reads, searches and
// version-checks.
func TestTwoProcessesOneMongo(t *testing.T) {
	srv := mongotest.Start(t)
	db := fmt.Sprintf("kiln_two_%d", time.Now().UnixNano())
	a, b := startKilnMongo(t, srv.URI, db), startKilnMongo(t, srv.URI, db)
	ca, cb := a.client(t), b.client(t)

	r := ca.Do("PUT", "/Patient/shared", []byte(`{"resourceType":"Patient","id":"shared","name":[{"family":"Crossover"}],"birthDate":"1970-01-01"}`))
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT through A: %d %s", r.Status, r.Body)
	}
	r = cb.Do("GET", "/Patient/shared", nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Crossover") {
		t.Fatalf("GET through B: %d %s", r.Status, r.Body)
	}
	r = cb.Do("GET", "/Patient?family=crossover", nil)
	var bundle struct {
		Entry []struct {
			FullURL string `json:"fullUrl"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.Body, &bundle); r.Status != http.StatusOK || err != nil || len(bundle.Entry) != 1 ||
		!strings.HasSuffix(bundle.Entry[0].FullURL, "/Patient/shared") {
		t.Fatalf("search through B: %d %v\n%s", r.Status, err, r.Body)
	}
	// B updates at version 1; A's update at version 1 then conflicts.
	r = cb.Do("PUT", "/Patient/shared", []byte(`{"resourceType":"Patient","id":"shared","name":[{"family":"Second"}]}`), "If-Match", `W/"1"`)
	if r.Status != http.StatusOK {
		t.Fatalf("PUT through B: %d %s", r.Status, r.Body)
	}
	r = ca.Do("PUT", "/Patient/shared", []byte(`{"resourceType":"Patient","id":"shared","name":[{"family":"Third"}]}`), "If-Match", `W/"1"`)
	if r.Status != http.StatusPreconditionFailed && r.Status != http.StatusConflict {
		t.Fatalf("stale PUT through A: %d %s, want 412 or 409", r.Status, r.Body)
	}
	r = ca.Do("GET", "/Patient/shared", nil)
	if !strings.Contains(string(r.Body), "Second") {
		t.Fatalf("GET through A after B's update: %s", r.Body)
	}
}

// TestMongoUnreachable: a server that does not answer fails startup within
// the bounded time, with a clear error, instead of hanging.
func TestMongoUnreachable(t *testing.T) {
	start := time.Now()
	k := spawn(t, nil, "serve", "--auth=none", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--mongo-uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500")
	if err := k.wait(30 * time.Second); err == nil {
		t.Fatal("kiln started without its database")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("startup failed after %v", d)
	}
	if !strings.Contains(k.logs(), "store unavailable") {
		t.Errorf("log does not say the store is unavailable:\n%s", tail(k.logs(), 10))
	}
}

// TestMongoGoesAway: when MongoDB goes away a request answers 503 with an
// OperationOutcome within a bounded time and /readyz fails; nothing is
// half-written; once MongoDB is back the same process serves again.
func TestMongoGoesAway(t *testing.T) {
	srv := mongotest.Start(t)
	if !srv.FerretDB {
		t.Skip("needs the in-process server, which the test can stop")
	}
	k := startKilnMongo(t, srv.URI, "away")
	c := k.client(t)
	if r := c.Do("PUT", "/Patient/kept", []byte(`{"resourceType":"Patient","id":"kept"}`)); r.Status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.Status, r.Body)
	}

	srv.Stop()
	start := time.Now()
	r := c.Do("PUT", "/Patient/lost", []byte(`{"resourceType":"Patient","id":"lost"}`))
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"OperationOutcome"`) {
		t.Errorf("PUT with MongoDB down: %d %s, want 503 with an OperationOutcome", r.Status, r.Body)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the 503 took %v", d)
	}
	if r := c.Do("GET", "/Patient/kept", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("GET with MongoDB down: %d, want 503", r.Status)
	}
	if r := c.Do("GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with MongoDB down: %d, want 503", r.Status)
	}

	srv.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	for c.Do("GET", "/readyz", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover once MongoDB was back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := c.Do("GET", "/Patient/kept", nil); r.Status != http.StatusOK {
		t.Errorf("GET after recovery: %d %s", r.Status, r.Body)
	}
	if r := c.Do("GET", "/Patient/lost", nil); r.Status != http.StatusNotFound {
		t.Errorf("the PUT refused while down: GET %d, want 404", r.Status)
	}
}
