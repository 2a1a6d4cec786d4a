package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/bundle"
	"github.com/kiln-fhir/kiln/fhir/ingest"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

const syntheaDir = "../../testdata/synthea"

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// versions counts every stored version (system history).
func versions(t *testing.T, db store.History) int {
	t.Helper()
	page, err := db.History(context.Background(), store.HistoryQuery{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return page.Total
}

// count is the number of current resources of typ.
func count(t *testing.T, db store.Searcher, typ string) int {
	t.Helper()
	q, _, err := search.Default().Parse([]string{typ}, url.Values{"_total": {"accurate"}}, search.ParseOptions{Strict: true, DefaultCount: 1, MaxCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	page, err := db.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return page.Total
}

// TestSyntheaIdempotent loads every Synthea bundle, checks counts per type
// and that every reference resolves, then loads them again: the second
// run changes nothing. Loading half first and then everything is what a
// re-run after a crash does: no duplicates.
func TestSyntheaIdempotent(t *testing.T) {
	ctx := context.Background()
	bundles, err := synthea.Load(syntheaDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	total := 0
	for _, b := range bundles {
		for _, e := range b.Entries {
			want[e.Type]++
			total++
		}
	}
	db := openStore(t)

	// A crash after the first files: they are in, the rest is not.
	first := []string{filepath.Join(syntheaDir, bundles[0].File), filepath.Join(syntheaDir, bundles[1].File)}
	sum, err := ingest.Run(ctx, db, first, ingest.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	partial := len(bundles[0].Entries) + len(bundles[1].Entries)
	if sum.Created != partial || sum.Rejected != 0 {
		t.Fatalf("first files: %+v, want %d created", sum, partial)
	}

	sum, err = ingest.Run(ctx, db, []string{syntheaDir}, ingest.Options{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != total-partial || sum.Unchanged != partial || sum.Updated != 0 || sum.Rejected != 0 || sum.Files != len(bundles) {
		t.Fatalf("resumed run: %+v, want %d created and %d unchanged", sum, total-partial, partial)
	}
	if n := versions(t, db); n != total {
		t.Fatalf("%d versions stored for %d resources", n, total)
	}
	for typ, n := range want {
		if got := count(t, db, typ); got != n {
			t.Errorf("%s: %d stored, the bundles hold %d", typ, got, n)
		}
	}
	// Every reference of every stored resource resolves.
	refs := 0
	for _, b := range bundles {
		for _, e := range b.Entries {
			id := strings.TrimPrefix(e.FullURL, "urn:uuid:")
			res, err := db.Read(ctx, e.Type, id)
			if err != nil {
				t.Fatalf("%s/%s: %v", e.Type, id, err)
			}
			bundle.References(res.Body, func(ref string) {
				refs++
				if strings.HasPrefix(ref, "#") {
					return
				}
				typ, rid, ok := strings.Cut(ref, "/")
				if !ok {
					t.Errorf("%s/%s: reference %q is not Type/id", e.Type, id, ref)
					return
				}
				if _, err := db.Read(ctx, typ, rid); err != nil {
					t.Errorf("%s/%s: reference %s: %v", e.Type, id, ref, err)
				}
			})
		}
	}
	if refs < total {
		t.Errorf("only %d references walked", refs)
	}

	// Again: nothing changes.
	sum, err = ingest.Run(ctx, db, []string{syntheaDir}, ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Unchanged != total || sum.Created+sum.Updated+sum.Rejected != 0 {
		t.Errorf("second run: %+v, want all %d unchanged", sum, total)
	}
	if n := versions(t, db); n != total {
		t.Errorf("second run wrote: %d versions for %d resources", n, total)
	}
}

func writeGzip(t *testing.T, path string, lines ...string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestNDJSONAndRejects loads NDJSON (plain and gzip) with bad lines among
// good ones, and a transaction Bundle with one invalid entry: the bad
// lines are rejected with their reason, the transaction as a whole.
func TestNDJSONAndRejects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.ndjson"), []byte(strings.Join([]string{
		`{"resourceType":"Patient","id":"p1","gender":"female"}`,
		``,
		`{"resourceType":"Patient","id":"p2","gender":"mal"}`,
		`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`,
		`{"resourceType":"Frobnicator","id":"f1"}`,
		`{"resourceType":"Patient"`,
		`{"resourceType":"Patient","id":7}`,
		`[{"resourceType":"Patient"}]`,
	}, "\n")), 0o600)
	writeGzip(t, filepath.Join(dir, "b.ndjson.gz"),
		`{"resourceType":"Patient","id":"p3"}`,
		`{"resourceType":"Patient","id":"p3"}`)
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:6a1e0c6e-0000-4000-8000-000000000001", "resource": map[string]any{"resourceType": "Patient"}, "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
			"subject": map[string]any{"reference": "urn:uuid:00000000-0000-4000-8000-00000000dead"}}, "request": map[string]any{"method": "POST", "url": "Observation"}},
	}}
	b, _ := json.Marshal(tx)
	os.WriteFile(filepath.Join(dir, "c.json"), b, 0o600)
	os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("not FHIR"), 0o600)

	db := openStore(t)
	var progress bytes.Buffer
	sum, err := ingest.Run(ctx, db, []string{dir}, ingest.Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	// The last progress line: everything read, every resource counted.
	if !strings.Contains(progress.String(), "100.0%  11 resources") || !strings.Contains(progress.String(), "ETA 0s") {
		t.Errorf("progress output %q lacks the final 100%% line", progress.String())
	}
	// Loaded: p1, o1, p3 (its second line is a duplicate in the same run).
	// Rejected: p2 (gender), Frobnicator, truncated JSON, a number for an
	// id, an array, the duplicate p3, both entries of the transaction.
	if sum.Files != 3 || sum.Created != 3 || sum.Rejected != 8 {
		t.Fatalf("summary %+v, want 3 files, 3 created, 8 rejected", sum)
	}
	for _, want := range []string{"value at Patient.gender", "not-supported at resourceType", "structure", "duplicate at Patient.id", "not-found at Observation.reference"} {
		found := false
		for r := range sum.Reasons {
			found = found || strings.HasPrefix(r, want)
		}
		if !found {
			t.Errorf("no reason %q among %v", want, sum.Reasons)
		}
	}
	for r, where := range sum.Examples {
		if where == "" {
			t.Errorf("reason %q has no example location", r)
		}
	}
	if _, err := db.Read(ctx, "Patient", "6a1e0c6e-0000-4000-8000-000000000001"); err == nil {
		t.Errorf("a Patient of the rejected transaction was stored")
	}
	// A changed resource is updated; the rest is unchanged.
	os.WriteFile(filepath.Join(dir, "a.ndjson"), []byte(`{"resourceType":"Patient","id":"p1","gender":"male"}`+"\n"), 0o600)
	os.Remove(filepath.Join(dir, "c.json"))
	sum, err = ingest.Run(ctx, db, []string{dir}, ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Updated != 1 || sum.Unchanged != 1 || sum.Created != 0 {
		t.Errorf("second run %+v, want 1 updated (p1), 1 unchanged (p3)", sum)
	}
}
