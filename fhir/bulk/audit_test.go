package bulk

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/audit"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// auditEvents lists the AuditEvents of query through the REST API.
func (s *server) auditEvents(query string) []auditEventT {
	s.t.Helper()
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, httptest.NewRequest("GET", "/AuditEvent?_count=500&"+query, nil))
	if rec.Code != http.StatusOK {
		s.t.Fatalf("AuditEvent search %s: %d %s", query, rec.Code, rec.Body)
	}
	var b struct {
		Entry []struct{ Resource auditEventT }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		s.t.Fatal(err)
	}
	var out []auditEventT
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

type auditEventT struct {
	Subtype []struct{ System, Code string }
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
		What struct {
			Reference  string
			Identifier struct{ System, Value string }
		}
		Role        struct{ Code string }
		Description string
		Query       string
	}
}

// job is the URL of the job entity and its step ("" when there is none).
func (e auditEventT) job() (url, step string) {
	for _, en := range e.Entity {
		if en.Role.Code == "20" {
			return en.What.Identifier.Value, en.Description
		}
	}
	return "", ""
}

// patients lists the patient entities.
func (e auditEventT) patients() []string {
	var out []string
	for _, en := range e.Entity {
		if en.Role.Code == "1" {
			out = append(out, en.What.Reference)
		}
	}
	return out
}

// TestAudit: every bulk request made with a token (kick-off, status,
// file, cancel) becomes an AuditEvent through the same writer as the
// REST API's, with subtype export, the token's app and user, the job's
// status URL, and the patient of a confined token, found by the
// patient's own AuditEvent search (auditevent.html; issue 5). Requests
// without a grant (401) and --auth=none (no Authorizer) record nothing.
func TestAudit(t *testing.T) {
	grants := tokens{
		"sys":    {Client: "analytics", ClientID: "analytics"},
		"portal": {Client: "portal user u2 patient p2", Patient: "p2", ClientID: "portal", FHIRUser: "https://kiln.example/Patient/p2"},
	}
	for _, tc := range []struct {
		name string
		auth Authorizer
	}{{"smart", grants}, {"none", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, Config{})
			seed(s)
			w := audit.New(audit.Config{Interval: 10 * time.Millisecond}, s.st)
			s.restart(Config{Authorizer: tc.auth, Audit: w})
			bearer := func(tok string) []string {
				if tc.auth == nil {
					return nil
				}
				return []string{"Authorization", "Bearer " + tok}
			}

			sys := s.kickoff("/$export?_type=Patient", bearer("sys")...)
			m := s.poll(sys, bearer("sys")...)
			s.download(m.Output, bearer("sys")...)
			if r := s.do("DELETE", sys, nil, bearer("sys")...); r.status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", r.status, r.body)
			}
			portal := s.kickoff("/Patient/$export?_type=Observation", bearer("portal")...)
			pm := s.poll(portal, bearer("portal")...)
			s.download(pm.Output, bearer("portal")...)
			if tc.auth != nil {
				expectOutcome(t, s.do("GET", portal, nil), 401, "poll without a token")
			}
			// Every request has been answered: Close waits for them, and
			// the writer's Close writes what they recorded.
			s.srv.Close()
			w.Close()

			events := s.auditEvents("subtype=export")
			if tc.auth == nil {
				if len(events) != 0 || len(s.auditEvents("")) != 0 {
					t.Fatalf("--auth=none recorded %d AuditEvents", len(events))
				}
				return
			}
			steps := map[string][]string{} // job URL → steps
			for _, e := range events {
				url, step := e.job()
				steps[url] = append(steps[url], step)
				if !slices.ContainsFunc(e.Subtype, func(c struct{ System, Code string }) bool {
					return c.System == "urn:kiln:operation" && c.Code == "export"
				}) {
					t.Errorf("subtype %v lacks urn:kiln:operation export", e.Subtype)
				}
				if e.Outcome != "0" {
					t.Errorf("%s %s: outcome %s, want 0 (the 401 is not audited)", url, step, e.Outcome)
				}
				client, patients := e.Agent[0].Who.Identifier.Value, e.patients()
				switch url {
				case sys:
					if client != "analytics" || len(e.Agent) != 1 || !e.Agent[0].Requestor || len(patients) != 0 {
						t.Errorf("system export %s: agents %+v, patients %v", step, e.Agent, patients)
					}
				case portal:
					if client != "portal" || len(e.Agent) != 2 || e.Agent[1].Who.Reference != "Patient/p2" || !slices.Equal(patients, []string{"Patient/p2"}) {
						t.Errorf("portal export %s: agents %+v, patients %v", step, e.Agent, patients)
					}
				default:
					t.Errorf("an AuditEvent for job %q", url)
				}
			}
			for _, c := range []struct {
				url   string
				files []manifestFile
				more  []string
			}{{sys, m.Output, []string{"cancel"}}, {portal, pm.Output, nil}} {
				want := []string{"kick-off", "status"}
				for _, f := range c.files {
					want = append(want, "download "+f.URL[strings.LastIndexByte(f.URL, '/')+1:])
				}
				want = append(want, c.more...)
				// The order of a search without _sort is the server's:
				// compare the sets.
				slices.Sort(want)
				got := slices.Compact(slices.Sorted(slices.Values(steps[c.url])))
				if !slices.Equal(got, want) {
					t.Errorf("steps of %s: %v, want %v", c.url, got, want)
				}
			}
			// The patient finds the export of their data in their trail;
			// nobody else's export is there.
			var mine []string
			for _, e := range s.auditEvents("patient=Patient/p2") {
				url, step := e.job()
				mine = append(mine, url+" "+step)
			}
			if len(mine) == 0 || slices.ContainsFunc(mine, func(s string) bool { return !strings.HasPrefix(s, portal+" ") }) {
				t.Errorf("Patient/p2's AuditEvents: %v, want the portal export's only", mine)
			}
		})
	}
}

// scopeless refuses every token with 403, as a token without an export
// scope is, and names the client of the ones it knows (Identifier).
type scopeless tokens

func (s scopeless) Export(r *http.Request) (Grant, error) {
	if _, err := tokens(s).Export(r); err != nil {
		return Grant{}, err
	}
	return Grant{}, outcome.New(http.StatusForbidden, outcome.CodeForbidden, "no scope an export can use")
}

func (s scopeless) Identify(r *http.Request) (Grant, bool) {
	g, err := tokens(s).Export(r)
	return g, err == nil
}

// TestAuditRefused: a kick-off refused with 403 (a valid token without
// an export scope) is an AuditEvent with a failure outcome, naming the
// client and the patient of a patient token; without a token (401)
// nothing is recorded.
func TestAuditRefused(t *testing.T) {
	s := newServer(t, Config{})
	seed(s)
	w := audit.New(audit.Config{Interval: 10 * time.Millisecond}, s.st)
	s.restart(Config{Authorizer: scopeless{
		"app":    {Client: "app", ClientID: "app"},
		"portal": {Client: "portal", ClientID: "portal", Patient: "p2", FHIRUser: "https://kiln.example/Patient/p2"},
	}, Audit: w})
	expectOutcome(t, s.do("GET", "/$export?_type=Patient", nil, append(slices.Clone(kickoffHeaders), "Authorization", "Bearer app")...),
		http.StatusForbidden, "kick-off without an export scope")
	expectOutcome(t, s.do("GET", "/Patient/$export", nil, append(slices.Clone(kickoffHeaders), "Authorization", "Bearer portal")...),
		http.StatusForbidden, "patient token without an export scope")
	expectOutcome(t, s.do("GET", "/$export", nil, kickoffHeaders...), http.StatusUnauthorized, "kick-off without a token")
	s.srv.Close()
	w.Close()

	events := s.auditEvents("subtype=export")
	var got []string
	for _, e := range events {
		url, step := e.job()
		got = append(got, e.Agent[0].Who.Identifier.Value+" "+step+" outcome "+e.Outcome+" job "+url+" patients "+strings.Join(e.patients(), ","))
		query := ""
		for _, en := range e.Entity {
			if q, err := base64.StdEncoding.DecodeString(en.Query); err == nil && en.Query != "" {
				query = string(q)
			}
		}
		if !strings.Contains(query, "$export") {
			t.Errorf("refused kick-off event without its query: %+v", e.Entity)
		}
	}
	slices.Sort(got)
	want := []string{"app  outcome 4 job  patients ", "portal  outcome 4 job  patients Patient/p2"}
	if !slices.Equal(got, want) {
		t.Errorf("AuditEvents of refused kick-offs:\n%q\nwant\n%q", got, want)
	}
}
