package rest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/audit"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// auditEvent is what the tests read of an AuditEvent.
type auditEvent struct {
	ID      string `json:"id"`
	Subtype []struct{ Code string }
	Action  string
	Outcome string
	Agent   []struct {
		Who struct {
			Reference  string
			Identifier struct{ Value string }
		}
		Requestor bool
	}
	Entity []struct {
		What  struct{ Reference string }
		Role  struct{ Code string }
		Query string
	}
}

func (e auditEvent) patients() []string {
	var out []string
	for _, en := range e.Entity {
		if en.Role.Code == "1" {
			out = append(out, en.What.Reference)
		}
	}
	return out
}

func (e auditEvent) client() string { return e.Agent[0].Who.Identifier.Value }

func (e auditEvent) user() string {
	for _, a := range e.Agent {
		if a.Who.Reference != "" && a.Requestor {
			return a.Who.Reference
		}
	}
	return ""
}

func (e auditEvent) target() string {
	for _, en := range e.Entity {
		if en.Role.Code == "4" {
			return en.What.Reference
		}
	}
	return ""
}

func (e auditEvent) query(t *testing.T) string {
	for _, en := range e.Entity {
		if en.Role.Code == "24" {
			b, err := base64.StdEncoding.DecodeString(en.Query)
			if err != nil {
				t.Fatalf("entity.query is not base64: %v", err)
			}
			return string(b)
		}
	}
	return ""
}

func auditEvents(t *testing.T, r apitest.Response) []auditEvent {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("AuditEvent search: %d %s", r.Status, r.Body)
	}
	var b struct {
		Entry []struct{ Resource auditEvent }
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

type auditFixture struct {
	srv    *httptest.Server
	toks   *tokens
	writer *audit.Writer
}

// newAuditFixture serves the API over a real SQLite file with the real
// background writer, writing through st (the file itself unless the test
// wraps it).
func newAuditFixture(t *testing.T, cfg audit.Config, wrap func(*sqlite.Store) rest.Store) (*auditFixture, *sqlite.Store) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var st rest.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	f := &auditFixture{toks: &tokens{m: map[string]*rest.Access{
		"admin": {ClientID: "loader", Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}},
		"pa":    {ClientID: "portal", FHIRUser: "Patient/A", Patient: "A", Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}},
		"pb":    {ClientID: "portal", FHIRUser: "Patient/B", Patient: "B", Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}},
		// A patient-user token (user/ scopes of a Patient fhirUser),
		// with the v2 scope of the issue.
		"pa-user": {ClientID: "portal", FHIRUser: "http://kiln.example/fhir/Patient/A", Rules: []rest.Rule{{Context: "user", Type: "AuditEvent", Ops: "rs"}}},
		"doc":     {ClientID: "chart", FHIRUser: "Practitioner/9", Rules: []rest.Rule{{Context: "user", Type: "*", Ops: "cruds"}}},
	}}}
	f.writer = audit.New(cfg, st)
	t.Cleanup(func() { f.writer.Close() })
	f.srv = httptest.NewServer(rest.New(rest.Config{Auth: f.toks, Audit: f.writer}, st))
	t.Cleanup(f.srv.Close)
	return f, db
}

func (f *auditFixture) client(t *testing.T, token string) *authClient {
	return &authClient{c: apitest.Client{T: t, Base: f.srv.URL, HTTP: f.srv.Client()}, token: token}
}

// waitStored waits until the store holds at least n AuditEvents, reading
// it directly: a search over HTTP would itself be audited.
func waitStored(t *testing.T, db *sqlite.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := db.Search(context.Background(), mustQuery(t, "AuditEvent"))
		if err != nil {
			t.Fatal(err)
		}
		if page.Total >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d AuditEvents stored after 10s, want %d", page.Total, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuditWhoLookedAtMyChart: requests made with a token become
// AuditEvents (issue 5, "Audit"); a patient reads and searches the ones
// about their own record with patient/AuditEvent.rs — including a
// practitioner's reads of their chart — and never another patient's; no
// token may write one.
func TestAuditWhoLookedAtMyChart(t *testing.T) {
	f, db := newAuditFixture(t, audit.Config{Interval: 10 * time.Millisecond}, nil)
	// Both patients name the practitioner as their GP: its user/ scopes
	// reach their records (README "Access control", linked patients).
	admin, pa, pb, doc := f.client(t, "admin"), f.client(t, "pa"), f.client(t, "pb"), f.client(t, "doc")
	for _, w := range []struct{ path, body string }{
		{"/Patient/A", `{"resourceType":"Patient","id":"A","name":[{"family":"Alpha"}],"generalPractitioner":[{"reference":"Practitioner/9"}]}`},
		{"/Patient/B", `{"resourceType":"Patient","id":"B","name":[{"family":"Beta"}],"generalPractitioner":[{"reference":"Practitioner/9"}]}`},
		{"/Observation/a1", `{"resourceType":"Observation","id":"a1","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/A"}}`},
		{"/Observation/b1", `{"resourceType":"Observation","id":"b1","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/B"}}`},
	} {
		if r := admin.Do("PUT", w.path, []byte(w.body)); r.Status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", w.path, r.Status, r.Body)
		}
	}

	// The patient's own reads and a search, B's read of their record, and
	// a practitioner looking at A's chart (a read and a search that finds
	// A's Observation), then one refused request of A's.
	for _, rq := range []struct {
		c    *authClient
		path string
		want int
	}{
		{pa, "/Patient/A", 200},
		{pa, "/Observation?code:text=hr", 200},
		{pb, "/Observation/b1", 200},
		{doc, "/Observation/a1", 200},
		{doc, "/Observation?subject=Patient/A", 200},
		{pa, "/Observation/b1", 404},
	} {
		if r := rq.c.Do("GET", rq.path, nil); r.Status != rq.want {
			t.Fatalf("GET %s: %d, want %d: %s", rq.path, r.Status, rq.want, r.Body)
		}
	}

	// A conditional create that finds A's Observation returns it: the
	// practitioner saw it.
	if r := doc.Do("POST", "/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/A"}}`),
		"If-None-Exist", "_id=a1"); r.Status != http.StatusOK {
		t.Fatalf("conditional create: %d %s", r.Status, r.Body)
	}

	// A's list, once the 11 requests above are written.
	waitStored(t, db, 11)
	evs := auditEvents(t, pa.Do("GET", "/AuditEvent?_count=200", nil))
	find := func(what string, match func(auditEvent) bool) auditEvent {
		t.Helper()
		i := slices.IndexFunc(evs, match)
		if i < 0 {
			t.Fatalf("A's %d AuditEvents hold no %s", len(evs), what)
		}
		return evs[i]
	}
	for _, e := range evs {
		// Every event A sees concerns A (the Patient compartment of
		// AuditEvent is its patient parameter), and none B alone.
		if !slices.Contains(e.patients(), "Patient/A") && e.user() != "Patient/A" {
			t.Errorf("A sees AuditEvent %s about %v (user %q)", e.ID, e.patients(), e.user())
		}
		if e.target() == "Observation/b1" && e.client() == "portal" && e.Outcome == "0" {
			t.Errorf("A sees B's read of Observation/b1: %+v", e)
		}
	}
	read := find("read of Patient/A by A", func(e auditEvent) bool { return e.target() == "Patient/A" && e.client() == "portal" })
	if read.Action != "R" || read.Outcome != "0" || len(read.Subtype) != 1 || read.Subtype[0].Code != "read" || read.user() != "Patient/A" {
		t.Errorf("A's read: action %q outcome %q subtype %+v user %q; want R, 0, read, Patient/A", read.Action, read.Outcome, read.Subtype, read.user())
	}
	search := find("search by A", func(e auditEvent) bool {
		return e.client() == "portal" && strings.HasPrefix(e.query(t), "Observation?")
	})
	if search.Action != "E" || search.Subtype[0].Code != "search-type" || search.query(t) != "Observation?code%3Atext=hr" {
		t.Errorf("A's search: action %q subtype %+v query %q", search.Action, search.Subtype, search.query(t))
	}
	docRead := find("the practitioner's read of A's Observation", func(e auditEvent) bool { return e.client() == "chart" && e.target() == "Observation/a1" })
	if docRead.user() != "Practitioner/9" || !slices.Equal(docRead.patients(), []string{"Patient/A"}) {
		t.Errorf("practitioner's read: user %q patients %v; want Practitioner/9 about Patient/A", docRead.user(), docRead.patients())
	}
	docSearch := find("the practitioner's search of A's Observations", func(e auditEvent) bool { return e.client() == "chart" && e.query(t) != "" })
	if docSearch.query(t) != "Observation?subject=Patient%2FA" || !slices.Contains(docSearch.patients(), "Patient/A") {
		t.Errorf("practitioner's search: query %q patients %v", docSearch.query(t), docSearch.patients())
	}
	find("the practitioner's conditional create that found A's Observation", func(e auditEvent) bool {
		return e.client() == "chart" && e.target() == "Observation/a1" && len(e.Subtype) == 1 && e.Subtype[0].Code == "create" && slices.Contains(e.patients(), "Patient/A")
	})
	refused := find("A's refused read", func(e auditEvent) bool { return e.target() == "Observation/b1" && e.client() == "portal" })
	if refused.Outcome != "4" || slices.Contains(refused.patients(), "Patient/B") {
		t.Errorf("A's 404 read of B's Observation: outcome %q patients %v; want 4, not linked to B (nothing of B's was read)", refused.Outcome, refused.patients())
	}
	// The loader's writes are in A's list too: it wrote A's chart.
	find("the loader's write of Observation/a1", func(e auditEvent) bool {
		return e.client() == "loader" && strings.HasPrefix(e.target(), "Observation/a1") && e.Action == "U"
	})

	// Newest first, as a portal lists them: the practitioner's search
	// (the last request before the list was read but A's own 404) comes
	// before A's first read.
	sorted := auditEvents(t, pa.Do("GET", "/AuditEvent?_sort=-date&_count=200", nil))
	pos := func(id string) int { return slices.IndexFunc(sorted, func(e auditEvent) bool { return e.ID == id }) }
	if len(sorted) < len(evs) || pos(docSearch.ID) < 0 || pos(docSearch.ID) > pos(read.ID) {
		t.Errorf("_sort=-date: %d events (want at least %d), practitioner's search at %d, A's read at %d", len(sorted), len(evs), pos(docSearch.ID), pos(read.ID))
	}

	// B's events, as an unconfined reader sees them: A can neither read
	// one (404, as for any resource outside the compartment) nor find it.
	bEvs := auditEvents(t, doc.Do("GET", "/AuditEvent?patient=Patient/B&_count=200", nil))
	if !slices.ContainsFunc(bEvs, func(e auditEvent) bool {
		return e.client() == "portal" && e.target() == "Observation/b1" && e.Outcome == "0"
	}) {
		t.Fatalf("B's read of Observation/b1 is not among the %d AuditEvents about B", len(bEvs))
	}
	for _, e := range bEvs {
		if r := pa.Do("GET", "/AuditEvent/"+e.ID, nil); r.Status != http.StatusNotFound {
			t.Errorf("A reads B's AuditEvent %s: %d, want 404", e.ID, r.Status)
		}
		if got := auditEvents(t, pa.Do("GET", "/AuditEvent?_id="+e.ID, nil)); len(got) != 0 {
			t.Errorf("A's search finds B's AuditEvent %s", e.ID)
		}
	}
	if got := auditEvents(t, pa.Do("GET", "/AuditEvent?patient=Patient/B", nil)); len(got) != 0 {
		t.Errorf("AuditEvent?patient=Patient/B with A's token: %d events, want none", len(got))
	}
	// A patient user (user/AuditEvent.rs, absolute fhirUser) sees A's list.
	if got := auditEvents(t, f.client(t, "pa-user").Do("GET", "/AuditEvent?_count=200", nil)); !slices.ContainsFunc(got, func(e auditEvent) bool { return e.ID == docRead.ID }) {
		t.Errorf("A as a patient user does not see the practitioner's read %s", docRead.ID)
	}

	// No token writes an AuditEvent: not the patient, not the
	// practitioner, not a system/*.cruds backend (the trail is the
	// server's, append-only).
	forged := `{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2024-01-01T00:00:00Z","agent":[{"requestor":true,"who":{"reference":"Patient/A"}}],"source":{"observer":{"display":"x"}}}`
	existing := docRead.ID
	for _, tok := range []string{"pa", "doc", "admin"} {
		c := f.client(t, tok)
		for _, w := range []struct{ method, path, body string }{
			{"POST", "/AuditEvent", forged},
			{"PUT", "/AuditEvent/" + existing, strings.Replace(forged, `"resourceType":"AuditEvent"`, `"resourceType":"AuditEvent","id":"`+existing+`"`, 1)},
			{"DELETE", "/AuditEvent/" + existing, ""},
			{"PATCH", "/AuditEvent/" + existing, `[{"op":"remove","path":"/entity"}]`},
			{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + forged + `,"request":{"method":"POST","url":"AuditEvent"}}]}`},
		} {
			var body []byte
			var hdr []string
			if w.body != "" {
				body = []byte(w.body)
			}
			if w.method == "PATCH" {
				hdr = []string{"Content-Type", "application/json-patch+json"}
			}
			if r := c.Do(w.method, w.path, body, hdr...); r.Status != http.StatusForbidden {
				t.Errorf("%s: %s %s: %d, want 403: %s", tok, w.method, w.path, r.Status, r.Body)
			}
		}
	}
	if r := doc.Do("GET", "/AuditEvent/"+existing, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"Observation/a1"`) {
		t.Errorf("the AuditEvent changed after the refused writes: %d %s", r.Status, r.Body)
	}
}

// TestAuditNoToken: without an Authorizer (--auth=none) nothing is
// audited.
func TestAuditNoToken(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := audit.New(audit.Config{Interval: time.Millisecond}, db)
	srv := httptest.NewServer(rest.New(rest.Config{Audit: w}, db))
	defer srv.Close()
	c := apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	if r := c.Do("PUT", "/Patient/A", []byte(`{"resourceType":"Patient","id":"A"}`)); r.Status != http.StatusCreated {
		t.Fatalf("PUT: %d", r.Status)
	}
	c.Do("GET", "/Patient/A", nil)
	w.Close()
	if r := c.Do("GET", "/AuditEvent?_total=accurate", nil); !strings.Contains(string(r.Body), `"total":0`) {
		t.Errorf("AuditEvents written without a token: %s", r.Body)
	}
}

// stalled is the store with commits held until release: a store that
// cannot keep up (fault injection, as Vault's decorators do).
type stalled struct {
	rest.Store
	once    sync.Once
	release chan struct{}
}

func (s *stalled) Commit(ctx context.Context, changes ...store.Change) error {
	if len(changes) > 0 && changes[0].Type == "AuditEvent" {
		<-s.release
	}
	return s.Store.Commit(ctx, changes...)
}

// TestAuditOverflowDoesNotBlock: when the store cannot keep up, the audit
// queue fills and further events are dropped and counted; requests are
// answered as fast as ever (issue 5: never block requests). What was
// queued is written once the store catches up.
func TestAuditOverflowDoesNotBlock(t *testing.T) {
	var st *stalled
	f, db := newAuditFixture(t, audit.Config{Queue: 4, Batch: 1, Interval: time.Millisecond}, func(db *sqlite.Store) rest.Store {
		st = &stalled{Store: db, release: make(chan struct{})}
		return st
	})
	release := func() { st.once.Do(func() { close(st.release) }) }
	t.Cleanup(release) // before the writer's Close (cleanups run last first)
	if _, err := db.Read(context.Background(), "Patient", "A"); err == nil {
		t.Fatal("fresh store has Patient/A")
	}
	pa := f.client(t, "pa")
	const n = 50
	start := time.Now()
	for i := 0; i < n; i++ {
		if r := pa.Do("GET", "/Patient/A", nil); r.Status != http.StatusNotFound {
			t.Fatalf("read %d: %d", i, r.Status)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%d reads took %v with the audit store stalled", n, d)
	}
	// One event is held by the stalled commit, Queue more wait; the rest
	// were dropped.
	if got := f.writer.Dropped(); got < n-1-4 {
		t.Errorf("dropped %d events, want at least %d", got, n-1-4)
	}
	release()
	f.writer.Close()
	page, err := db.Search(context.Background(), mustQuery(t, "AuditEvent"))
	if err != nil {
		t.Fatal(err)
	}
	if want := n - int(f.writer.Dropped()); page.Total != want {
		t.Errorf("%d AuditEvents stored, want %d (recorded %d, dropped %d)", page.Total, want, n, f.writer.Dropped())
	}
}

func mustQuery(t *testing.T, typ string) *search.Query {
	t.Helper()
	q, _, err := search.Default().Parse([]string{typ}, url.Values{"_total": {"accurate"}}, search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return q
}
