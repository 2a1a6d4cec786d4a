package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

var summaryLine = regexp.MustCompile(`(\d+) loaded \((\d+) created, (\d+) updated, (\d+) unchanged\), (\d+) rejected`)

// runImport runs `kiln import` to completion and returns its summary
// counts: loaded, created, updated, unchanged, rejected.
func runImport(t *testing.T, data, src string) [5]int {
	t.Helper()
	k := spawn(t, nil, "import", "--data", data, "--quiet", "--workers", "2", src)
	if err := k.wait(2 * time.Minute); err != nil {
		t.Fatalf("kiln import: %v\n%s", err, k.logs())
	}
	m := summaryLine.FindStringSubmatch(k.logs())
	if m == nil {
		t.Fatalf("no summary in the output:\n%s", k.logs())
	}
	var out [5]int
	for i := range out {
		out[i], _ = strconv.Atoi(m[i+1])
	}
	return out
}

// TestImportKilledResumes kills `kiln import` with SIGKILL part-way, runs
// it again (it completes the load without duplicates), and a third time
// (it changes nothing); the server then holds exactly one version of
// every Synthea resource.
func TestImportKilledResumes(t *testing.T) {
	src, err := filepath.Abs("../../testdata/synthea")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := synthea.Entries(src)
	if err != nil {
		t.Fatal(err)
	}
	total := len(entries)
	data := t.TempDir()

	k := spawn(t, nil, "import", "--data", data, "--quiet", "--workers", "2", src)
	// Kill once the load is under way: the write-ahead log holds more
	// than the schema (the Synthea resources make several MB of it).
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) && !k.exited() {
		if fi, err := os.Stat(filepath.Join(data, "kiln.db-wal")); err == nil && fi.Size() > 1<<20 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.kill()
	if k.err == nil {
		t.Log("the import finished before the kill: the re-run only checks idempotence")
	}

	got := runImport(t, data, src)
	if got[0] != total || got[2] != 0 || got[4] != 0 || got[1]+got[3] != total {
		t.Fatalf("resumed import: %v (loaded, created, updated, unchanged, rejected), want %d loaded, none updated or rejected", got, total)
	}
	t.Logf("after SIGKILL: %d were in, %d created by the re-run", got[3], got[1])
	if got := runImport(t, data, src); got != [5]int{total, 0, 0, total, 0} {
		t.Fatalf("third import: %v, want all %d unchanged", got, total)
	}

	srv := startKiln(t, data)
	r := srv.client(t).Do("GET", "/_history?_count=0", nil)
	var h struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(r.Body, &h); err != nil || h.Total != total {
		t.Fatalf("system history holds %d versions (%v), want exactly %d", h.Total, err, total)
	}
	srv.stop()
}
