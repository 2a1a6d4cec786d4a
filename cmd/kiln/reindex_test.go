package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // to damage the index behind the store's back

	"github.com/kiln-fhir/kiln/conformance/apitest"
)

// TestReindexCommand: a custom SearchParameter created on the running
// binary becomes searchable after its background reindex; then, with the
// server stopped, index rows are deleted behind the store's back (built-in
// and custom parameters alike) and searches miss; `kiln reindex` rebuilds
// them with a progress bar and a summary, and every search finds exactly
// what it did before.
func TestReindexCommand(t *testing.T) {
	data := t.TempDir()
	k := startKiln(t, data)
	c := k.client(t)
	maiden := map[string]string{"p1": "Smith", "p2": "Smithers", "p3": "Jones", "p4": ""}
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		ext := ""
		if m := maiden[id]; m != "" {
			ext = `,"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"` + m + `"}]`
		}
		if r := c.Do("PUT", "/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Doe`+id+`"}]`+ext+`}`)); r.Status != 201 {
			t.Fatalf("PUT Patient/%s: %d %s", id, r.Status, r.Body)
		}
	}
	sp := `{"resourceType":"SearchParameter","url":"http://example.org/sp/mmn","name":"MMN","status":"active","description":"d",
		"code":"mothers-maiden-name","base":["Patient"],"type":"string",
		"expression":"Patient.extension('http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName').value"}`
	r := c.Do("POST", "/SearchParameter", []byte(sp))
	if r.Status != 201 {
		t.Fatalf("POST SearchParameter: %d %s", r.Status, r.Body)
	}
	status := "/SearchParameter/" + r.JSON(t)["id"].(string) + "/$reindex-status"
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(string(c.Do("GET", status, nil).Body), `"valueCode":"active"`) {
		if time.Now().After(deadline) {
			t.Fatalf("not active after a minute: %s", c.Do("GET", status, nil).Body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	searches := []struct{ query, want string }{
		{"mothers-maiden-name=smith", "p1 p2"},
		{"mothers-maiden-name=jones", "p3"},
		{"family=doep4", "p4"},
		{"family=doe", "p1 p2 p3 p4"},
	}
	check := func(c *apitest.Client, broken bool) {
		t.Helper()
		for _, s := range searches {
			r := c.Do("GET", "/Patient?"+s.query, nil, "Prefer", "handling=strict")
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", s.query, r.Status, r.Body)
			}
			var b struct {
				Entry []struct {
					Resource struct{ ID string }
				}
			}
			json.Unmarshal(r.Body, &b)
			var got []string
			for _, e := range b.Entry {
				got = append(got, e.Resource.ID)
			}
			slices.Sort(got)
			g := strings.Join(got, " ")
			if broken && g != "" {
				t.Errorf("%s with the index rows deleted: %q, want nothing", s.query, g)
			}
			if !broken && g != s.want {
				t.Errorf("%s: %q, want %q", s.query, g, s.want)
			}
		}
	}
	check(c, false)
	// The server holds the data directory with its read cache on: the
	// command refuses rather than change the file under it.
	busy := spawn(t, nil, "reindex", "--data", data, "--quiet")
	if err := busy.wait(time.Minute); err == nil || !strings.Contains(busy.logs(), "stop it") {
		t.Errorf("kiln reindex under a running server: %v\n%s", err, busy.logs())
	}
	k.stop()

	db, err := sql.Open("sqlite", filepath.Join(data, "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`DELETE FROM ix_string WHERE pid IN (SELECT pid FROM params WHERE type = 'Patient')`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n < 8 {
		t.Fatalf("deleted %d index rows, want the family and maiden-name rows of 4 patients at least", n)
	}
	db.Close()

	k = startKiln(t, data)
	check(k.client(t), true)
	k.stop()

	rx := spawn(t, nil, "reindex", "--data", data)
	if err := rx.wait(2 * time.Minute); err != nil {
		t.Fatalf("kiln reindex: %v\n%s", err, rx.logs())
	}
	out := rx.logs()
	// The bar (stderr) and the summary (stdout): 4 Patients and the
	// SearchParameter, nothing else.
	for _, want := range []string{"reindexing", "100%", "(5/5", "5 resources read, 5 updated, 0 skipped (written meanwhile), 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("kiln reindex output lacks %q:\n%s", want, out)
		}
	}
	k = startKiln(t, data)
	check(k.client(t), false)

	// Running it again changes nothing, and a type list narrows it.
	k.stop()
	rx = spawn(t, nil, "reindex", "--data", data, "--quiet", "--type", "Patient")
	if err := rx.wait(2 * time.Minute); err != nil {
		t.Fatalf("kiln reindex --type Patient: %v\n%s", err, rx.logs())
	}
	if want := "reindexed 1 types"; !strings.Contains(rx.logs(), want) || !strings.Contains(rx.logs(), "4 resources read, 4 updated") {
		t.Errorf("kiln reindex --type Patient:\n%s", rx.logs())
	}

	// kiln import indexes with the custom parameters already stored.
	src := filepath.Join(t.TempDir(), "p9.ndjson")
	p9 := `{"resourceType":"Patient","id":"p9","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"Smithfield"}]}` + "\n"
	if err := os.WriteFile(src, []byte(p9), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := runImport(t, data, src); got[0] != 1 {
		t.Fatalf("kiln import of p9: %v", got)
	}
	k = startKiln(t, data)
	searches[0].want = "p1 p2 p9"
	check(k.client(t), false)
}
