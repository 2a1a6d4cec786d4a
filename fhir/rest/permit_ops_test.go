package rest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/rest"
)

// TestPatientMatrixOperations: PATCH, $everything and $validate with
// patient A's token against patient B's record, and what each scope lets
// $everything return (the operations table in fhir/rest/operations.go).
func TestPatientMatrixOperations(t *testing.T) {
	patientMatrixOperations(t, newFixture(t), nil)
}

// patientMatrixOperations runs TestPatientMatrixOperations' attempts on
// f, and the checks of A's own $everything that leave does not name a
// reason to skip (all when leave is nil).
func patientMatrixOperations(t *testing.T, f *fixture, leave func(name string) (reason string)) {
	a, b := f.a, f.b
	patientA := func(rules ...rest.Rule) *rest.Access {
		return &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id, Rules: rules}
	}
	rule := func(typ, ops string, query ...string) rest.Rule {
		r := rest.Rule{Context: "patient", Type: typ, Ops: ops}
		if len(query) == 2 {
			r.Query = url.Values{query[0]: {query[1]}}
		}
		return r
	}
	for tok, acc := range map[string]*rest.Access{
		"A":           patientA(rule("*", "cruds")),
		"A-read":      patientA(rule("*", "rs")),
		"obs+patient": patientA(rule("Observation", "rs"), rule("Patient", "rs")),
		"patient-r":   patientA(rule("Patient", "r")),
		"obs-r":       patientA(rule("Observation", "r"), rule("Patient", "r")),
		"obs-only":    patientA(rule("Observation", "rs")),
		"lab":         patientA(rule("Observation", "rs", "category", labCategory), rule("Patient", "rs")),
		"practitioner": {FHIRUser: "Practitioner/" + b.ids["Practitioner"][0],
			Rules: []rest.Rule{{Context: "user", Type: "*", Ops: "rs"}}},
	} {
		f.toks.add(tok, acc)
	}
	admin := f.client(t, "admin")

	// A deleted patient other than A: A's token gets 404 (never 410:
	// that would tell that it existed).
	r := admin.Do("POST", "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Gone"}]}`))
	gone := idOf(t, r.Body)
	if r := admin.Do("DELETE", "/Patient/"+gone, nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}

	type attempt struct {
		name, method, path string
		body               []byte
		header             []string
		want               int
	}
	var attempts []attempt
	jp := []string{"Content-Type", "application/json-patch+json"}
	fp := []string{"Content-Type", "application/fhir+json"}
	for _, typ := range matrixTypes {
		bID, aID := b.ids[typ][0], a.ids[typ][0]
		move, moveFP := moveToB(typ, b.id)
		attempts = append(attempts,
			attempt{typ + " PATCH B's, JSON Patch", "PATCH", "/" + typ + "/" + bID, []byte(harmlessJSONPatch), jp, 403},
			attempt{typ + " PATCH B's, FHIRPath Patch", "PATCH", "/" + typ + "/" + bID, harmlessFHIRPath(typ), fp, 403},
			attempt{typ + " conditional PATCH matching B", "PATCH", "/" + typ + "?_id=" + bID, []byte(harmlessJSONPatch), jp, 404},
			attempt{typ + " PATCH moving A's into B's, JSON Patch", "PATCH", "/" + typ + "/" + aID, []byte(move), jp, 403},
			attempt{typ + " $validate B's", "POST", "/" + typ + "/" + bID + "/$validate", b.bodies[typ+"/"+bID], nil, 404},
			attempt{typ + " $validate B's, mode delete", "POST", "/" + typ + "/" + bID + "/$validate?mode=delete", nil, nil, 404},
			attempt{typ + " $validate B's, mode update", "POST", "/" + typ + "/" + bID + "/$validate?mode=update", b.bodies[typ+"/"+bID], nil, 404},
		)
		if moveFP != nil {
			attempts = append(attempts, attempt{typ + " PATCH moving A's into B's, FHIRPath Patch", "PATCH", "/" + typ + "/" + aID, moveFP, fp, 403})
		}
	}
	attempts = append(attempts,
		attempt{"$everything of B", "GET", "/Patient/" + b.id + "/$everything", nil, nil, 404},
		attempt{"$everything of B, HEAD", "HEAD", "/Patient/" + b.id + "/$everything", nil, nil, 404},
		attempt{"$everything of B, paged", "GET", "/Patient/" + b.id + "/$everything?_count=1&_type=Observation", nil, nil, 404},
		attempt{"$everything of a deleted patient", "GET", "/Patient/" + gone + "/$everything", nil, nil, 404},
		attempt{"$everything of a patient that does not exist", "GET", "/Patient/no-such-patient/$everything", nil, nil, 404},
		attempt{"$validate of a resource that does not exist", "POST", "/Observation/no-such-observation/$validate?mode=delete", nil, nil, 404},
		attempt{"$validate of a deleted patient", "POST", "/Patient/" + gone + "/$validate?mode=delete", nil, nil, 404},
	)
	ca := f.client(t, "A")
	for _, at := range attempts {
		t.Run(at.name, func(t *testing.T) {
			r := ca.Do(at.method, at.path, at.body, at.header...)
			if r.Status != at.want {
				t.Fatalf("%s %s: %d, want %d\n%.300s", at.method, at.path, r.Status, at.want, r.Body)
			}
			if id := leaked(t, r.Body, append(f.bOnly, b.id, gone)); id != "" {
				t.Fatalf("the response names %s:\n%.300s", id, r.Body)
			}
			if r.Status == http.StatusForbidden && !bytes.Contains(r.Body, []byte(`"code":"forbidden"`)) {
				t.Errorf("403 without a forbidden issue: %.300s", r.Body)
			}
		})
	}

	skip := func(t *testing.T, name string) {
		if leave == nil {
			return
		}
		if reason := leave(name); reason != "" {
			t.Skip(reason)
		}
	}
	// A's $everything holds A's record and the directory data it
	// references, nothing of B's, page after page.
	everything := func(t *testing.T, token, query string) []string {
		t.Helper()
		c := f.client(t, token)
		var out []string
		path := "/Patient/" + a.id + "/$everything?" + query
		for page := 0; path != ""; page++ {
			r := c.Do("GET", path, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("GET %s: %d %.300s", path, r.Status, r.Body)
			}
			if id := leaked(t, r.Body, append(f.bOnly, b.id)); id != "" {
				t.Fatalf("page %d names %s of B's record", page, id)
			}
			out = append(out, bundleIDs(t, r)...)
			path = ""
			var bl struct {
				Link []struct{ Relation, URL string }
			}
			json.Unmarshal(r.Body, &bl)
			for _, l := range bl.Link {
				if l.Relation == "next" {
					path = strings.TrimPrefix(l.URL, f.srv.URL)
				}
			}
		}
		return out
	}
	typesOf := func(ids []string) []string {
		var ts []string
		for _, id := range ids {
			typ, _, _ := strings.Cut(id, "/")
			if !slices.Contains(ts, typ) {
				ts = append(ts, typ)
			}
		}
		slices.Sort(ts)
		return ts
	}
	for _, tc := range []struct {
		name, token, query string
		types              []string // the types returned, exactly
	}{
		{"whole record", "A", "_count=1000", nil},
		{"paged", "A-read", "_count=7", nil},
		{"observations and the patient", "obs+patient", "_count=1000", []string{"Observation", "Patient"}},
		{"read without search: the patient alone", "obs-r", "_count=1000", []string{"Patient"}},
		{"the patient alone", "patient-r", "", []string{"Patient"}},
		{"_type", "obs+patient", "_type=Observation", []string{"Observation"}},
	} {
		t.Run("$everything of A: "+tc.name, func(t *testing.T) {
			skip(t, tc.name)
			got := everything(t, tc.token, tc.query)
			if slices.Contains(got, "Condition/"+f.crossCond) {
				t.Errorf("B's condition is in A's $everything")
			}
			if tc.types != nil {
				if ts := typesOf(got); !slices.Equal(ts, tc.types) {
					t.Errorf("types %v, want %v", ts, tc.types)
				}
			} else {
				// Every resource of A's record is there.
				for typ, ids := range a.ids {
					for _, id := range ids {
						if !slices.Contains(got, typ+"/"+id) {
							t.Errorf("A's $everything misses %s/%s", typ, id)
						}
					}
				}
			}
			if tc.types == nil || slices.Contains(tc.types, "Observation") {
				if !slices.Contains(got, "Observation/"+f.crossObs) {
					t.Errorf("A's observation pointing at B's condition is missing")
				}
			}
		})
	}
	t.Run("$everything of A: granular scope", func(t *testing.T) {
		skip(t, "granular scope")
		got := everything(t, "lab", "_count=1000")
		for _, id := range got {
			if typ, oid, _ := strings.Cut(id, "/"); typ == "Observation" && !category(t, a.bodies[id], "laboratory") {
				t.Errorf("Observation/%s is not a laboratory result", oid)
			}
		}
		if ts := typesOf(got); !slices.Equal(ts, []string{"Observation", "Patient"}) {
			t.Errorf("types %v", ts)
		}
	})
	// A practitioner (user/*.rs) sees every patient: B's $everything is
	// B's whole record.
	t.Run("$everything of B for a practitioner", func(t *testing.T) {
		skip(t, "B for a practitioner")
		r := f.client(t, "practitioner").Do("GET", "/Patient/"+b.id+"/$everything?_count=1000", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%d %.300s", r.Status, r.Body)
		}
		got := bundleIDs(t, r)
		for typ, ids := range b.ids {
			for _, id := range ids {
				if !slices.Contains(got, typ+"/"+id) {
					t.Errorf("B's $everything misses %s/%s", typ, id)
				}
			}
		}
	})
	for _, tc := range []struct {
		name, token, path string
		want              int
	}{
		{"no scope on Patient", "obs-only", "/Patient/" + a.id + "/$everything", 403},
		{"_type naming a type not granted", "obs+patient", "/Patient/" + a.id + "/$everything?_type=Condition", 403},
		{"_type naming a type read but not searched", "obs-r", "/Patient/" + a.id + "/$everything?_type=Observation", 403},
		{"$validate at the type level reads nothing", "obs-only", "/Patient/$validate", 200},
		{"$validate of A's resource", "A", "/Observation/" + f.crossObs + "/$validate?mode=delete", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, body := "GET", []byte(nil)
			if strings.Contains(tc.path, "$validate") {
				method, body = "POST", []byte(`{"resourceType":"Patient"}`)
				if strings.Contains(tc.path, "mode=delete") {
					body = nil
				}
			}
			r := f.client(t, tc.token).Do(method, tc.path, body)
			if r.Status != tc.want {
				t.Fatalf("%d, want %d: %.300s", r.Status, tc.want, r.Body)
			}
		})
	}

	// A's own patches still work: the harmless one on every type.
	ca = f.client(t, "A")
	for _, typ := range matrixTypes {
		aID := a.ids[typ][0]
		if r := ca.Do("PATCH", "/"+typ+"/"+aID, []byte(harmlessJSONPatch), jp...); r.Status != http.StatusOK {
			t.Errorf("A patches A's %s: %d %.300s", typ, r.Status, r.Body)
		}
	}

	for typ, ids := range b.ids {
		for _, id := range ids {
			r := admin.Do("GET", "/"+typ+"/"+id, nil)
			if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`"versionId":"1"`)) {
				t.Errorf("B's %s/%s changed: %d %.200s", typ, id, r.Status, r.Body)
			}
		}
	}
}
