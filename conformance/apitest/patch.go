package apitest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// PATCH scenarios (http.html#patch, fhirpatch.html, checklist A.7).

const jsonPatch = "application/json-patch+json"

func testPatch(t *testing.T, c *Client, opts Options) {
	id := uniqueID("patch")
	narrative := `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann Patch, inactive</div>"}`
	start := fmt.Sprintf(`{"resourceType":"Patient","id":%q,%s,"active":false,"name":[{"family":"Patch","given":["Ann"]}],
		"identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}]}`, id, narrative)
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(start)), 201, "create")
	path := "/Patient/" + id

	// version reads the current version, to prove a refused patch wrote nothing.
	version := func(t *testing.T) string {
		t.Helper()
		r := c.Do("GET", path, nil)
		expectStatus(t, r, 200, "read")
		v, _ := meta(t, r.JSON(t))
		return v
	}

	t.Run("A-PA-04 a patch that changes no data keeps the narrative", func(t *testing.T) {
		r := c.Do("PATCH", path, []byte(`[{"op":"test","path":"/active","value":false}]`), "Content-Type", jsonPatch)
		expectStatus(t, r, 200, "PATCH")
		if r.JSON(t)["text"] == nil {
			t.Errorf("the narrative was dropped by a patch that changed nothing")
		}
	})

	t.Run("A-PA-01 JSON Patch replace /active; A-PA-04 stale narrative dropped", func(t *testing.T) {
		r := c.Do("PATCH", path, []byte(`[{"op":"test","path":"/active","value":false},{"op":"replace","path":"/active","value":true}]`), "Content-Type", jsonPatch)
		expectStatus(t, r, 200, "PATCH")
		if r.Header.Get("ETag") != `W/"3"` {
			t.Errorf("ETag %q, want W/\"3\"", r.Header.Get("ETag"))
		}
		m := r.JSON(t)
		if m["active"] != true {
			t.Errorf("active is %v after the patch", m["active"])
		}
		if m["text"] != nil {
			t.Errorf("the generated narrative (\"inactive\") survived a patch that changed the data: %v", m["text"])
		}
	})

	for _, tc := range []struct {
		name, body, ctype string
		header            []string
		status            int
	}{
		{"A-PA-02 stale If-Match", `[{"op":"replace","path":"/active","value":false}]`, jsonPatch, []string{"If-Match", `W/"1"`}, 412},
		{"failed test operation", `[{"op":"test","path":"/active","value":false},{"op":"remove","path":"/name"}]`, jsonPatch, nil, 422},
		{"result is invalid", `[{"op":"replace","path":"/gender","value":"mal"}]`, jsonPatch, nil, 422},
		{"path does not exist", `[{"op":"replace","path":"/birthDate","value":"2000-01-01"}]`, jsonPatch, nil, 422},
		{"patch changes the id", `[{"op":"replace","path":"/id","value":"other"}]`, jsonPatch, nil, 422},
		{"not a JSON Patch", `{"op":"replace"}`, jsonPatch, nil, 400},
		{"unknown op", `[{"op":"frob","path":"/active"}]`, jsonPatch, nil, 400},
		{"unsupported media type", `<diff/>`, "application/xml-patch+xml", nil, 415},
		{"FHIRPath Patch that is not Parameters", `{"resourceType":"Patient"}`, "application/fhir+json", nil, 400},
		{"FHIRPath Patch with a bad path", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.("}]}]}`, "application/fhir+json", nil, 400},
		{"FHIRPath replace of several elements", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.identifier"},{"name":"value","valueIdentifier":{"value":"x"}}]}]}`, "application/fhir+json", nil, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := version(t)
			expectOutcome(t, c.Do("PATCH", path, []byte(tc.body), append([]string{"Content-Type", tc.ctype}, tc.header...)...), tc.status, tc.name)
			if after := version(t); after != before {
				t.Errorf("refused patch wrote version %s (was %s)", after, before)
			}
		})
	}
	t.Run("PATCH of a missing resource", func(t *testing.T) {
		expectOutcome(t, c.Do("PATCH", "/Patient/"+uniqueID("nobody"), []byte(`[]`), "Content-Type", jsonPatch), 404, "missing")
	})

	t.Run("FHIRPath Patch add, insert, replace, move, delete", func(t *testing.T) {
		op := func(parts string) string { return `{"name":"operation","part":[` + parts + `]}` }
		body := `{"resourceType":"Parameters","parameter":[` + strings.Join([]string{
			op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"birthDate"},{"name":"value","valueDate":"1970-01-02"}`),
			op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name[0]"},{"name":"name","valueString":"given"},{"name":"value","valueString":"Beth"}`),
			op(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":0},{"name":"value","valueIdentifier":{"system":"c","value":"3"}}`),
			op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name[0].family"},{"name":"value","valueString":"Patched"}`),
			op(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.identifier"},{"name":"source","valueInteger":2},{"name":"destination","valueInteger":0}`),
			op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier.where(system='a')"}`),
			op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"gender","valueCode":"male"}]}`),
		}, ",") + `]}`
		r := c.Do("PATCH", path, []byte(body), "Content-Type", "application/fhir+json")
		expectStatus(t, r, 200, "FHIRPath Patch")
		m := r.JSON(t)
		if m["birthDate"] != "1970-01-02" {
			t.Errorf("add birthDate: %v", m["birthDate"])
		}
		name := m["name"].([]any)[0].(map[string]any)
		if name["family"] != "Patched" || fmt.Sprint(name["given"]) != "[Ann Beth]" {
			t.Errorf("replace family / add given: %v", name)
		}
		var systems []string
		for _, idf := range m["identifier"].([]any) {
			systems = append(systems, idf.(map[string]any)["system"].(string))
		}
		// insert c at 0 → c,a,b; move 2 to 0 → b,c,a; delete a → b,c.
		if strings.Join(systems, ",") != "b,c" {
			t.Errorf("identifier systems %v, want b,c", systems)
		}
		if fmt.Sprint(m["contact"]) != "[map[gender:male]]" {
			t.Errorf("add contact from parts: %v", m["contact"])
		}
	})

	t.Run("A-PA-03 conditional patch", func(t *testing.T) {
		sys := uniqueID("http://example.org/cpatch")
		patchBody := []byte(`[{"op":"add","path":"/active","value":true}]`)
		expectOutcome(t, c.Do("PATCH", "/Patient?identifier="+sys+"|1", patchBody, "Content-Type", jsonPatch), 404, "no match")
		one, _ := create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"1"}]}`, sys))
		r := c.Do("PATCH", "/Patient?identifier="+sys+"|1", patchBody, "Content-Type", jsonPatch)
		expectStatus(t, r, 200, "one match")
		if r.JSON(t)["id"] != one {
			t.Errorf("conditional patch wrote %v, want %s", r.JSON(t)["id"], one)
		}
		create(t, c, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":"1"}]}`, sys))
		expectOutcome(t, c.Do("PATCH", "/Patient?identifier="+sys+"|1", patchBody, "Content-Type", jsonPatch), 412, "two matches")
	})

	t.Run("PATCH entries in a transaction", func(t *testing.T) {
		needTransactions(t, opts)
		a, _ := create(t, c, "Patient", patient("", "TxPatchA"))
		b, _ := create(t, c, "Patient", patient("", "TxPatchB"))
		jp := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/gender","value":"other"}]`))
		body := bundleOf("transaction",
			fmt.Sprintf(`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":%q},"request":{"method":"PATCH","url":"Patient/%s"}}`, jp, a),
			fmt.Sprintf(`{"resource":{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male"}]}]},"request":{"method":"PATCH","url":"Patient/%s","ifMatch":"W/\"1\""}}`, b),
		)
		r := c.Do("POST", "/", body)
		expectStatus(t, r, 200, "transaction")
		for i, e := range responseEntries(t, r, "transaction-response") {
			if !strings.HasPrefix(entryStatus(e), "200") {
				t.Errorf("entry %d: %s", i, entryStatus(e))
			}
		}
		for id, want := range map[string]string{a: "other", b: "male"} {
			if g := c.Do("GET", "/Patient/"+id, nil).JSON(t)["gender"]; g != want {
				t.Errorf("Patient/%s gender %v, want %s", id, g, want)
			}
		}
		// The same ifMatch again is stale now: the whole transaction fails.
		issues := expectOutcome(t, c.Do("POST", "/", body), 412, "stale ifMatch on a PATCH entry")
		if !hasExpression(issues, "Bundle.entry[1]") {
			t.Errorf("the failure does not name the entry: %v", issues)
		}
		if v, _ := meta(t, c.Do("GET", "/Patient/"+a, nil).JSON(t)); v != "2" {
			t.Errorf("Patient/%s is at version %s after a failed transaction, want 2", a, v)
		}
	})
}
