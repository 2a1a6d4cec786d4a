package rest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/rest"
)

// The matrix of TestPatientMatrix, continued through what came after it:
// batch and transaction entries, PATCH, $everything and $validate (issue
// 5: "Patient scopes confine every … operation ($everything), transaction
// entry"; issue 4: "a GET entry that would leak another patient under
// SMART"; checklist A-BT-16: each inner request is authorized on its own).

// txEntry is one entry of a batch or transaction, as JSON.
func txEntry(method, u string, resource []byte, extra ...string) string {
	req := map[string]any{"method": method, "url": u}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] == "fullUrl" {
			continue
		}
		req[extra[i]] = extra[i+1]
	}
	e := map[string]any{"request": req}
	if resource != nil {
		e["resource"] = json.RawMessage(resource)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] == "fullUrl" {
			e["fullUrl"] = extra[i+1]
		}
	}
	out, _ := json.Marshal(e)
	return string(out)
}

func txBundle(kind string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

// jsonPatchBinary wraps a JSON Patch in the Binary a bundle entry carries
// (http.html#transaction).
func jsonPatchBinary(patch string) []byte {
	return []byte(`{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` +
		base64.StdEncoding.EncodeToString([]byte(patch)) + `"}`)
}

// fhirPathPatch is a FHIRPath Patch Parameters of one operation.
func fhirPathPatch(parts ...string) []byte {
	return []byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` + strings.Join(parts, ",") + `]}]}`)
}

func part(name, kv string) string { return fmt.Sprintf(`{"name":%q,%s}`, name, kv) }

// moveToB are a JSON Patch and a FHIRPath Patch that point a resource of
// typ at patient b (Patient: a link; others: the patient reference). The
// FHIRPath Patch is "" for Patient (a link is a backbone element).
func moveToB(typ, b string) (jsonPatch string, fhirPath []byte) {
	if typ == "Patient" {
		return `[{"op":"add","path":"/link","value":[{"other":{"reference":"Patient/` + b + `"},"type":"seealso"}]}]`, nil
	}
	el := patientParam[typ]
	return `[{"op":"replace","path":"/` + el + `","value":{"reference":"Patient/` + b + `"}}]`,
		fhirPathPatch(part("type", `"valueCode":"replace"`), part("path", `"valueString":"`+typ+`.`+el+`"`),
			part("value", `"valueReference":{"reference":"Patient/`+b+`"}`))
}

// harmless are patches that change nothing clinical (the language).
const harmlessJSONPatch = `[{"op":"add","path":"/language","value":"en"}]`

func harmlessFHIRPath(typ string) []byte {
	return fhirPathPatch(part("type", `"valueCode":"add"`), part("path", `"valueString":"`+typ+`"`),
		part("name", `"valueString":"language"`), part("value", `"valueCode":"en"`))
}

// entryStatuses lists response.status of a batch-response or
// transaction-response.
func entryStatuses(t *testing.T, body []byte) []string {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Entry              []struct {
			Response struct{ Status string }
		}
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		t.Fatalf("not a Bundle: %.300s", body)
	}
	var out []string
	for _, e := range b.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		out = append(out, code)
	}
	return out
}

// unecho removes echo from body.
func unecho(body []byte, echo string) []byte {
	if echo == "" {
		return body
	}
	return bytes.ReplaceAll(body, []byte(echo), nil)
}

// TestPatientMatrixBundles: patient A's token sends batches and
// transactions whose entries reach for patient B's record. A transaction
// with one such entry stores nothing and answers the entry's refusal
// naming it (Bundle.entry[n]); a batch refuses that entry alone and
// still does A's. No response names B's record, and B's record is
// unchanged at the end.
func TestPatientMatrixBundles(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	f.toks.add("A", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}})
	ca, admin := f.client(t, "A"), f.client(t, "admin")

	// marker is an allowed write of A's (update-as-create with a chosen
	// id): stored by a batch, never by a failed transaction.
	n := 0
	marker := func() (entry, path string) {
		n++
		id := fmt.Sprintf("marker-%d", n)
		body := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"marker"},"subject":{"reference":"Patient/` + a.id + `"}}`
		return txEntry("PUT", "Observation/"+id, []byte(body)), "/Observation/" + id
	}

	type attempt struct {
		typ, name string
		entry     string // the entry that reaches for B's record
		// batch is the entry's status in a batch-response; tx the status
		// of the whole transaction ("" : the transaction succeeds, as the
		// entry is filtered rather than refused).
		batch, tx []string
		empty     bool // a GET entry's Bundle holds no entries
		// echo is what the answer may repeat of the entry (a conditional
		// reference the client wrote, naming B's id): the client's own
		// words, not B's record.
		echo string
	}
	refused := []string{"403", "404"}
	var attempts []attempt
	for _, typ := range matrixTypes {
		bID, aID := b.ids[typ][0], a.ids[typ][0]
		bBody, aBody := b.bodies[typ+"/"+bID], a.bodies[typ+"/"+aID]
		patientSearch := "patient=Patient/" + b.id
		if typ == "Patient" {
			patientSearch = "_id=" + b.id
		}
		move, moveFP := moveToB(typ, b.id)
		as := []attempt{
			{name: "GET by id", entry: txEntry("GET", typ+"/"+bID, nil), batch: []string{"404"}, tx: []string{"404"}},
			{name: "GET vread", entry: txEntry("GET", typ+"/"+bID+"/_history/1", nil), batch: []string{"404"}, tx: []string{"404"}},
			{name: "GET history", entry: txEntry("GET", typ+"/"+bID+"/_history", nil), batch: []string{"404"}, tx: []string{"404"}},
			{name: "GET search _id", entry: txEntry("GET", typ+"?_id="+bID, nil), batch: []string{"200"}, empty: true},
			{name: "GET search patient", entry: txEntry("GET", typ+"?"+patientSearch, nil), batch: []string{"200"}, empty: true},
			{name: "GET compartment", entry: txEntry("GET", "Patient/"+b.id+"/"+typ, nil), batch: []string{"200"}, empty: true},
			{name: "PUT", entry: txEntry("PUT", typ+"/"+bID, bBody), batch: []string{"403"}, tx: []string{"403"}},
			{name: "PUT into A's compartment", entry: txEntry("PUT", typ+"/"+bID, withRef(t, typ, bBody, a.id, false)), batch: []string{"403"}, tx: []string{"403"}},
			{name: "DELETE", entry: txEntry("DELETE", typ+"/"+bID, nil), batch: []string{"403"}, tx: []string{"403"}},
			{name: "PATCH JSON Patch", entry: txEntry("PATCH", typ+"/"+bID, jsonPatchBinary(harmlessJSONPatch)), batch: []string{"403"}, tx: []string{"403"}},
			{name: "PATCH FHIRPath Patch", entry: txEntry("PATCH", typ+"/"+bID, harmlessFHIRPath(typ)), batch: []string{"403"}, tx: []string{"403"}},
			{name: "PATCH moving A's into B's", entry: txEntry("PATCH", typ+"/"+aID, jsonPatchBinary(move)), batch: []string{"403"}, tx: []string{"403"}},
			{name: "POST into B's compartment", entry: txEntry("POST", typ, withRef(t, typ, aBody, b.id, true)), batch: []string{"403"}, tx: []string{"403"}},
			{name: "conditional create matching B", entry: txEntry("POST", typ, withRef(t, typ, bBody, b.id, true), "ifNoneExist", "_id="+bID),
				batch: refused, tx: refused},
			{name: "conditional update matching B", entry: txEntry("PUT", typ+"?_id="+bID, bBody), batch: []string{"403"}, tx: []string{"403"}},
			// The criteria find nothing A may see: a delete of nothing.
			{name: "conditional delete matching B", entry: txEntry("DELETE", typ+"?_id="+bID, nil), batch: []string{"204"}},
			{name: "conditional patch matching B", entry: txEntry("PATCH", typ+"?_id="+bID, jsonPatchBinary(harmlessJSONPatch)), batch: []string{"404"}, tx: []string{"404"}},
		}
		if moveFP != nil {
			as = append(as, attempt{name: "PATCH FHIRPath moving A's into B's", entry: txEntry("PATCH", typ+"/"+aID, moveFP), batch: []string{"403"}, tx: []string{"403"}})
		}
		for i := range as {
			as[i].typ = typ
		}
		attempts = append(attempts, as...)
	}
	newObs := func(subject, performer string) []byte {
		o := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + subject + `"}`
		if performer != "" {
			o += `,"performer":[{"reference":"` + performer + `"}]`
		}
		return []byte(o + "}")
	}
	attempts = append(attempts,
		attempt{name: "GET Patient/B/$everything", entry: txEntry("GET", "Patient/"+b.id+"/$everything", nil), batch: []string{"404"}, tx: []string{"404"}},
		attempt{name: "GET system search", entry: txEntry("GET", "?_id="+strings.Join(f.bOnly[:20], ","), nil), batch: []string{"200"}, empty: true},
		attempt{name: "GET system history", entry: txEntry("GET", "_history", nil), batch: []string{"403"}, tx: []string{"403"}},
		attempt{name: "GET _include out of the compartment", entry: txEntry("GET", "Observation?_id="+f.crossObs+"&_include=Observation:focus", nil), batch: []string{"200"}},
		attempt{name: "GET chain", entry: txEntry("GET", "Observation?patient.family="+url.QueryEscape(b.family), nil), batch: []string{"200"}, empty: true},
		// A conditional reference is resolved among what A may see: B's
		// patient is not found, the same answer as a patient that does not
		// exist.
		attempt{name: "conditional reference to B", entry: txEntry("POST", "Observation", newObs("Patient/"+a.id, "Patient?_id="+b.id)),
			batch: []string{"400"}, tx: []string{"400"}, echo: "Patient?_id=" + b.id},
		attempt{name: "conditional reference to B as subject", entry: txEntry("POST", "Observation", newObs("Patient?_id="+b.id, "")),
			batch: []string{"400"}, tx: []string{"400"}, echo: "Patient?_id=" + b.id},
		attempt{name: "performer B", entry: txEntry("POST", "Observation", newObs("Patient/"+a.id, "Patient/"+b.id)), batch: []string{"403"}, tx: []string{"403"}},
		attempt{name: "absolute reference to B", entry: txEntry("POST", "Observation", newObs(f.srv.URL+"/Patient/"+b.id, "")), batch: []string{"403"}, tx: []string{"403"}},
		attempt{name: "write directory data", entry: txEntry("PUT", "Practitioner/"+b.ids["Practitioner"][0], b.bodies["Practitioner/"+b.ids["Practitioner"][0]]),
			batch: []string{"403"}, tx: []string{"403"}},
	)

	for _, at := range attempts {
		name := strings.TrimSpace(at.typ + " " + at.name)
		t.Run("batch "+name, func(t *testing.T) {
			ok, okPath := marker()
			r := ca.Do("POST", "/", txBundle("batch", ok, at.entry))
			if r.Status != http.StatusOK {
				t.Fatalf("batch: %d, want 200\n%.300s", r.Status, r.Body)
			}
			if id := leaked(t, unecho(r.Body, at.echo), append(f.bOnly, b.id)); id != "" {
				t.Fatalf("the batch-response names %s of B's record:\n%.500s", id, r.Body)
			}
			got := entryStatuses(t, r.Body)
			if len(got) != 2 || !strings.HasPrefix(got[0], "20") || !slices.Contains(at.batch, got[1]) {
				t.Fatalf("entry statuses %v, want [20x %v]\n%.500s", got, at.batch, r.Body)
			}
			if s := admin.Do("GET", okPath, nil).Status; s != http.StatusOK {
				t.Errorf("A's allowed entry was not stored: %s %d", okPath, s)
			}
			if at.empty {
				var rb struct {
					Entry []struct{ Resource json.RawMessage }
				}
				json.Unmarshal(r.Body, &rb)
				var inner struct{ Entry []json.RawMessage }
				if err := json.Unmarshal(rb.Entry[1].Resource, &inner); err != nil || len(inner.Entry) != 0 {
					t.Errorf("the GET entry's Bundle holds entries: %.300s", rb.Entry[1].Resource)
				}
			}
		})
		if at.tx == nil {
			continue
		}
		t.Run("transaction "+name, func(t *testing.T) {
			ok, okPath := marker()
			r := ca.Do("POST", "/", txBundle("transaction", ok, at.entry))
			if !slices.Contains(at.tx, fmt.Sprint(r.Status)) {
				t.Fatalf("transaction: %d, want one of %v\n%.500s", r.Status, at.tx, r.Body)
			}
			if id := leaked(t, unecho(r.Body, at.echo), append(f.bOnly, b.id)); id != "" {
				t.Fatalf("the answer names %s of B's record:\n%.500s", id, r.Body)
			}
			if !bytes.Contains(r.Body, []byte(`"Bundle.entry[1]`)) {
				t.Errorf("the OperationOutcome does not name Bundle.entry[1]: %.500s", r.Body)
			}
			if r.Status == http.StatusForbidden && !bytes.Contains(r.Body, []byte(`"code":"forbidden"`)) {
				t.Errorf("403 without a forbidden issue: %.300s", r.Body)
			}
			if s := admin.Do("GET", okPath, nil).Status; s != http.StatusNotFound {
				t.Errorf("a failed transaction stored its allowed entry %s: %d", okPath, s)
			}
		})
	}

	// What A may do in a transaction, A still may: references to the
	// transaction's own entries (urn:uuid) and conditional references are
	// judged after they are resolved.
	t.Run("transaction of A's own", func(t *testing.T) {
		pa := a.bodies["Patient/"+a.id]
		enc := `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"urn:uuid:pa"}}`
		obs := `{"resourceType":"Observation","status":"final","code":{"text":"own"},"subject":{"reference":"urn:uuid:pa"},"encounter":{"reference":"urn:uuid:enc"}}`
		obs2 := `{"resourceType":"Observation","status":"final","code":{"text":"own"},"subject":{"reference":"Patient?_id=` + a.id + `"}}`
		r := ca.Do("POST", "/", txBundle("transaction",
			txEntry("PUT", "Patient/"+a.id, pa, "fullUrl", "urn:uuid:pa"),
			txEntry("POST", "Encounter", []byte(enc), "fullUrl", "urn:uuid:enc"),
			txEntry("POST", "Observation", []byte(obs)),
			txEntry("POST", "Observation", []byte(obs2)),
			txEntry("GET", "Patient/"+a.id+"/$everything?_type=Encounter&_count=1", nil),
			// The criteria would match B's observation; among what A may
			// see they match nothing, so A's is created (201, not 200).
			txEntry("POST", "Observation", []byte(obs2), "ifNoneExist", "_id="+b.ids["Observation"][0]),
		))
		if r.Status != http.StatusOK {
			t.Fatalf("A's transaction: %d\n%.500s", r.Status, r.Body)
		}
		if got := entryStatuses(t, r.Body); !slices.Equal(got, []string{"200", "201", "201", "201", "200", "201"}) {
			t.Errorf("statuses %v\n%.500s", got, r.Body)
		}
		if bytes.Contains(r.Body, []byte("urn:uuid:pa")) || !bytes.Contains(r.Body, []byte(`"Patient/`+a.id+`"`)) {
			t.Errorf("the urn:uuid references were not resolved to A: %.500s", r.Body)
		}
	})

	// Scopes go by entry: a read-only token may read in a batch or a
	// transaction but not write (A-BT-16).
	f.toks.add("A-read", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "rs"}}})
	t.Run("read-only token", func(t *testing.T) {
		cr := f.client(t, "A-read")
		write, path := marker()
		read := txEntry("GET", "Patient/"+a.id, nil)
		r := cr.Do("POST", "/", txBundle("transaction", read, write))
		if r.Status != http.StatusForbidden || !bytes.Contains(r.Body, []byte(`"Bundle.entry[1]`)) {
			t.Errorf("transaction with a write: %d, want 403 naming Bundle.entry[1]: %.300s", r.Status, r.Body)
		}
		r = cr.Do("POST", "/", txBundle("batch", read, write))
		if got := entryStatuses(t, r.Body); r.Status != http.StatusOK || !slices.Equal(got, []string{"200", "403"}) {
			t.Errorf("batch: %d %v, want 200 [200 403]: %.300s", r.Status, got, r.Body)
		}
		if s := admin.Do("GET", path, nil).Status; s != http.StatusNotFound {
			t.Errorf("the read-only token's write was stored: %d", s)
		}
	})

	// A history Bundle is replayed as a batch: each entry on its own.
	t.Run("history bundle", func(t *testing.T) {
		obs := b.ids["Observation"][0]
		body := b.bodies["Observation/"+obs]
		r := ca.Do("POST", "/", txBundle("history",
			txEntry("PUT", "Observation/"+obs, withRef(t, "Observation", body, a.id, false)),
			txEntry("POST", "Observation", withRef(t, "Observation", body, b.id, false)),
			txEntry("DELETE", "Observation/"+obs, nil)))
		if got := entryStatuses(t, r.Body); r.Status != http.StatusOK || !slices.Equal(got, []string{"403", "403", "403"}) {
			t.Errorf("history: %d %v, want 200 [403 403 403]: %.300s", r.Status, got, r.Body)
		}
		if id := leaked(t, r.Body, f.bOnly); id != "" {
			t.Errorf("the answer names %s of B's record", id)
		}
	})

	// B's record is as it was loaded: every resource at version 1.
	for typ, ids := range b.ids {
		for _, id := range ids {
			r := admin.Do("GET", "/"+typ+"/"+id, nil)
			if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`"versionId":"1"`)) {
				t.Errorf("B's %s/%s changed: %d %.200s", typ, id, r.Status, r.Body)
			}
		}
	}
}
