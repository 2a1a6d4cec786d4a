package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testCapabilities(t *testing.T, c *Client, _ Options) {
	r := c.Do("GET", "/metadata", nil, "Origin", "https://app.example")
	expectStatus(t, r, 200, "GET /metadata")
	m := r.JSON(t)
	if m["resourceType"] != "CapabilityStatement" || m["fhirVersion"] != "4.0.1" || m["kind"] != "instance" {
		t.Fatalf("metadata: resourceType %v fhirVersion %v kind %v", m["resourceType"], m["fhirVersion"], m["kind"])
	}
	for _, f := range []string{"status", "date", "format", "software", "implementation"} {
		if m[f] == nil {
			t.Errorf("CapabilityStatement lacks %s", f)
		}
	}
	if r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("metadata: no CORS header for a browser origin")
	}
	if r.Header.Get("ETag") == "" {
		t.Errorf("metadata: no ETag (A-CS-02)")
	}
	rest := m["rest"].([]any)[0].(map[string]any)
	types := map[string][]string{}
	for _, res := range rest["resource"].([]any) {
		rm := res.(map[string]any)
		var codes []string
		for _, in := range rm["interaction"].([]any) {
			codes = append(codes, in.(map[string]any)["code"].(string))
		}
		types[rm["type"].(string)] = codes
	}
	for _, typ := range []string{"Patient", "Observation", "MedicationRequest", "Appointment", "Communication", "Invoice", "Bundle", "AuditEvent"} {
		got := strings.Join(types[typ], ",")
		for _, want := range []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create"} {
			if !strings.Contains(","+got+",", ","+want+",") {
				t.Errorf("CapabilityStatement: %s lacks interaction %s (has %s)", typ, want, got)
			}
		}
	}
	if len(types) < 140 {
		t.Errorf("CapabilityStatement lists %d resource types, want every R4 type (145+)", len(types))
	}
	// http.html#version-parameter
	r = c.Do("GET", "/metadata", nil, "Accept", "application/fhir+json; fhirVersion=4.0")
	expectStatus(t, r, 200, "metadata fhirVersion=4.0")
	r = c.Do("GET", "/metadata", nil, "Accept", "application/fhir+json; fhirVersion=3.0")
	expectOutcome(t, r, 406, "metadata fhirVersion=3.0")
	// CORS preflight from a browser.
	r = c.Do("OPTIONS", "/metadata", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	if r.Status >= 300 || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("metadata preflight: status %d, allow-origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
	r = c.Do("HEAD", "/metadata", nil)
	if r.Status != 200 || len(r.Body) != 0 {
		t.Errorf("HEAD /metadata: status %d, %d body bytes", r.Status, len(r.Body))
	}
}

var locationPattern = regexp.MustCompile(`/Patient/([A-Za-z0-9\-.]{1,64})/_history/1$`)

func testCreate(t *testing.T, c *Client, _ Options) {
	body := `{"resourceType":"Patient","id":"abc","meta":{"versionId":"99","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"system":"urn:t","code":"x"}]},"name":[{"family":"Chalmers"}]}`
	r := c.Do("POST", "/Patient", []byte(body))
	expectStatus(t, r, 201, "create")
	loc := r.Header.Get("Location")
	mm := locationPattern.FindStringSubmatch(loc)
	if mm == nil {
		t.Fatalf("Location %q does not match [base]/Patient/[id]/_history/1", loc)
	}
	m := r.JSON(t)
	if m["id"] != mm[1] || m["id"] == "abc" {
		t.Errorf("created id %v; Location says %s; the client's id abc must be ignored", m["id"], mm[1])
	}
	vid, lu := meta(t, m)
	if vid != "1" || strings.HasPrefix(lu, "2001") {
		t.Errorf("meta.versionId %s lastUpdated %s: the server must assign both", vid, lu)
	}
	if tags := m["meta"].(map[string]any)["tag"]; tags == nil {
		t.Errorf("meta.tag sent by the client was dropped")
	}
	if r.Header.Get("ETag") != `W/"1"` || r.Header.Get("Last-Modified") == "" {
		t.Errorf("create: ETag %q Last-Modified %q", r.Header.Get("ETag"), r.Header.Get("Last-Modified"))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	for _, tc := range []struct {
		prefer string
		check  func(Response) error
	}{
		{"return=minimal", func(r Response) error {
			if len(r.Body) != 0 {
				return fmt.Errorf("body of %d bytes", len(r.Body))
			}
			return nil
		}},
		{"return=representation", func(r Response) error {
			if !strings.Contains(string(r.Body), `"resourceType":"Patient"`) {
				return fmt.Errorf("no Patient in %s", r.Body)
			}
			return nil
		}},
		{"return=OperationOutcome", func(r Response) error {
			if !strings.Contains(string(r.Body), `"resourceType":"OperationOutcome"`) {
				return fmt.Errorf("no OperationOutcome in %s", r.Body)
			}
			return nil
		}},
	} {
		r := c.Do("POST", "/Patient", []byte(patient("", "Prefer")), "Prefer", tc.prefer)
		expectStatus(t, r, 201, tc.prefer)
		if r.Header.Get("Location") == "" {
			t.Errorf("%s: no Location", tc.prefer)
		}
		if err := tc.check(r); err != nil {
			t.Errorf("Prefer %s: %v", tc.prefer, err)
		}
	}
}

func testRead(t *testing.T, c *Client, _ Options) {
	id, cr := create(t, c, "Patient", patient("", "Reader"))
	r := c.Do("GET", "/Patient/"+id, nil, "Accept", "application/fhir+json")
	expectStatus(t, r, 200, "read")
	m := r.JSON(t)
	vid, lu := meta(t, m)
	if m["id"] != id || vid != "1" {
		t.Errorf("read: id %v version %s", m["id"], vid)
	}
	if r.Header.Get("ETag") != `W/"`+vid+`"` {
		t.Errorf("ETag %q does not carry meta.versionId %s", r.Header.Get("ETag"), vid)
	}
	lut, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Fatalf("meta.lastUpdated %q: %v", lu, err)
	}
	lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
	if err != nil || !lm.Equal(lut.Truncate(time.Second)) {
		t.Errorf("Last-Modified %q is not meta.lastUpdated %s to the second", r.Header.Get("Last-Modified"), lu)
	}
	if string(r.Body) != string(cr.Body) {
		t.Errorf("read body differs from the create response")
	}
	if r := c.Do("HEAD", "/Patient/"+id, nil); r.Status != 200 || len(r.Body) != 0 || r.Header.Get("ETag") == "" {
		t.Errorf("HEAD read: status %d, %d body bytes, ETag %q", r.Status, len(r.Body), r.Header.Get("ETag"))
	}
	expectOutcome(t, c.Do("GET", "/Patient/no-such-"+id, nil), 404, "unknown id")
	expectOutcome(t, c.Do("GET", "/patient/"+id, nil), 404, "lower-case type (URLs are case-sensitive)")
	expectOutcome(t, c.Do("GET", "/Patients/"+id, nil), 404, "unknown type")
	expectStatus(t, c.Do("GET", "/Patient/"+id+"/", nil), 200, "trailing slash")
	// UTF-8 survives byte for byte (A-GEN-07).
	id2, _ := create(t, c, "Patient", `{"resourceType":"Patient","name":[{"family":"Müller-Łukasiewicz 山田 😀"}]}`)
	if r := c.Do("GET", "/Patient/"+id2, nil); !strings.Contains(string(r.Body), "Müller-Łukasiewicz 山田 😀") {
		t.Errorf("non-ASCII name did not round-trip: %s", r.Body)
	}
}

func testUpdate(t *testing.T, c *Client, _ Options) {
	id := uniqueID("upd")
	r := c.Do("PUT", "/Patient/"+id, []byte(patient(id, "One")))
	expectStatus(t, r, 201, "update-as-create")
	if !strings.HasSuffix(r.Header.Get("Location"), "/Patient/"+id+"/_history/1") {
		t.Errorf("update-as-create Location %q", r.Header.Get("Location"))
	}
	r = c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Two")))
	expectStatus(t, r, 200, "update")
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("update ETag %q, want W/\"2\"", r.Header.Get("ETag"))
	}
	if vid, _ := meta(t, r.JSON(t)); vid != "2" {
		t.Errorf("update meta.versionId %s", vid)
	}
	// Client meta.versionId is ignored (A-UP-05).
	body := strings.Replace(patient(id, "Three"), `"name"`, `"meta":{"versionId":"77"},"name"`, 1)
	r = c.Do("PUT", "/Patient/"+id, []byte(body))
	expectStatus(t, r, 200, "update with client versionId")
	if vid, _ := meta(t, r.JSON(t)); vid != "3" {
		t.Errorf("meta.versionId %s, want the server's 3", vid)
	}
	before := systemTotal(t, c)
	issues := expectOutcome(t, c.Do("PUT", "/Patient/"+id, []byte(patient("", "NoID"))), 400, "update without id")
	if !hasExpression(issues, "Patient.id") {
		t.Errorf("update without id: outcome does not name Patient.id: %v", issues)
	}
	expectOutcome(t, c.Do("PUT", "/Patient/"+id, []byte(patient("other", "Mismatch"))), 400, "update with another id")
	// Version-aware update (A-VC-01).
	expectOutcome(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Stale")), "If-Match", `W/"1"`), 412, "stale If-Match")
	if after := systemTotal(t, c); after != before {
		t.Fatalf("rejected updates stored %d versions", after-before)
	}
	if r := c.Do("GET", "/Patient/"+id, nil); !strings.Contains(string(r.Body), "Three") {
		t.Errorf("a 412 changed the resource: %s", r.Body)
	}
	r = c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Four")), "If-Match", `W/"3"`)
	expectStatus(t, r, 200, "current If-Match")
	expectOutcome(t, c.Do("PUT", "/Patient/"+uniqueID("nx"), []byte(patient("x", "y")), "If-Match", `W/"1"`), 400, "id mismatch wins over If-Match")
}

func testDelete(t *testing.T, c *Client, _ Options) {
	id, _ := create(t, c, "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}`)
	r := c.Do("DELETE", "/Observation/"+id, nil)
	if r.Status != 200 && r.Status != 204 {
		t.Fatalf("delete: status %d", r.Status)
	}
	r = c.Do("GET", "/Observation/"+id, nil)
	expectOutcome(t, r, 410, "read after delete")
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("410 ETag %q, want the delete version W/\"2\"", r.Header.Get("ETag"))
	}
	if r := c.Do("DELETE", "/Observation/"+id, nil); r.Status != 200 && r.Status != 204 {
		t.Errorf("second delete: status %d", r.Status)
	}
	if r := c.Do("DELETE", "/Observation/"+uniqueID("never"), nil); r.Status != 200 && r.Status != 204 {
		t.Errorf("delete of a missing resource: status %d", r.Status)
	}
	expectOutcome(t, c.Do("GET", "/Observation/"+id+"/_history/2", nil), 410, "vread of the delete version")
	if r := c.Do("GET", "/Observation/"+id+"/_history/1", nil); r.Status != 200 {
		t.Errorf("vread of version 1 after delete: %d", r.Status)
	}
	// Resurrection (A-UP-06).
	r = c.Do("PUT", "/Observation/"+id, []byte(fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"amended","code":{"text":"weight"}}`, id)))
	expectStatus(t, r, 201, "PUT after delete")
	if r.Header.Get("ETag") != `W/"3"` {
		t.Errorf("resurrected ETag %q, want W/\"3\"", r.Header.Get("ETag"))
	}
	expectStatus(t, c.Do("GET", "/Observation/"+id, nil), 200, "read after resurrection")
	// Version-aware delete.
	expectOutcome(t, c.Do("DELETE", "/Observation/"+id, nil, "If-Match", `W/"1"`), 412, "stale If-Match on delete")
	expectStatus(t, c.Do("GET", "/Observation/"+id, nil), 200, "read after refused delete")
}

func testVRead(t *testing.T, c *Client, _ Options) {
	id := uniqueID("vr")
	for _, fam := range []string{"V1", "V2", "V3"} {
		c.Do("PUT", "/Patient/"+id, []byte(patient(id, fam)))
	}
	r := c.Do("GET", "/Patient/"+id+"/_history/1", nil)
	expectStatus(t, r, 200, "vread 1")
	m := r.JSON(t)
	if vid, _ := meta(t, m); vid != "1" || !strings.Contains(string(r.Body), "V1") {
		t.Errorf("vread 1 returned version %s: %s", vid, r.Body)
	}
	if r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("vread ETag %q", r.Header.Get("ETag"))
	}
	expectOutcome(t, c.Do("GET", "/Patient/"+id+"/_history/9", nil), 404, "vread of a missing version")
	expectOutcome(t, c.Do("GET", "/Patient/"+id+"/_history/x", nil), 404, "vread of a non-numeric version")
}

func testConditionalRead(t *testing.T, c *Client, _ Options) {
	id, r := create(t, c, "Patient", patient("", "Cond"))
	tag := r.Header.Get("ETag")
	if r := c.Do("GET", "/Patient/"+id, nil, "If-None-Match", tag); r.Status != 304 || len(r.Body) != 0 {
		t.Errorf("If-None-Match current: status %d", r.Status)
	}
	if r := c.Do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"7"`); r.Status != 200 {
		t.Errorf("If-None-Match other: status %d", r.Status)
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if r := c.Do("GET", "/Patient/"+id, nil, "If-Modified-Since", future); r.Status != 304 {
		t.Errorf("If-Modified-Since future: status %d", r.Status)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	if r := c.Do("GET", "/Patient/"+id, nil, "If-Modified-Since", past); r.Status != 200 {
		t.Errorf("If-Modified-Since past: status %d", r.Status)
	}
}

func testNegotiation(t *testing.T, c *Client, _ Options) {
	id, _ := create(t, c, "Patient", patient("", "Neg"))
	p := "/Patient/" + id
	for _, tc := range []struct {
		name, path, accept string
		status             int
		ctype              string
	}{
		{"fhir json", p, "application/fhir+json", 200, "application/fhir+json; charset=utf-8"},
		{"plain json", p, "application/json", 200, "application/json; charset=utf-8"},
		{"any", p, "*/*", 200, "application/fhir+json; charset=utf-8"},
		{"browser", p, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 200, "application/fhir+json; charset=utf-8"},
		{"xml", p, "application/fhir+xml", 406, ""},
		{"pdf", p, "application/pdf", 406, ""},
		{"_format=xml", p + "?_format=xml", "", 406, ""},
		{"_format=json wins over Accept xml", p + "?_format=json", "application/fhir+xml", 200, "application/fhir+json; charset=utf-8"},
		{"_format=application/fhir+json", p + "?_format=application/fhir%2Bjson", "", 200, "application/fhir+json; charset=utf-8"},
	} {
		r := c.Do("GET", tc.path, nil, "Accept", tc.accept)
		if tc.status != 200 {
			issues := expectOutcome(t, r, tc.status, tc.name)
			if d, _ := issues[0]["diagnostics"].(string); !strings.Contains(d, "JSON") {
				t.Errorf("%s: outcome does not say JSON only: %q", tc.name, d)
			}
			continue
		}
		expectStatus(t, r, tc.status, tc.name)
		if ct := r.Header.Get("Content-Type"); ct != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, ct, tc.ctype)
		}
	}
	for _, ct := range []string{"application/fhir+xml", "application/xml", "text/plain"} {
		r := c.Do("POST", "/Patient", []byte(patient("", "CT")), "Content-Type", ct)
		issues := expectOutcome(t, r, 415, "Content-Type "+ct)
		if d, _ := issues[0]["diagnostics"].(string); !strings.Contains(d, "JSON") {
			t.Errorf("415 outcome does not say JSON only: %q", d)
		}
	}
	if r := c.Do("POST", "/Patient", []byte(patient("", "CT")), "Content-Type", "application/json; charset=utf-8"); r.Status != 201 {
		t.Errorf("application/json body: status %d", r.Status)
	}
	r := c.Do("GET", p+"?_pretty=true", nil)
	if !strings.Contains(string(r.Body), "\n  \"") {
		t.Errorf("_pretty=true is not indented")
	}
	if r := c.Do("GET", p+"?_pretty=false", nil); strings.Contains(string(r.Body), "\n") {
		t.Errorf("_pretty=false is indented")
	}
}

func testSubset(t *testing.T, c *Client, _ Options) {
	body := `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"},"name":[{"family":"Sub"}],"gender":"female","birthDate":"1970-01-01","maritalStatus":{"text":"M"},"contact":[{"name":{"family":"C"}}]}`
	id, _ := create(t, c, "Patient", body)
	subsetted := func(m map[string]any) bool {
		tags, _ := m["meta"].(map[string]any)["tag"].([]any)
		for _, tg := range tags {
			if tg.(map[string]any)["code"] == "SUBSETTED" {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		query      string
		keep, drop []string
		subsetted  bool
	}{
		{"_summary=true", []string{"id", "meta", "name", "gender", "birthDate"}, []string{"text", "contact", "maritalStatus"}, true},
		{"_summary=text", []string{"id", "meta", "text"}, []string{"name", "contact"}, true},
		{"_summary=data", []string{"name", "contact", "maritalStatus"}, []string{"text"}, true},
		{"_summary=false", []string{"text", "name", "contact"}, nil, false},
		{"_elements=gender", []string{"id", "meta", "gender"}, []string{"name", "text", "contact"}, true},
	} {
		r := c.Do("GET", "/Patient/"+id+"?"+tc.query, nil)
		expectStatus(t, r, 200, tc.query)
		m := r.JSON(t)
		for _, k := range tc.keep {
			if m[k] == nil {
				t.Errorf("%s dropped %s", tc.query, k)
			}
		}
		for _, k := range tc.drop {
			if m[k] != nil {
				t.Errorf("%s kept %s", tc.query, k)
			}
		}
		if subsetted(m) != tc.subsetted {
			t.Errorf("%s: SUBSETTED tag %v, want %v", tc.query, subsetted(m), tc.subsetted)
		}
	}
	expectOutcome(t, c.Do("GET", "/Patient/"+id+"?_summary=bogus", nil), 400, "_summary=bogus")
}

func testOperationalHeaders(t *testing.T, c *Client, _ Options) {
	r := c.Do("GET", "/metadata", nil, "X-Request-Id", "abc-123")
	if r.Header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id not echoed: %q", r.Header.Get("X-Request-Id"))
	}
	r = c.Do("GET", "/metadata", nil, "X-Request-Id", "bad id\twith spaces")
	if got := r.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Errorf("hostile X-Request-Id echoed or none assigned: %q", got)
	}
	expectOutcome(t, c.Do("PATCH", "/metadata", nil), 405, "PATCH /metadata")
	expectOutcome(t, c.Do("GET", "/Patient/abc/nonsense", nil), 404, "unknown path under an instance")
}

func testExamples(t *testing.T, c *Client, opts Options) {
	if len(opts.Examples) == 0 {
		t.Skip("no examples given (Options.Examples)")
	}
	for name, body := range opts.Examples {
		var sent map[string]any
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&sent); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		typ, id := sent["resourceType"].(string), sent["id"].(string)
		r := c.Do("PUT", "/"+typ+"/"+id, body)
		if want, bad := opts.Invalid[name]; bad {
			issues := expectOutcome(t, r, 400, name)
			if !hasExpression(issues, want) {
				t.Errorf("%s: rejected, but no issue names %s: %v", name, want, issues)
			}
			expectOutcome(t, c.Do("GET", "/"+typ+"/"+id, nil), 404, name+" after rejection")
			continue
		}
		if r.Status != 200 && r.Status != 201 {
			t.Errorf("%s: PUT status %d: %s", name, r.Status, truncate(r.Body))
			continue
		}
		got := c.Do("GET", "/"+typ+"/"+id, nil).JSON(t)
		for _, m := range []map[string]any{sent, got} {
			if mm, ok := m["meta"].(map[string]any); ok {
				delete(mm, "versionId")
				delete(mm, "lastUpdated")
				if len(mm) == 0 {
					delete(m, "meta")
				}
			}
		}
		a, _ := json.Marshal(sent)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Errorf("%s: read back differs from what was sent\nsent: %s\ngot:  %s", name, truncate(a), truncate(b))
		}
	}
}
