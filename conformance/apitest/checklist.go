package apitest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Checklist lines (checklist sections A and B) that no other scenario
// asserted when conformance/ACCEPTANCE.md was drawn up: each subtest
// names the lines it pins. Every subtest writes data of its own (unique
// names and identifier systems), so they run on any server.
func testChecklist(t *testing.T, c *Client, opts Options) {
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *Client, Options)
	}{
		{"A-CS-03 A-CS-05 A-VER-03 CapabilityStatement required elements", checkCapabilityElements},
		{"A-UP-04 updateCreate as declared", checkUpdateCreateDeclared},
		{"A-GEN-10 HEAD wherever GET works", checkHeadEverywhere},
		{"A-GEN-12 ids are case-sensitive", checkIDCase},
		{"A-GEN-13 A-GEN-14 trailing slash and Date", checkTrailingSlashAndDate},
		{"A-UP-02 update carries Last-Modified and ETag", checkUpdateHeaders},
		{"A-CC-05 conditional create and delete are plain in history", checkConditionalHistory},
		{"A-PR-01 A-PR-03 Prefer on update and failures", checkPreferUpdate},
		{"A-PR-01 Prefer on patch", checkPreferPatch},
		{"A-DE-05 ETag on the delete answer", checkDeleteETag},
		{"A-BT-08 uri elements and img src rewritten", checkTransactionURIs},
		{"A-BT-09 POST entry fullUrl is not an id", checkPostFullURL},
		{"A-SB-04 B-SORT-01 B-CNT-01 links carry the parameters used", checkSelfLink},
		{"B-GEN-06 parameter names are case-sensitive", checkParamCase},
		{"B-QRY-01 unknown _query refused", checkNamedQuery},
		{"B-COMP-01 no modifiers on composites", checkCompositeModifiers},
		{"B-STR-04 name and address use and period are not searched", checkStringParts},
		{"B-DT-04 a Timing counts by its outer limits", checkTimingRange},
		{"B-DT-06 US Core date parameters with full timestamps", checkUSCoreDates},
		{"B-REF-05 a versioned reference chains on the current version, with a warning; _include returns the version", checkVersionedReference},
	} {
		t.Run(sc.name, func(t *testing.T) {
			cc := *c
			cc.T = t
			sc.run(t, &cc, opts)
		})
	}
}

// checkCapabilityElements: the R4 required elements and invariants of a
// CapabilityStatement (capabilitystatement.html: cpb-1, cpb-2, cpb-15,
// cpb-16), JSON among the formats and R4 as the version (A-CS-05), and a
// versioning mode declared on every resource (A-VER-03).
func checkCapabilityElements(t *testing.T, c *Client, _ Options) {
	m := c.Do("GET", "/metadata", nil).JSON(t)
	for _, f := range []string{"status", "date", "kind", "fhirVersion", "format"} {
		if m[f] == nil {
			t.Errorf("CapabilityStatement lacks %s (1..1)", f)
		}
	}
	if m["fhirVersion"] != "4.0.1" {
		t.Errorf("fhirVersion %v, want 4.0.1", m["fhirVersion"])
	}
	formats, _ := m["format"].([]any)
	json := false
	for _, f := range formats {
		switch f {
		case "json", "application/json", "application/fhir+json":
			json = true
		}
	}
	if !json {
		t.Errorf("format %v names no JSON MIME type (A-CS-05)", formats)
	}
	if m["description"] == nil && m["software"] == nil && m["implementation"] == nil {
		t.Errorf("cpb-2: none of description, software, implementation")
	}
	switch m["kind"] {
	case "instance":
		if m["implementation"] == nil {
			t.Errorf("cpb-15: kind instance without implementation")
		}
	case "capability":
		if m["software"] == nil || m["implementation"] != nil {
			t.Errorf("cpb-16: kind capability needs software and no implementation")
		}
	}
	rests, _ := m["rest"].([]any)
	if len(rests) == 0 && m["messaging"] == nil && m["document"] == nil {
		t.Fatalf("cpb-1: no rest, messaging or document")
	}
	operation := func(where string, op any) {
		om, _ := op.(map[string]any)
		if s, _ := om["name"].(string); s == "" {
			t.Errorf("%s: operation without name: %v", where, op)
		}
		if s, _ := om["definition"].(string); s == "" {
			t.Errorf("%s: operation without definition: %v", where, op)
		}
	}
	for _, rs := range rests {
		rest, _ := rs.(map[string]any)
		if mode := rest["mode"]; mode != "server" && mode != "client" {
			t.Errorf("rest.mode %v", mode)
		}
		for _, op := range asList(rest["operation"]) {
			operation("rest", op)
		}
		resources := asList(rest["resource"])
		if len(resources) == 0 {
			t.Errorf("rest lists no resource")
		}
		for _, res := range resources {
			rm, _ := res.(map[string]any)
			typ, _ := rm["type"].(string)
			if typ == "" {
				t.Errorf("rest.resource without type: %v", rm)
				continue
			}
			for _, in := range asList(rm["interaction"]) {
				if code, _ := in.(map[string]any)["code"].(string); code == "" {
					t.Errorf("%s: interaction without code", typ)
				}
			}
			for _, sp := range asList(rm["searchParam"]) {
				spm, _ := sp.(map[string]any)
				if spm["name"] == nil || spm["type"] == nil {
					t.Errorf("%s: searchParam without name or type: %v", typ, sp)
				}
			}
			for _, op := range asList(rm["operation"]) {
				operation(typ, op)
			}
			switch rm["versioning"] {
			case "versioned", "versioned-update":
			default:
				// Kiln versions every write (meta.versionId, ETag), so
				// it must not say otherwise (A-VER-03).
				t.Errorf("%s: versioning %v, want versioned or versioned-update", typ, rm["versioning"])
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// checkUpdateCreateDeclared: update-as-create answers as
// rest.resource.updateCreate declares: 201 when true, 405 when not.
func checkUpdateCreateDeclared(t *testing.T, c *Client, _ Options) {
	declared, _ := capability(t, c, "Patient")["updateCreate"].(bool)
	id := uniqueID("uc")
	r := c.Do("PUT", "/Patient/"+id, []byte(patient(id, "UpdateCreate")))
	if declared {
		expectStatus(t, r, 201, "PUT to a new id with updateCreate true")
		return
	}
	expectOutcome(t, r, 405, "PUT to a new id with updateCreate false")
}

// checkHeadEverywhere: A-GEN-10, HEAD on every kind of GET the REST API
// answers: the same status and Content-Type, and no body.
func checkHeadEverywhere(t *testing.T, c *Client, _ Options) {
	fam := uniqueName("Head")
	id, _ := create(t, c, "Patient", patient("", fam))
	for _, path := range []string{
		"/Patient/" + id + "/_history/1",
		"/Patient/" + id + "/_history",
		"/Patient/_history?_count=1",
		"/_history?_count=1",
		"/Patient?family=" + fam,
		"/?_type=Patient&_id=" + id,
	} {
		g := c.Do("GET", path, nil)
		h := c.Do("HEAD", path, nil)
		if g.Status != 200 {
			t.Errorf("GET %s: status %d", path, g.Status)
			continue
		}
		if h.Status != 200 || len(h.Body) != 0 {
			t.Errorf("HEAD %s: status %d with %d body bytes, want 200 and none", path, h.Status, len(h.Body))
		}
		if gc, hc := g.Header.Get("Content-Type"), h.Header.Get("Content-Type"); gc != hc {
			t.Errorf("HEAD %s: Content-Type %q, GET says %q", path, hc, gc)
		}
	}
}

// checkIDCase: A-GEN-12, ids are case-sensitive: the same id in other
// case is another (missing) resource, for read and for _id.
func checkIDCase(t *testing.T, c *Client, _ Options) {
	id := "CaseSensitive-" + uniqueName("x")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Case"))), 201, "create")
	expectStatus(t, c.Do("GET", "/Patient/"+id, nil), 200, "read")
	expectOutcome(t, c.Do("GET", "/Patient/"+strings.ToLower(id), nil), 404, "read with the id in lower case")
	expectMatches(t, c, "/Patient?_id="+strings.ToUpper(id))
	expectMatches(t, c, "/Patient?_id="+id, "Patient/"+id)
}

// checkTrailingSlashAndDate: A-GEN-13 (type search with a trailing slash,
// answered without a redirect) and A-GEN-14 (a Date header).
func checkTrailingSlashAndDate(t *testing.T, c *Client, _ Options) {
	fam := uniqueName("Slash")
	id, _ := create(t, c, "Patient", patient("", fam))
	expectMatches(t, c, "/Patient/?family="+fam, "Patient/"+id)
	r := c.Do("GET", "/Patient/"+id, nil)
	d, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		t.Fatalf("Date header %q: %v", r.Header.Get("Date"), err)
	}
	if skew := time.Since(d); skew > time.Minute || skew < -time.Minute {
		t.Errorf("Date %v is %v away from now", d, skew)
	}
}

// checkUpdateHeaders: A-UP-02, an update answers Last-Modified from the
// new meta.lastUpdated and the new version in ETag.
func checkUpdateHeaders(t *testing.T, c *Client, _ Options) {
	id := uniqueID("hdr")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "One"))), 201, "create")
	time.Sleep(1100 * time.Millisecond) // so the second's Last-Modified differs
	r := c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Two")))
	expectStatus(t, r, 200, "update")
	vid, lu := meta(t, r.JSON(t))
	if r.Header.Get("ETag") != `W/"`+vid+`"` || vid != "2" {
		t.Errorf("update ETag %q, meta.versionId %s, want W/\"2\"", r.Header.Get("ETag"), vid)
	}
	lut, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Fatalf("meta.lastUpdated %q: %v", lu, err)
	}
	lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
	if err != nil || !lm.Equal(lut.Truncate(time.Second)) {
		t.Errorf("update Last-Modified %q is not the new meta.lastUpdated %s", r.Header.Get("Last-Modified"), lu)
	}
}

// checkConditionalHistory: A-CC-05, the history shows a conditional
// create as a POST and a conditional delete as a DELETE of the resource,
// not the conditional request.
func checkConditionalHistory(t *testing.T, c *Client, _ Options) {
	sys := "urn:kiln:apitest:" + uniqueName("ch")
	r := c.Do("POST", "/Patient", identified("", sys, "1", "CondHist"), "If-None-Exist", byIdentifier(sys, "1"))
	expectStatus(t, r, 201, "conditional create")
	id, _ := r.JSON(t)["id"].(string)
	if d := c.Do("DELETE", "/Patient?"+byIdentifier(sys, "1"), nil); d.Status != 200 && d.Status != 204 {
		t.Fatalf("conditional delete: status %d", d.Status)
	}
	h := getHistory(t, c, "/Patient/"+id+"/_history")
	if len(h.Entry) != 2 {
		t.Fatalf("history: %d entries, want 2", len(h.Entry))
	}
	for i, want := range []struct{ method, url string }{{"DELETE", "Patient/" + id}, {"POST", "Patient"}} {
		if e := h.Entry[i]; e.Request.Method != want.method || e.Request.URL != want.url {
			t.Errorf("history entry %d: %s %s, want %s %s", i, e.Request.Method, e.Request.URL, want.method, want.url)
		}
	}
}

// checkPreferUpdate: A-PR-01 on update (create is in testCreate) and
// A-PR-03: a failure carries an OperationOutcome whatever Prefer asks.
func checkPreferUpdate(t *testing.T, c *Client, _ Options) {
	id := uniqueID("pref")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "P0"))), 201, "create")
	for i, tc := range []struct{ prefer, want string }{
		{"return=minimal", ""},
		{"return=representation", `"resourceType":"Patient"`},
		{"return=OperationOutcome", `"resourceType":"OperationOutcome"`},
	} {
		r := c.Do("PUT", "/Patient/"+id, []byte(patient(id, fmt.Sprint("P", i+1))), "Prefer", tc.prefer)
		expectStatus(t, r, 200, "update "+tc.prefer)
		if tc.want == "" && len(r.Body) != 0 {
			t.Errorf("%s: %d body bytes", tc.prefer, len(r.Body))
		}
		if tc.want != "" && !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: body %s", tc.prefer, truncate(r.Body))
		}
		if r.Header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", tc.prefer)
		}
	}
	expectOutcome(t, c.Do("POST", "/Patient", []byte(`{"resourceType":"Patient","gender":"mal"}`), "Prefer", "return=minimal"),
		400, "a failed create with return=minimal still says why")
}

// checkTransactionURIs: A-BT-08, a urn:uuid fullUrl is rewritten in uri
// elements and in narrative <img src>, not only in Reference.reference.
func checkTransactionURIs(t *testing.T, c *Client, opts Options) {
	needTransactions(t, opts)
	pat := "urn:uuid:7c4d0e2a-0000-4000-8000-0000000000a1"
	body := bundleOf("transaction",
		fmt.Sprintf(`{"fullUrl":%q,"resource":{"resourceType":"Patient","name":[{"family":"UriRewrite"}]},"request":{"method":"POST","url":"Patient"}}`, pat),
		fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final",
			"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><img src=\"%s\"/></div>"},
			"extension":[{"url":"http://example.org/uri","valueUri":%q}],
			"code":{"text":"uri"}},"request":{"method":"POST","url":"Observation"}}`, pat, pat),
	)
	r := c.Do("POST", "/", body)
	expectStatus(t, r, 200, "transaction")
	entries := responseEntries(t, r, "transaction-response")
	patRef := idOfLocation(t, entryLocation(entries[0]))
	got := c.Do("GET", "/"+idOfLocation(t, entryLocation(entries[1])), nil)
	s := string(got.Body)
	if strings.Contains(s, "urn:uuid:") {
		t.Errorf("a urn:uuid survived in a uri element or the narrative: %s", s)
	}
	if !strings.Contains(s, `"valueUri":"`+patRef+`"`) && !strings.Contains(s, `"valueUri":"`+c.Base+"/"+patRef+`"`) {
		t.Errorf("valueUri not rewritten to %s: %s", patRef, s)
	}
	if !strings.Contains(s, `src=\"`+patRef+`\"`) && !strings.Contains(s, `src=\"`+c.Base+"/"+patRef+`\"`) {
		t.Errorf("narrative img src not rewritten to %s: %s", patRef, s)
	}
}

// checkPostFullURL: A-BT-09, the id in a POST entry's fullUrl is not the
// id of the resource created (the server assigns it).
func checkPostFullURL(t *testing.T, c *Client, _ Options) {
	chosen := uniqueID("chosen")
	body := bundleOf("batch", fmt.Sprintf(`{"fullUrl":"http://other.example.org/fhir/Patient/%s","resource":{"resourceType":"Patient","id":%q},"request":{"method":"POST","url":"Patient"}}`, chosen, chosen))
	r := c.Do("POST", "/", body)
	expectStatus(t, r, 200, "batch")
	e := responseEntries(t, r, "batch-response")[0]
	if !strings.HasPrefix(entryStatus(e), "201") {
		t.Fatalf("POST entry: %s", entryStatus(e))
	}
	if got := idOfLocation(t, entryLocation(e)); got == "Patient/"+chosen {
		t.Errorf("the POST entry was created with the fullUrl's id %s", got)
	}
	expectOutcome(t, c.Do("GET", "/Patient/"+chosen, nil), 404, "the fullUrl's id")
}

// checkParamCase: B-GEN-06, parameter names are case-sensitive: FAMILY is
// not family, so it is an unknown parameter (refused under strict,
// ignored otherwise).
func checkParamCase(t *testing.T, c *Client, _ Options) {
	fam := uniqueName("Case")
	id, _ := create(t, c, "Patient", patient("", fam))
	expectMatches(t, c, "/Patient?family="+fam, "Patient/"+id)
	issues := expectOutcome(t, c.Do("GET", "/Patient?FAMILY="+fam, nil, "Prefer", "handling=strict"), 400, "FAMILY under handling=strict")
	found := false
	for _, is := range issues {
		found = found || mentions(is, "FAMILY")
	}
	if !found {
		t.Errorf("the refusal does not name FAMILY: %v", issues)
	}
	res, r := search(t, c, "GET", "/Patient?_id="+id+"&FAMILY=nobody", "", nil, -1)
	if res == nil {
		t.Fatalf("lenient FAMILY: status %d", r.Status)
	}
	compareSets(t, "lenient FAMILY (ignored)", res.matches, []string{"Patient/" + id})
	ignored("FAMILY")(t, res)
}

// checkNamedQuery: B-QRY-01, a _query the server does not define is
// refused, lenient or not.
func checkNamedQuery(t *testing.T, c *Client, _ Options) {
	for _, h := range [][]string{nil, {"Prefer", "handling=lenient"}} {
		expectOutcome(t, c.Do("GET", "/Patient?_query=no-such-query", nil, h...), 400, "_query with "+fmt.Sprint(h))
	}
}

// checkCompositeModifiers: B-COMP-01, composite parameters take no
// modifiers.
func checkCompositeModifiers(t *testing.T, c *Client, _ Options) {
	for _, mod := range []string{"exact", "text", "not"} {
		q := "/Observation?component-code-value-quantity:" + mod + "=" + url.QueryEscape("http://loinc.org|8480-6$gt60")
		expectOutcome(t, c.Do("GET", q, nil), 400, "composite with :"+mod)
	}
}

// checkStringParts: B-STR-04, string search on HumanName and Address
// covers their string parts only, never use or period.
func checkStringParts(t *testing.T, c *Client, _ Options) {
	fam := uniqueName("Parts")
	id, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient",
		"name":[{"use":"maiden","text":"Textual Name","family":%q,"given":["Giv"],"prefix":["Dr"],"suffix":["III"],"period":{"start":"2001-02-03"}}],
		"address":[{"use":"temp","type":"postal","line":["1 Main St"],"city":"Springfield","postalCode":"99999","country":"Freedonia","period":{"start":"2001-02-03"}}]}`, fam))
	want := "Patient/" + id
	q := func(param, value string) string {
		return "/Patient?family=" + fam + "&" + param + "=" + url.QueryEscape(value)
	}
	for _, tc := range []struct{ param, value string }{
		{"name", "textual"}, {"name", "giv"}, {"name", "dr"}, {"name", "iii"}, {"name", fam},
		{"address", "1 main"}, {"address", "springf"}, {"address", "99999"}, {"address", "freedonia"},
	} {
		expectMatches(t, c, q(tc.param, tc.value), want)
	}
	for _, tc := range []struct{ param, value string }{
		{"name", "maiden"}, {"name", "2001"}, {"address", "temp"}, {"address", "postal"}, {"address", "2001"},
	} {
		expectMatches(t, c, q(tc.param, tc.value))
	}
}

// checkTimingRange: B-DT-04, a Timing is one range from its first to its
// last event: a month holding only its first event does not contain it
// (eq), and each prefix compares against the whole range (search.html
// prefix table: gt and lt need an overlap above or below the value, sa
// and eb no overlap at all).
func checkTimingRange(t *testing.T, c *Client, _ Options) {
	p, _ := create(t, c, "Patient", patient("", uniqueName("Timing")))
	id, _ := create(t, c, "CarePlan", fmt.Sprintf(`{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/%s"},
		"activity":[{"detail":{"status":"scheduled","scheduledTiming":{"event":["2020-01-05","2020-03-10"]}}}]}`, p))
	want := "CarePlan/" + id
	q := func(v string) string { return "/CarePlan?subject=Patient/" + p + "&activity-date=" + v }
	for _, v := range []string{"2020", "ge2020-03-09", "le2020-01-06", "gt2020-02-01", "lt2020-02-01", "sa2020-01-04", "eb2020-03-11", "ne2020-01"} {
		expectMatches(t, c, q(v), want)
	}
	for _, v := range []string{"2020-01", "2020-03", "2020-01-05", "gt2020-03-10", "lt2020-01-05", "sa2020-01-05", "eb2020-03-10"} {
		expectMatches(t, c, q(v))
	}
}

// checkSelfLink: A-SB-04, the self link holds the parameters the search
// used (and not the ignored ones); the sort applied is in it (B-SORT-01)
// and every paging link repeats _count (B-CNT-01).
func checkSelfLink(t *testing.T, c *Client, _ Options) {
	fam := uniqueName("Self")
	for range 3 {
		create(t, c, "Patient", patient("", fam))
	}
	res, r := search(t, c, "GET", "/Patient?family="+fam+"&gender=female&_sort=-birthdate&_count=1&foo=bar", "", nil, 1)
	if res == nil {
		t.Fatalf("status %d", r.Status)
	}
	if len(res.matches) != 3 || len(res.pages) != 3 {
		t.Fatalf("%d matches over %d pages, want 3 over 3", len(res.matches), len(res.pages))
	}
	self, err := url.Parse(res.self())
	if err != nil {
		t.Fatalf("self link %q: %v", res.self(), err)
	}
	q := self.Query()
	for k, v := range map[string]string{"family": fam, "gender": "female", "_sort": "-birthdate", "_count": "1"} {
		if q.Get(k) != v {
			t.Errorf("self link %q: %s=%q, want %q", self, k, q.Get(k), v)
		}
	}
	if q.Has("foo") {
		t.Errorf("self link %q keeps the ignored foo", self)
	}
	for i, p := range res.pages {
		for _, rel := range []string{"self", "next"} {
			if l := p.link(rel); l != "" && !strings.Contains(l, "_count=1") {
				t.Errorf("page %d: %s link %q does not repeat _count=1", i+1, rel, l)
			}
		}
	}
}

// checkPreferPatch: A-PR-01 on PATCH, which answers as an update.
func checkPreferPatch(t *testing.T, c *Client, _ Options) {
	id := uniqueID("ppatch")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Patchy"))), 201, "create")
	for i, tc := range []struct{ prefer, want string }{
		{"return=minimal", ""},
		{"return=representation", `"resourceType":"Patient"`},
		{"return=OperationOutcome", `"resourceType":"OperationOutcome"`},
	} {
		body := fmt.Sprintf(`[{"op":"replace","path":"/name/0/family","value":"Patched%d"}]`, i)
		r := c.Do("PATCH", "/Patient/"+id, []byte(body), "Content-Type", jsonPatch, "Prefer", tc.prefer)
		expectStatus(t, r, 200, "PATCH "+tc.prefer)
		if want := fmt.Sprintf(`W/"%d"`, i+2); r.Header.Get("ETag") != want {
			t.Errorf("%s: ETag %q, want %s", tc.prefer, r.Header.Get("ETag"), want)
		}
		if tc.want == "" && len(r.Body) != 0 {
			t.Errorf("%s: %d body bytes", tc.prefer, len(r.Body))
		}
		if tc.want != "" && !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: body %s", tc.prefer, truncate(r.Body))
		}
	}
}

// checkDeleteETag: A-DE-05, the delete answer may carry an ETag; Kiln's
// names the version the delete made, the one a later read's 410 names.
func checkDeleteETag(t *testing.T, c *Client, _ Options) {
	id := uniqueID("deltag")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Gone"))), 201, "create")
	r := c.Do("DELETE", "/Patient/"+id, nil)
	if r.Status != 200 && r.Status != 204 {
		t.Fatalf("delete: status %d", r.Status)
	}
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("delete ETag %q, want W/\"2\"", r.Header.Get("ETag"))
	}
	if g := c.Do("GET", "/Patient/"+id, nil); g.Header.Get("ETag") != r.Header.Get("ETag") {
		t.Errorf("410 ETag %q, delete ETag %q", g.Header.Get("ETag"), r.Header.Get("ETag"))
	}
}

// checkUSCoreDates: B-DT-06, as the US Core kit does it: for each US Core
// date parameter, gt, ge, lt and le with a full timestamp and offset a day
// either side of the stored value, and the resource is in the result
// exactly when the comparison holds.
func checkUSCoreDates(t *testing.T, c *Client, _ Options) {
	p, _ := create(t, c, "Patient", patient("", uniqueName("USCoreDates")))
	subj := fmt.Sprintf(`{"reference":"Patient/%s"}`, p)
	const v = "2019-05-31T10:00:00+00:00"
	for _, tc := range []struct{ typ, param, body string }{
		{"Observation", "date", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":` + subj + `,"effectiveDateTime":"` + v + `"}`},
		{"Condition", "onset-date", `{"resourceType":"Condition","subject":` + subj + `,"onsetDateTime":"` + v + `"}`},
		{"MedicationRequest", "authoredon", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":` + subj + `,"authoredOn":"` + v + `"}`},
		{"Immunization", "date", `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":` + subj + `,"occurrenceDateTime":"` + v + `"}`},
		{"Encounter", "date", `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":` + subj + `,"period":{"start":"` + v + `","end":"2019-05-31T11:00:00+00:00"}}`},
		{"DiagnosticReport", "date", `{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"},"subject":` + subj + `,"effectiveDateTime":"` + v + `"}`},
		{"Procedure", "date", `{"resourceType":"Procedure","status":"completed","subject":` + subj + `,"performedDateTime":"` + v + `"}`},
	} {
		id, _ := create(t, c, tc.typ, tc.body)
		want := tc.typ + "/" + id
		for _, q := range []struct {
			value string
			match bool
		}{
			{"gt2019-05-30T10:00:00+00:00", true}, {"gt2019-06-01T10:00:00+00:00", false},
			{"ge2019-05-30T10:00:00+00:00", true}, {"ge2019-06-01T10:00:00+00:00", false},
			{"lt2019-06-01T10:00:00+00:00", true}, {"lt2019-05-30T10:00:00+00:00", false},
			{"le2019-06-01T10:00:00+00:00", true}, {"le2019-05-30T10:00:00+00:00", false},
		} {
			path := "/" + tc.typ + "?patient=" + p + "&" + tc.param + "=" + url.QueryEscape(q.value)
			if q.match {
				expectMatches(t, c, path, want)
			} else {
				expectMatches(t, c, path)
			}
		}
	}
}

// checkVersionedReference: B-REF-05, a version-specific reference is
// found by its resource; chaining evaluates the target's current version,
// not the version named, and says so in a warning; _include returns the
// version named.
func checkVersionedReference(t *testing.T, c *Client, _ Options) {
	old, cur := uniqueName("Old"), uniqueName("Cur")
	id := uniqueID("vref")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, old))), 201, "create")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, cur))), 200, "update")
	obs, _ := create(t, c, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"v"},"subject":{"reference":"Patient/%s/_history/1"}}`, id))
	want := "Observation/" + obs
	expectMatches(t, c, "/Observation?subject=Patient/"+id, want)
	expectMatches(t, c, "/Observation?subject:Patient.family="+cur, want)
	expectMatches(t, c, "/Observation?subject:Patient.family="+old)

	// The chain went through the versioned reference: a warning in the
	// outcome entry says the current version was tested; a search without
	// a chain, and a chain through an unversioned reference, have none.
	page := func(path string) []searchEntry {
		t.Helper()
		r := c.Do("GET", path, nil)
		expectStatus(t, r, 200, path)
		_, entries := readSearchPage(t, r, -1)
		return entries
	}
	warnings := func(entries []searchEntry) (out []string) {
		for _, e := range entries {
			if e.mode != "outcome" {
				continue
			}
			for _, is := range issueList(e.resource) {
				if d, _ := is["diagnostics"].(string); is["severity"] == "warning" && strings.Contains(d, "current version") {
					out = append(out, d)
				}
			}
		}
		return out
	}
	if w := warnings(page("/Observation?subject:Patient.family=" + cur)); len(w) != 1 || !strings.Contains(w[0], "Patient/"+id+"/_history/1") {
		t.Errorf("a chain through a versioned reference: warnings %q, want one naming Patient/%s/_history/1", w, id)
	}
	if w := warnings(page("/Observation?subject=Patient/" + id)); len(w) != 0 {
		t.Errorf("no chain: warnings %q, want none", w)
	}
	unversioned, _ := create(t, c, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"%s"},"subject":{"reference":"Patient/%s"}}`, cur, id))
	if w := warnings(page("/Observation?code:text=" + cur + "&subject:Patient.family=" + cur)); len(w) != 0 {
		t.Errorf("a chain through an unversioned reference (Observation/%s): warnings %q, want none", unversioned, w)
	}

	// _include returns the version named, not the current one.
	for _, tc := range []struct{ obs, version, family string }{{obs, "1", old}, {unversioned, "2", cur}} {
		var included []searchEntry
		for _, e := range page("/Observation?_id=" + tc.obs + "&_include=Observation:subject") {
			if e.mode == "include" {
				included = append(included, e)
			}
		}
		if len(included) != 1 || included[0].key != "Patient/"+id {
			t.Errorf("_include from Observation/%s: %d included, want Patient/%s", tc.obs, len(included), id)
			continue
		}
		meta, _ := included[0].resource["meta"].(map[string]any)
		names, _ := included[0].resource["name"].([]any)
		family := ""
		if len(names) > 0 {
			family, _ = names[0].(map[string]any)["family"].(string)
		}
		if meta["versionId"] != tc.version || family != tc.family {
			t.Errorf("_include from Observation/%s: version %v, family %q; want version %s, family %q",
				tc.obs, meta["versionId"], family, tc.version, tc.family)
		}
	}
}
