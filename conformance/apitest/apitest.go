// Package apitest is Kiln's black-box HTTP conformance suite: FHIR REST
// scenarios (http.html) run against any FHIR base URL with a real HTTP
// client. Every backend's HTTP tests call Run, so the API behaves the same
// whatever stores the data.
package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Options describe the server under test.
type Options struct {
	// MaxBody is the server's request body limit (for the 413 scenario).
	MaxBody int64
	// Examples maps a file name to an official example resource; each is
	// written with PUT and read back (empty: skipped).
	Examples map[string][]byte
	// Invalid lists example names that must be rejected, with the
	// expression the OperationOutcome must name.
	Invalid map[string]string
	// Synthea maps a file name to a Synthea transaction bundle. With the
	// valid Examples they make the search corpus (search.go); nil reads
	// testdata/synthea of the module the test runs in.
	Synthea map[string][]byte
	// SkipCorpus leaves out the search corpus, which needs an empty server
	// and loads some 1,600 resources.
	SkipCorpus bool
	// NoTransactions says the server cannot apply several changes
	// atomically (MongoDB without a replica set) and refuses a
	// transaction of several changes whole, with 501. The scenarios
	// that need one are skipped; "transaction refused whole" checks the
	// refusal and that nothing was stored. Batches still run.
	NoTransactions bool
}

// Client is a tiny FHIR HTTP client over a base URL.
type Client struct {
	T    testing.TB
	Base string
	HTTP *http.Client
}

// Response is a read-back HTTP response with its body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map (numbers kept as text).
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// Do sends a request; header is alternating key, value pairs.
func (c *Client) Do(method, path string, body []byte, header ...string) Response {
	c.T.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = c.Base + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Run runs every scenario against the FHIR server at base.
func Run(t *testing.T, base string, opts Options) {
	base = strings.TrimRight(base, "/")
	newClient := func(t *testing.T) *Client {
		return &Client{T: t, Base: base, HTTP: &http.Client{Timeout: 60 * time.Second}}
	}
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *Client, Options)
	}{
		{"search", testSearch}, // first: its corpus needs an empty server
		{"capabilities", testCapabilities},
		{"create", testCreate},
		{"read", testRead},
		{"update", testUpdate},
		{"delete", testDelete},
		{"vread", testVRead},
		{"history", testHistory},
		{"conditional read", testConditionalRead},
		{"content negotiation", testNegotiation},
		{"summary and elements", testSubset},
		{"bad input", testBadInput},
		{"concurrent If-Match", testConcurrentIfMatch},
		{"operations headers", testOperationalHeaders},
		{"examples round trip", testExamples},
		{"transaction", testTransaction},
		{"transaction refused whole", testTransactionRefused},
		{"batch", testBatch},
		{"bundle bad input", testBundleBadInput},
		{"patch", testPatch},
		{"Synthea transactions", testSyntheaTransactions},
		{"checklist", testChecklist},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, newClient(t), opts) })
	}
}

// --- helpers shared by the scenarios ---

// needTransactions skips a scenario that commits a transaction of several
// changes on a server that refuses those (Options.NoTransactions).
func needTransactions(t *testing.T, opts Options) {
	t.Helper()
	if opts.NoTransactions {
		t.Skip("Options.NoTransactions: the server refuses transactions of several changes (501); " +
			"\"transaction refused whole\" checks the refusal instead")
	}
}

func expectStatus(t testing.TB, r Response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.Status, want, truncate(r.Body))
	}
}

// expectOutcome checks status and that the body is an OperationOutcome
// with an error issue; it returns the issues.
func expectOutcome(t testing.TB, r Response, want int, what string) []map[string]any {
	t.Helper()
	expectStatus(t, r, want, what)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("%s: Content-Type %q, want application/fhir+json", what, ct)
	}
	m := r.JSON(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("%s: body is %v, want an OperationOutcome", what, m["resourceType"])
	}
	var issues []map[string]any
	for _, is := range m["issue"].([]any) {
		issues = append(issues, is.(map[string]any))
	}
	if len(issues) == 0 {
		t.Fatalf("%s: OperationOutcome without issues", what)
	}
	return issues
}

// hasExpression reports whether some issue names expr.
func hasExpression(issues []map[string]any, expr string) bool {
	for _, is := range issues {
		exprs, _ := is["expression"].([]any)
		for _, e := range exprs {
			if e == expr {
				return true
			}
		}
	}
	return false
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// systemTotal counts every version on the server, to prove that a
// rejected request stored nothing.
func systemTotal(t testing.TB, c *Client) int {
	t.Helper()
	r := c.Do("GET", "/_history?_count=0", nil)
	expectStatus(t, r, 200, "system history count")
	n, err := r.JSON(t)["total"].(json.Number).Int64()
	if err != nil {
		t.Fatalf("history total: %v", err)
	}
	return int(n)
}

// create POSTs a resource and returns its id and the response.
func create(t testing.TB, c *Client, typ, body string) (string, Response) {
	t.Helper()
	r := c.Do("POST", "/"+typ, []byte(body))
	expectStatus(t, r, 201, "create "+typ)
	id, _ := r.JSON(t)["id"].(string)
	if id == "" {
		t.Fatalf("create %s: no id in response", typ)
	}
	return id, r
}

func patient(id, family string) string {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{"resourceType":"Patient",%s"name":[{"family":%q,"given":["Ann"]}],"gender":"female","birthDate":"1974-12-25"}`, idPart, family)
}

func meta(t testing.TB, m map[string]any) (string, string) {
	t.Helper()
	mm, ok := m["meta"].(map[string]any)
	if !ok {
		t.Fatalf("resource without meta: %v", m)
	}
	return fmt.Sprint(mm["versionId"]), fmt.Sprint(mm["lastUpdated"])
}

// uniqueID gives each scenario its own ids so they can share a server.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}
