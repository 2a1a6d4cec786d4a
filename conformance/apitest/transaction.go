package apitest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Batch and transaction scenarios (http.html#transaction, checklist A.12).

// bundleOf builds a batch or transaction Bundle from raw entry objects.
func bundleOf(typ string, entries ...string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Bundle","type":%q,"entry":[%s]}`, typ, strings.Join(entries, ",")))
}

// entries decodes a response Bundle's entries, checking its type.
func responseEntries(t testing.TB, r Response, typ string) []map[string]any {
	t.Helper()
	m := r.JSON(t)
	if m["resourceType"] != "Bundle" || m["type"] != typ {
		t.Fatalf("response is a %v of type %v, want a %s Bundle\n%s", m["resourceType"], m["type"], typ, truncate(r.Body))
	}
	var out []map[string]any
	for _, e := range m["entry"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func entryStatus(e map[string]any) string {
	resp, _ := e["response"].(map[string]any)
	s, _ := resp["status"].(string)
	return s
}

func entryLocation(e map[string]any) string {
	resp, _ := e["response"].(map[string]any)
	s, _ := resp["location"].(string)
	return s
}

var statusPattern = regexp.MustCompile(`^[1-5][0-9]{2}( .*)?$`)

// idOfLocation is Type/id of a response location Type/id/_history/n.
func idOfLocation(t testing.TB, loc string) string {
	t.Helper()
	parts := strings.Split(loc, "/")
	if len(parts) < 2 {
		t.Fatalf("response location %q is not Type/id/_history/n", loc)
	}
	return parts[0] + "/" + parts[1]
}

func testTransaction(t *testing.T, c *Client, opts Options) {
	t.Run("the CapabilityStatement lists batch, transaction and patch", func(t *testing.T) {
		m := c.Do("GET", "/metadata", nil).JSON(t)
		rest := m["rest"].([]any)[0].(map[string]any)
		var system []string
		for _, in := range rest["interaction"].([]any) {
			system = append(system, in.(map[string]any)["code"].(string))
		}
		for _, want := range []string{"batch", "transaction"} {
			if !slices.Contains(system, want) {
				t.Errorf("rest.interaction %v lacks %s", system, want)
			}
		}
		patient := rest["resource"].([]any)[0].(map[string]any)
		if !strings.Contains(fmt.Sprint(patient["interaction"]), "code:patch") {
			t.Errorf("%v: interactions %v lack patch", patient["type"], patient["interaction"])
		}
	})
	t.Run("A-BT-08 urn:uuid references rewritten everywhere; A-BT-12 response", func(t *testing.T) {
		needTransactions(t, opts)
		pat := "urn:uuid:2b3f6a1c-0000-4000-8000-000000000000"
		obs := "urn:uuid:9d1e2f3a-0000-4000-8000-000000000001"
		body := bundleOf("transaction",
			// The Observation comes first: references resolve whatever the order.
			fmt.Sprintf(`{"fullUrl":%q,"resource":{"resourceType":"Observation","status":"final",
				"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">For <a href=\"%s\">the patient</a></div>"},
				"contained":[{"resourceType":"Provenance","id":"p1","target":[{"reference":%q}],"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"reference":%q}}]}],
				"extension":[{"url":"http://example.org/ext","valueReference":{"reference":%q}}],
				"code":{"text":"weight"},"subject":{"reference":%q},"focus":[{"reference":"#p1"}]},
				"request":{"method":"POST","url":"Observation"}}`, obs, pat, pat, pat, pat, pat),
			fmt.Sprintf(`{"fullUrl":%q,"resource":{"resourceType":"Patient","name":[{"family":"Urn"}]},"request":{"method":"POST","url":"Patient"}}`, pat),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "transaction")
		entries := responseEntries(t, r, "transaction-response")
		if len(entries) != 2 {
			t.Fatalf("%d response entries, want 2 (one per request entry)", len(entries))
		}
		for i, e := range entries {
			if st := entryStatus(e); !strings.HasPrefix(st, "201") || !statusPattern.MatchString(st) {
				t.Errorf("entry %d: status %q, want 201 …", i, st)
			}
			resp := e["response"].(map[string]any)
			if resp["etag"] != `W/"1"` || resp["lastModified"] == nil || !strings.HasSuffix(entryLocation(e), "/_history/1") {
				t.Errorf("entry %d: response %v lacks etag, lastModified or location", i, resp)
			}
		}
		// Order: entry 0 answers the Observation, entry 1 the Patient.
		obsRef, patRef := idOfLocation(t, entryLocation(entries[0])), idOfLocation(t, entryLocation(entries[1]))
		if !strings.HasPrefix(obsRef, "Observation/") || !strings.HasPrefix(patRef, "Patient/") {
			t.Fatalf("response entries out of order: %s, %s", obsRef, patRef)
		}
		got := c.Do("GET", "/"+obsRef, nil)
		expectStatus(t, got, 200, "read the Observation")
		s := string(got.Body)
		if strings.Contains(s, "urn:uuid:") {
			t.Errorf("a urn:uuid survived the transaction: %s", s)
		}
		if n := strings.Count(s, `"`+patRef+`"`); n != 4 {
			t.Errorf("Patient reference appears %d times in subject, extension and contained (2), want 4: %s", n, s)
		}
		if !strings.Contains(s, `href=\"`+patRef+`\"`) {
			t.Errorf("narrative href not rewritten: %s", s)
		}
		if !strings.Contains(s, `"#p1"`) {
			t.Errorf("a contained reference was rewritten: %s", s)
		}
	})

	t.Run("A-BT-06 processing order: DELETE, POST, PUT, GET", func(t *testing.T) {
		needTransactions(t, opts)
		a, b := uniqueID("order-a"), uniqueID("order-b")
		expectStatus(t, c.Do("PUT", "/Patient/"+a, []byte(patient(a, "Before"))), 201, "create a")
		expectStatus(t, c.Do("PUT", "/Patient/"+b, []byte(patient(b, "Doomed"))), 201, "create b")
		body := bundleOf("transaction",
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s"}}`, a),
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient?_id=%s"}}`, b),
			fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient(a, "After"), a),
			fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient/%s"}}`, b),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "transaction")
		entries := responseEntries(t, r, "transaction-response")
		want := []string{"200", "200", "200", "204"}
		for i, e := range entries {
			if !strings.HasPrefix(entryStatus(e), want[i]) {
				t.Errorf("entry %d: status %q, want %s", i, entryStatus(e), want[i])
			}
		}
		if !strings.Contains(fmt.Sprint(entries[0]["resource"]), "After") {
			t.Errorf("the GET ran before the PUT: %v", entries[0]["resource"])
		}
		if res, _ := entries[1]["resource"].(map[string]any); res == nil || res["type"] != "searchset" || res["entry"] != nil {
			t.Errorf("the search ran before the DELETE: %v", entries[1]["resource"])
		}
		expectOutcome(t, c.Do("GET", "/Patient/"+b, nil), 410, "deleted by the transaction")
	})

	t.Run("A-BT-14 ifNoneExist, ifMatch inside a transaction", func(t *testing.T) {
		sys := uniqueID("http://example.org/mrn")
		existing, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"1"}]}`, sys))
		before := systemTotal(t, c)
		body := bundleOf("transaction", fmt.Sprintf(`{"resource":{"resourceType":"Patient","identifier":[{"system":%q,"value":"1"}]},
			"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=%s|1"}}`, sys, sys))
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "conditional create")
		e := responseEntries(t, r, "transaction-response")[0]
		if !strings.HasPrefix(entryStatus(e), "200") || idOfLocation(t, entryLocation(e)) != "Patient/"+existing {
			t.Errorf("ifNoneExist with one match: %s %s, want 200 and Patient/%s", entryStatus(e), entryLocation(e), existing)
		}
		if after := systemTotal(t, c); after != before {
			t.Errorf("ifNoneExist with one match stored %d versions", after-before)
		}
		// ifMatch: current → applied; stale → 412 and nothing.
		body = bundleOf("transaction", fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":%q,"active":true},
			"request":{"method":"PUT","url":"Patient/%s","ifMatch":"W/\"1\""}}`, existing, existing))
		expectStatus(t, c.Do("POST", "/", body), 200, "ifMatch current")
		before = systemTotal(t, c)
		issues := expectOutcome(t, c.Do("POST", "/", body), 412, "ifMatch stale")
		if !hasExpression(issues, "Bundle.entry[0]") {
			t.Errorf("412 does not name the entry: %v", issues)
		}
		if after := systemTotal(t, c); after != before {
			t.Errorf("a failed transaction stored %d versions", after-before)
		}
	})

	t.Run("A-BT-14 conditional update and delete inside a transaction", func(t *testing.T) {
		needTransactions(t, opts)
		sys := uniqueID("http://example.org/cud")
		doomed, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"del"}]}`, sys))
		kept, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"upd"}]}`, sys))
		body := bundleOf("transaction",
			// no match, no id: created
			fmt.Sprintf(`{"resource":{"resourceType":"Patient","identifier":[{"system":%q,"value":"new"}]},"request":{"method":"PUT","url":"Patient?identifier=%s|new"}}`, sys, sys),
			// one match, body without id: that resource is updated
			fmt.Sprintf(`{"resource":{"resourceType":"Patient","active":true,"identifier":[{"system":%q,"value":"upd"}]},"request":{"method":"PUT","url":"Patient?identifier=%s|upd"}}`, sys, sys),
			fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient?identifier=%s|del"}}`, sys),
			fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient?identifier=%s|nothing"}}`, sys),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "transaction")
		entries := responseEntries(t, r, "transaction-response")
		for i, want := range []string{"201", "200", "204", "204"} {
			if !strings.HasPrefix(entryStatus(entries[i]), want) {
				t.Errorf("entry %d: %s, want %s", i, entryStatus(entries[i]), want)
			}
		}
		if got := idOfLocation(t, entryLocation(entries[1])); got != "Patient/"+kept {
			t.Errorf("conditional update wrote %s, want Patient/%s", got, kept)
		}
		expectOutcome(t, c.Do("GET", "/Patient/"+doomed, nil), 410, "conditionally deleted")
		// Several matches: the transaction fails with 412 and stores nothing.
		create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"upd"}]}`, sys))
		before := systemTotal(t, c)
		issues := expectOutcome(t, c.Do("POST", "/", body), 412, "conditional update with two matches")
		if !hasExpression(issues, "Bundle.entry[1]") {
			t.Errorf("412 does not name the entry: %v", issues)
		}
		if after := systemTotal(t, c); after != before {
			t.Errorf("the failed transaction stored %d versions", after-before)
		}
	})

	t.Run("A-BT-11 conditional reference resolved to a literal one", func(t *testing.T) {
		needTransactions(t, opts)
		sys := uniqueID("http://example.org/cref")
		target, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"7"}]}`, sys))
		ref := fmt.Sprintf("Patient?identifier=%s|7", sys)
		obs := fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}},"request":{"method":"POST","url":"Observation"}}`, ref)
		r := c.Do("POST", "/", bundleOf("transaction", obs, obs))
		expectStatus(t, r, 200, "transaction")
		for _, e := range responseEntries(t, r, "transaction-response") {
			got := c.Do("GET", "/"+idOfLocation(t, entryLocation(e)), nil)
			if !strings.Contains(string(got.Body), `"reference":"Patient/`+target+`"`) {
				t.Errorf("conditional reference not resolved to Patient/%s: %s", target, got.Body)
			}
		}
	})

	t.Run("A-BT-09 PUT with an absolute fullUrl; relative references resolved against it", func(t *testing.T) {
		needTransactions(t, opts)
		id := uniqueID("abs")
		body := bundleOf("transaction",
			fmt.Sprintf(`{"fullUrl":"http://other.example.org/fhir/Patient/%s","resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, id, patient(id, "Abs"), id),
			fmt.Sprintf(`{"fullUrl":"http://other.example.org/fhir/Observation/o1","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
				"subject":{"reference":"http://other.example.org/fhir/Patient/%s"},"focus":[{"reference":"Patient/%s"}],
				"extension":[{"url":"http://example.org/canonical","valueCanonical":"http://other.example.org/fhir/Patient/%s"}]},"request":{"method":"POST","url":"Observation"}}`, id, id, id),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "transaction")
		entries := responseEntries(t, r, "transaction-response")
		got := c.Do("GET", "/"+idOfLocation(t, entryLocation(entries[1])), nil)
		if n := strings.Count(string(got.Body), `"reference":"Patient/`+id+`"`); n != 2 {
			t.Errorf("absolute and relative references to the PUT entry: %d are Patient/%s, want 2: %s", n, id, got.Body)
		}
		if !strings.Contains(string(got.Body), `"valueCanonical":"http://other.example.org/fhir/Patient/`+id+`"`) {
			t.Errorf("a canonical was rewritten (A-BT-08 says canonicals are not): %s", got.Body)
		}
	})
}

func testBatch(t *testing.T, c *Client, _ Options) {
	t.Run("A-BT-03 entries succeed or fail independently", func(t *testing.T) {
		id := uniqueID("batch")
		expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Batch"))), 201, "create")
		body := bundleOf("batch",
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s"}}`, id),
			`{"request":{"method":"GET","url":"Patient/no-such-patient-here"}}`,
			`{"resource":{"resourceType":"Patient","gender":"mal"},"request":{"method":"POST","url":"Patient"}}`,
			`{"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"POST","url":"Patient"}}`,
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "batch")
		entries := responseEntries(t, r, "batch-response")
		want := []string{"200", "404", "400", "201"}
		if len(entries) != len(want) {
			t.Fatalf("%d entries, want %d", len(entries), len(want))
		}
		for i, e := range entries {
			if !strings.HasPrefix(entryStatus(e), want[i]) {
				t.Errorf("entry %d: status %q, want %s", i, entryStatus(e), want[i])
			}
		}
		if oc, _ := entries[2]["response"].(map[string]any)["outcome"].(map[string]any); oc == nil || oc["resourceType"] != "OperationOutcome" {
			t.Errorf("failed entry has no outcome: %v", entries[2])
		}
		expectStatus(t, c.Do("GET", "/"+idOfLocation(t, entryLocation(entries[3])), nil), 200, "the good create of the batch")
	})
	t.Run("A-BT-14 ifNoneMatch and ifModifiedSince on GET entries", func(t *testing.T) {
		id := uniqueID("cread")
		expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Cached"))), 201, "create")
		body := bundleOf("batch",
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s","ifNoneMatch":"W/\"1\""}}`, id),
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s","ifNoneMatch":"W/\"7\""}}`, id),
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s","ifModifiedSince":"2999-01-01T00:00:00Z"}}`, id),
			fmt.Sprintf(`{"request":{"method":"GET","url":"Patient/%s","ifModifiedSince":"2000-01-01T00:00:00Z"}}`, id),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "batch")
		entries := responseEntries(t, r, "batch-response")
		for i, want := range []string{"304", "200", "304", "200"} {
			if !strings.HasPrefix(entryStatus(entries[i]), want) {
				t.Errorf("entry %d: %s, want %s", i, entryStatus(entries[i]), want)
			}
		}
		if entries[1]["resource"] == nil || entries[0]["resource"] != nil {
			t.Errorf("the 200 entry needs the resource, the 304 none: %v / %v", entries[1]["resource"], entries[0]["resource"])
		}
	})
	t.Run("A-BT-15 a history Bundle is replayed, oldest first, keeping ids", func(t *testing.T) {
		orig, _ := create(t, c, "Patient", patient("", "Hist1"))
		body := c.Do("GET", "/Patient/"+orig, nil).JSON(t)
		body["name"] = []any{map[string]any{"family": "Hist2"}}
		b, _ := json.Marshal(body)
		expectStatus(t, c.Do("PUT", "/Patient/"+orig, b), 200, "update")
		expectStatus(t, c.Do("DELETE", "/Patient/"+orig, nil), 204, "delete")
		hist := c.Do("GET", "/Patient/"+orig+"/_history", nil)
		expectStatus(t, hist, 200, "history")
		// The same history under another id: a copy of the resource's life.
		copyID := uniqueID("replica")
		replay := strings.ReplaceAll(string(hist.Body), orig, copyID)
		r := c.Do("POST", "/", []byte(replay))
		expectStatus(t, r, 200, "history replay")
		entries := responseEntries(t, r, "batch-response")
		if len(entries) != 3 {
			t.Fatalf("%d response entries, want 3", len(entries))
		}
		// Newest first in the Bundle: delete, update, create.
		for i, want := range []string{"204", "200", "201"} {
			if !strings.HasPrefix(entryStatus(entries[i]), want) {
				t.Errorf("entry %d: %s, want %s", i, entryStatus(entries[i]), want)
			}
		}
		expectOutcome(t, c.Do("GET", "/Patient/"+copyID, nil), 410, "the replayed delete")
		if v2 := c.Do("GET", "/Patient/"+copyID+"/_history/2", nil); !strings.Contains(string(v2.Body), "Hist2") {
			t.Errorf("version 2 of the replica: %d %s", v2.Status, v2.Body)
		}
	})
	t.Run("A-BT-14 batch entries run one after the other: one conditional create wins", func(t *testing.T) {
		sys := uniqueID("http://example.org/twice")
		entry := fmt.Sprintf(`{"resource":{"resourceType":"Patient","identifier":[{"system":%q,"value":"1"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=%s|1"}}`, sys, sys)
		r := c.Do("POST", "/", bundleOf("batch", entry, entry))
		expectStatus(t, r, 200, "batch")
		entries := responseEntries(t, r, "batch-response")
		if !strings.HasPrefix(entryStatus(entries[0]), "201") || !strings.HasPrefix(entryStatus(entries[1]), "200") ||
			entryLocation(entries[0]) != entryLocation(entries[1]) {
			t.Errorf("two identical conditional creates: %s %s and %s %s, want 201 then 200 on the same resource",
				entryStatus(entries[0]), entryLocation(entries[0]), entryStatus(entries[1]), entryLocation(entries[1]))
		}
	})
	t.Run("A-BT-04 a batch entry may not reference another", func(t *testing.T) {
		u := "urn:uuid:5e5e5e5e-0000-4000-8000-000000000004"
		body := bundleOf("batch",
			fmt.Sprintf(`{"fullUrl":%q,"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`, u),
			fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}},"request":{"method":"POST","url":"Observation"}}`, u),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "batch")
		entries := responseEntries(t, r, "batch-response")
		if !strings.HasPrefix(entryStatus(entries[1]), "400") {
			t.Errorf("entry referencing another batch entry: %s, want 400", entryStatus(entries[1]))
		}
	})
	t.Run("A-BT-12 Prefer return=minimal leaves resources out", func(t *testing.T) {
		r := c.Do("POST", "/", bundleOf("batch", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`), "Prefer", "return=minimal")
		expectStatus(t, r, 200, "batch")
		e := responseEntries(t, r, "batch-response")[0]
		if e["resource"] != nil || !strings.HasPrefix(entryStatus(e), "201") {
			t.Errorf("return=minimal: %v", e)
		}
	})
}

// testBundleBadInput: each malformed batch or transaction is refused with
// an OperationOutcome naming the entry, and the store is unchanged.
func testBundleBadInput(t *testing.T, c *Client, opts Options) {
	sys := uniqueID("http://example.org/twins")
	for range 2 {
		create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"t"}]}`, sys))
	}
	existing, _ := create(t, c, "Patient", patient("", "Existing"))
	tagged, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"solo"}]}`, sys))

	post := func(res string) string {
		return fmt.Sprintf(`{"resource":%s,"request":{"method":"POST","url":"%s"}}`, res, typeOf(res))
	}
	obsFor := func(ref string) string {
		return post(fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}}`, ref))
	}
	// 300 entries, entry 217 invalid (A-BT-05).
	var many []string
	for i := range 300 {
		g := "female"
		if i == 217 {
			g = "mal"
		}
		many = append(many, fmt.Sprintf(`{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Patient","gender":%q},"request":{"method":"POST","url":"Patient"}}`, i, g))
	}
	big := opts.MaxBody + 1
	if big <= 1 {
		big = 16<<20 + 1
	}
	huge := bundleOf("transaction", post(fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":%q}]}`, strings.Repeat("a", int(big)))))

	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		expr   string
	}{
		{"A-BT-05 one invalid entry among 300", bundleOf("transaction", many...), 400, "Bundle.entry[217]"},
		{"reference to a urn:uuid not in the bundle", bundleOf("transaction", post(patient("", "A")), obsFor("urn:uuid:99999999-0000-4000-8000-000000000000")), 400, "Bundle.entry[1]"},
		{"duplicate fullUrls", bundleOf("transaction",
			`{"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000000","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`,
			`{"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000000","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`), 400, "Bundle.entry[1].fullUrl"},
		{"A-BT-11 conditional reference matching nothing", bundleOf("transaction", post(patient("", "B")), obsFor("Patient?identifier=http://example.org/none|0")), 400, "Bundle.entry[1]"},
		{"A-BT-11 conditional reference matching several", bundleOf("transaction", post(patient("", "C")), obsFor("Patient?identifier="+sys+"|t")), 412, "Bundle.entry[1]"},
		{"A-BT-07 two entries updating the same resource", bundleOf("transaction", post(patient("", "D")),
			fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient(existing, "E"), existing),
			fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient(existing, "F"), existing)), 400, "Bundle.entry[2]"},
		{"A-BT-07 PUT and DELETE of the same resource", bundleOf("transaction",
			fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient(existing, "G"), existing),
			fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient/%s"}}`, existing)), 400, "Bundle.entry[0]"},
		{"A-BT-07 PUT by id and conditional DELETE resolving to the same resource", bundleOf("transaction",
			fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":%q},"request":{"method":"PUT","url":"Patient/%s"}}`, tagged, tagged),
			fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient?identifier=%s|solo"}}`, sys)), 400, "Bundle.entry[1]"},
		{"a transaction nested in an entry", bundleOf("transaction", post(patient("", "H")),
			post(string(bundleOf("transaction", post(patient("", "I")))))), 400, "Bundle.entry[1]"},
		{"a transaction posted to the base inside an entry", bundleOf("transaction",
			fmt.Sprintf(`{"resource":%s,"request":{"method":"POST","url":""}}`, bundleOf("batch"))), 400, "Bundle.entry[0].request"},
		{"wrong Bundle type", []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient"}}]}`), 400, "Bundle.type"},
		{"a searchset is not a batch", []byte(`{"resourceType":"Bundle","type":"searchset"}`), 400, "Bundle.type"},
		{"not a Bundle", []byte(`{"resourceType":"Patient"}`), 400, ""},
		{"A-BT-01 entry without request", bundleOf("transaction", post(patient("", "J")), `{"resource":{"resourceType":"Patient"}}`), 400, "Bundle.entry[1].request"},
		{"A-BT-01 batch entry without request", bundleOf("batch", `{"resource":{"resourceType":"Patient"}}`), 400, "Bundle.entry[0].request"},
		{"A-BT-13 request entry with a response", bundleOf("transaction", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"},"response":{"status":"201"}}`), 400, "Bundle.entry[0].response"},
		{"POST entry without resource", bundleOf("transaction", post(patient("", "K")), `{"request":{"method":"POST","url":"Patient"}}`), 400, "Bundle.entry[1]"},
		{"resource type differs from the url", bundleOf("transaction", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Observation"}}`), 400, "Bundle.entry[0]"},
		{"request.url on another server", bundleOf("transaction", `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"https://elsewhere.example.org/fhir/Patient"}}`), 400, "Bundle.entry[0]"},
		{"unknown method", bundleOf("transaction", `{"resource":{"resourceType":"Patient"},"request":{"method":"FETCH","url":"Patient"}}`), 400, "Bundle.entry[0]"},
		{"over --max-body", huge, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := systemTotal(t, c)
			issues := expectOutcome(t, c.Do("POST", "/", tc.body), tc.status, tc.name)
			if tc.expr != "" && !hasExpression(issues, tc.expr) {
				t.Errorf("no issue names %s: %v", tc.expr, issues)
			}
			if after := systemTotal(t, c); after != before {
				t.Errorf("the rejected bundle stored %d versions", after-before)
			}
		})
	}
}

// typeOf is the resourceType of a JSON resource.
func typeOf(res string) string {
	var head struct{ ResourceType string }
	json.Unmarshal([]byte(res), &head)
	return head.ResourceType
}

// testTransactionRefused: a server that cannot apply several changes
// atomically (Options.NoTransactions) refuses a transaction of several
// changes whole — 501 with an OperationOutcome — and stores none of them
// (http.html#transaction: "all or nothing"; half-applying is never
// allowed).
func testTransactionRefused(t *testing.T, c *Client, opts Options) {
	if !opts.NoTransactions {
		t.Skip("the server applies transactions of several changes: the transaction scenarios cover them")
	}
	kept, doomed := uniqueID("refused-kept"), uniqueID("refused-doomed")
	expectStatus(t, c.Do("PUT", "/Patient/"+kept, []byte(patient(kept, "Kept"))), 201, "create kept")
	expectStatus(t, c.Do("PUT", "/Patient/"+doomed, []byte(patient(doomed, "Doomed"))), 201, "create doomed")
	pat := "urn:uuid:5c0ffee0-0000-4000-8000-000000000000"
	body := bundleOf("transaction",
		fmt.Sprintf(`{"fullUrl":%q,"resource":%s,"request":{"method":"POST","url":"Patient"}}`, pat, patient("", "New")),
		fmt.Sprintf(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":%q}},"request":{"method":"POST","url":"Observation"}}`, pat),
		fmt.Sprintf(`{"resource":%s,"request":{"method":"PUT","url":"Patient/%s"}}`, patient(kept, "Changed"), kept),
		fmt.Sprintf(`{"request":{"method":"DELETE","url":"Patient/%s"}}`, doomed),
	)
	before := systemTotal(t, c)
	expectOutcome(t, c.Do("POST", "/", body), 501, "transaction of four changes without transactions")
	if after := systemTotal(t, c); after != before {
		t.Errorf("the refused transaction stored %d versions", after-before)
	}
	r := c.Do("GET", "/Patient/"+kept, nil)
	expectStatus(t, r, 200, "read kept")
	if v, _ := meta(t, r.JSON(t)); v != "1" || strings.Contains(string(r.Body), "Changed") {
		t.Errorf("the refused PUT changed Patient/%s (version %s)", kept, v)
	}
	expectStatus(t, c.Do("GET", "/Patient/"+doomed, nil), 200, "the refused DELETE's target")
}
