package bulk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// backend is a store both the REST API and the bulk handler run on.
type backend interface {
	Store
	rest.Store
	Close() error
}

// openBackend opens the store of a test server: a SQLite file, or while
// TestOnMongo runs, a database of its MongoDB server (mongo_test.go).
// The tests of this package do not run in parallel, so TestOnMongo can
// swap it for the tests it runs.
var openBackend = func(t *testing.T) backend {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// server is Kiln's serving shape in one process: the REST API behind the
// bulk handler, as cmd/kiln wires them, on a real store (a SQLite file,
// or MongoDB) and real HTTP on loopback.
type server struct {
	t    *testing.T
	st   backend
	cfg  Config
	mu   sync.Mutex
	bulk *Handler
	api  *rest.API
	srv  *httptest.Server
}

func newServer(t *testing.T, cfg Config) *server {
	t.Helper()
	st := openBackend(t)
	s := &server{t: t, st: st, cfg: testConfig(cfg)}
	s.api = rest.New(rest.Config{}, st)
	s.bulk = New(s.cfg, st)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.bulk
		s.mu.Unlock()
		if b.Match(r) {
			b.ServeHTTP(w, r)
			return
		}
		s.api.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		s.bulk.Close()
		s.mu.Unlock()
		st.Close()
	})
	return s
}

func testConfig(cfg Config) Config {
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.Settle == 0 {
		cfg.Settle = -1
	}
	if cfg.MinPoll == 0 {
		cfg.MinPoll = -1 // the helpers poll every 20 ms; TestPollTooOften sets it
	}
	return cfg
}

// restart stops the bulk handler and starts another on the same store,
// as a new process would.
func (s *server) restart(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bulk.Close()
	s.cfg = testConfig(cfg)
	s.bulk = New(s.cfg, s.st)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *server) do(method, path string, body []byte, header ...string) response {
	s.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = s.srv.URL + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

// put creates or updates typ/id through the REST API.
func (s *server) put(typ, id, body string) {
	s.t.Helper()
	r := s.do("PUT", "/"+typ+"/"+id, []byte(body), "Content-Type", "application/fhir+json")
	if r.status != 200 && r.status != 201 {
		s.t.Fatalf("PUT %s/%s: %d %s", typ, id, r.status, r.body)
	}
}

func (s *server) del(typ, id string) {
	s.t.Helper()
	if r := s.do("DELETE", "/"+typ+"/"+id, nil); r.status >= 300 {
		s.t.Fatalf("DELETE %s/%s: %d %s", typ, id, r.status, r.body)
	}
}

var kickoffHeaders = []string{"Accept", "application/fhir+json", "Prefer", "respond-async"}

// kickoff starts an export and returns its status URL.
func (s *server) kickoff(path string, header ...string) string {
	s.t.Helper()
	r := s.do("GET", path, nil, append(slices.Clone(kickoffHeaders), header...)...)
	if r.status != http.StatusAccepted {
		s.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	loc := r.header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.srv.URL+"/") {
		s.t.Fatalf("Content-Location %q is not an absolute URL on the server (E-KO-03)", loc)
	}
	return loc
}

type manifestT struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken *bool          `json:"requiresAccessToken"`
	Output              []manifestFile `json:"output"`
	Error               []manifestFile `json:"error"`
	Deleted             []manifestFile `json:"deleted"`
}

// poll waits for the export to finish and returns its manifest, checking
// the status answers on the way (E-ST-01, E-ST-05, E-ST-06).
func (s *server) poll(status string, header ...string) manifestT {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do("GET", status, nil, header...)
		switch r.status {
		case http.StatusAccepted:
			if p := r.header.Get("X-Progress"); len(p) >= 100 {
				s.t.Errorf("X-Progress has %d characters, want under 100", len(p))
			}
			if r.header.Get("Retry-After") == "" {
				s.t.Errorf("202 without Retry-After")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		case http.StatusOK:
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				s.t.Errorf("manifest Content-Type %q, want application/json", ct)
			}
			if r.header.Get("Expires") == "" {
				s.t.Errorf("manifest without Expires")
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &raw); err != nil {
				s.t.Fatalf("manifest: %v: %s", err, r.body)
			}
			for _, k := range []string{"transactionTime", "request", "requiresAccessToken", "output", "error"} {
				if _, ok := raw[k]; !ok {
					s.t.Errorf("manifest lacks %s: %s", k, r.body)
				}
			}
			var m manifestT
			if err := json.Unmarshal(r.body, &m); err != nil {
				s.t.Fatal(err)
			}
			for _, f := range append(append(slices.Clone(m.Output), m.Error...), m.Deleted...) {
				if u, err := url.Parse(f.URL); err != nil || u.Scheme != "http" || u.Host == "" || f.Type == "" {
					s.t.Errorf("manifest file %+v: want a type and an absolute URL (E-ST-07)", f)
				}
			}
			return m
		default:
			s.t.Fatalf("poll %s: %d %s", status, r.status, r.body)
		}
	}
	s.t.Fatalf("export %s did not finish", status)
	return manifestT{}
}

// download fetches every output file and returns the resources by type,
// checking one type per file, one resource per line, and the counts.
func (s *server) download(files []manifestFile, header ...string) map[string][]map[string]any {
	s.t.Helper()
	out := map[string][]map[string]any{}
	for _, f := range files {
		r := s.do("GET", f.URL, nil, header...)
		if r.status != 200 {
			s.t.Fatalf("GET %s: %d %s", f.URL, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			s.t.Errorf("file Content-Type %q (E-FI-01)", ct)
		}
		lines := bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n"))
		if len(r.body) == 0 {
			lines = nil
		}
		if len(lines) != f.Count {
			s.t.Errorf("%s: %d lines, manifest count %d", f.URL, len(lines), f.Count)
		}
		for _, l := range lines {
			var res map[string]any
			if err := json.Unmarshal(l, &res); err != nil {
				s.t.Fatalf("%s: line %q: %v", f.URL, l, err)
			}
			if res["resourceType"] != f.Type {
				s.t.Errorf("%s: a %v in a %s file", f.URL, res["resourceType"], f.Type)
			}
			out[f.Type] = append(out[f.Type], res)
		}
	}
	return out
}

// ids lists "Type/id" of exported resources, sorted.
func ids(got map[string][]map[string]any) []string {
	var out []string
	for typ, rs := range got {
		for _, r := range rs {
			out = append(out, typ+"/"+r["id"].(string))
		}
	}
	sort.Strings(out)
	return out
}

// current lists "Type/id" of the store's current resources of types, by
// search: the store's own answer, independent of the export's scan.
func current(t *testing.T, st store.Searcher, types ...string) []string {
	t.Helper()
	var out []string
	for _, typ := range types {
		q := &search.Query{Types: []string{typ}, Count: 1000}
		for {
			p, err := st.Search(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Matches {
				out = append(out, typ+"/"+r.ID)
			}
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
	}
	sort.Strings(out)
	return out
}

// sameAsStore checks that every exported resource is byte for byte the
// store's current version (E-FI-04).
func sameAsStore(t *testing.T, st store.Resources, s *server, files []manifestFile) {
	t.Helper()
	for _, f := range files {
		r := s.do("GET", f.URL, nil)
		for _, line := range bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n")) {
			var head struct{ ID string }
			json.Unmarshal(line, &head)
			cur, err := st.Read(t.Context(), f.Type, head.ID)
			if err != nil {
				t.Errorf("%s/%s: %v", f.Type, head.ID, err)
				continue
			}
			if !bytes.Equal(cur.Body, line) {
				t.Errorf("%s/%s exported as %s, stored %s", f.Type, head.ID, line, cur.Body)
			}
		}
	}
}

func patientJSON(id, gender string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"gender":%q,"name":[{"family":"F%s"}]}`, id, gender, id)
}

func observationJSON(id, patient, code string) string {
	subject := ""
	if patient != "" {
		subject = fmt.Sprintf(`,"subject":{"reference":"Patient/%s"}`, patient)
	}
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]}%s}`,
		id, code, subject)
}

// seed writes three patients, their observations and encounters, an
// observation of no patient, a practitioner, and Group g1 of p1 and p2.
func seed(s *server) {
	for _, p := range []string{"p1", "p2", "p3"} {
		s.put("Patient", p, patientJSON(p, "female"))
		s.put("Observation", "o-"+p+"-a", observationJSON("o-"+p+"-a", p, "8867-4"))
		s.put("Observation", "o-"+p+"-b", observationJSON("o-"+p+"-b", p, "29463-7"))
		s.put("Encounter", "e-"+p, fmt.Sprintf(`{"resourceType":"Encounter","id":"e-%s","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/%s"}}`, p, p))
	}
	s.put("Observation", "o-none", observationJSON("o-none", "", "8867-4"))
	s.put("Practitioner", "dr", `{"resourceType":"Practitioner","id":"dr"}`)
	s.put("Group", "g1", `{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}}]}`)
}

func TestExportLevels(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	s.put("Group", "g-empty", `{"resourceType":"Group","id":"g-empty","type":"person","actual":true}`)
	all := current(t, s.st, "Patient", "Observation", "Encounter", "Practitioner", "Group")
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		// No member, no patient: nothing, not everyone (the empty
		// patient list must survive the job store).
		{"empty group", "/Group/g-empty/$export", nil},
		{"system", "/$export", all},
		{"system _type", "/$export?_type=Patient,Practitioner", current(t, s.st, "Patient", "Practitioner")},
		{"repeated _type is comma-joined (E-KO-07)", "/$export?_type=Patient&_type=Practitioner", current(t, s.st, "Patient", "Practitioner")},
		{"patient", "/Patient/$export", []string{"Encounter/e-p1", "Encounter/e-p2", "Encounter/e-p3", "Group/g1",
			"Observation/o-p1-a", "Observation/o-p1-b", "Observation/o-p2-a", "Observation/o-p2-b", "Observation/o-p3-a", "Observation/o-p3-b",
			"Patient/p1", "Patient/p2", "Patient/p3"}},
		// The Group is in its members' compartments (Group.member).
		{"group", "/Group/g1/$export", []string{"Encounter/e-p1", "Encounter/e-p2", "Group/g1",
			"Observation/o-p1-a", "Observation/o-p1-b", "Observation/o-p2-a", "Observation/o-p2-b",
			"Patient/p1", "Patient/p2"}},
		{"group _type", "/Group/g1/$export?_type=Patient", []string{"Patient/p1", "Patient/p2"}},
		{"_typeFilter", "/$export?_type=Observation,Patient&_typeFilter=" + url.QueryEscape("Observation?code=29463-7"),
			[]string{"Observation/o-p1-b", "Observation/o-p2-b", "Observation/o-p3-b", "Patient/p1", "Patient/p2", "Patient/p3"}},
		{"_typeFilter queries OR'd", "/Group/g1/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?code=29463-7") +
			"&_typeFilter=" + url.QueryEscape("Observation?_id=o-p1-a"),
			[]string{"Observation/o-p1-a", "Observation/o-p1-b", "Observation/o-p2-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := s.poll(s.kickoff(tc.path))
			if *m.RequiresAccessToken {
				t.Errorf("requiresAccessToken true without an authorizer")
			}
			if m.Request != s.srv.URL+tc.path {
				t.Errorf("request %q, want %q", m.Request, s.srv.URL+tc.path)
			}
			if len(m.Error) != 0 || m.Deleted != nil {
				t.Errorf("error %v, deleted %v: want empty, absent", m.Error, m.Deleted)
			}
			got := ids(s.download(m.Output))
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported\n%v\nwant\n%v", got, tc.want)
			}
			sameAsStore(t, s.st, s, m.Output)
		})
	}
}

func TestExportPOST(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Observation"},
		{"name":"patient","valueReference":{"reference":"Patient/p2"}},{"name":"_outputFormat","valueString":"ndjson"}]}`
	r := s.do("POST", "/Patient/$export", []byte(body), append(slices.Clone(kickoffHeaders), "Content-Type", "application/fhir+json")...)
	if r.status != 202 {
		t.Fatalf("POST kick-off: %d %s", r.status, r.body)
	}
	m := s.poll(r.header.Get("Content-Location"))
	if m.Request != s.srv.URL+"/Patient/$export" {
		t.Errorf("request %q: a POST kick-off's URL without parameters", m.Request)
	}
	want := []string{"Observation/o-p2-a", "Observation/o-p2-b", "Patient/p2"}
	if got := ids(s.download(m.Output)); !slices.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}

	// E-PA-05: a patient outside the group, or unknown, is an error.
	// Not allowed on a system export.
	for _, tc := range []struct{ path, patient string }{{"/Group/g1/$export", "Patient/p3"}, {"/Patient/$export", "Patient/nobody"},
		{"/$export", "Patient/p1"}, {"/Patient/$export", "Observation/o-p1-a"}} {
		body := fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":%q}}]}`, tc.patient)
		r := s.do("POST", tc.path, []byte(body), kickoffHeaders...)
		expectOutcome(t, r, 400, tc.path+" patient="+tc.patient)
	}
}

func TestElements(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	m := s.poll(s.kickoff("/$export?_type=Patient,Practitioner&_elements=Patient.gender"))
	got := s.download(m.Output)
	for _, p := range got["Patient"] {
		if _, ok := p["name"]; ok || p["gender"] != "female" {
			t.Errorf("Patient with _elements=Patient.gender: %v", p)
		}
		tags, _ := json.Marshal(p["meta"])
		if !strings.Contains(string(tags), "SUBSETTED") {
			t.Errorf("Patient not tagged SUBSETTED: %s", tags)
		}
	}
	if len(got["Patient"]) != 3 || len(got["Practitioner"]) != 1 {
		t.Errorf("exported %v", ids(got))
	}
	sameAsStore(t, s.st, s, m.Output[1:]) // Practitioner: named elements of another type leave it whole
}

func TestSince(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	first := s.poll(s.kickoff("/$export"))
	time.Sleep(2 * time.Millisecond)
	s.put("Patient", "p1", patientJSON("p1", "male"))
	s.put("Patient", "p4", patientJSON("p4", "other"))
	s.del("Observation", "o-p2-a")
	s.put("Observation", "o-p3-a", observationJSON("o-p3-a", "p3", "1-1"))
	s.del("Observation", "o-p3-a")

	since := url.QueryEscape(first.TransactionTime)
	for _, tc := range []struct {
		name, path    string
		want, deleted []string
	}{
		{"system", "/$export?_since=" + since, []string{"Patient/p1", "Patient/p4"}, []string{"Observation/o-p2-a", "Observation/o-p3-a"}},
		{"group", "/Group/g1/$export?_since=" + since, []string{"Patient/p1"}, []string{"Observation/o-p2-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := s.poll(s.kickoff(tc.path))
			got := s.download(m.Output)
			if ids := ids(got); !slices.Equal(ids, tc.want) {
				t.Errorf("exported %v, want %v", ids, tc.want)
			}
			if got["Patient"][0]["gender"] != "male" {
				t.Errorf("Patient/p1 exported as %v, want the update", got["Patient"][0])
			}
			if m.Deleted == nil {
				t.Fatalf("a _since export without deleted[]")
			}
			var deleted []string
			for typ, bundles := range s.download(m.Deleted) {
				if typ != "Bundle" {
					t.Errorf("deleted file of type %s", typ)
				}
				for _, b := range bundles {
					if b["type"] != "transaction" {
						t.Errorf("deleted Bundle type %v", b["type"])
					}
					for _, e := range b["entry"].([]any) {
						req := e.(map[string]any)["request"].(map[string]any)
						if req["method"] != "DELETE" {
							t.Errorf("deleted entry %v", req)
						}
						deleted = append(deleted, req["url"].(string))
					}
				}
			}
			sort.Strings(deleted)
			if !slices.Equal(deleted, tc.deleted) {
				t.Errorf("deleted %v, want %v", deleted, tc.deleted)
			}
		})
	}
}

// TestSnapshot writes while an export runs: the export holds the versions
// current at transactionTime, nothing written later (E-ST-06).
func TestSnapshot(t *testing.T) {
	var once sync.Once
	var s *server
	s = newServer(t, Config{pageSize: 2, pageHook: func(job, typ string) {
		if typ == "Patient" {
			once.Do(func() {
				s.put("Patient", "p3", patientJSON("p3", "male"))
				s.put("Patient", "p9", patientJSON("p9", "male"))
				s.del("Patient", "p2")
			})
		}
	}})
	seed(s)
	m := s.poll(s.kickoff("/$export?_type=Patient"))
	got := s.download(m.Output)
	if ids := ids(got); !slices.Equal(ids, []string{"Patient/p1", "Patient/p2", "Patient/p3"}) {
		t.Errorf("exported %v", ids)
	}
	for _, p := range got["Patient"] {
		if p["gender"] != "female" {
			t.Errorf("exported a version written after transactionTime: %v", p)
		}
	}
}

func TestFileSplit(t *testing.T) {
	s := newServer(t, Config{MaxFileSize: 400})
	seed(s)
	m := s.poll(s.kickoff("/$export?_type=Observation"))
	if len(m.Output) < 2 {
		t.Fatalf("%d files for 7 observations at 400 bytes a file", len(m.Output))
	}
	if got, want := ids(s.download(m.Output)), current(t, s.st, "Observation"); !slices.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}

// TestLargeResource: a resource larger than a chunk makes a chunk of its
// own, stored compressed and served whole.
func TestLargeResource(t *testing.T) {
	s := newServer(t, Config{})
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("kiln large binary "), 300_000)) // ~7 MB
	s.put("Binary", "big", fmt.Sprintf(`{"resourceType":"Binary","id":"big","contentType":"text/plain","data":%q}`, data))
	s.put("Binary", "small", `{"resourceType":"Binary","id":"small","contentType":"text/plain","data":"a2lsbg=="}`)
	m := s.poll(s.kickoff("/$export?_type=Binary"))
	got := s.download(m.Output)
	if ids := ids(got); !slices.Equal(ids, []string{"Binary/big", "Binary/small"}) || got["Binary"][0]["data"] != data {
		t.Errorf("exported %v", ids)
	}
	sameAsStore(t, s.st, s, m.Output)
}

func TestKickoffErrors(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	for _, tc := range []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"no Prefer", "/$export", []string{"Accept", "application/fhir+json"}, 400},
		{"no Accept", "/$export", []string{"Prefer", "respond-async"}, 400},
		{"unknown _outputFormat", "/$export?_outputFormat=text/csv", kickoffHeaders, 400},
		{"bad _since", "/$export?_since=yesterday", kickoffHeaders, 400},
		{"unknown type", "/$export?_type=Nonsense", kickoffHeaders, 400},
		{"type outside the compartment", "/Patient/$export?_type=Practitioner", kickoffHeaders, 400},
		{"unknown parameter, strict", "/$export?_foo=1", append(slices.Clone(kickoffHeaders), "Prefer", "handling=strict"), 400},
		{"patient on GET", "/Patient/$export?patient=Patient/p1", kickoffHeaders, 400},
		{"result parameter in _typeFilter", "/$export?_type=Patient&_typeFilter=" + url.QueryEscape("Patient?_sort=name"), kickoffHeaders, 400},
		{"bad _typeFilter", "/$export?_type=Patient&_typeFilter=" + url.QueryEscape("Patient?nonsense=1"), kickoffHeaders, 400},
		{"unknown group", "/Group/nope/$export", kickoffHeaders, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOutcome(t, s.do("GET", tc.path, nil, tc.header...), tc.status, tc.name)
		})
	}
	jobs, _ := s.st.Jobs(t.Context(), kind)
	if len(jobs) != 0 {
		t.Errorf("refused kick-offs left %d jobs", len(jobs))
	}
}

// E-PA-01: each NDJSON name is accepted; E-PA-08: ignored parameters are
// reported in error files.
func TestLenient(t *testing.T) {
	s := newServer(t, Config{MaxJobs: 10})
	seed(s)
	for _, f := range []string{"application/fhir+ndjson", "application/ndjson", "ndjson", "application/fhir+ndjson&_since=2024-01-01T00:00:00+01:00"} {
		// The last has its '+' unescaped, as clients often send it.
		q := url.QueryEscape(f)
		if strings.Contains(f, "&") {
			q = f
		}
		st := s.kickoff("/$export?_type=Practitioner&_outputFormat=" + q)
		if r := s.do("DELETE", st, nil); r.status != 202 {
			t.Errorf("DELETE: %d", r.status)
		}
	}
	m := s.poll(s.kickoff("/$export?_type=Practitioner,Nonsense&_foo=1&includeAssociatedData=_kilnNone",
		"Prefer", "handling=lenient"))
	if got := ids(s.download(m.Output)); !slices.Equal(got, []string{"Practitioner/dr"}) {
		t.Errorf("exported %v", got)
	}
	errs := s.download(m.Error)
	var params []string
	for _, oo := range errs["OperationOutcome"] {
		is := oo["issue"].([]any)[0].(map[string]any)
		params = append(params, is["expression"].([]any)[0].(string))
	}
	sort.Strings(params)
	if want := []string{"_foo", "_type", "includeAssociatedData"}; !slices.Equal(params, want) {
		t.Errorf("error file reports %v, want %v", params, want)
	}
}

// TestIncludeAssociatedData (E-PA-06): LatestProvenanceResources adds
// each exported resource's latest Provenance, RelevantProvenanceResources
// all of them, both together are Relevant, and no other Provenance is
// exported; an undefined value is ignored and reported, or refused under
// handling=strict.
func TestIncludeAssociatedData(t *testing.T) {
	s := newServer(t, Config{MaxJobs: 20})
	seed(s)
	for _, p := range []struct{ id, target, recorded string }{
		{"prov-old", "Observation/o-p1-a", "2024-01-01T00:00:00Z"},
		{"prov-new", "Observation/o-p1-a/_history/1", "2024-06-01T00:00:00+02:00"},
		{"prov-p3", "Patient/p3", "2024-01-01T00:00:00Z"},
		{"prov-dr", "Practitioner/dr", "2024-01-01T00:00:00Z"},
	} {
		s.put("Provenance", p.id, fmt.Sprintf(`{"resourceType":"Provenance","id":%q,"target":[{"reference":%q}],"recorded":%q,"agent":[{"who":{"reference":"Practitioner/dr"}}]}`,
			p.id, p.target, p.recorded))
	}
	provenance := func(path string, header ...string) ([]string, manifestT) {
		t.Helper()
		m := s.poll(s.kickoff(path, header...))
		var out []string
		for _, id := range ids(s.download(m.Output)) {
			if strings.HasPrefix(id, "Provenance/") {
				out = append(out, id)
			}
		}
		return out, m
	}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"latest", "/$export?_type=Observation,Patient&includeAssociatedData=LatestProvenanceResources",
			[]string{"Provenance/prov-new", "Provenance/prov-p3"}},
		{"relevant", "/$export?_type=Observation,Patient&includeAssociatedData=RelevantProvenanceResources",
			[]string{"Provenance/prov-new", "Provenance/prov-old", "Provenance/prov-p3"}},
		{"both: the least restrictive", "/$export?_type=Observation,Patient&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources",
			[]string{"Provenance/prov-new", "Provenance/prov-old", "Provenance/prov-p3"}},
		{"no other Provenance, even in _type", "/$export?_type=Patient,Provenance&includeAssociatedData=LatestProvenanceResources",
			[]string{"Provenance/prov-p3"}},
		{"group", "/Group/g1/$export?includeAssociatedData=LatestProvenanceResources", []string{"Provenance/prov-new"}},
		{"without: Provenance is a type", "/$export?_type=Provenance", []string{"Provenance/prov-dr", "Provenance/prov-new", "Provenance/prov-old", "Provenance/prov-p3"}},
		// E-PA-06: without the parameter a Patient or Group export holds
		// every Provenance whose target is in the compartment (an
		// Observation's too), not only those naming the Patient.
		{"patient level without: targets in the compartment", "/Patient/$export",
			[]string{"Provenance/prov-new", "Provenance/prov-old", "Provenance/prov-p3"}},
		{"group without: its members' compartments", "/Group/g1/$export", []string{"Provenance/prov-new", "Provenance/prov-old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m := provenance(tc.path)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Provenance exported %v, want %v", got, tc.want)
			}
			if len(m.Error) != 0 {
				t.Errorf("error files %v", m.Error)
			}
		})
	}

	const path = "/$export?_type=Practitioner&includeAssociatedData=_kilnNone"
	issues := expectOutcome(t, s.do("GET", path, nil, append(slices.Clone(kickoffHeaders), "Prefer", "handling=strict")...),
		http.StatusBadRequest, "an undefined includeAssociatedData value under handling=strict")
	if len(issues) != 1 || !slices.Equal(issues[0].Expression, []string{"includeAssociatedData"}) {
		t.Errorf("strict refusal: %+v", issues)
	}
	got, m := provenance(path)
	if len(got) != 0 {
		t.Errorf("exported %v", got)
	}
	var reported []string
	for _, oo := range s.download(m.Error)["OperationOutcome"] {
		is := oo["issue"].([]any)[0].(map[string]any)
		reported = append(reported, is["severity"].(string)+" "+is["expression"].([]any)[0].(string))
	}
	if !slices.Equal(reported, []string{"warning includeAssociatedData"}) {
		t.Errorf("error files report %v, want the ignored includeAssociatedData value", reported)
	}
}

func TestCancel(t *testing.T) {
	block := make(chan struct{})
	s := newServer(t, Config{pageSize: 1, pageHook: func(string, string) { <-block }})
	defer close(block)
	seed(s)
	st := s.kickoff("/$export")
	// E-ST-01: in progress, 202 with X-Progress (under 100 characters) and
	// Retry-After.
	r := s.do("GET", st, nil)
	if r.status != 202 || r.header.Get("Retry-After") == "" || r.header.Get("X-Progress") == "" || len(r.header.Get("X-Progress")) >= 100 {
		t.Errorf("running export: %d, Retry-After %q, X-Progress %q", r.status, r.header.Get("Retry-After"), r.header.Get("X-Progress"))
	}
	if r := s.do("DELETE", st, nil); r.status != 202 {
		t.Fatalf("DELETE %s: %d %s", st, r.status, r.body)
	}
	expectOutcome(t, s.do("GET", st, nil), 404, "poll after cancel (E-ST-09)")
	expectOutcome(t, s.do("DELETE", st, nil), 404, "second DELETE")
	expectOutcome(t, s.do("GET", s.srv.URL+statusPath+"no-such-job", nil), 404, "unknown job")
}

func TestCancelAfterCompletionRemovesFiles(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	st := s.kickoff("/$export?_type=Patient")
	m := s.poll(st)
	if r := s.do("DELETE", st, nil); r.status != 202 {
		t.Fatalf("DELETE: %d", r.status)
	}
	expectOutcome(t, s.do("GET", m.Output[0].URL, nil), 404, "file after cancel")
	if _, err := s.st.Chunk(t.Context(), jobID(st), "Patient-1.ndjson", 0); err == nil {
		t.Errorf("file still stored after cancel")
	}
}

func jobID(status string) string { return status[strings.LastIndex(status, "/")+1:] }

func TestExpiry(t *testing.T) {
	s := newServer(t, Config{Expiry: 100 * time.Millisecond})
	seed(s)
	st := s.kickoff("/$export?_type=Patient")
	m := s.poll(st)
	time.Sleep(300 * time.Millisecond)
	expectOutcome(t, s.do("GET", st, nil), 404, "status after expiry")
	expectOutcome(t, s.do("GET", m.Output[0].URL, nil), 404, "file after expiry")
}

func TestTooManyJobs(t *testing.T) {
	block := make(chan struct{})
	s := newServer(t, Config{MaxJobs: 1, pageSize: 1, pageHook: func(string, string) { <-block }})
	seed(s)
	st := s.kickoff("/$export")
	r := s.do("GET", "/$export", nil, kickoffHeaders...)
	expectOutcome(t, r, 429, "second export past MaxJobs")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	close(block)
	s.poll(st)
	s.poll(s.kickoff("/$export?_type=Patient")) // room again
}

func TestConcurrentExports(t *testing.T) {
	s := newServer(t, Config{Workers: 2, pageSize: 2})
	seed(s)
	a := s.kickoff("/$export?_type=Observation")
	b := s.kickoff("/Group/g1/$export?_type=Patient")
	mb, ma := s.poll(b), s.poll(a)
	if got := ids(s.download(ma.Output)); !slices.Equal(got, current(t, s.st, "Observation")) {
		t.Errorf("first export: %v", got)
	}
	if got := ids(s.download(mb.Output)); !slices.Equal(got, []string{"Patient/p1", "Patient/p2"}) {
		t.Errorf("second export: %v", got)
	}
}

// TestTwoProcesses: jobs live in the store, so a second process on the
// same store polls, downloads and cancels the first one's exports, and
// both processes' workers run them.
func TestTwoProcesses(t *testing.T) {
	s := newServer(t, Config{MaxJobs: 10, Workers: 1})
	seed(s)
	other := New(testConfig(Config{Workers: 1}), s.st)
	defer other.Close()
	srv2 := httptest.NewServer(other)
	defer srv2.Close()
	var status []string
	for range 4 {
		status = append(status, s.kickoff("/$export?_type=Patient"))
	}
	for _, st := range status {
		m := s.poll(strings.Replace(st, s.srv.URL, srv2.URL, 1))
		if got := ids(s.download(m.Output)); !slices.Equal(got, current(t, s.st, "Patient")) {
			t.Errorf("%s: %v", st, got)
		}
		if r := s.do("DELETE", strings.Replace(st, s.srv.URL, srv2.URL, 1), nil); r.status != 202 {
			t.Errorf("DELETE through the other process: %d", r.status)
		}
		expectOutcome(t, s.do("GET", st, nil), 404, "poll after the other process cancelled")
	}
}

// TestRestart stops the server mid-export; the next one resumes the job at
// the same transactionTime, and the result is whole.
func TestRestart(t *testing.T) {
	block := make(chan struct{})
	reached := make(chan struct{}, 100)
	s := newServer(t, Config{pageSize: 1, pageHook: func(string, string) {
		reached <- struct{}{}
		<-block
	}})
	seed(s)
	st := s.kickoff("/$export")
	<-reached
	go func() { time.Sleep(50 * time.Millisecond); close(block) }()
	s.restart(Config{pageSize: 1})
	s.put("Patient", "late", patientJSON("late", "male")) // after transactionTime
	m := s.poll(st)
	all := current(t, s.st, "Patient", "Observation", "Encounter", "Practitioner", "Group")
	all = slices.DeleteFunc(all, func(s string) bool { return s == "Patient/late" })
	if got := ids(s.download(m.Output)); !slices.Equal(got, all) {
		t.Errorf("after a restart exported\n%v\nwant\n%v", got, all)
	}
	j, _ := s.st.Job(t.Context(), jobID(st))
	if j.Attempts != 2 {
		t.Errorf("attempts %d, want 2", j.Attempts)
	}
}

// TestInterruptedTooOften: a job interrupted past MaxAttempts fails with
// an OperationOutcome instead of a manifest lacking data (E-ST-03).
func TestInterruptedTooOften(t *testing.T) {
	block := make(chan struct{})
	reached := make(chan struct{}, 100)
	s := newServer(t, Config{MaxAttempts: 1, pageSize: 1, pageHook: func(string, string) {
		reached <- struct{}{}
		<-block
	}})
	seed(s)
	st := s.kickoff("/$export")
	<-reached
	go func() { time.Sleep(50 * time.Millisecond); close(block) }()
	s.restart(Config{MaxAttempts: 1})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do("GET", st, nil)
		if r.status == 202 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		issues := expectOutcome(t, r, 500, "interrupted job")
		if len(issues) == 0 || !strings.Contains(issues[0].Diagnostics, "interrupted") {
			t.Errorf("issues %+v", issues)
		}
		return
	}
	t.Fatal("job did not end")
}

// tokens is a small Authorizer: bearer token → grant.
type tokens map[string]Grant

func (tk tokens) Export(r *http.Request) (Grant, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return Grant{}, outcome.New(401, outcome.CodeLogin, "a bearer token is required")
	}
	g, ok := tk[tok]
	if !ok {
		return Grant{}, outcome.New(401, outcome.CodeLogin, "invalid token")
	}
	return g, nil
}

func TestAuthorization(t *testing.T) {
	s := newServer(t, Config{Authorizer: tokens{
		"sys":   {Client: "analytics"},
		"other": {Client: "someone-else"},
		"obs":   {Client: "narrow", Types: []string{"Observation", "Patient"}},
		"p2":    {Client: "portal", Patient: "p2"},
		"p3":    {Client: "portal p3", Patient: "p3"},
	}})
	seed(s)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	expectOutcome(t, s.do("GET", "/$export", nil, kickoffHeaders...), 401, "kick-off without a token (E-KO-05)")
	st := s.kickoff("/$export?_type=Patient", bearer("sys")...)
	expectOutcome(t, s.do("GET", st, nil), 401, "poll without a token")
	expectOutcome(t, s.do("GET", st, nil, bearer("other")...), 403, "poll by another client")
	m := s.poll(st, bearer("sys")...)
	if !*m.RequiresAccessToken {
		t.Errorf("requiresAccessToken false with an authorizer (E-ST-06)")
	}
	expectOutcome(t, s.do("GET", m.Output[0].URL, nil), 401, "file without a token (E-FI-02)")
	expectOutcome(t, s.do("GET", m.Output[0].URL, nil, bearer("bogus")...), 401, "file with a wrong token")
	expectOutcome(t, s.do("GET", m.Output[0].URL, nil, bearer("other")...), 403, "file with another client's token (E-FI-08)")
	s.download(m.Output, bearer("sys")...)
	expectOutcome(t, s.do("DELETE", st, nil, bearer("other")...), 403, "cancel by another client")

	// E-KO-08: only what the client may read.
	m = s.poll(s.kickoff("/$export", bearer("obs")...), bearer("obs")...)
	if got := ids(s.download(m.Output, bearer("obs")...)); !slices.Equal(got, current(t, s.st, "Observation", "Patient")) {
		t.Errorf("type-limited grant exported %v", got)
	}
	expectOutcome(t, s.do("GET", "/$export?_type=Practitioner", nil, append(slices.Clone(kickoffHeaders), bearer("obs")...)...), 403, "a type the client may not read")
	expectOutcome(t, s.do("GET", "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources", nil,
		append(slices.Clone(kickoffHeaders), bearer("obs")...)...), 403, "Provenance for a client that may not read Provenance")
	m = s.poll(s.kickoff("/$export", bearer("p2")...), bearer("p2")...)
	want := []string{"Encounter/e-p2", "Group/g1", "Observation/o-p2-a", "Observation/o-p2-b", "Patient/p2"}
	if got := ids(s.download(m.Output, bearer("p2")...)); !slices.Equal(got, want) {
		t.Errorf("patient-confined grant exported %v, want %v", got, want)
	}
	// The patient parameter of a confined grant names its own patient
	// or is refused before any lookup: an existing patient, a member of
	// the Group and an unknown id all answer the same 403.
	for _, tc := range []struct{ path, patient string }{{"/Patient/$export", "Patient/p1"}, {"/Patient/$export", "Patient/nobody"},
		{"/Group/g1/$export", "Patient/p1"}, {"/Group/g1/$export", "Patient/p3"}} {
		body := fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":%q}}]}`, tc.patient)
		r := s.do("POST", tc.path, []byte(body), append(slices.Clone(kickoffHeaders), bearer("p2")...)...)
		expectOutcome(t, r, 403, tc.path+" patient="+tc.patient+" with a grant confined to p2")
	}
	// A Group without the grant's patient exports nothing of its
	// members (issue 5: patient A's token never reaches patient B).
	m = s.poll(s.kickoff("/Group/g1/$export", bearer("p3")...), bearer("p3")...)
	if got := ids(s.download(m.Output, bearer("p3")...)); len(got) != 0 {
		t.Errorf("grant confined to p3 exported %v from a Group of p1 and p2, want nothing", got)
	}
}

// expectOutcome checks an error answer: the status and an
// OperationOutcome body as application/fhir+json (E-KO-04, E-ST-03).
func expectOutcome(t *testing.T, r response, status int, what string) []outcome.Issue {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d: %s", what, r.status, status, r.body)
		return nil
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	var oo struct {
		ResourceType string          `json:"resourceType"`
		Issue        []outcome.Issue `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Errorf("%s: body is not an OperationOutcome: %s", what, r.body)
	}
	return oo.Issue
}

// TestConformance runs the black-box export scenarios of
// conformance/apitest in process.
func TestConformance(t *testing.T) {
	s := newServer(t, Config{MaxJobs: 10})
	apitest.RunExport(t, s.srv.URL)
}

// TestLanes: an export reads Lanes types at once, and the manifest lists
// the files in the order of the types whatever order they finish in. The
// hook holds every page until both lanes have read one: one lane would
// wait for ever (the test's deadline).
func TestLanes(t *testing.T) {
	var (
		mu      sync.Mutex
		reading = map[string]bool{}
		both    = make(chan struct{})
		once    sync.Once
	)
	s := newServer(t, Config{Lanes: 2, pageSize: 1, pageHook: func(_, typ string) {
		mu.Lock()
		reading[typ] = true
		n := len(reading)
		mu.Unlock()
		if n >= 2 {
			once.Do(func() { close(both) })
		}
		select {
		case <-both:
		case <-time.After(10 * time.Second):
		}
	}})
	seed(s)
	start := time.Now()
	m := s.poll(s.kickoff("/$export?_type=Patient,Observation,Encounter"))
	if time.Since(start) > 9*time.Second {
		t.Errorf("export took %v: the types were read one after another", time.Since(start))
	}
	var types []string
	for _, f := range m.Output {
		types = append(types, f.Type)
	}
	if want := []string{"Patient", "Observation", "Encounter"}; !slices.Equal(types, want) {
		t.Errorf("manifest types %v, want %v (the order of _type)", types, want)
	}
	if got, want := ids(s.download(m.Output)), current(t, s.st, "Patient", "Observation", "Encounter"); !slices.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}

// TestPollTooOften: a poll of a running export less than MinPoll after
// the previous one gets 429 with Retry-After and an OperationOutcome
// (E-ST-02), whichever process it reaches: a second handler on the same
// store stands for a second Kiln process (issue 7), and its polls count
// with the first's. After MinPoll the next poll is answered; the manifest
// is never refused.
func TestPollTooOften(t *testing.T) {
	block := make(chan struct{})
	// Long enough that two requests in a row fall within it however
	// loaded the machine.
	const minPoll = 2 * time.Second
	// Either process may claim the export: both hold it at its first page.
	cfg := Config{MinPoll: minPoll, pageSize: 1, pageHook: func(string, string) { <-block }}
	s := newServer(t, cfg)
	seed(s)
	other := New(testConfig(cfg), s.st)
	defer other.Close()
	otherSrv := httptest.NewServer(other)
	defer otherSrv.Close()
	release := sync.OnceFunc(func() { close(block) })
	defer release() // before the handlers close: a held worker would not stop
	status := s.kickoff("/$export?_type=Patient")
	id := status[strings.LastIndex(status, "/")+1:]
	poll := func(base string) response { return s.do("GET", base+statusPath+id, nil) }

	if r := poll(s.srv.URL); r.status != 202 {
		t.Fatalf("first poll: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ name, base string }{
		{"same process", s.srv.URL},
		{"another process", otherSrv.URL},
	} {
		r := poll(tc.base)
		expectOutcome(t, r, http.StatusTooManyRequests, tc.name+": poll right after a poll")
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", tc.name, r.header.Get("Retry-After"))
		}
	}
	time.Sleep(minPoll + 100*time.Millisecond)
	if r := poll(otherSrv.URL); r.status != 202 {
		t.Errorf("poll after MinPoll, at the other process: %d %s", r.status, r.body)
	}
	release()
	// Done: the manifest is answered however often it is asked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := poll(s.srv.URL)
		if r.status == 200 {
			if r := poll(s.srv.URL); r.status != 200 {
				t.Errorf("manifest asked twice at once: %d %s", r.status, r.body)
			}
			break
		}
		if r.status != 202 && r.status != 429 || time.Now().After(deadline) {
			t.Fatalf("poll: %d %s", r.status, r.body)
		}
		time.Sleep(minPoll)
	}
}
