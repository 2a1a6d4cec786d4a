package sqlite

import (
	"context"
	"database/sql"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/storetest"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// planCases are single-parameter searches of every parameter type and
// modifier, and the shapes that combine them.
func planCases() map[string]search.Query {
	day := time.Date(2013, 1, 14, 0, 0, 0, 0, time.UTC)
	q := func(typ string, c ...search.Clause) search.Query {
		return search.Query{Types: []string{typ}, Filter: c, Count: 50}
	}
	v := func(vs ...search.Value) []search.Value { return vs }
	name := search.Clause{Param: "name", Type: search.String, Values: v(search.Value{Raw: "Peter", Text: "peter"})}
	code := search.Clause{Param: "code", Type: search.Token, Values: v(search.Value{System: "http://loinc.org", Code: "2339-0", HasSystem: true})}
	out := map[string]search.Query{
		"string":           q("Patient", name),
		"string :exact":    q("Patient", search.Clause{Param: "name", Type: search.String, Modifier: "exact", Values: v(search.Value{Raw: "Peter", Text: "peter"})}),
		"string :contains": q("Patient", search.Clause{Param: "name", Type: search.String, Modifier: "contains", Values: v(search.Value{Raw: "ete", Text: "ete"})}),
		"string :missing":  q("Patient", search.Clause{Param: "name", Type: search.String, Modifier: "missing", Values: v(search.Value{Missing: true})}),
		"_text":            q("Patient", search.Clause{Param: "_text", Type: search.String, Values: v(search.Value{Raw: "born", Text: "born"})}),
		"token":            q("Observation", code),
		"token code":       q("Observation", search.Clause{Param: "code", Type: search.Token, Values: v(search.Value{Code: "2339-0"})}),
		"token system|":    q("Observation", search.Clause{Param: "code", Type: search.Token, Values: v(search.Value{System: "http://loinc.org", HasSystem: true})}),
		"token :text":      q("Observation", search.Clause{Param: "code", Type: search.Token, Modifier: "text", Values: v(search.Value{Text: "gluc"})}),
		"token :not":       q("Observation", search.Clause{Param: "status", Type: search.Token, Modifier: "not", Values: v(search.Value{Code: "final"})}),
		"token :of-type": q("Patient", search.Clause{Param: "identifier", Type: search.Token, Modifier: "of-type", Values: v(search.Value{Code: "12345",
			Components: v(search.Value{System: "http://terminology.hl7.org/CodeSystem/v2-0203", Code: "MR"})})}),
		"reference":             q("Observation", search.Clause{Param: "subject", Type: search.Reference, Values: v(search.Value{Ref: "Patient/p1", RefType: "Patient"})}),
		"reference bare id":     q("Observation", search.Clause{Param: "subject", Type: search.Reference, Values: v(search.Value{Ref: "p1"})}),
		"reference :identifier": q("Observation", search.Clause{Param: "subject", Type: search.Reference, Modifier: "identifier", Values: v(search.Value{System: "http://hospital.example/mrn", Code: "A-2", HasSystem: true})}),
		"uri":                   q("ValueSet", search.Clause{Param: "url", Type: search.URI, Values: v(search.Value{Value: "http://example.org/fhir/ValueSet/abc"})}),
		"uri :below":            q("ValueSet", search.Clause{Param: "url", Type: search.URI, Modifier: "below", Values: v(search.Value{Value: "http://example.org/fhir"})}),
		"uri :above":            q("ValueSet", search.Clause{Param: "url", Type: search.URI, Modifier: "above", Values: v(search.Value{Value: "http://example.org/fhir/ValueSet/abc/def"})}),
		"number":                q("RiskAssessment", search.Clause{Param: "probability", Type: search.Number, Values: v(search.Value{Num: 0.8, Lo: 0.75, Hi: 0.85})}),
		"quantity with unit": q("Observation", search.Clause{Param: "value-quantity", Type: search.Quantity,
			Values: v(search.Value{Prefix: search.Gt, Num: 5, Lo: 4.5, Hi: 5.5, System: "http://unitsofmeasure.org", Code: "mg"})}),
		"composite": q("Observation", search.Clause{Param: "component-code-value-quantity", Type: search.Composite, Values: v(search.Value{
			Components: v(search.Value{System: "http://loinc.org", Code: "8480-6", HasSystem: true}, search.Value{Prefix: search.Gt, Num: 100, Lo: 99.5, Hi: 100.5})})}),
		"near": q("Location", search.Clause{Param: "near", Type: search.Special, Values: v(search.Value{
			Components: v(search.Value{Num: 42.25}, search.Value{Num: -83.69}, search.Value{Num: 5, Code: "km"})})}),
		"_id":           q("Patient", search.Clause{Param: "_id", Type: search.Token, Values: v(search.Value{Code: "p1"})}),
		"_id all types": {Filter: []search.Clause{{Param: "_id", Type: search.Token, Values: v(search.Value{Code: "p1"})}}, Count: 50},
		"chain":         q("Observation", search.Clause{Param: "subject", Type: search.Reference, Chain: &search.Chain{Types: []string{"Patient"}, Filter: name}}),
		"_has":          q("Patient", search.Clause{Has: &search.Has{Type: "Observation", Param: "patient", Filter: code}}),
		"patient+category+date": q("Observation",
			search.Clause{Param: "patient", Type: search.Reference, Values: v(search.Value{Ref: "Patient/p1", RefType: "Patient"})},
			search.Clause{Param: "category", Type: search.Token, Values: v(search.Value{Code: "laboratory"})},
			search.Clause{Param: "date", Type: search.Date, Values: v(search.Value{Prefix: search.Ge, Start: day, End: day.AddDate(0, 0, 1)})}),
		"sorted": {Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{
			{Param: "patient", Type: search.Reference, Values: v(search.Value{Ref: "Patient/p1", RefType: "Patient"})}},
			Sort: []search.SortKey{{Param: "date", Type: search.Date, Descending: true}}},
		"sorted _lastUpdated": {Types: []string{"Observation"}, Count: 10, Sort: []search.SortKey{{Param: "_lastUpdated", Type: search.Date}}},
	}
	for _, p := range []search.Prefix{"", search.Ne, search.Gt, search.Lt, search.Ge, search.Le, search.Sa, search.Eb, search.Ap} {
		out["date "+string(p)] = q("Observation", search.Clause{Param: "date", Type: search.Date,
			Values: v(search.Value{Prefix: p, Start: day, End: day.AddDate(0, 0, 1)})})
		out["_lastUpdated "+string(p)] = q("Observation", search.Clause{Param: "_lastUpdated", Type: search.Date,
			Values: v(search.Value{Prefix: p, Start: day, End: day.AddDate(0, 0, 1)})})
		out["quantity "+string(p)] = q("Observation", search.Clause{Param: "value-quantity", Type: search.Quantity,
			Values: v(search.Value{Prefix: p, Num: 100, Lo: 99.5, Hi: 100.5})})
	}
	return out
}

// scanOfTable matches a plan step that reads a whole table (or a whole
// index of it) rather than seeking: the tables and the aliases the
// compiler gives them (current c, c1…, t; versions v; ix_* x, x1…).
// Scans of derived rows (the page p, a recursive CTE, a constant row)
// are fine.
var scanOfTable = regexp.MustCompile(`\bSCAN (c\d*|t|v|x\d*|current|versions|params|ix_\w+)\b`)

// wholeParameter matches a step that walks every row of a parameter (a
// seek on pid alone). Only the searches that cannot seek may do that:
// :contains (a substring) and system| on a token (codes come first in
// the key); they are listed in rangeOK.
var wholeParameter = regexp.MustCompile(`INDEX ix_\w+ \(pid=\?\)|PRIMARY KEY \(pid=\?\)`)

var rangeOK = map[string]bool{"string :contains": true, "_text": true, "token system|": true, "token :text": true}

// TestSearchPlans: every single-parameter search, of every parameter type
// and modifier, reads the tables through indexes (issue 3: no full scan of
// the resource table), in its page and in its count.
func TestSearchPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	if err := s.Commit(context.Background(), storetest.SearchCorpus(t)...); err != nil {
		t.Fatal(err)
	}
	for name, q := range planCases() {
		t.Run(name, func(t *testing.T) {
			plan, err := s.plan(context.Background(), &q)
			if err != nil {
				t.Fatal(err)
			}
			for kind, f := range map[string]frag{"page": plan.page, "count": plan.count} {
				p := explainArgs(t, s, f)
				t.Logf("%s:\n%s", kind, p)
				if m := scanOfTable.FindString(p); m != "" {
					t.Errorf("%s: %q in the plan", kind, m)
				}
				if m := wholeParameter.FindString(p); m != "" && !rangeOK[name] {
					t.Errorf("%s: %q reads a whole parameter", kind, m)
				}
			}
		})
	}
}

func explainArgs(t testing.TB, s *Store, f frag) string {
	t.Helper()
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN "+f.sql, f.args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.sql)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n")
}

// TestSearchOddValues: values no parser should let through still get an
// answer, not an error or a panic: NaN and infinite numbers, invalid
// UTF-8, NUL bytes, a 10 kB uri for :above, and an empty (not nil) type
// list, which means every type.
func TestSearchOddValues(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	if err := s.Commit(context.Background(), storetest.SearchCorpus(t)...); err != nil {
		t.Fatal(err)
	}
	nan, inf := math.NaN(), math.Inf(1)
	v := func(vs ...search.Value) []search.Value { return vs }
	for name, tc := range map[string]struct {
		q    search.Query
		want int
	}{
		"NaN": {search.Query{Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{{Param: "value-quantity",
			Type: search.Quantity, Values: v(search.Value{Num: nan, Lo: nan, Hi: nan})}}}, 0},
		"+Inf gt": {search.Query{Types: []string{"Observation"}, Count: 10, Filter: []search.Clause{{Param: "value-quantity",
			Type: search.Quantity, Values: v(search.Value{Prefix: search.Gt, Num: inf, Lo: inf, Hi: inf})}}}, 0},
		"invalid UTF-8": {search.Query{Types: []string{"Patient"}, Count: 10, Filter: []search.Clause{{Param: "name",
			Type: search.String, Values: v(search.Value{Raw: "\xff\xfe", Text: "\xff\xfe"})}}}, 0},
		"NUL": {search.Query{Types: []string{"Patient"}, Count: 10, Filter: []search.Clause{{Param: "name",
			Type: search.String, Modifier: "contains", Values: v(search.Value{Raw: "a\x00b", Text: "a\x00b"})}}}, 0},
		"10 kB :above": {search.Query{Types: []string{"ValueSet"}, Count: 10, Filter: []search.Clause{{Param: "url",
			Type: search.URI, Modifier: "above", Values: v(search.Value{Value: "http://example.org/fhir/ValueSet/abc/" + strings.Repeat("x", 10<<10)})}}}, 1},
		"empty types": {search.Query{Types: []string{}, Count: 10, Filter: []search.Clause{{Param: "_id",
			Type: search.Token, Values: v(search.Value{Code: "p1"})}}}, 1},
	} {
		t.Run(name, func(t *testing.T) {
			q := tc.q
			page, err := s.Search(context.Background(), &q)
			if err != nil || len(page.Matches) != tc.want {
				t.Errorf("%d matches, %v; want %d", len(page.Matches), err, tc.want)
			}
		})
	}
}

// TestSearchStatementCache: a search shape is prepared once and reused;
// the cache stays bounded.
func TestSearchStatementCache(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	if err := s.Commit(context.Background(), storetest.SearchCorpus(t)...); err != nil {
		t.Fatal(err)
	}
	q := func(id string) *search.Query {
		return &search.Query{Types: []string{"Patient"}, Count: 10, Filter: []search.Clause{{Param: "_id",
			Type: search.Token, Values: []search.Value{{Code: id}}}}}
	}
	for _, id := range []string{"p1", "p2", "p3"} {
		if page, err := s.Search(context.Background(), q(id)); err != nil || len(page.Matches) != 1 || page.Matches[0].ID != id {
			t.Fatalf("_id=%s: %v", id, err)
		}
	}
	if n := s.stmts.lru.Len(); n != 1 {
		t.Errorf("three searches of one shape left %d statements, want 1", n)
	}
	for i := range stmtCacheSize + 10 {
		ids := make([]search.Value, i+1) // a new shape each time
		for j := range ids {
			ids[j] = search.Value{Code: "p1"}
		}
		if _, err := s.Search(context.Background(), &search.Query{Types: []string{"Patient"}, Count: 10,
			Filter: []search.Clause{{Param: "_id", Type: search.Token, Values: ids}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.stmts.lru.Len(); n != stmtCacheSize {
		t.Errorf("%d statements cached, want the bound %d", n, stmtCacheSize)
	}
}

// TestOlderSchemaRefused: a file of schema 1 has no search index; Open
// refuses it rather than serve searches that miss its resources.
func TestOlderSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE TABLE versions (seq INTEGER PRIMARY KEY)`, `PRAGMA user_version = 1`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(context.Background(), Config{Path: path})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a file of schema 1")
	}
	if !strings.Contains(err.Error(), "schema version 1") {
		t.Errorf("error %q does not name the schema version", err)
	}
}
