package defs

import (
	"slices"
	"strings"
	"testing"
)

// TestKilnSearchParameters: Kiln's own parameters have canonical URLs
// under Kiln's base, and no code of theirs takes the place of one R4 or
// US Core defines for the same type (the registry keeps the first
// definition of a code: a clash would silently drop Kiln's).
func TestKilnSearchParameters(t *testing.T) {
	ps := KilnSearchParameters()
	if len(ps) == 0 {
		t.Fatal("no Kiln SearchParameters")
	}
	taken := map[string]bool{}
	for _, sp := range slices.Concat(SearchParameters(), USCoreSearchParameters()) {
		for _, b := range sp.Base {
			taken[b+"."+sp.Code] = true
		}
	}
	for _, sp := range ps {
		if !strings.HasPrefix(sp.URL, "https://github.com/kiln-fhir/kiln/SearchParameter/") {
			t.Errorf("%s: not under Kiln's canonical base", sp.URL)
		}
		if sp.Code == "" || sp.Type == "" || sp.Expression == "" || len(sp.Base) == 0 {
			t.Errorf("%s: incomplete: %+v", sp.URL, sp)
		}
		for _, b := range sp.Base {
			if Lookup(b) == nil {
				t.Errorf("%s: base %q is not an R4 resource type", sp.URL, b)
			}
			if taken[b+"."+sp.Code] {
				t.Errorf("%s: %s already has a parameter %q", sp.URL, b, sp.Code)
			}
		}
	}
}
