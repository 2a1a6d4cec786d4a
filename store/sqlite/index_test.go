package sqlite

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// observations are the Observations of testdata: the Synthea bundles' and
// the R4 examples'.
func observations(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for _, r := range loadSynthea(t) {
		if r.typ == "Observation" {
			_, body, _ := r.replica(0)
			out = append(out, body)
		}
	}
	files, err := filepath.Glob("../../testdata/examples/Observation-*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}

// TestUnionsRepeatParts: the writer leaves out the rows of unions because
// each union's entries are exactly its parts' entries, on every
// Observation of testdata, as the extractor computes them.
func TestUnionsRepeatParts(t *testing.T) {
	obs := observations(t)
	// key is an entry without its parameter names, which is all a row
	// keeps besides the pid.
	var key func(e search.Entry) string
	key = func(e search.Entry) string {
		comps := make([]string, len(e.Components))
		for i, c := range e.Components {
			comps[i] = key(c)
		}
		e.Param, e.Components = "", nil
		return fmt.Sprintf("%+v%q", e, comps)
	}
	seen := map[string]int{} // union → Observations with entries of it
	for i, body := range obs {
		entries, err := search.Extract("Observation", body)
		if err != nil {
			t.Fatalf("Observation %d: %v", i, err)
		}
		for name, parts := range unions["Observation"] {
			union, fromParts := map[string]bool{}, map[string]bool{}
			for _, e := range entries {
				switch {
				case e.Param == name:
					union[key(e)] = true
				case slices.Contains(parts, e.Param):
					fromParts[key(e)] = true
				}
			}
			if !maps.Equal(union, fromParts) {
				t.Errorf("Observation %d: %s has %d entries, its parts %v %d other ones:\n%v\n%v",
					i, name, len(union), parts, len(fromParts), slices.Sorted(maps.Keys(union)), slices.Sorted(maps.Keys(fromParts)))
			}
			if len(union) > 0 {
				seen[name]++
			}
		}
	}
	t.Logf("%d Observations; with entries of each union: %v", len(obs), seen)
	for _, name := range []string{"combo-code", "combo-value-quantity", "combo-code-value-quantity", "combo-value-concept", "combo-code-value-concept"} {
		if seen[name] == 0 {
			t.Errorf("no Observation of testdata has %s entries: the identity is untested", name)
		}
	}
}

// TestUnionSearch: searching a union finds exactly the Observations whose
// own entries of it match, although the store wrote none of them, both
// in a file written now and in one holding the union's rows from before
// unions existed (written here by Reindex with the rows put back).
func TestUnionSearch(t *testing.T) {
	obs := observations(t)
	ctx := context.Background()
	s := openPath(t, filepath.Join(t.TempDir(), "kiln.db"))
	defer s.Close()
	want := map[string][]string{} // system|code of a combo-code entry → ids
	var changes []store.Change
	for i, body := range obs {
		entries, err := search.Extract("Observation", body)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint("o", i)
		for _, e := range entries {
			if e.Param == "combo-code" && e.Code != "" {
				k := e.System + "|" + e.Code
				if !slices.Contains(want[k], id) {
					want[k] = append(want[k], id)
				}
			}
		}
		changes = append(changes, store.Change{Type: "Observation", ID: id, Version: 1, LastUpdated: time.Now(),
			Method: store.MethodPost, Body: body, Index: entries})
	}
	if err := s.Commit(ctx, changes...); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ix_token WHERE pid IN
		(SELECT pid FROM params WHERE name = 'combo-code')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d combo-code rows (%v), want none", n, err)
	}
	check := func(label string) {
		t.Helper()
		for k, ids := range want {
			system, code, _ := strings.Cut(k, "|")
			q := search.Query{Types: []string{"Observation"}, Count: 1000, Filter: []search.Clause{{Param: "combo-code", Type: search.Token,
				Values: []search.Value{{System: system, Code: code, HasSystem: true}}}}}
			res, err := s.Search(ctx, &q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range res.Matches {
				got = append(got, m.ID)
			}
			slices.Sort(got)
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Errorf("%s: combo-code=%s found %v, want %v", label, k, got, ids)
			}
		}
	}
	check("new file")
	if len(want) < 20 {
		t.Fatalf("only %d distinct combo-code values: too few to test", len(want))
	}

	// An older file: the union's rows present beside the parts'.
	delete(unions["Observation"], "combo-code")
	defer func() { unions["Observation"]["combo-code"] = []string{"code", "component-code"} }()
	var updates []store.IndexUpdate
	for _, ch := range changes {
		updates = append(updates, store.IndexUpdate{Type: ch.Type, ID: ch.ID, Version: 1, Index: ch.Index})
	}
	if _, err := s.Reindex(ctx, updates...); err != nil {
		t.Fatal(err)
	}
	unions["Observation"]["combo-code"] = []string{"code", "component-code"}
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ix_token WHERE pid IN
		(SELECT pid FROM params WHERE name = 'combo-code')`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("%d combo-code rows (%v) after reindexing without the union", n, err)
	}
	s.params.Store(nil) // as a new process would load it
	check("older file")
}
