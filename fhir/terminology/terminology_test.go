package terminology_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/fhir/terminology"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// The terminology is read from a real store (an SQLite file), as the
// server reads it. Expected expansions are written from valueset.html
// (compose, expansion) and codesystem.html (hierarchy, the parent
// property).

const sys = "http://example.org/cs"

// hierarchy: root ⊃ {a ⊃ {a1, a2}, b ⊃ {b1}}; x has parents a and b by
// the parent property; loop1 and loop2 are each other's parent.
var fixtures = []struct{ typ, id, body string }{
	{"CodeSystem", "cs", `{"resourceType":"CodeSystem","id":"cs","url":"` + sys + `","status":"active","content":"complete",
		"concept":[{"code":"root","concept":[
			{"code":"a","concept":[{"code":"a1"},{"code":"a2"}]},
			{"code":"b","concept":[{"code":"b1"}]}]},
		{"code":"x","property":[{"code":"parent","valueCode":"a"},{"code":"parent","valueCode":"b"}]},
		{"code":"loop1","property":[{"code":"parent","valueCode":"loop2"}]},
		{"code":"loop2","property":[{"code":"parent","valueCode":"loop1"}]}]}`},
	{"ValueSet", "v1", `{"resourceType":"ValueSet","id":"v1","url":"http://example.org/vs/versioned","version":"1","status":"active",
		"compose":{"include":[{"system":"` + sys + `","concept":[{"code":"a1"}]}]}}`},
	{"ValueSet", "v2", `{"resourceType":"ValueSet","id":"v2","url":"http://example.org/vs/versioned","version":"2","status":"active",
		"compose":{"include":[{"system":"` + sys + `","concept":[{"code":"a2"}]}]}}`},
	{"ValueSet", "two-filters", `{"resourceType":"ValueSet","id":"two-filters","url":"http://example.org/vs/two-filters","status":"active",
		"compose":{"include":[{"system":"` + sys + `","filter":[
			{"property":"concept","op":"is-a","value":"a"},{"property":"concept","op":"is-a","value":"b"}]}]}}`},
	{"ValueSet", "intersect", `{"resourceType":"ValueSet","id":"intersect","url":"http://example.org/vs/intersect","status":"active",
		"compose":{"include":[{"system":"` + sys + `","filter":[{"property":"concept","op":"is-a","value":"a"}],
			"valueSet":["http://example.org/vs/b-side"]}]}}`},
	{"ValueSet", "b-side", `{"resourceType":"ValueSet","id":"b-side","url":"http://example.org/vs/b-side","status":"active",
		"compose":{"include":[{"system":"` + sys + `","filter":[{"property":"concept","op":"is-a","value":"b"}]}]}}`},
	{"ValueSet", "whole", `{"resourceType":"ValueSet","id":"whole","url":"http://example.org/vs/whole","status":"active",
		"compose":{"include":[{"system":"` + sys + `"}],"exclude":[{"system":"` + sys + `","filter":[{"property":"concept","op":"is-a","value":"root"}]}]}}`},
	{"ValueSet", "elsewhere", `{"resourceType":"ValueSet","id":"elsewhere","url":"http://example.org/vs/elsewhere","status":"active",
		"compose":{"include":[{"system":"http://loinc.org"}],"exclude":[{"system":"http://loinc.org","concept":[{"code":"1-8"}]}]}}`},
	{"ValueSet", "both", `{"resourceType":"ValueSet","id":"both","url":"http://example.org/vs/both","status":"active",
		"compose":{"include":[{"system":"` + sys + `","concept":[{"code":"a"}],"filter":[{"property":"concept","op":"is-a","value":"a"}]}]}}`},
	{"ValueSet", "regex", `{"resourceType":"ValueSet","id":"regex","url":"http://example.org/vs/regex","status":"active",
		"compose":{"include":[{"system":"` + sys + `","filter":[{"property":"concept","op":"regex","value":"a.*"}]}]}}`},
	{"ValueSet", "nested", `{"resourceType":"ValueSet","id":"nested","url":"http://example.org/vs/nested","status":"active",
		"expansion":{"timestamp":"2024-01-01T00:00:00Z","contains":[{"system":"` + sys + `","code":"a","contains":[
			{"system":"` + sys + `","code":"a1"},{"abstract":true,"display":"a group","contains":[{"system":"` + sys + `","code":"a2"}]}]}]}}`},
	{"ValueSet", "empty", `{"resourceType":"ValueSet","id":"empty","url":"http://example.org/vs/empty","status":"active",
		"compose":{"include":[{"system":"` + sys + `","concept":[{"code":"a1"}]}],"exclude":[{"system":"` + sys + `","concept":[{"code":"a1"}]}]}}`},
	{"ValueSet", "other-exclude", `{"resourceType":"ValueSet","id":"other-exclude","url":"http://example.org/vs/other-exclude","status":"active",
		"compose":{"include":[{"system":"http://loinc.org"},{"system":"` + sys + `","concept":[{"code":"a"},{"code":"b"}]}],
		"exclude":[{"system":"` + sys + `","concept":[{"code":"b"}]}]}}`},
	{"ValueSet", "dup1", `{"resourceType":"ValueSet","id":"dup1","url":"http://example.org/vs/dup","status":"active","compose":{"include":[{"system":"s","concept":[{"code":"c"}]}]}}`},
	{"ValueSet", "dup2", `{"resourceType":"ValueSet","id":"dup2","url":"http://example.org/vs/dup","status":"active","compose":{"include":[{"system":"s","concept":[{"code":"c"}]}]}}`},
}

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range fixtures {
		body := []byte(f.body)
		index, err := search.Extract(f.typ, body)
		if err != nil {
			t.Fatalf("%s/%s: %v", f.typ, f.id, err)
		}
		if err := s.Commit(ctx, store.Change{Type: f.typ, ID: f.id, Version: 1, LastUpdated: at, Method: store.MethodPost, Body: body, Index: index}); err != nil {
			t.Fatalf("%s/%s: %v", f.typ, f.id, err)
		}
	}
	return s
}

func codes(cs []terminology.Code) []string {
	var out []string
	for _, c := range cs {
		if c.System == sys {
			out = append(out, c.Code)
		} else {
			out = append(out, c.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestExpandValueSet(t *testing.T) {
	s := open(t)
	for _, tc := range []struct {
		ref    string
		want   []string
		status int // an error: its HTTP status
		says   string
	}{
		// a canonical url with two versions needs |version; ValueSet/id names one
		{ref: "http://example.org/vs/versioned|1", want: []string{"a1"}},
		{ref: "http://example.org/vs/versioned|2", want: []string{"a2"}},
		{ref: "ValueSet/v2", want: []string{"a2"}},
		{ref: "http://example.org/vs/versioned", status: 400, says: "several"},
		{ref: "http://example.org/vs/dup", status: 400, says: "several"},
		// several filters in one include are AND: is-a a and is-a b is x alone
		{ref: "http://example.org/vs/two-filters", want: []string{"x"}},
		// an include's system part intersected with the ValueSets it imports
		{ref: "http://example.org/vs/intersect", want: []string{"x"}},
		// a complete CodeSystem included whole, less everything under root
		// (x too: its parents a and b are under root)
		{ref: "http://example.org/vs/whole", want: []string{"loop1", "loop2"}},
		// nested contains, an abstract grouping without a code left out
		{ref: "http://example.org/vs/nested", want: []string{"a", "a1", "a2"}},
		{ref: "http://example.org/vs/elsewhere", status: 400, says: "http://loinc.org"},
		// codes excluded from another system leave a whole system alone
		{ref: "http://example.org/vs/other-exclude", want: []string{"a", "http://loinc.org|"}},
		{ref: "http://example.org/vs/both", status: 400, says: "both concepts and filters"},
		{ref: "http://example.org/vs/regex", status: 400, says: "regex"},
		{ref: "http://example.org/vs/nowhere", status: 400, says: "unknown ValueSet http://example.org/vs/nowhere"},
		{ref: "ValueSet/nowhere", status: 400, says: "unknown ValueSet ValueSet/nowhere"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := terminology.ExpandValueSet(context.Background(), s, "code:in", tc.ref)
			if tc.status != 0 {
				oe := outcome.As(err)
				if err == nil || oe.Status != tc.status || !strings.Contains(oe.Error(), tc.says) {
					t.Fatalf("error %v, want %d saying %q", err, tc.status, tc.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := codes(got); !slices.Equal(g, tc.want) {
				t.Errorf("expansion %q, want %q", g, tc.want)
			}
		})
	}
}

// TestResolve: the clauses Resolve hands the store.
func TestResolve(t *testing.T) {
	s := open(t)
	tok := func(mod string, vs ...string) search.Clause {
		c := search.Clause{Param: "code", Type: search.Token, Modifier: mod}
		for _, v := range vs {
			system, code, _ := strings.Cut(v, "|")
			c.Values = append(c.Values, search.Value{Raw: v, Value: v, System: system, Code: code, HasSystem: true})
		}
		return c
	}
	list := func(c search.Clause) string {
		var out []string
		for _, v := range c.Values {
			out = append(out, strings.TrimPrefix(v.System+"|"+v.Code, sys+"|"))
		}
		slices.Sort(out)
		return c.Modifier + "[" + strings.Join(out, " ") + "]"
	}
	for _, tc := range []struct {
		name   string
		clause search.Clause
		want   string
		status int
	}{
		{"below", tok("below", sys+"|a"), "[a a1 a2 x]", 0},
		// x has two parents (the parent property), each reached
		{"above, two parents", tok("above", sys+"|x"), "[a b root x]", 0},
		// a cycle in the hierarchy still ends
		{"below, a cycle", tok("below", sys+"|loop1"), "[loop1 loop2]", 0},
		{"below, two values are OR", tok("below", sys+"|a1", sys+"|b"), "[a1 b b1 x]", 0},
		{"not-in is :not", tok("not-in", "http://example.org/vs/versioned|1"), "not[a1]", 0},
		{"a code not in the CodeSystem subsumes nothing", tok("below", sys+"|zzz"), "nothing", 0},
		{"in an empty expansion is nothing", tok("in", "ValueSet/empty"), "nothing", 0},
		{"not-in an empty expansion is everything", tok("not-in", "ValueSet/empty"), "everything", 0},
		{"below a system not stored", tok("below", "http://loinc.org|1-8"), "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &search.Query{Types: []string{"Observation"}, Filter: []search.Clause{tc.clause}}
			got, err := terminology.Resolve(context.Background(), s, q)
			if tc.status != 0 {
				if oe := outcome.As(err); err == nil || oe.Status != tc.status {
					t.Fatalf("error %v, want %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := got.Filter[0]
			g := list(c)
			switch {
			case c.Any != nil && len(c.Any) == 0:
				g = "nothing"
			case c.Param == "_id" && c.Modifier == "missing" && len(c.Values) == 1 && !c.Values[0].Missing:
				g = "everything"
			}
			if g != tc.want {
				t.Errorf("resolved to %s, want %s", g, tc.want)
			}
			if q.Filter[0].Modifier != tc.clause.Modifier {
				t.Errorf("Resolve changed the query it was given")
			}
		})
	}
	// A query without terminology comes back as it is.
	q := &search.Query{Types: []string{"Observation"}, Filter: []search.Clause{tok("", sys+"|a")}}
	if got, err := terminology.Resolve(context.Background(), s, q); err != nil || got != q {
		t.Errorf("an ordinary query: %p %v, want the same query back", got, err)
	}
}

// TestMaxCodes: more than MaxCodes codes is a 422 that says the bound.
func TestMaxCodes(t *testing.T) {
	s := open(t)
	var concepts []string
	for i := range terminology.MaxCodes + 1 {
		concepts = append(concepts, fmt.Sprintf(`{"code":"c%d"}`, i))
	}
	body := []byte(`{"resourceType":"ValueSet","id":"big","url":"http://example.org/vs/big","status":"active",
		"compose":{"include":[{"system":"s","concept":[` + strings.Join(concepts, ",") + `]}]}}`)
	index, err := search.Extract("ValueSet", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), store.Change{Type: "ValueSet", ID: "big", Version: 1, LastUpdated: time.Now(), Method: store.MethodPost, Body: body, Index: index}); err != nil {
		t.Fatal(err)
	}
	_, err = terminology.ExpandValueSet(context.Background(), s, "code:in", "ValueSet/big")
	if oe := outcome.As(err); err == nil || oe.Status != http.StatusUnprocessableEntity || !strings.Contains(oe.Error(), "1000") {
		t.Fatalf("error %v, want 422 naming the bound", err)
	}
}
