package reindex_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/reindex"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// The extension of mothersMaidenName (R4 patient-mothersMaidenName) and
// the official R4 SearchParameter on it, which Kiln does not build in.
const (
	mmnExt = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
	mmnURL = "http://example.org/fhir/SearchParameter/patient-mothers-maiden-name"
	mmnSP  = `{"resourceType":"SearchParameter","url":"` + mmnURL + `","name":"MothersMaidenName","status":"active",
		"description":"Search based on patient's mother's maiden name","code":"mothers-maiden-name","base":["Patient"],"type":"string",
		"expression":"Patient.extension('` + mmnExt + `').value"}`
)

func patient(id, maiden string) string {
	ext := ""
	if maiden != "" {
		ext = `,"extension":[{"url":"` + mmnExt + `","valueString":"` + maiden + `"}]`
	}
	return `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Doe"}]` + ext + `}`
}

// client is a FHIR client of one test server.
type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path, body string, header ...string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			c.t.Fatalf("%s %s: %d, not JSON: %.200s", method, path, res.StatusCode, b)
		}
	}
	return res.StatusCode, out
}

func (c client) must(want int, method, path, body string, header ...string) map[string]any {
	c.t.Helper()
	got, out := c.do(method, path, body, header...)
	if got != want {
		c.t.Fatalf("%s %s: %d, want %d: %v", method, path, got, want, out)
	}
	return out
}

// ids are the sorted ids of a searchset's matches.
func ids(bundle map[string]any) []string {
	var out []string
	for _, e := range asList(bundle["entry"]) {
		e := e.(map[string]any)
		if s, _ := e["search"].(map[string]any); s != nil && s["mode"] != "match" {
			continue
		}
		out = append(out, e["resource"].(map[string]any)["id"].(string))
	}
	slices.Sort(out)
	return out
}

// outcomeText is every diagnostics of a searchset's outcome entry or of an
// OperationOutcome, joined.
func outcomeText(res map[string]any) string {
	var out []string
	collect := func(oo map[string]any) {
		for _, is := range asList(oo["issue"]) {
			is := is.(map[string]any)
			d, _ := is["diagnostics"].(string)
			out = append(out, d+" @"+fmt.Sprint(is["expression"]))
		}
	}
	if res["resourceType"] == "OperationOutcome" {
		collect(res)
	}
	for _, e := range asList(res["entry"]) {
		if r := e.(map[string]any)["resource"].(map[string]any); r["resourceType"] == "OperationOutcome" {
			collect(r)
		}
	}
	return strings.Join(out, " | ")
}

func asList(v any) []any { l, _ := v.([]any); return l }

// param is the first value of a Parameters parameter.
func param(p map[string]any, name string) any {
	for _, x := range asList(p["parameter"]) {
		x := x.(map[string]any)
		if x["name"] == name {
			for k, v := range x {
				if strings.HasPrefix(k, "value") {
					return v
				}
			}
		}
	}
	return nil
}

// capsParam is the searchParam entry of code under typ in the
// CapabilityStatement, or nil.
func capsParam(t *testing.T, c client, typ, code string) map[string]any {
	cs := c.must(200, "GET", "/metadata", "")
	for _, r := range asList(cs["rest"].([]any)[0].(map[string]any)["resource"]) {
		r := r.(map[string]any)
		if r["type"] != typ {
			continue
		}
		for _, p := range asList(r["searchParam"]) {
			if p := p.(map[string]any); p["name"] == code {
				return p
			}
		}
	}
	return nil
}

// fullStore is a backend as a server has it.
type fullStore interface {
	rest.Store
	reindex.RegistryStore
}

type backend struct {
	name string
	open func(t *testing.T) fullStore
}

var dbSeq atomic.Int64

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) fullStore {
			st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"mongo", func(t *testing.T) fullStore {
			srv := mongotest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: fmt.Sprintf("reindex_%d_%d", time.Now().UnixNano()%1e9, dbSeq.Add(1)),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
}

// newProcess starts the Registry of one Kiln process on st.
func newProcess(t *testing.T, st reindex.RegistryStore, worker bool) *reindex.Registry {
	t.Helper()
	m, err := reindex.New(t.Context(), reindex.Config{Poll: 100 * time.Millisecond, Settle: 300 * time.Millisecond, Page: 2, NoWorker: !worker}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestCustomSearchParameter: a SearchParameter created through the API
// while resources exist joins the registry only after its reindex,
// which a second process (the only one with a worker) runs; the first
// process, which serves the API, follows. Then the parameter is
// searchable with the expected matches, in the CapabilityStatement, and
// resources written later are indexed at once; deleted, it is gone again.
func TestCustomSearchParameter(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			front := newProcess(t, st, false)
			srv := httptest.NewServer(rest.New(rest.Config{SearchParams: front}, st))
			defer srv.Close()
			c := client{t, srv.URL}

			for _, p := range [][2]string{{"p1", "Smith"}, {"p2", "Smithers"}, {"p3", "Jones"}, {"p4", ""}, {"p5", "Goldsmith"}} {
				c.must(201, "PUT", "/Patient/"+p[0], patient(p[0], p[1]))
			}
			created := c.must(201, "POST", "/SearchParameter", mmnSP)
			spID := created["id"].(string)
			status := "/SearchParameter/" + spID + "/$reindex-status"

			// No worker has run the job: indexing, queued, and a search by
			// the code is an unknown parameter that says why.
			s := c.must(200, "GET", status, "")
			if param(s, "state") != "indexing" || param(s, "jobState") != "queued" || param(s, "code") != "mothers-maiden-name" || param(s, "base") != "Patient" {
				t.Fatalf("status before any worker: %v", s)
			}
			lenient := c.must(200, "GET", "/Patient?mothers-maiden-name=smith", "")
			if got := ids(lenient); len(got) != 5 {
				t.Errorf("lenient search while indexing: %v, want every patient (the parameter ignored)", got)
			}
			if txt := outcomeText(lenient); !strings.Contains(txt, "still being indexed") || !strings.Contains(txt, "SearchParameter/"+spID+"/$reindex-status") {
				t.Errorf("lenient search while indexing: outcome %q does not say it is being indexed", txt)
			}
			strict := c.must(400, "GET", "/Patient?mothers-maiden-name=smith", "", "Prefer", "handling=strict")
			if txt := outcomeText(strict); !strings.Contains(txt, "still being indexed") {
				t.Errorf("strict search while indexing: %q does not say it is being indexed", txt)
			}
			if capsParam(t, c, "Patient", "mothers-maiden-name") != nil {
				t.Error("the CapabilityStatement lists the parameter before its reindex")
			}
			// Pending: in the registry writes extract with, not yet in the
			// one searches parse with.
			if _, ok := front.Index().Param("Patient", "mothers-maiden-name"); !ok {
				t.Error("a parameter being indexed is not in the index registry: writes meanwhile would lack it")
			}
			if _, ok := front.Query().Param("Patient", "mothers-maiden-name"); ok {
				t.Error("a parameter being indexed is already in the query registry")
			}
			// Written while the job waits: indexed at write time already.
			c.must(201, "PUT", "/Patient/p6", patient("p6", "smithy"))

			// A second process with a worker runs the job.
			newProcess(t, st, true)
			deadline := time.Now().Add(60 * time.Second)
			for param(s, "state") != "active" {
				if time.Now().After(deadline) {
					t.Fatalf("not active after a minute: %v", s)
				}
				time.Sleep(50 * time.Millisecond)
				s = c.must(200, "GET", status, "")
			}
			if param(s, "jobState") != "done" || param(s, "pass") != "done" || param(s, "failed") != 0.0 || param(s, "total") != 6.0 {
				t.Errorf("status when active: %v", s)
			}

			for _, tc := range []struct{ query, want string }{
				// string: case-insensitive starts-with (search.html#string).
				{"mothers-maiden-name=smith", "p1 p2 p6"},
				{"mothers-maiden-name=SMITH", "p1 p2 p6"},
				{"mothers-maiden-name:exact=Smith", "p1"},
				{"mothers-maiden-name:contains=smith", "p1 p2 p5 p6"},
				{"mothers-maiden-name=jones", "p3"},
				{"mothers-maiden-name:missing=true", "p4"},
				{"mothers-maiden-name=smith,jones", "p1 p2 p3 p6"},
				{"mothers-maiden-name=nobody", ""},
			} {
				got := c.must(200, "GET", "/Patient?"+tc.query, "", "Prefer", "handling=strict")
				if g := strings.Join(ids(got), " "); g != tc.want {
					t.Errorf("%s: %q, want %q", tc.query, g, tc.want)
				}
			}
			if p := capsParam(t, c, "Patient", "mothers-maiden-name"); p == nil || p["definition"] != mmnURL || p["type"] != "string" {
				t.Errorf("CapabilityStatement Patient searchParam: %v", p)
			}

			// After activation, a write is indexed as it is stored.
			c.must(201, "PUT", "/Patient/p7", patient("p7", "Smithson"))
			c.must(200, "PUT", "/Patient/p1", patient("p1", "Brown"))
			got := c.must(200, "GET", "/Patient?mothers-maiden-name=smith", "", "Prefer", "handling=strict")
			if g := strings.Join(ids(got), " "); g != "p2 p6 p7" {
				t.Errorf("after writes: %q, want p2 p6 p7", g)
			}

			// A restarted process loads it as searchable, with no reindex.
			restarted := newProcess(t, st, false)
			if _, ok := restarted.Query().Param("Patient", "mothers-maiden-name"); !ok {
				t.Error("a new process does not serve the parameter whose reindex completed")
			}

			// A new version that changes only its description stays
			// searchable: no reindex (its job is recorded done at once).
			updated := strings.Replace(mmnSP, `"resourceType":"SearchParameter",`, `"resourceType":"SearchParameter","id":"`+spID+`",`, 1)
			updated = strings.Replace(updated, "Search based on", "Searches by", 1)
			c.must(200, "PUT", "/SearchParameter/"+spID, updated)
			if s = c.must(200, "GET", status, ""); param(s, "state") != "active" || param(s, "jobState") != "done" || param(s, "read") != 0.0 ||
				!strings.HasSuffix(param(s, "job").(string), "-2") {
				t.Errorf("status after a description-only update: %v", s)
			}
			got = c.must(200, "GET", "/Patient?mothers-maiden-name=jones", "", "Prefer", "handling=strict")
			if g := strings.Join(ids(got), " "); g != "p3" {
				t.Errorf("after a description-only update: %q, want p3", g)
			}
			// One that changes its expression is indexed again.
			changed := strings.Replace(updated, ").value", ").value.ofType(string)", 1)
			c.must(200, "PUT", "/SearchParameter/"+spID, changed)
			if s = c.must(200, "GET", status, ""); param(s, "state") != "indexing" {
				t.Errorf("status after an expression update: %v", s)
			}
			for param(s, "state") != "active" {
				if time.Now().After(deadline) {
					t.Fatalf("not active again: %v", s)
				}
				time.Sleep(50 * time.Millisecond)
				s = c.must(200, "GET", status, "")
			}

			// Deleted: out of the CapabilityStatement, unknown again (and
			// not said to be indexing).
			c.must(204, "DELETE", "/SearchParameter/"+spID, "")
			if capsParam(t, c, "Patient", "mothers-maiden-name") != nil {
				t.Error("the CapabilityStatement still lists the deleted parameter")
			}
			strict = c.must(400, "GET", "/Patient?mothers-maiden-name=smith", "", "Prefer", "handling=strict")
			if txt := outcomeText(strict); strings.Contains(txt, "being indexed") || !strings.Contains(txt, "mothers-maiden-name") {
				t.Errorf("strict search after delete: %q", txt)
			}
			c.must(410, "GET", status, "")
		})
	}
}

// TestBadSearchParameters: a SearchParameter the server cannot serve is
// refused at write time with a 422 naming the element, and nothing is
// stored; an update to such a definition leaves the stored one alone.
func TestBadSearchParameters(t *testing.T) {
	st := backends()[0].open(t)
	m := newProcess(t, st, true)
	srv := httptest.NewServer(rest.New(rest.Config{SearchParams: m}, st))
	defer srv.Close()
	c := client{t, srv.URL}

	sp := func(mod map[string]any) string {
		base := map[string]any{"resourceType": "SearchParameter", "url": "http://example.org/sp/bad", "name": "Bad", "status": "active",
			"description": "d", "code": "nickname", "base": []string{"Patient"}, "type": "string", "expression": "Patient.name.given"}
		for k, v := range mod {
			if v == nil {
				delete(base, k)
			} else {
				base[k] = v
			}
		}
		b, _ := json.Marshal(base)
		return string(b)
	}
	for _, tc := range []struct {
		name    string
		mod     map[string]any
		element string
		status  int // 422, or 400 when the resource validator already refuses it
	}{
		{"expression does not compile", map[string]any{"expression": "Patient.name.where("}, "SearchParameter.expression", 422},
		{"expression uses an unknown function", map[string]any{"expression": "Patient.name.frobnicate()"}, "SearchParameter.expression", 422},
		{"expression has no path for the base", map[string]any{"expression": "Observation.code"}, "SearchParameter.expression", 422},
		{"no expression", map[string]any{"expression": nil}, "SearchParameter.expression", 422},
		{"unknown base", map[string]any{"base": []string{"Patientt"}}, "SearchParameter.base[0]", 400},
		{"second base unknown", map[string]any{"base": []string{"Patient", "Nope"}}, "SearchParameter.base[1]", 400},
		{"base is an abstract type", map[string]any{"base": []string{"Patient", "DomainResource"}, "expression": "Patient.name.given"}, "SearchParameter.expression", 422},
		{"no base", map[string]any{"base": nil}, "SearchParameter.base", 400},
		{"code clashes with a built-in", map[string]any{"code": "name"}, "SearchParameter.code", 422},
		{"code clashes with a common parameter", map[string]any{"code": "_id"}, "SearchParameter.code", 422},
		{"code with a modifier", map[string]any{"code": "nick:name"}, "SearchParameter.code", 422},
		{"unknown type", map[string]any{"type": "fuzzy"}, "SearchParameter.type", 400},
		{"special type", map[string]any{"type": "special"}, "SearchParameter.type", 422},
		{"no url", map[string]any{"url": nil}, "SearchParameter.url", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := client{t, srv.URL}.must(tc.status, "POST", "/SearchParameter", sp(tc.mod))
			is := asList(out["issue"])
			if len(is) == 0 || !slices.Contains(asList(is[0].(map[string]any)["expression"]), any(tc.element)) {
				t.Errorf("issues %v, want one naming %s", out["issue"], tc.element)
			}
		})
	}
	if got := c.must(200, "GET", "/SearchParameter", ""); len(ids(got)) != 0 {
		t.Errorf("refused SearchParameters were stored: %v", ids(got))
	}

	// A draft is stored without joining; a good one joins; an update that
	// breaks it is refused and the good one stays.
	c.must(201, "POST", "/SearchParameter", sp(map[string]any{"status": "draft", "expression": "Patient.name.where("}))
	good := c.must(201, "POST", "/SearchParameter", sp(nil))
	id := good["id"].(string)
	broken := sp(map[string]any{"id": id, "expression": "Patient.("})
	c.must(422, "PUT", "/SearchParameter/"+id, broken)
	if v := c.must(200, "GET", "/SearchParameter/"+id, "")["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("version after a refused update: %v", v)
	}
	// Another active parameter cannot take the same code on the same base.
	out := c.must(422, "POST", "/SearchParameter", sp(map[string]any{"url": "http://example.org/sp/other"}))
	if txt := outcomeText(out); !strings.Contains(txt, "SearchParameter.code") {
		t.Errorf("a second custom parameter with the same code: %q", txt)
	}
	q := url.Values{"url": {"http://example.org/sp/other"}}
	if got := c.must(200, "GET", "/SearchParameter?"+q.Encode(), ""); len(ids(got)) != 0 {
		t.Errorf("the clashing parameter was stored: %v", ids(got))
	}
}

// blockingStore stops a job part-way: after `pages` Reindex calls, the
// next blocks until its context ends (the process closing).
type blockingStore struct {
	fullStore
	pages atomic.Int64
}

func (b *blockingStore) Reindex(ctx context.Context, updates ...store.IndexUpdate) (int, error) {
	if b.pages.Add(-1) < 0 {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return b.fullStore.Reindex(ctx, updates...)
}

// TestJobResumes: a process that stops in the middle of a reindex hands
// the job back with its position; the next process resumes there (it
// reads each resource once over both runs) and the parameter becomes
// searchable. Then, deleted, its rows are dropped by the drop job.
func TestJobResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api := newProcess(t, st, false)
	srv := httptest.NewServer(rest.New(rest.Config{SearchParams: api}, st))
	defer srv.Close()
	c := client{t, srv.URL}
	for i, m := range []string{"Smith", "Smithers", "Jones", "", "Smythe", "Smith"} {
		id := fmt.Sprintf("p%d", i+1)
		c.must(201, "PUT", "/Patient/"+id, patient(id, m))
	}
	spID := c.must(201, "POST", "/SearchParameter", mmnSP)["id"].(string)
	status := "/SearchParameter/" + spID + "/$reindex-status"

	// The first worker does one page (2 resources) and stops.
	var first *reindex.Registry
	bs := &blockingStore{fullStore: st}
	bs.pages.Store(1)
	first, err = reindex.New(t.Context(), reindex.Config{Poll: 50 * time.Millisecond, Settle: 200 * time.Millisecond, Page: 2}, bs)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	s := c.must(200, "GET", status, "")
	for param(s, "read") != 2.0 || param(s, "jobState") != "running" {
		if time.Now().After(deadline) {
			t.Fatalf("the first worker did not report its first page: %v", s)
		}
		time.Sleep(20 * time.Millisecond)
		s = c.must(200, "GET", status, "")
	}
	first.Close()
	if s = c.must(200, "GET", status, ""); param(s, "jobState") != "queued" || param(s, "state") != "indexing" {
		t.Fatalf("after the first worker stopped: %v, want the job queued again", s)
	}

	newProcess(t, st, true)
	for param(s, "state") != "active" {
		if time.Now().After(deadline) {
			t.Fatalf("not active: %v", s)
		}
		time.Sleep(20 * time.Millisecond)
		s = c.must(200, "GET", status, "")
	}
	// The 6 Patients are read once by the full pass (2 by the first
	// worker, 4 after resuming: 8 had it started over), and once more by
	// the catch-up pass, since all were written less than the clock skew
	// allowance before the job was created.
	if param(s, "total") != 6.0 || param(s, "read") != 12.0 || param(s, "updated") != 12.0 {
		t.Errorf("counts after resuming: %v", s)
	}
	got := c.must(200, "GET", "/Patient?mothers-maiden-name=smith", "", "Prefer", "handling=strict")
	if g := strings.Join(ids(got), " "); g != "p1 p2 p6" {
		t.Errorf("mothers-maiden-name=smith: %q, want p1 p2 p6", g)
	}

	// Deleted: the drop job rebuilds Patient without it; no row is left.
	rows := func() int {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ix_string WHERE pid IN (SELECT pid FROM params WHERE name = 'mothers-maiden-name')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 5 {
		t.Fatalf("%d mothers-maiden-name rows while active, want 5", n)
	}
	c.must(204, "DELETE", "/SearchParameter/"+spID, "")
	for rows() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d mothers-maiden-name rows left after deleting the SearchParameter", rows())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countingStore counts the index updates one process applies.
type countingStore struct {
	fullStore
	updates atomic.Int64
}

func (c *countingStore) Reindex(ctx context.Context, updates ...store.IndexUpdate) (int, error) {
	c.updates.Add(int64(len(updates)))
	return c.fullStore.Reindex(ctx, updates...)
}

// TestOneWorkerRunsTheJob: three processes with workers on one store (one
// MongoDB, or one SQLite file): the job is claimed and run by exactly one
// of them, and all three then serve the parameter.
func TestOneWorkerRunsTheJob(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			var procs []*countingStore
			var registries []*reindex.Registry
			for range 3 {
				cs := &countingStore{fullStore: st}
				procs = append(procs, cs)
				registries = append(registries, newProcess(t, cs, true))
			}
			srv := httptest.NewServer(rest.New(rest.Config{SearchParams: registries[0]}, procs[0]))
			defer srv.Close()
			c := client{t, srv.URL}
			for i, m := range []string{"Smith", "Jones", "Smithers"} {
				id := fmt.Sprintf("p%d", i+1)
				c.must(201, "PUT", "/Patient/"+id, patient(id, m))
			}
			c.must(201, "POST", "/SearchParameter", mmnSP)
			deadline := time.Now().Add(time.Minute)
			for _, m := range registries {
				for {
					if _, ok := m.Query().Param("Patient", "mothers-maiden-name"); ok {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("a process does not serve the parameter after a minute")
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			ran := 0
			for _, p := range procs {
				if p.updates.Load() > 0 {
					ran++
				}
			}
			if ran != 1 {
				t.Errorf("%d processes applied index updates, want exactly 1", ran)
			}
			got := c.must(200, "GET", "/Patient?mothers-maiden-name=smith", "", "Prefer", "handling=strict")
			if g := strings.Join(ids(got), " "); g != "p1 p3" {
				t.Errorf("mothers-maiden-name=smith: %q, want p1 p3", g)
			}
		})
	}
}

// tokens is an Authorizer of fixed bearer tokens.
type tokens map[string]*rest.Access

func (ts tokens) Authorize(r *http.Request) (*rest.Access, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, rest.ErrNoToken
	}
	if acc := ts[tok]; acc != nil {
		return acc, nil
	}
	return nil, rest.ErrInvalidToken
}

// TestReindexStatusAccess: $reindex-status reads the SearchParameter
// (operationAccess: r at the instance level), so a token needs r on
// SearchParameter and must be able to read that one: a granular scope
// that does not reach it gets the 404 of a read.
func TestReindexStatusAccess(t *testing.T) {
	st := backends()[0].open(t)
	m := newProcess(t, st, true)
	srv := httptest.NewServer(rest.New(rest.Config{SearchParams: m, Auth: tokens{
		"admin":      {ClientID: "admin", Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}},
		"sp-read":    {ClientID: "a", Rules: []rest.Rule{{Context: "system", Type: "SearchParameter", Ops: "r"}}},
		"sp-drafts":  {ClientID: "b", Rules: []rest.Rule{{Context: "system", Type: "SearchParameter", Ops: "rs", Query: url.Values{"status": {"draft"}}}}},
		"patient-rs": {ClientID: "c", Rules: []rest.Rule{{Context: "system", Type: "Patient", Ops: "rs"}}},
	}}, st))
	defer srv.Close()
	c := client{t, srv.URL}
	id := c.must(201, "POST", "/SearchParameter", mmnSP, "Authorization", "Bearer admin")["id"].(string)
	path := "/SearchParameter/" + id + "/$reindex-status"
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", 401},
		{"nope", 401},
		{"patient-rs", 403},
		{"sp-drafts", 404}, // the parameter is active: outside the scope's query
		{"sp-read", 200},
		{"admin", 200},
	} {
		var h []string
		if tc.token != "" {
			h = []string{"Authorization", "Bearer " + tc.token}
		}
		if got, out := c.do("GET", path, "", h...); got != tc.want {
			t.Errorf("token %q: %d, want %d: %v", tc.token, got, tc.want, out)
		}
	}
}
