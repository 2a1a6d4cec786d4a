package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// tokens stands for the token validator (the smart package in cmd/kiln):
// a bearer token string names a fixed Access. What is under test is the
// enforcement in fhir/rest, not token validation.
type tokens struct {
	mu sync.Mutex
	m  map[string]*rest.Access
}

func (t *tokens) Authorize(r *http.Request) (*rest.Access, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, rest.ErrNoToken
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	t.mu.Lock()
	defer t.mu.Unlock()
	if acc := t.m[tok]; ok && acc != nil {
		return acc, nil
	}
	return nil, rest.ErrInvalidToken
}

// add registers token for acc.
func (t *tokens) add(token string, acc *rest.Access) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[token] = acc
}

// person is one patient's record as loaded: ids by type, and the bodies.
type person struct {
	id, family string
	ids        map[string][]string // type → ids
	bodies     map[string][]byte   // "Type/id" → body as loaded
}

// matrixTypes are the types every attempt is made on (issue 5: "for each
// of the main resource types").
var matrixTypes = []string{"Patient", "Observation", "Condition", "MedicationRequest", "Encounter", "AllergyIntolerance", "Immunization"}

// patientParam is the parameter by which each type names its patient.
var patientParam = map[string]string{
	"Observation": "subject", "Condition": "subject", "MedicationRequest": "subject", "Encounter": "subject",
	"AllergyIntolerance": "patient", "Immunization": "patient",
}

type fixture struct {
	srv  *httptest.Server
	toks *tokens
	a, b person
	// bOnly are the ids that belong to B's record alone (not the
	// directory resources the two records share).
	bOnly []string
	// crossObs is an Observation of A whose focus is B's Condition
	// crossCond: a reference out of A's compartment that _include and
	// chains must not follow.
	crossObs, crossCond string
}

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

// newFixture loads two Synthea patients into a real SQLite file through
// the HTTP API (with a system/*.cruds token), plus an AllergyIntolerance
// each (the bundles have none) and one cross-patient reference.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newFixtureOn(t, db)
}

// newFixtureOn is newFixture on the store db.
func newFixtureOn(t *testing.T, db store.Store) *fixture {
	t.Helper()
	bundles, err := synthea.Load("../../testdata/synthea")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{toks: &tokens{m: map[string]*rest.Access{
		"admin": {ClientID: "loader", Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}},
	}}}
	f.srv = httptest.NewServer(rest.New(rest.Config{Auth: f.toks}, db))
	t.Cleanup(f.srv.Close)
	admin := f.client(t, "admin")

	load := func(file string) person {
		i := slices.IndexFunc(bundles, func(b synthea.Bundle) bool { return strings.HasPrefix(b.File, file) })
		if i < 0 {
			t.Fatalf("no bundle %s", file)
		}
		p := person{ids: map[string][]string{}, bodies: map[string][]byte{}}
		var pairs []string
		for _, e := range bundles[i].Entries {
			pairs = append(pairs, `"`+e.FullURL+`"`, `"`+e.Type+"/"+strings.TrimPrefix(e.FullURL, "urn:uuid:")+`"`)
		}
		refs := strings.NewReplacer(pairs...)
		for _, e := range bundles[i].Entries {
			id := strings.TrimPrefix(e.FullURL, "urn:uuid:")
			body := []byte(refs.Replace(string(e.Resource)))
			r := admin.Do("PUT", "/"+e.Type+"/"+id, body)
			if r.Status != http.StatusCreated && r.Status != http.StatusOK {
				t.Fatalf("loading %s/%s: %d %s", e.Type, id, r.Status, r.Body)
			}
			p.ids[e.Type] = append(p.ids[e.Type], id)
			p.bodies[e.Type+"/"+id] = r.Body
			if e.Type == "Patient" {
				p.id = id
				var pt struct{ Name []struct{ Family string } }
				json.Unmarshal(e.Resource, &pt)
				p.family = pt.Name[0].Family
			}
		}
		allergy := `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/` + p.id + `"},` +
			`"code":{"coding":[{"system":"http://snomed.info/sct","code":"91936005"}]}}`
		r := admin.Do("POST", "/AllergyIntolerance", []byte(allergy))
		if r.Status != http.StatusCreated {
			t.Fatalf("allergy: %d %s", r.Status, r.Body)
		}
		id := idOf(t, r.Body)
		p.ids["AllergyIntolerance"] = append(p.ids["AllergyIntolerance"], id)
		p.bodies["AllergyIntolerance/"+id] = r.Body
		return p
	}
	f.a, f.b = load("Buster_Hoeger"), load("Joie_Morissette")
	if f.a.family == f.b.family {
		t.Fatal("the two patients must have different family names")
	}
	f.crossCond = f.b.ids["Condition"][0]
	for typ, ids := range f.b.ids {
		for _, id := range ids {
			// Directory data is readable by both; crossCond's id is in A's
			// record too (the reference), so the tests look for the
			// resource itself.
			if typ != "Organization" && typ != "Practitioner" && id != f.crossCond {
				f.bOnly = append(f.bOnly, id)
			}
		}
	}
	cross := `{"resourceType":"Observation","status":"final","code":{"text":"family history"},` +
		`"subject":{"reference":"Patient/` + f.a.id + `"},"focus":[{"reference":"Condition/` + f.crossCond + `"}]}`
	r := admin.Do("POST", "/Observation", []byte(cross))
	if r.Status != http.StatusCreated {
		t.Fatalf("cross observation: %d %s", r.Status, r.Body)
	}
	f.crossObs = idOf(t, r.Body)
	f.a.ids["Observation"] = append(f.a.ids["Observation"], f.crossObs)
	f.a.bodies["Observation/"+f.crossObs] = r.Body
	return f
}

func (f *fixture) client(t *testing.T, token string) *authClient {
	return &authClient{c: apitest.Client{T: t, Base: f.srv.URL, HTTP: f.srv.Client()}, token: token}
}

// authClient sends every request with its bearer token.
type authClient struct {
	c     apitest.Client
	token string
}

func (c *authClient) Do(method, path string, body []byte, header ...string) apitest.Response {
	c.c.T.Helper()
	if c.token != "" {
		header = append(header, "Authorization", "Bearer "+c.token)
	}
	return c.c.Do(method, path, body, header...)
}

func idOf(t *testing.T, body []byte) string {
	t.Helper()
	var r struct{ ID string }
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		t.Fatalf("no id in %s", body)
	}
	return r.ID
}

// leaked returns the first of ids found in a response body. Bundles'
// links are left out: they echo the client's own query (a search for
// _id=<B's id> names it in its self link) and reveal nothing.
func leaked(t *testing.T, body []byte, ids []string) string {
	t.Helper()
	var m any
	if json.Unmarshal(body, &m) == nil {
		dropLinks(m)
		body, _ = json.Marshal(m)
	}
	for _, id := range ids {
		if bytes.Contains(body, []byte(id)) {
			return id
		}
	}
	return ""
}

// dropLinks deletes the links of every Bundle in v, nested ones too (the
// searchset of a GET entry in a batch-response).
func dropLinks(v any) {
	switch v := v.(type) {
	case map[string]any:
		if v["resourceType"] == "Bundle" {
			delete(v, "link")
		}
		for _, x := range v {
			dropLinks(x)
		}
	case []any:
		for _, x := range v {
			dropLinks(x)
		}
	}
}

// bundleIDs lists the Type/id of the entries of a Bundle response.
func bundleIDs(t *testing.T, r apitest.Response) []string {
	t.Helper()
	var b struct {
		ResourceType string
		Entry        []struct {
			Resource struct{ ResourceType, ID string }
		}
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.ResourceType != "Bundle" {
		t.Fatalf("not a Bundle (%d): %s", r.Status, r.Body)
	}
	var out []string
	for _, e := range b.Entry {
		out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
	}
	return out
}

// withRef returns body (a JSON resource) with its patient reference
// pointing at Patient/patient; without id when dropID.
func withRef(t *testing.T, typ string, body []byte, patient string, dropID bool) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	ref := map[string]any{"reference": "Patient/" + patient}
	if typ == "Patient" {
		m["link"] = []any{map[string]any{"other": ref, "type": "seealso"}}
	} else {
		m[patientParam[typ]] = ref
	}
	if dropID {
		delete(m, "id")
	}
	delete(m, "meta")
	out, _ := json.Marshal(m)
	return out
}

// TestPatientMatrix: patient A's token (patient/*.cruds) tries to reach
// patient B's data through every interaction fhir/rest serves, on each
// main type (issue 5, "A matrix test"; checklist C-SC-05). Every attempt
// is refused or filtered, no response carries an id of B's record, and
// B's record is unchanged at the end.
func TestPatientMatrix(t *testing.T) {
	patientMatrix(t, newFixture(t), nil)
}

// patientMatrix runs TestPatientMatrix's attempts on f: those keep
// accepts (by type, "" for the system-level ones, method and path), or
// all when keep is nil.
func patientMatrix(t *testing.T, f *fixture, keep func(typ, method, path string) bool) {
	a, b := f.a, f.b
	f.toks.add("A", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}})
	ca := f.client(t, "A")
	admin := f.client(t, "admin")

	type attempt struct {
		typ, name, method, path string
		body                    []byte
		header                  []string
		want                    []int    // accepted statuses
		empty                   bool     // a 200 must be a Bundle without entries
		absent                  []string // entries (Type/id) a 200 Bundle must not hold
	}
	var attempts []attempt
	refused := []int{http.StatusForbidden, http.StatusNotFound}
	for _, typ := range matrixTypes {
		first := len(attempts)
		bID := b.ids[typ][0]
		aID := a.ids[typ][0]
		bBody := b.bodies[typ+"/"+bID]
		aBody := a.bodies[typ+"/"+aID]
		patientSearch := "patient=Patient/" + b.id
		if typ == "Patient" {
			patientSearch = "_id=" + b.id
		}
		attempts = append(attempts,
			attempt{name: "read", method: "GET", path: "/" + typ + "/" + bID, want: []int{404}},
			attempt{name: "conditional read", method: "GET", path: "/" + typ + "/" + bID, header: []string{"If-None-Match", "*"}, want: []int{404}},
			attempt{name: "read _summary", method: "GET", path: "/" + typ + "/" + bID + "?_summary=true", want: []int{404}},
			attempt{name: "vread", method: "GET", path: "/" + typ + "/" + bID + "/_history/1", want: []int{404}},
			attempt{name: "instance history", method: "GET", path: "/" + typ + "/" + bID + "/_history", want: []int{404}},
			attempt{name: "type history", method: "GET", path: "/" + typ + "/_history", want: []int{403}},
			attempt{name: "search _id", method: "GET", path: "/" + typ + "?_id=" + bID, want: []int{200}, empty: true},
			attempt{name: "search patient", method: "GET", path: "/" + typ + "?" + patientSearch, want: []int{200}, empty: true},
			attempt{name: "POST _search", method: "POST", path: "/" + typ + "/_search", body: []byte("_id=" + bID),
				header: []string{"Content-Type", "application/x-www-form-urlencoded"}, want: []int{200}, empty: true},
			attempt{name: "compartment search", method: "GET", path: "/Patient/" + b.id + "/" + typ, want: []int{200}, empty: true},
			attempt{name: "system search _type", method: "GET", path: "/?_type=" + typ + "&_id=" + bID, want: []int{200}, empty: true},
			attempt{name: "update B's resource", method: "PUT", path: "/" + typ + "/" + bID, body: bBody, want: []int{403}},
			attempt{name: "update B's resource into A's compartment", method: "PUT", path: "/" + typ + "/" + bID,
				body: withRef(t, typ, bBody, a.id, false), want: []int{403}},
			attempt{name: "delete", method: "DELETE", path: "/" + typ + "/" + bID, want: []int{403}},
			attempt{name: "conditional update", method: "PUT", path: "/" + typ + "?_id=" + bID, body: bBody, want: []int{403}},
			attempt{name: "conditional delete", method: "DELETE", path: "/" + typ + "?_id=" + bID, want: []int{204}},
			attempt{name: "conditional create finds nothing of B", method: "POST", path: "/" + typ,
				body: withRef(t, typ, bBody, b.id, true), header: []string{"If-None-Exist", "_id=" + bID}, want: refused},
		)
		// The reference by which a resource of typ names a patient
		// (Patient names others through link).
		ref := "patient"
		if typ == "Patient" {
			ref = "link"
		}
		attempts = append(attempts,
			attempt{name: "chain", method: "GET", path: "/" + typ + "?" + ref + ":Patient.family=" + url.QueryEscape(b.family), want: []int{200}, empty: true},
			attempt{name: "chain _id", method: "GET", path: "/" + typ + "?" + ref + "._id=" + b.id, want: []int{200}, empty: true},
			attempt{name: "_has", method: "GET", path: "/Patient?_has:" + typ + ":" + ref + ":_id=" + bID, want: []int{200}, empty: true},
			attempt{name: "_revinclude", method: "GET", path: "/Patient?_revinclude=" + typ + ":" + ref, want: []int{200}},
			attempt{name: "create for B", method: "POST", path: "/" + typ, body: withRef(t, typ, aBody, b.id, true), want: []int{403}},
		)
		attempts = append(attempts,
			attempt{name: "move A's resource into B's compartment", method: "PUT", path: "/" + typ + "/" + aID,
				body: withRef(t, typ, aBody, b.id, false), want: []int{403}})
		for i := first; i < len(attempts); i++ {
			attempts[i].typ = typ
		}
	}
	practitioner := b.ids["Practitioner"][0]
	attempts = append(attempts,
		attempt{name: "system history", method: "GET", path: "/_history", want: []int{403}},
		attempt{name: "system search", method: "GET", path: "/?_id=" + strings.Join(f.bOnly[:50], ","), want: []int{200}, empty: true},
		attempt{name: "system search _type several", method: "GET", path: "/?_type=Observation,Condition&patient=Patient/" + b.id, want: []int{200}, empty: true},
		attempt{name: "_include out of the compartment", method: "GET", path: "/Observation?_id=" + f.crossObs + "&_include=Observation:focus", want: []int{200},
			absent: []string{"Condition/" + f.crossCond}},
		attempt{name: "_include:iterate", method: "GET", path: "/Observation?_include:iterate=*&_include=*", want: []int{200},
			absent: []string{"Condition/" + f.crossCond}},
		attempt{name: "chain through A's resource", method: "GET", path: "/Observation?focus:Condition._id=" + f.crossCond, want: []int{200}, empty: true},
		attempt{name: "_revinclude on directory data", method: "GET", path: "/Practitioner?_id=" + practitioner + "&_revinclude=Encounter:participant", want: []int{200}},
		attempt{name: "_has on directory data", method: "GET", path: "/Practitioner?_has:Encounter:participant:patient=Patient/" + b.id, want: []int{200}, empty: true},
		attempt{name: "inject into B's compartment", method: "POST", path: "/Observation", body: []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
			`"subject":{"reference":"Patient/` + a.id + `"},"performer":[{"reference":"Patient/` + b.id + `"}]}`), want: []int{403}},
		attempt{name: "write directory data", method: "PUT", path: "/Practitioner/" + practitioner, body: b.bodies["Practitioner/"+practitioner], want: []int{403}},
	)

	for _, at := range attempts {
		if keep != nil && !keep(at.typ, at.method, at.path) {
			continue
		}
		t.Run(at.typ+" "+at.name, func(t *testing.T) {
			r := ca.Do(at.method, at.path, at.body, at.header...)
			if !slices.Contains(at.want, r.Status) {
				t.Fatalf("%s %s: status %d, want one of %v\n%.300s", at.method, at.path, r.Status, at.want, r.Body)
			}
			if id := leaked(t, r.Body, append(f.bOnly, b.id)); id != "" {
				t.Fatalf("%s %s: the response names %s of B's record:\n%.300s", at.method, at.path, id, r.Body)
			}
			if r.Status == http.StatusOK && len(at.absent) > 0 {
				for _, e := range bundleIDs(t, r) {
					if slices.Contains(at.absent, e) {
						t.Fatalf("%s %s: the Bundle holds %s", at.method, at.path, e)
					}
				}
			}
			if r.Status == http.StatusOK && at.empty {
				if got := bundleIDs(t, r); len(got) != 0 {
					t.Fatalf("%s %s: want no entries, got %v", at.method, at.path, got)
				}
			}
			if r.Status == http.StatusForbidden {
				if !bytes.Contains(r.Body, []byte(`"code":"forbidden"`)) {
					t.Errorf("403 without an OperationOutcome forbidden issue: %s", r.Body)
				}
			}
		})
	}

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

// category reports whether an Observation body has the category code.
func category(t *testing.T, body []byte, code string) bool {
	t.Helper()
	var o struct {
		Category []struct {
			Coding []struct{ System, Code string }
		}
	}
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.Category {
		for _, cd := range c.Coding {
			if cd.System == "http://terminology.hl7.org/CodeSystem/observation-category" && cd.Code == code {
				return true
			}
		}
	}
	return false
}

// TestScopes: what each kind of scope allows, positive cases included
// (checklist C-SC-01, C-SC-05, C-SC-06, C-SC-08, C-RS-02 to C-RS-04):
// patient A reads and searches all of A's data and nothing more; v1 and
// v2 scopes limit types and operations; granular scopes filter by
// category; user/ scopes follow the fhirUser; system/ scopes go by type.
func TestScopes(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	rules := func(ctx, typ, ops string, query ...string) rest.Rule {
		r := rest.Rule{Context: ctx, Type: typ, Ops: ops}
		if len(query) > 0 {
			r.Query = url.Values{}
			for i := 0; i+1 < len(query); i += 2 {
				r.Query.Add(query[i], query[i+1])
			}
		}
		return r
	}
	patientA := func(rs ...rest.Rule) *rest.Access {
		return &rest.Access{ClientID: "app", FHIRUser: "Patient/" + a.id, Patient: a.id, Rules: rs}
	}
	const vital = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
	for tok, acc := range map[string]*rest.Access{
		"A":            patientA(rules("patient", "*", "cruds")),
		"v1-obs-read":  patientA(rules("patient", "Observation", "rs")), // patient/Observation.read
		"v2-obs-r":     patientA(rules("patient", "Observation", "r")),
		"obs+patient":  patientA(rules("patient", "Observation", "rs"), rules("patient", "Patient", "rs")),
		"lab":          patientA(rules("patient", "Observation", "rs", "category", labCategory)),
		"lab+vital":    patientA(rules("patient", "Observation", "rs", "category", labCategory), rules("patient", "Observation", "rs", "category", vital)),
		"user-patient": {FHIRUser: "https://kiln.example/fhir/Patient/" + a.id, Rules: []rest.Rule{rules("user", "*", "rs")}},
		"practitioner": {FHIRUser: "Practitioner/" + b.ids["Practitioner"][0], Rules: []rest.Rule{rules("user", "*", "rs")}},
		"related":      {FHIRUser: "RelatedPerson/r1", Rules: []rest.Rule{rules("user", "*", "rs")}},
		"system-obs":   {ClientID: "backend", Rules: []rest.Rule{rules("system", "Observation", "rs")}},
		"no-patient":   {Rules: []rest.Rule{rules("patient", "*", "rs")}},
	} {
		f.toks.add(tok, acc)
	}

	var aLab, aLabVital []string
	for _, id := range a.ids["Observation"] {
		body := a.bodies["Observation/"+id]
		lab := category(t, body, "laboratory")
		if lab {
			aLab = append(aLab, "Observation/"+id)
		}
		if lab || category(t, body, "vital-signs") {
			aLabVital = append(aLabVital, "Observation/"+id)
		}
	}
	if len(aLab) == 0 || len(aLabVital) == len(aLab) || len(aLabVital) == len(a.ids["Observation"]) {
		t.Fatalf("the fixture needs lab, vital-signs and other observations for A: %d lab, %d lab+vital of %d", len(aLab), len(aLabVital), len(a.ids["Observation"]))
	}
	typed := func(typ string, ids []string) []string {
		var out []string
		for _, id := range ids {
			out = append(out, typ+"/"+id)
		}
		return out
	}
	aObs := typed("Observation", a.ids["Observation"])

	aLabID := strings.TrimPrefix(aLab[0], "Observation/")
	aVitalID := ""
	for _, id := range a.ids["Observation"] {
		if category(t, a.bodies["Observation/"+id], "vital-signs") {
			aVitalID = id
			break
		}
	}
	aCond, bCond := a.ids["Condition"][0], b.ids["Condition"][0]
	// The observations of the patients linked to the "practitioner" token
	// through an Encounter participant (Synthea writes no CareTeam
	// participant nor generalPractitioner naming a Practitioner).
	var linkedObs []string
	for _, p := range []person{a, b} {
		for _, id := range p.ids["Encounter"] {
			if bytes.Contains(p.bodies["Encounter/"+id], []byte(`"Practitioner/`+b.ids["Practitioner"][0]+`"`)) {
				linkedObs = append(linkedObs, typed("Observation", p.ids["Observation"])...)
				break
			}
		}
	}
	if len(linkedObs) == 0 {
		t.Fatal("B's practitioner is in none of B's encounters")
	}
	newObs := func(patient string) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`)
	}

	cases := []struct {
		name, token, method, path string
		body                      []byte
		want                      int
		entries                   []string // a Bundle's entries, exactly (any order)
	}{
		// A's own record, whole (no omissions, nothing more).
		{"A reads A", "A", "GET", "/Patient/" + a.id, nil, 200, nil},
		{"A searches A's observations", "A", "GET", "/Observation?_count=500", nil, 200, aObs},
		{"A's compartment search", "A", "GET", "/Patient/" + a.id + "/Observation?_count=500", nil, 200, aObs},
		{"A's patient search", "A", "GET", "/Observation?_count=500&patient=" + a.id, nil, 200, aObs},
		{"A searches several types", "A", "GET", "/?_type=Observation,Condition&_count=500", nil, 200, append(typed("Condition", a.ids["Condition"]), aObs...)},
		{"A includes A's patient", "A", "GET", "/Observation?_id=" + aLabID + "&_include=Observation:patient", nil, 200, []string{aLab[0], "Patient/" + a.id}},
		{"A reads a practitioner (directory)", "A", "GET", "/Practitioner/" + b.ids["Practitioner"][0], nil, 200, nil},
		{"A searches organizations (directory)", "A", "GET", "/Organization?_id=" + b.ids["Organization"][0], nil, 200, []string{"Organization/" + b.ids["Organization"][0]}},
		{"A vreads A", "A", "GET", "/Observation/" + aLabID + "/_history/1", nil, 200, nil},
		{"A's instance history", "A", "GET", "/Observation/" + aLabID + "/_history", nil, 200, []string{aLab[0]}},

		// v1 patient/Observation.read (= rs) and v2 patient/Observation.r.
		{"v1 read reads", "v1-obs-read", "GET", "/Observation/" + aLabID, nil, 200, nil},
		{"v1 read searches", "v1-obs-read", "GET", "/Observation?_count=500", nil, 200, aObs},
		{"v1 read: other type", "v1-obs-read", "GET", "/Condition/" + aCond, nil, 403, nil},
		{"v1 read: search other type", "v1-obs-read", "GET", "/Condition", nil, 403, nil},
		{"v1 read: no create", "v1-obs-read", "POST", "/Observation", newObs(a.id), 403, nil},
		{"v1 read: no delete", "v1-obs-read", "DELETE", "/Observation/" + aLabID, nil, 403, nil},
		{"v1 read: B's", "v1-obs-read", "GET", "/Observation/" + b.ids["Observation"][0], nil, 404, nil},
		{"v2 r reads", "v2-obs-r", "GET", "/Observation/" + aLabID, nil, 200, nil},
		{"v2 r: no search", "v2-obs-r", "GET", "/Observation", nil, 403, nil},
		{"v2 r: _type naming a denied type", "A", "GET", "/?_type=Observation,Questionnaire", nil, 403, nil},

		// Granular scopes (C-SC-06): only the granted categories.
		{"lab searches lab", "lab", "GET", "/Observation?_count=500", nil, 200, aLab},
		{"lab reads lab", "lab", "GET", "/Observation/" + aLabID, nil, 200, nil},
		{"lab cannot read vital signs", "lab", "GET", "/Observation/" + aVitalID, nil, 404, nil},
		{"lab asks for vital signs", "lab", "GET", "/Observation?category=vital-signs", nil, 200, []string{}},
		{"lab+vital searches both", "lab+vital", "GET", "/Observation?_count=500", nil, 200, aLabVital},
		{"lab: chain into a type not granted", "lab", "GET", "/Observation?patient._id=" + a.id, nil, 403, nil},
		{"lab: chain into a granted type", "A", "GET", "/Observation?_count=500&patient._id=" + a.id, nil, 200, aObs},
		{"chain drops target types not granted", "obs+patient", "GET", "/Observation?_count=500&subject.family=" + url.QueryEscape(a.family), nil, 200, aObs},

		// user/ scopes follow the fhirUser.
		{"Patient user is confined", "user-patient", "GET", "/Observation/" + b.ids["Observation"][0], nil, 404, nil},
		{"Patient user reads own", "user-patient", "GET", "/Observation/" + aLabID, nil, 200, nil},
		{"Patient user: no type history", "user-patient", "GET", "/Observation/_history", nil, 403, nil},
		// The Synthea practitioner of B's encounters: B is linked to it
		// (TestPractitionerLinkage has the whole rule).
		{"Practitioner user sees linked patients", "practitioner", "GET", "/Observation?_count=500", nil, 200, linkedObs},
		{"Practitioner user reads B", "practitioner", "GET", "/Condition/" + bCond, nil, 200, nil},
		{"Practitioner user: no write scope", "practitioner", "POST", "/Observation", newObs(b.id), 403, nil},
		{"Practitioner user: type history", "practitioner", "GET", "/Observation/_history?_count=1", nil, 403, nil},
		{"RelatedPerson user: no rule yet", "related", "GET", "/Observation", nil, 403, nil},

		// system/ scopes: by type only.
		{"system reads B", "system-obs", "GET", "/Observation/" + b.ids["Observation"][0], nil, 200, nil},
		{"system: other type", "system-obs", "GET", "/Condition/" + bCond, nil, 403, nil},
		{"system: type history", "system-obs", "GET", "/Observation/_history?_count=1", nil, 200, nil},
		{"system: no system history", "system-obs", "GET", "/_history", nil, 403, nil},

		// A patient scope without a patient in context reaches nothing.
		{"no patient in context", "no-patient", "GET", "/Observation", nil, 403, nil},

		// Last: they change A's record.
		{"A creates for A", "A", "POST", "/Observation", newObs(a.id), 201, nil},
		{"A updates A's patient", "A", "PUT", "/Patient/" + a.id, a.bodies["Patient/"+a.id], 200, nil},
		{"A updates A's observation", "A", "PUT", "/Observation/" + aLabID, a.bodies[aLab[0]], 200, nil},
		{"A deletes A's observation", "A", "DELETE", "/Observation/" + aLabID, nil, 204, nil},
		{"A reads A's deleted observation", "A", "GET", "/Observation/" + aLabID, nil, 410, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.client(t, tc.token).Do(tc.method, tc.path, tc.body)
			if r.Status != tc.want {
				t.Fatalf("%s %s: status %d, want %d\n%.300s", tc.method, tc.path, r.Status, tc.want, r.Body)
			}
			if r.Status == http.StatusForbidden {
				if !bytes.Contains(r.Body, []byte(`"code":"forbidden"`)) || !strings.Contains(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("403 without an OperationOutcome forbidden issue or WWW-Authenticate: %v %s", r.Header, r.Body)
				}
			}
			if tc.entries != nil {
				got := bundleIDs(t, r)
				slices.Sort(got)
				want := slices.Clone(tc.entries)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s: entries\n got %v\nwant %v", tc.method, tc.path, got, want)
				}
			}
		})
	}
}

// TestAuthentication: 401 without a valid token on every endpoint but
// /metadata (checklist C-RS-02, C-RS-03; RFC 6750 §3.1).
func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, token, path string
		want              int
		challenge         string // WWW-Authenticate
	}{
		{"no token", "", "/Patient/" + f.a.id, 401, `Bearer realm="kiln"`},
		{"no token, unknown type", "", "/NoSuchType", 401, `Bearer realm="kiln"`},
		{"no token, search", "", "/Observation", 401, `Bearer realm="kiln"`},
		{"no token, system history", "", "/_history", 401, `Bearer realm="kiln"`},
		{"invalid token", "forged", "/Patient/" + f.a.id, 401, `Bearer realm="kiln", error="invalid_token"`},
		{"metadata is public", "", "/metadata", 200, ""},
		{"valid token", "admin", "/Patient/" + f.a.id, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.client(t, tc.token).Do("GET", tc.path, nil)
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tc.want, r.Body)
			}
			if got := r.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if r.Status == 401 && !bytes.Contains(r.Body, []byte(`"resourceType":"OperationOutcome"`)) {
				t.Errorf("401 without an OperationOutcome: %s", r.Body)
			}
			if r.Status == 401 && bytes.Contains(r.Body, []byte(f.a.id)) {
				t.Errorf("401 names the patient: %s", r.Body)
			}
		})
	}
}

// failingAuth is an authorizer whose token store is down.
type failingAuth struct{}

func (failingAuth) Authorize(*http.Request) (*rest.Access, error) {
	return nil, fmt.Errorf("token store: %w", store.ErrUnavailable)
}

// TestAuthorizerDown: an authorizer failure is never a grant: 503, and
// nothing of the resource.
func TestAuthorizerDown(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(rest.New(rest.Config{Auth: failingAuth{}}, db))
	defer srv.Close()
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	if r := c.Do("GET", "/Patient/p1", nil, "Authorization", "Bearer x"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503: %s", r.Status, r.Body)
	}
	if r := c.Do("GET", "/metadata", nil); r.Status != http.StatusOK {
		t.Errorf("metadata: %d, want 200", r.Status)
	}
}

// TestHistoryAcrossCompartments: a resource that moved from B's
// compartment into A's shows A only the versions that were A's, and a
// resource of B that was deleted is not found (not gone) for A.
func TestHistoryAcrossCompartments(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	f.toks.add("A", &rest.Access{Patient: a.id, Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}})
	admin, ca := f.client(t, "admin"), f.client(t, "A")
	obs := func(patient, text string) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"text":"` + text + `"},"subject":{"reference":"Patient/` + patient + `"}}`)
	}
	r := admin.Do("POST", "/Observation", obs(b.id, "secret-of-B"))
	id := idOf(t, r.Body)
	moved := []byte(strings.Replace(string(obs(a.id, "now-A's")), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1))
	if r := admin.Do("PUT", "/Observation/"+id, moved); r.Status != 200 {
		t.Fatalf("move: %d %s", r.Status, r.Body)
	}
	r = ca.Do("GET", "/Observation/"+id+"/_history", nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("secret-of-B")) || bytes.Contains(r.Body, []byte(b.id)) {
		t.Fatalf("history shows B's version: %d %.500s", r.Status, r.Body)
	}
	if got := bundleIDs(t, r); len(got) != 1 {
		t.Errorf("history entries %v, want the one version that is A's", got)
	}
	if bytes.Contains(r.Body, []byte(`"total"`)) {
		t.Errorf("a filtered history must not count what it left out: %.300s", r.Body)
	}
	if r := ca.Do("GET", "/Observation/"+id+"/_history/1", nil); r.Status != 404 {
		t.Errorf("vread of B's version: %d, want 404", r.Status)
	}
	if r := ca.Do("GET", "/Observation/"+id+"/_history/2", nil); r.Status != 200 {
		t.Errorf("vread of A's version: %d, want 200", r.Status)
	}

	// Deleted: B's answers 404 to A, A's own 410.
	bObs := b.ids["Observation"][1]
	if r := admin.Do("DELETE", "/Observation/"+bObs, nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := ca.Do("GET", "/Observation/"+bObs, nil); r.Status != 404 {
		t.Errorf("read of B's deleted observation: %d, want 404", r.Status)
	}
	if r := ca.Do("GET", "/Observation/"+bObs+"/_history", nil); r.Status != 404 {
		t.Errorf("history of B's deleted observation: %d, want 404", r.Status)
	}
	if r := ca.Do("PUT", "/Observation/"+bObs, []byte(strings.Replace(string(obs(a.id, "take over")), `"Observation",`, `"Observation","id":"`+bObs+`",`, 1))); r.Status != 403 {
		t.Errorf("resurrecting B's deleted observation as A's: %d, want 403", r.Status)
	}
	if r := ca.Do("DELETE", "/Observation/"+id, nil); r.Status != 204 {
		t.Fatalf("A deletes A's: %d", r.Status)
	}
	if r := ca.Do("GET", "/Observation/"+id, nil); r.Status != 410 {
		t.Errorf("read of A's deleted observation: %d, want 410", r.Status)
	}
}

// TestAPIWithFullAccess runs the HTTP conformance suite (without its
// search corpus) with enforcement on and a token whose scopes reach
// everything (system/*.cruds): enforcement takes nothing away from an
// access that may do everything. The header is added server-side, as the
// suite's own client sends no token.
func TestAPIWithFullAccess(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const maxBody = 4 << 20
	toks := &tokens{m: map[string]*rest.Access{"all": {Rules: []rest.Rule{{Context: "system", Type: "*", Ops: "cruds"}}}}}
	api := rest.New(rest.Config{MaxBody: maxBody, Auth: toks}, db)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer all")
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	apitest.Run(t, srv.URL, apitest.Options{MaxBody: maxBody, SkipCorpus: true})
}
