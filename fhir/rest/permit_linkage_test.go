package rest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/rest"
)

// TestPractitionerLinkage: a Practitioner user's user/ scopes reach the
// records of the patients linked to it, and only those (issue 5: "user
// scopes follow the fhirUser's access (a practitioner sees the patients
// linked to them — document the rule)"; README "Access control"). Three
// practitioners are linked to one patient each way the rule knows
// (Patient.generalPractitioner and an Encounter participant for A, a
// CareTeam participant for B), a fourth to nobody; each tries to reach
// the other patient through reads, searches, chains, _has, compartment
// search, $everything and writes, and no response names that patient's
// record.
func TestPractitionerLinkage(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	admin := f.client(t, "admin")
	create := func(typ, body string) string {
		t.Helper()
		r := admin.Do("POST", "/"+typ, []byte(body))
		if r.Status != http.StatusCreated {
			t.Fatalf("creating %s: %d %s", typ, r.Status, r.Body)
		}
		return idOf(t, r.Body)
	}
	doctor := func(family string) string {
		return create("Practitioner", `{"resourceType":"Practitioner","name":[{"family":"`+family+`"}]}`)
	}
	gp, enc, team, none := doctor("Gp"), doctor("Enc"), doctor("Team"), doctor("None")

	// A names gp as its general practitioner.
	var pa map[string]any
	if err := json.Unmarshal(a.bodies["Patient/"+a.id], &pa); err != nil {
		t.Fatal(err)
	}
	delete(pa, "meta")
	pa["generalPractitioner"] = []any{map[string]any{"reference": "Practitioner/" + gp}}
	body, _ := json.Marshal(pa)
	if r := admin.Do("PUT", "/Patient/"+a.id, body); r.Status != http.StatusOK {
		t.Fatalf("linking A to gp: %d %s", r.Status, r.Body)
	}
	encA := create("Encounter", `{"resourceType":"Encounter","status":"finished",`+
		`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},`+
		`"subject":{"reference":"Patient/`+a.id+`"},"participant":[{"individual":{"reference":"Practitioner/`+enc+`"}}]}`)
	teamB := create("CareTeam", `{"resourceType":"CareTeam","subject":{"reference":"Patient/`+b.id+`"},`+
		`"participant":[{"member":{"reference":"Practitioner/`+team+`"}}]}`)

	for tok, id := range map[string]string{"gp": gp, "enc": enc, "team": team, "none": none} {
		f.toks.add(tok, &rest.Access{ClientID: "chart", FHIRUser: "Practitioner/" + id,
			Rules: []rest.Rule{{Context: "user", Type: "*", Ops: "cruds"}}})
	}

	// What is only A's (the directory data both records share left out).
	var aOnly []string
	for typ, ids := range a.ids {
		if typ != "Organization" && typ != "Practitioner" {
			aOnly = append(aOnly, ids...)
		}
	}
	aOnly = append(aOnly, a.id, encA)
	bOnly := append(slices.Clone(f.bOnly), b.id, teamB)
	typed := func(typ string, ids ...string) []string {
		var out []string
		for _, id := range ids {
			out = append(out, typ+"/"+id)
		}
		return out
	}
	obs := func(p person) []byte {
		return []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + p.id + `"}}`)
	}

	type check struct {
		name, method, path string
		body               []byte
		want               int
		exactly            []string // a 200 Bundle holds exactly these entries (any order)
	}
	// views: each linked practitioner, its patient, and the other one.
	views := []struct {
		tok           string
		mine, other   person
		mineEncounter []string // the encounters a search of Encounter finds
		hidden        []string // ids that must never appear
	}{
		{"gp", a, b, typed("Encounter", append(slices.Clone(a.ids["Encounter"]), encA)...), bOnly},
		{"enc", a, b, typed("Encounter", append(slices.Clone(a.ids["Encounter"]), encA)...), bOnly},
		{"team", b, a, typed("Encounter", b.ids["Encounter"]...), aOnly},
	}
	// Reads first, for every view, then writes: an Observation one
	// practitioner writes for A is in what the next one searches.
	for _, writes := range []bool{false, true} {
		for _, v := range views {
			mine, other := v.mine, v.other
			checks := []check{
				{"read own patient", "GET", "/Patient/" + mine.id, nil, 200, nil},
				{"read the other patient", "GET", "/Patient/" + other.id, nil, 404, nil},
				{"search Patient", "GET", "/Patient", nil, 200, typed("Patient", mine.id)},
				{"search Observation", "GET", "/Observation?_count=500", nil, 200, typed("Observation", mine.ids["Observation"]...)},
				{"search Encounter", "GET", "/Encounter?_count=500", nil, 200, v.mineEncounter},
				{"read the other's Observation", "GET", "/Observation/" + other.ids["Observation"][0], nil, 404, nil},
				{"vread the other's Condition", "GET", "/Condition/" + other.ids["Condition"][0] + "/_history/1", nil, 404, nil},
				{"search the other's by patient", "GET", "/Condition?patient=Patient/" + other.id, nil, 200, []string{}},
				{"chain to the other", "GET", "/Observation?subject:Patient.family=" + url.QueryEscape(other.family), nil, 200, []string{}},
				{"_has on the other's", "GET", "/Patient?_has:Observation:subject:_id=" + other.ids["Observation"][0], nil, 200, []string{}},
				{"the other's compartment", "GET", "/Patient/" + other.id + "/Condition", nil, 200, []string{}},
				{"$everything of the other", "GET", "/Patient/" + other.id + "/$everything", nil, 404, nil},
				{"_revinclude", "GET", "/Patient?_revinclude=Condition:patient&_count=500", nil, 200,
					append(typed("Patient", mine.id), typed("Condition", mine.ids["Condition"]...)...)},
				{"type history", "GET", "/Observation/_history", nil, 403, nil},
				{"system history", "GET", "/_history", nil, 403, nil},
				{"system search", "GET", "/?_id=" + other.id + "," + other.ids["Observation"][0] + "," + other.ids["Condition"][0], nil, 200, []string{}},
				{"system search _type", "GET", "/?_type=Patient,Condition&_count=500", nil, 200,
					append(typed("Patient", mine.id), typed("Condition", mine.ids["Condition"]...)...)},
				{"directory data", "GET", "/Practitioner/" + none, nil, 200, nil},
				{"write into own patient's record", "POST", "/Observation", obs(mine), 201, nil},
				{"write into the other's record", "POST", "/Observation", obs(other), 403, nil},
				{"delete the other's Condition", "DELETE", "/Condition/" + other.ids["Condition"][0], nil, 403, nil},
			}
			for _, c := range checks {
				if (c.method != "GET") != writes {
					continue
				}
				t.Run(v.tok+" "+c.name, func(t *testing.T) {
					r := f.client(t, v.tok).Do(c.method, c.path, c.body)
					if r.Status != c.want {
						t.Fatalf("%s %s: status %d, want %d\n%.400s", c.method, c.path, r.Status, c.want, r.Body)
					}
					if id := leaked(t, r.Body, v.hidden); id != "" {
						t.Fatalf("%s %s: the response names %s of the other record:\n%.300s", c.method, c.path, id, r.Body)
					}
					if c.exactly != nil {
						got := bundleIDs(t, r)
						slices.Sort(got)
						want := slices.Clone(c.exactly)
						slices.Sort(want)
						if !slices.Equal(got, want) {
							t.Fatalf("%s %s: entries %v, want %v", c.method, c.path, got, want)
						}
					}
				})
			}
		}
	}

	// A practitioner linked to nobody sees no patient data, but the
	// directory; it may register a patient naming itself as GP, and then
	// sees that patient.
	nobody := f.client(t, "none")
	for _, c := range []check{
		{"search Patient", "GET", "/Patient", nil, 200, []string{}},
		{"search Observation", "GET", "/Observation?_count=10", nil, 200, []string{}},
		{"read A", "GET", "/Patient/" + a.id, nil, 404, nil},
		{"register a patient without naming itself", "POST", "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"New"}]}`), 403, nil},
		{"directory data", "GET", "/Practitioner/" + gp, nil, 200, nil},
	} {
		r := nobody.Do(c.method, c.path, c.body)
		if r.Status != c.want {
			t.Fatalf("none: %s %s: status %d, want %d\n%.400s", c.method, c.path, r.Status, c.want, r.Body)
		}
		if id := leaked(t, r.Body, append(slices.Clone(aOnly), bOnly...)); id != "" {
			t.Fatalf("none: %s %s: the response names %s:\n%.300s", c.method, c.path, id, r.Body)
		}
		if c.exactly != nil && len(bundleIDs(t, r)) != 0 {
			t.Fatalf("none: %s %s: want no entries, got %v", c.method, c.path, bundleIDs(t, r))
		}
	}
	r := nobody.Do("POST", "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"New"}],`+
		`"generalPractitioner":[{"reference":"Practitioner/`+none+`"}]}`))
	if r.Status != http.StatusCreated {
		t.Fatalf("none registers its patient: %d %s", r.Status, r.Body)
	}
	if got := bundleIDs(t, nobody.Do("GET", "/Patient", nil)); !slices.Equal(got, typed("Patient", idOf(t, r.Body))) {
		t.Fatalf("none after registering: sees %v", got)
	}
}
