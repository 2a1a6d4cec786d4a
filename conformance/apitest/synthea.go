package apitest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/bundle"
)

// testSyntheaTransactions posts every Synthea bundle as the transaction it
// is (POST entries with urn:uuid fullUrls, http.html#transaction), then
// reads back every resource it stored and checks that every reference in
// them resolves, and that the number of resources per type grew by what
// the bundles hold.
func testSyntheaTransactions(t *testing.T, c *Client, opts Options) {
	needTransactions(t, opts)
	files, err := syntheaFiles(opts)
	if err != nil || len(files) == 0 {
		t.Fatalf("no Synthea bundles (Options.Synthea or testdata/synthea): %v", err)
	}
	names := make([]string, 0, len(files))
	want := map[string]int{} // resources per type in the input
	for name, data := range files {
		names = append(names, name)
		var b struct {
			Entry []struct {
				Resource struct{ ResourceType string } `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, e := range b.Entry {
			want[e.Resource.ResourceType]++
		}
	}
	slices.Sort(names)
	before := map[string]int{}
	for typ := range want {
		before[typ] = typeCount(t, c, typ)
	}

	var stored []string // Type/id of every resource the transactions wrote
	for _, name := range names {
		r := c.Do("POST", "/", files[name], "Prefer", "return=minimal")
		expectStatus(t, r, 200, "transaction "+name)
		for i, e := range responseEntries(t, r, "transaction-response") {
			if !strings.HasPrefix(entryStatus(e), "201") {
				t.Fatalf("%s entry %d: status %q, want 201", name, i, entryStatus(e))
			}
			stored = append(stored, idOfLocation(t, entryLocation(e)))
		}
	}
	for typ, n := range want {
		if got := typeCount(t, c, typ) - before[typ]; got != n {
			t.Errorf("%s: %d more on the server, the bundles hold %d", typ, got, n)
		}
	}

	// Every reference in what was stored resolves to a stored resource.
	resolved := map[string]bool{}
	for _, ref := range stored {
		resolved[ref] = true
	}
	refs := 0
	for _, ref := range stored {
		r := c.Do("GET", "/"+ref, nil)
		expectStatus(t, r, 200, "read "+ref)
		contained := map[string]bool{}
		var res struct {
			Contained []struct{ ID string } `json:"contained"`
		}
		json.Unmarshal(r.Body, &res)
		for _, cr := range res.Contained {
			contained["#"+cr.ID] = true
		}
		err := bundle.References(r.Body, func(target string) {
			refs++
			switch {
			case strings.HasPrefix(target, "#"):
				if !contained[target] {
					t.Errorf("%s: contained reference %s has no contained resource", ref, target)
				}
			case strings.Contains(target, ":"):
				t.Errorf("%s: reference %s was not rewritten to a local one", ref, target)
			case !resolved[target]:
				if got := c.Do("GET", "/"+target, nil); got.Status != 200 {
					t.Errorf("%s: reference %s does not resolve (%d)", ref, target, got.Status)
					return
				}
				resolved[target] = true
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
	}
	t.Logf("%d Synthea bundles: %d resources stored, %d references, all resolve", len(names), len(stored), refs)
}

// typeCount is the number of current resources of typ.
func typeCount(t testing.TB, c *Client, typ string) int {
	t.Helper()
	r := c.Do("GET", "/"+typ+"?_summary=count", nil)
	expectStatus(t, r, 200, "count "+typ)
	n, err := r.JSON(t)["total"].(json.Number).Int64()
	if err != nil {
		t.Fatalf("count %s: %v", typ, fmt.Sprint(r.JSON(t)["total"]))
	}
	return int(n)
}
