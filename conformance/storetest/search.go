package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// The search suite. Resources are built as JSON here, indexed with
// search.Extract (as the REST layer does) and committed; queries are
// hand-built search.Query values, normalised the way search.Parse
// normalises them (folded strings, dates as ranges, numbers with their
// implicit range). Every expected result is written from the rules of
// search.html (R4), not from any backend's output: the comment of each
// case says which rule.
//
// Without _sort the order of matches is the backend's; the suite compares
// sets. With _sort, matches whose sort values tie may come in any order
// but must stay in one order while paging, so sorted expectations are
// lists of groups of ties.

// searchCorpusAt is when the corpus was written: meta.lastUpdated of
// resource n of the corpus is searchCorpusAt + minutes(n/3), so that
// _lastUpdated has ties.
var searchCorpusAt = time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)

// doc is one corpus resource: its type, id and the JSON members after
// resourceType, id and meta.
type doc struct {
	typ, id, json string
}

// searchCorpus: patients, their practitioners and organizations,
// observations, an encounter, risk assessments, value sets and a report.
var searchCorpus = []doc{
	{"Organization", "org1", `"name":"Acme Health"`},
	{"Organization", "org2", `"name":"Beta Clinic"`},
	{"Practitioner", "dr1", `"name":[{"family":"Joe"}],"address":[{"state":"CA"}]`},
	{"Practitioner", "dr2", `"name":[{"family":"Bob"}],"address":[{"state":"MN"}]`},
	{"Patient", "p1", `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter James Chalmers, born in 1974</div>"},` +
		`"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical record number"},` +
		`"system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"}],"active":true,` +
		`"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],` +
		`"telecom":[{"system":"phone","value":"(03) 5555 6473"}],"gender":"male","birthDate":"1974-12-25",` +
		`"address":[{"city":"Brisbane","state":"QLD"}],` +
		`"generalPractitioner":[{"reference":"Practitioner/dr1"},{"reference":"Practitioner/dr2"}],` +
		`"managingOrganization":{"reference":"Organization/org1"}`},
	{"Patient", "p2", `"identifier":[{"system":"http://hospital.example/mrn","value":"A-2"}],` +
		`"name":[{"family":"Åström","given":["Évelyn"]}],"gender":"female","birthDate":"1980-01-15",` +
		`"managingOrganization":{"reference":"Organization/org2"}`},
	{"Patient", "p3", `"identifier":[{"system":"http://hospital.example/mrn","value":"a-2"}],` +
		`"name":[{"family":"Carreno Quinones","given":["Severine"]}],"birthDate":"1990",` +
		`"generalPractitioner":[{"reference":"Practitioner/dr2"}]`},
	{"Patient", "p4", `"name":[{"family":"100% O'Brien_x\\y","given":["Eve"]}],"gender":"other"`},
	{"Patient", "p5", `"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"DL"}]},` +
		`"system":"urn:oid:2.16.840.1.113883.4.3.25","value":"12345"}],` +
		`"name":[{"family":"Smith","given":["John"]}],"gender":"male","birthDate":"2000-02-29"`},
	{"Patient", "p6", `"identifier":[{"value":"X-6"}]`},
	{"Encounter", "e1", `"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},` +
		`"subject":{"reference":"Patient/p1"},"period":{"start":"2013-01-14T09:00:00Z","end":"2013-01-14T11:00:00Z"}`},
	{"Observation", "o1", `"status":"final",` + lab +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose [Mass/volume] in Blood"}]},` +
		`"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"effectiveDateTime":"2013-01-14T10:00:00Z",` +
		`"valueQuantity":{"value":100,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}`},
	{"Observation", "o2", `"status":"amended","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},` +
		`"subject":{"reference":"Patient/p1"},"effectivePeriod":{"start":"2013-01-21"},` +
		`"valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}`},
	{"Observation", "o3", `"status":"final",` + lab +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},` +
		`"subject":{"reference":"Patient/p2"},"effectiveDateTime":"2013-01-15T00:00:00Z",` +
		`"valueQuantity":{"value":5.4,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}`},
	{"Observation", "o4", `"status":"preliminary","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}],"text":"Blood pressure"},` +
		`"subject":{"reference":"Patient/p2"},"effectiveDateTime":"2013-01-14",` +
		`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},` +
		`"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},` +
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},` +
		`"valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]`},
	{"Observation", "o5", `"status":"final","code":{"coding":[{"code":"2339-0"}]},` +
		`"subject":{"reference":"Patient/p3"},"effectiveDateTime":"2014",` +
		`"valueQuantity":{"value":100.5,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}`},
	{"Observation", "o6", `"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"effectiveDateTime":"2012-12-31T23:59:59Z",` +
		`"valueQuantity":{"value":5,"comparator":"<","unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}`},
	{"Observation", "o7", `"code":{"coding":[{"system":"http://example.org/codes","code":"1234-5"}]},` +
		`"subject":{"identifier":{"system":"http://hospital.example/mrn","value":"A-2"}}`},
	{"Observation", "o8", `"status":"final","code":{"coding":[{"system":"http://example.org/codes","code":"' OR '1'='1"}]},` +
		`"subject":{"reference":"http://other.example/fhir/Patient/99"}`},
	{"DiagnosticReport", "r1", `"status":"final","code":{"text":"Lab"},"result":[{"reference":"Observation/o3"}]`},
	{"RiskAssessment", "ra1", `"status":"final","subject":{"reference":"Patient/p1"},"prediction":[{"probabilityDecimal":0.8}]`},
	{"RiskAssessment", "ra2", `"status":"final","subject":{"reference":"Patient/p2"},` +
		`"prediction":[{"probabilityRange":{"low":{"value":0.2},"high":{"value":0.6}}}]`},
	{"Location", "loc1", `"name":"Ann Arbor clinic","position":{"longitude":-83.6945,"latitude":42.2547}`},
	{"Location", "loc2", `"name":"Detroit clinic","position":{"longitude":-83.0458,"latitude":42.3314}`},
	{"Location", "loc3", `"name":"Labasa clinic","position":{"longitude":179.3948,"latitude":-16.4308}`},
	{"ValueSet", "vs1", `"url":"http://example.org/fhir/ValueSet/abc","status":"active"`},
	{"ValueSet", "vs2", `"url":"http://example.org/fhir/ValueSet/abc/def","status":"active"`},
	{"ValueSet", "vs3", `"url":"http://example.org/other","status":"active"`},
}

const lab = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],`

// indexed builds version v of a resource with its index entries.
func indexed(t *testing.T, typ, id string, v int64, at time.Time, members string) store.Change {
	t.Helper()
	m := store.MethodPut
	if v == 1 {
		m = store.MethodPost
	}
	b := fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d","lastUpdated":%q}`,
		typ, id, v, at.Format(time.RFC3339Nano))
	if members != "" {
		b = append(append(b, ','), members...)
	}
	b = append(b, '}')
	index, err := search.Extract(typ, b)
	if err != nil {
		t.Fatalf("Extract %s/%s: %v", typ, id, err)
	}
	return store.Change{Type: typ, ID: id, Version: v, LastUpdated: at, Method: m, Body: b, Index: index}
}

func loadCorpus(t *testing.T, s store.Store) {
	t.Helper()
	commitEach(t, s, SearchCorpus(t)...)
}

// SearchCorpus returns the creates of the resources the search suite
// runs against, with their index entries, for backend tests of their
// own (query plans, say).
func SearchCorpus(t *testing.T) []store.Change {
	t.Helper()
	var changes []store.Change
	for i, d := range searchCorpus {
		changes = append(changes, indexed(t, d.typ, d.id, 1, corpusTime(i), d.json))
	}
	return changes
}

func corpusTime(i int) time.Time { return searchCorpusAt.Add(time.Duration(i/3) * time.Minute) }

// Clause builders: they normalise values as search.Parse does.

func str(param, mod string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.String, Modifier: mod}
	for _, v := range values {
		c.Values = append(c.Values, search.Value{Raw: v, Text: search.Fold(v)})
	}
	return c
}

func tokenOf(v string) search.Value {
	sys, code, ok := strings.Cut(v, "|")
	if !ok {
		return search.Value{Raw: v, Code: v}
	}
	return search.Value{Raw: v, System: sys, Code: code, HasSystem: true}
}

func tok(param, mod string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.Token, Modifier: mod}
	for _, v := range values {
		if mod == "text" {
			c.Values = append(c.Values, search.Value{Raw: v, Text: search.Fold(v)})
			continue
		}
		c.Values = append(c.Values, tokenOf(v))
	}
	return c
}

// ofType is an :of-type value: type system|type code|value.
func ofType(param, system, code, value string) search.Clause {
	return search.Clause{Param: param, Type: search.Token, Modifier: "of-type", Values: []search.Value{{
		Code: value, Components: []search.Value{{System: system, Code: code, HasSystem: true}}}}}
}

// prefixed splits a search.html#prefix off a date or number.
func prefixed(v string) (search.Prefix, string) {
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' && v[1] >= 'a' && v[1] <= 'z' {
		return search.Prefix(v[:2]), v[2:]
	}
	return "", v
}

// dateOf parses a prefixed date of the precisions the suite uses into its
// range (search.html#date: the value's precision is its range).
func dateOf(v string) search.Value {
	p, s := prefixed(v)
	var start, end time.Time
	switch len(s) {
	case 4:
		y, _ := strconv.Atoi(s)
		start = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(1, 0, 0)
	case 7:
		start, _ = time.Parse("2006-01", s)
		end = start.AddDate(0, 1, 0)
	case 10:
		start, _ = time.Parse("2006-01-02", s)
		end = start.AddDate(0, 0, 1)
	case 17: // minutes, Z
		start, _ = time.Parse("2006-01-02T15:04Z", s)
		end = start.Add(time.Minute)
	default:
		var err error
		if start, err = time.Parse(time.RFC3339, s); err != nil {
			panic(err)
		}
		start = start.UTC()
		end = start.Add(time.Second)
	}
	return search.Value{Raw: v, Prefix: p, Start: start, End: end}
}

func date(param string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.Date}
	for _, v := range values {
		c.Values = append(c.Values, dateOf(v))
	}
	return c
}

// numberOf parses [prefix]number[|system|code] with the number's implicit
// range (search.html#number: 100 is [99.5, 100.5), 5.4 is [5.35, 5.45)).
func numberOf(v string) search.Value {
	p, s := prefixed(v)
	num, unit, _ := strings.Cut(s, "|")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		panic(err)
	}
	half := 0.5
	if i := strings.IndexByte(num, '.'); i >= 0 {
		for range len(num) - i - 1 {
			half /= 10
		}
	}
	out := search.Value{Raw: v, Prefix: p, Num: f, Lo: f - half, Hi: f + half}
	if unit != "" {
		out.System, out.Code, _ = strings.Cut(unit, "|")
	}
	return out
}

func number(param string, typ search.Type, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: typ}
	for _, v := range values {
		c.Values = append(c.Values, numberOf(v))
	}
	return c
}

// ref: "Type/id", a bare id, or an absolute URL. mod "type" with
// targetType is the :[type] modifier.
func ref(param, mod, targetType string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.Reference, Modifier: mod, TargetType: targetType}
	for _, v := range values {
		if mod == "identifier" {
			c.Values = append(c.Values, tokenOf(v))
			continue
		}
		val := search.Value{Raw: v, Ref: v}
		if typ, _, ok := strings.Cut(v, "/"); ok && !strings.Contains(v, ":") {
			val.RefType = typ
		}
		c.Values = append(c.Values, val)
	}
	return c
}

func uri(param, mod string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.URI, Modifier: mod}
	for _, v := range values {
		c.Values = append(c.Values, search.Value{Raw: v, Value: v})
	}
	return c
}

// tokenQuantity is a composite value token$quantity.
func tokenQuantity(param string, values ...string) search.Clause {
	c := search.Clause{Param: param, Type: search.Composite}
	for _, v := range values {
		code, qty, _ := strings.Cut(v, "$")
		c.Values = append(c.Values, search.Value{Raw: v, Components: []search.Value{tokenOf(code), numberOf(qty)}})
	}
	return c
}

// near is a near value: latitude|longitude[|distance|unit].
func near(v string) search.Clause {
	parts := strings.Split(v, "|")
	val := search.Value{Raw: v}
	for i, p := range parts {
		if i == 3 {
			val.Components[2].Code = p
			continue
		}
		f, err := strconv.ParseFloat(p, 64)
		if err != nil {
			panic(err)
		}
		c := search.Value{Raw: p, Num: f, Lo: f, Hi: f}
		if i == 2 {
			c.Code = "km"
		}
		val.Components = append(val.Components, c)
	}
	return search.Clause{Param: "near", Type: search.Special, Values: []search.Value{val}}
}

func missing(param string, typ search.Type, m bool) search.Clause {
	return search.Clause{Param: param, Type: typ, Modifier: "missing", Values: []search.Value{{Missing: m}}}
}

func chain(param string, targets []string, filter search.Clause) search.Clause {
	return search.Clause{Param: param, Type: search.Reference, Chain: &search.Chain{Types: targets, Filter: filter}}
}

func has(typ, param string, filter search.Clause) search.Clause {
	return search.Clause{Has: &search.Has{Type: typ, Param: param, Filter: filter}}
}

func id(values ...string) search.Clause { return tok("_id", "", values...) }

// ids reads the matches of one search as sorted ids ("Type/id" when
// withType).
func matchIDs(rs []store.Resource, withType bool) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if withType {
			out = append(out, r.Type+"/"+r.ID)
		} else {
			out = append(out, r.ID)
		}
	}
	return out
}

// searchAll follows the pages of q to the end.
func searchAll(t *testing.T, s store.Store, q search.Query) ([]store.Resource, error) {
	t.Helper()
	var all []store.Resource
	for n := 0; ; n++ {
		page, err := s.Search(t.Context(), &q)
		if err != nil {
			return nil, err
		}
		if q.Count > 0 && len(page.Matches) > q.Count {
			t.Errorf("page %d: %d matches, more than count %d", n+1, len(page.Matches), q.Count)
		}
		for _, r := range page.Matches {
			if r.Deleted() || len(r.Body) == 0 {
				t.Errorf("match %s/%s: a delete or an empty body", r.Type, r.ID)
			}
		}
		all = append(all, page.Matches...)
		if page.Next == "" {
			return all, nil
		}
		if n > 1000 {
			t.Fatal("paging does not end")
		}
		q.Cursor = page.Next
	}
}

type searchCase struct {
	name string
	q    search.Query
	want []string // ids (or Type/id for several types), any order
}

func typed(typ string, clauses ...search.Clause) search.Query {
	return search.Query{Types: []string{typ}, Filter: clauses, Count: 100}
}

// searchCases run against the corpus as loaded.
func searchCases() []searchCase {
	P := func(c ...search.Clause) search.Query { return typed("Patient", c...) }
	O := func(c ...search.Clause) search.Query { return typed("Observation", c...) }
	var none []string
	// o-series with a date, for ap (all of them overlap a window of ±10%
	// of the years since 2013).
	return []searchCase{
		// string (search.html#string): starts-with, case- and
		// accent-insensitive, on any part of a HumanName.
		{"string starts-with", P(str("name", "", "peter")), []string{"p1"}},
		{"string case-insensitive", P(str("given", "", "EVE")), []string{"p2", "p4"}},
		{"string accent-insensitive", P(str("given", "", "eve")), []string{"p2", "p4"}},
		{"string accents in the value", P(str("name", "", "Åström")), []string{"p2"}},
		{"string not a substring", P(str("given", "", "velyn")), none},
		{"string :contains", P(str("given", "contains", "eve")), []string{"p2", "p3", "p4"}},
		{"string :exact", P(str("given", "exact", "Eve")), []string{"p4"}},
		{"string :exact is case-sensitive", P(str("given", "exact", "eve")), none},
		{"string :exact accent-sensitive", P(str("given", "exact", "Evelyn")), none},
		{"string a word of the family on its own", P(str("name", "", "quinones")), []string{"p3"}},
		{"string family first word", P(str("family", "", "Carreno")), []string{"p3"}},
		// B-STR-04, README (Search): family matches each word of a family name
		{"string family second word", P(str("family", "", "quin")), []string{"p3"}},
		{"string family not inside a word", P(str("family", "", "uinones")), none},
		{"string OR", P(str("family", "", "smith", "chalmers")), []string{"p1", "p5"}},
		{"string AND", P(str("given", "", "peter"), str("given", "", "james")), []string{"p1"}},
		{"string AND disjoint", P(str("given", "", "peter"), str("given", "", "john")), none},
		{"string address part", P(str("address-city", "", "bris")), []string{"p1"}},
		{"string :missing=true", P(missing("name", search.String, true)), []string{"p6"}},
		{"string :missing=false", P(missing("name", search.String, false)), []string{"p1", "p2", "p3", "p4", "p5"}},
		{"string _text searches the narrative", P(str("_text", "", "born in")), []string{"p1"}},
		{"string % is a character", P(str("family", "", "100%")), []string{"p4"}},
		{"string % alone", P(str("family", "", "%")), none},
		{"string _ alone", P(str("family", "", "_")), none},
		{"string _ inside", P(str("family", "contains", "n_x")), []string{"p4"}},
		{"string backslash", P(str("family", "contains", `x\y`)), []string{"p4"}},
		{"string backslash alone", P(str("family", "", `\`)), none},
		{"string quote", P(str("name", "", "o'brien")), []string{"p4"}},
		{"string SQL fragment", P(str("name", "", "' OR 1=1 --")), none},
		{"string SQL fragment :contains", P(str("name", "contains", "' OR 1=1 --")), none},
		{"string operator object", P(str("name", "", `{"$ne":1}`)), none},
		{"string 10 kB", P(str("name", "", strings.Repeat("a", 10<<10))), none},

		// token (search.html#token).
		{"token code", P(tok("gender", "", "male")), []string{"p1", "p5"}},
		{"token :not includes no value", P(tok("gender", "not", "male")), []string{"p2", "p3", "p4", "p6"}},
		{"token system|code", P(tok("identifier", "", "urn:oid:1.2.36.146.595.217.0.1|12345")), []string{"p1"}},
		{"token code in any system", P(tok("identifier", "", "12345")), []string{"p1", "p5"}},
		{"token system|", P(tok("identifier", "", "http://hospital.example/mrn|")), []string{"p2", "p3"}},
		{"token |code: no system", P(tok("identifier", "", "|X-6")), []string{"p6"}},
		{"token |code: a system is not no system", P(tok("identifier", "", "|12345")), none},
		{"token codes are case-sensitive", P(tok("identifier", "", "A-2")), []string{"p2"}},
		{"token :of-type", P(ofType("identifier", "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "12345")), []string{"p1"}},
		{"token :of-type other type", P(ofType("identifier", "http://terminology.hl7.org/CodeSystem/v2-0203", "DL", "12345")), []string{"p5"}},
		{"token :of-type no such", P(ofType("identifier", "http://terminology.hl7.org/CodeSystem/v2-0203", "DL", "X-6")), none},
		{"token :text on identifier type", P(tok("identifier", "text", "medical")), []string{"p1"}},
		{"token boolean", P(tok("active", "", "true")), []string{"p1"}},
		{"token ContactPoint value", P(tok("telecom", "", "(03) 5555 6473")), []string{"p1"}},
		{"token CodeableConcept coding", O(tok("code", "", "http://loinc.org|2339-0")), []string{"o1", "o3"}},
		{"token CodeableConcept any system", O(tok("code", "", "2339-0")), []string{"o1", "o3", "o5"}},
		{"token CodeableConcept no system", O(tok("code", "", "|2339-0")), []string{"o5"}},
		{"token CodeableConcept system|", O(tok("code", "", "http://loinc.org|")), []string{"o1", "o2", "o3", "o4", "o6"}},
		{"token :text on CodeableConcept.text", O(tok("code", "text", "blood")), []string{"o4"}},
		{"token :text on Coding.display", O(tok("code", "text", "GLUC")), []string{"o1"}},
		{"token OR", O(tok("status", "", "final", "amended")), []string{"o1", "o2", "o3", "o5", "o6", "o8"}},
		// The shapes the server resolves :in, :not-in, :above, :below and
		// _list into (fhir/terminology, fhir/rest): an OR list as long as
		// an expansion may be (terminology.MaxCodes), whole systems in
		// it, its negation, an empty disjunction, and ids per type.
		{"token OR of a thousand codes", O(tok("code", "", expansion(999, "http://loinc.org|2339-0")...)), []string{"o1", "o3"}},
		{"token OR with a whole system", O(tok("code", "", "http://example.org/codes|", "http://loinc.org|8867-4")), []string{"o2", "o6", "o7", "o8"}},
		{"token :not of a thousand codes", O(tok("code", "not", expansion(998, "http://loinc.org|2339-0", "http://loinc.org|8867-4")...)),
			[]string{"o4", "o5", "o7", "o8"}},
		{"empty disjunction matches nothing", O(search.Clause{Any: []search.Clause{}}), none},
		{"_id:missing=false matches everything", typed("Location", missing("_id", search.Token, false)), []string{"loc1", "loc2", "loc3"}},
		{"ids per type", search.Query{Types: []string{"Patient", "Observation"}, Count: 100, Filter: []search.Clause{{Any: []search.Clause{
			{All: []search.Clause{tok("_type", "", "Patient"), id("p1", "o1")}},
			{All: []search.Clause{tok("_type", "", "Observation"), id("o2")}},
		}}}}, []string{"Patient/p1", "Observation/o2"}},
		{"token AND across parameters", O(tok("category", "", "laboratory"), tok("code", "", "2339-0")), []string{"o1", "o3"}},
		{"token AND repeated", O(tok("code", "", "2339-0"), tok("code", "", "8867-4")), none},
		{"token :not with OR", O(tok("status", "not", "final", "amended")), []string{"o4", "o7"}},
		{"token :missing=true", O(missing("status", search.Token, true)), []string{"o7"}},
		{"token :missing=false on a text alone", typed("DiagnosticReport", missing("code", search.Token, false)), []string{"r1"}},
		{"token :missing=true on a text alone", typed("DiagnosticReport", missing("code", search.Token, true)), none},
		{"token SQL fragment is data", O(tok("code", "", "' OR '1'='1")), []string{"o8"}},
		{"token SQL fragment in system", O(tok("code", "", "' OR 1=1 --|x")), none},
		{"token % and _", O(tok("code", "", "%", "_", `\`)), none},

		// date (search.html#date, #prefix): the value's precision is a
		// range, compared with the resource's range.
		{"date eq day", O(date("date", "2013-01-14")), []string{"o1", "o4"}},
		{"date eq second", O(date("date", "eq2013-01-14T10:00:00Z")), []string{"o1"}},
		{"date eq year", O(date("date", "2013")), []string{"o1", "o3", "o4"}},
		{"date eq month", O(date("date", "2013-01")), []string{"o1", "o3", "o4"}},
		{"date lt", O(date("date", "lt2013-01-14T10:00:00Z")), []string{"o4", "o6"}},
		{"date gt", O(date("date", "gt2013-01-14")), []string{"o2", "o3", "o5"}},
		{"date ge open period", O(date("date", "ge2013-03-14")), []string{"o2", "o5"}},
		{"date le", O(date("date", "le2013-01-14")), []string{"o1", "o4", "o6"}},
		{"date sa", O(date("date", "sa2013-01-14")), []string{"o2", "o3", "o5"}},
		{"date eb", O(date("date", "eb2013-01-14")), []string{"o6"}},
		{"date ne", O(date("date", "ne2013-01-14")), []string{"o2", "o3", "o5", "o6"}},
		{"date ap near", O(date("date", "ap2013-01-14")), []string{"o1", "o2", "o3", "o4", "o5", "o6"}},
		{"date ap far", O(date("date", "ap1990-01-01")), none},
		{"date OR", O(date("date", "2013-01-15", "2014")), []string{"o3", "o5"}},
		{"date AND is a range", O(date("date", "ge2013-01-14"), date("date", "lt2013-01-15")), []string{"o1", "o4"}},
		{"date period overlaps lt", typed("Encounter", date("date", "lt2013-01-14T10:00:00Z")), []string{"e1"}},
		{"date period overlaps gt", typed("Encounter", date("date", "gt2013-01-14T10:00:00Z")), []string{"e1"}},
		{"date period not inside eq", typed("Encounter", date("date", "eq2013-01-14T10:00:00Z")), none},
		{"date period inside eq", typed("Encounter", date("date", "2013-01-14")), []string{"e1"}},
		{"date birthdate year", P(date("birthdate", "1974")), []string{"p1"}},
		{"date birthdate lt", P(date("birthdate", "lt1980-01-15")), []string{"p1"}},
		{"date birthdate ge year precision", P(date("birthdate", "ge1990")), []string{"p3", "p5"}},
		{"date :missing=true", O(missing("date", search.Date, true)), []string{"o7", "o8"}},

		// number and quantity (search.html#number, #quantity).
		{"number eq in precision", typed("RiskAssessment", number("probability", search.Number, "0.8")), []string{"ra1"}},
		{"number gt overlaps a range", typed("RiskAssessment", number("probability", search.Number, "gt0.5")), []string{"ra1", "ra2"}},
		{"number lt", typed("RiskAssessment", number("probability", search.Number, "lt0.3")), []string{"ra2"}},
		{"number sa", typed("RiskAssessment", number("probability", search.Number, "sa0.7")), []string{"ra1"}},
		{"number eb", typed("RiskAssessment", number("probability", search.Number, "eb0.7")), []string{"ra2"}},
		{"quantity eq implicit range", O(number("value-quantity", search.Quantity, "100")), []string{"o1"}},
		{"quantity eq upper bound excluded", O(number("value-quantity", search.Quantity, "100.5")), []string{"o5"}},
		{"quantity gt", O(number("value-quantity", search.Quantity, "gt100")), []string{"o5"}},
		{"quantity ge", O(number("value-quantity", search.Quantity, "ge100")), []string{"o1", "o5"}},
		{"quantity lt comparator", O(number("value-quantity", search.Quantity, "lt5")), []string{"o6"}},
		{"quantity ne", O(number("value-quantity", search.Quantity, "ne100")), []string{"o2", "o3", "o5", "o6"}},
		{"quantity ap", O(number("value-quantity", search.Quantity, "ap100")), []string{"o1", "o5"}},
		{"quantity system and code", O(number("value-quantity", search.Quantity, "5.4|http://unitsofmeasure.org|mg")), []string{"o3"}},
		{"quantity code alone", O(number("value-quantity", search.Quantity, "5.4||mg")), []string{"o3"}},
		{"quantity unit text", O(number("value-quantity", search.Quantity, "72||beats/minute")), []string{"o2"}},
		{"quantity gt with unit", O(number("value-quantity", search.Quantity, "gt5||mg/dL")), []string{"o1", "o5"}},
		{"quantity other unit", O(number("value-quantity", search.Quantity, "100||mg")), none},

		// reference (search.html#reference).
		{"reference Type/id", O(ref("subject", "", "", "Patient/p1")), []string{"o1", "o2"}},
		{"reference bare id", O(ref("subject", "", "", "p1")), []string{"o1", "o2"}},
		{"reference patient parameter", O(ref("patient", "", "", "p2")), []string{"o3", "o4"}},
		{"reference :[type]", O(ref("subject", "type", "Patient", "p1")), []string{"o1", "o2"}},
		{"reference :[type] other type", O(ref("subject", "type", "Group", "p1")), none},
		{"reference wrong type", O(ref("subject", "", "", "Group/p1")), none},
		{"reference absolute URL", O(ref("subject", "", "", "http://other.example/fhir/Patient/99")), []string{"o8"}},
		{"reference :identifier", O(ref("subject", "identifier", "", "http://hospital.example/mrn|A-2")), []string{"o7"}},
		{"reference :missing=true", O(missing("subject", search.Reference, true)), []string{"o6"}},
		{"reference encounter", O(ref("encounter", "", "", "Encounter/e1")), []string{"o1"}},
		{"reference OR", P(ref("organization", "", "", "Organization/org1", "org2")), []string{"p1", "p2"}},
		{"reference repeating element", P(ref("general-practitioner", "", "", "Practitioner/dr2")), []string{"p1", "p3"}},
		{"reference SQL fragment", O(ref("subject", "", "", "Patient/' OR 1=1 --", "%", "_")), none},

		// uri (search.html#uri).
		{"uri exact", typed("ValueSet", uri("url", "", "http://example.org/fhir/ValueSet/abc")), []string{"vs1"}},
		{"uri case-sensitive", typed("ValueSet", uri("url", "", "http://example.org/fhir/ValueSet/ABC")), none},
		{"uri :below", typed("ValueSet", uri("url", "below", "http://example.org/fhir")), []string{"vs1", "vs2"}},
		{"uri :above", typed("ValueSet", uri("url", "above", "http://example.org/fhir/ValueSet/abc/def/ghi")), []string{"vs1", "vs2"}},
		{"uri :below %", typed("ValueSet", uri("url", "below", "%")), none},
		{"uri :above _", typed("ValueSet", uri("url", "above", "_")), none},

		// composite (search.html#composite): one tuple matches every part.
		{"composite token$quantity", O(tokenQuantity("component-code-value-quantity", "http://loinc.org|8480-6$gt100")), []string{"o4"}},
		{"composite parts of different tuples", O(tokenQuantity("component-code-value-quantity", "http://loinc.org|8480-6$lt100")), none},
		{"composite OR", O(tokenQuantity("component-code-value-quantity", "http://loinc.org|8462-4$gt100", "http://loinc.org|8462-4$lt90")), []string{"o4"}},
		{"composite on the resource", O(tokenQuantity("code-value-quantity", "http://loinc.org|2339-0$100")), []string{"o1"}},

		// chaining (search.html#chaining).
		{"chain", O(chain("subject", []string{"Patient"}, str("name", "", "peter"))), []string{"o1", "o2"}},
		{"chain to a date", O(chain("patient", []string{"Patient"}, date("birthdate", "ge1990"))), []string{"o5"}},
		{"chain each on its own", P(chain("general-practitioner", []string{"Practitioner"}, str("name", "", "joe")),
			chain("general-practitioner", []string{"Practitioner"}, str("address-state", "", "MN"))), []string{"p1"}},
		{"chain two levels", O(chain("subject", []string{"Patient"}, chain("organization", []string{"Organization"}, str("name", "", "acme")))), []string{"o1", "o2"}},
		{"chain matches nothing", O(chain("subject", []string{"Patient"}, str("name", "", "nobody"))), none},
		{"chain to a negation", O(chain("subject", []string{"Patient"}, tok("gender", "not", "male"))), []string{"o3", "o4", "o5"}},

		// _has (search.html#has).
		{"_has", P(has("Observation", "patient", tok("code", "", "2339-0"))), []string{"p1", "p2", "p3"}},
		{"_has with system", P(has("Observation", "subject", tok("code", "", "http://loinc.org|8867-4"))), []string{"p1"}},
		{"_has nested", P(has("Observation", "patient", has("DiagnosticReport", "result", tok("status", "", "final")))), []string{"p2"}},
		{"_has and a parameter", P(str("name", "", "peter"), has("Observation", "patient", tok("code", "", "2339-0"))), []string{"p1"}},
		{"_has two, independent", P(has("Observation", "patient", tok("code", "", "8867-4")), has("RiskAssessment", "subject", number("probability", search.Number, "0.8"))), []string{"p1"}},

		// Any: a disjunction of clauses (a compartment).
		{"any of two references", O(search.Clause{Any: []search.Clause{ref("subject", "", "", "Patient/p2"), ref("encounter", "", "", "Encounter/e1")}}),
			[]string{"o1", "o3", "o4"}},
		{"any with a negation", O(search.Clause{Any: []search.Clause{missing("subject", search.Reference, true), tok("code", "", "2339-0")}}),
			[]string{"o1", "o3", "o5", "o6"}},
		{"any and a parameter", O(search.Clause{Any: []search.Clause{ref("subject", "", "", "Patient/p1"), ref("subject", "", "", "Patient/p2")}},
			tok("status", "", "final")), []string{"o1", "o3"}},

		// All: a conjunction of clauses; _type: the resource's own type
		// (access control confines each type of a search by its rule).
		{"all of a reference and a token", O(search.Clause{All: []search.Clause{ref("subject", "", "", "Patient/p1", "Patient/p2"), tok("status", "", "final")}}),
			[]string{"o1", "o3"}},
		{"all without a driving part", O(search.Clause{All: []search.Clause{tok("status", "not", "amended"), tok("status", "not", "preliminary")}}),
			[]string{"o1", "o3", "o5", "o6", "o7", "o8"}},
		{"all inside any, per type", search.Query{Types: []string{"Observation", "RiskAssessment"}, Count: 100, Filter: []search.Clause{{Any: []search.Clause{
			{All: []search.Clause{tok("_type", "", "Observation"), ref("subject", "", "", "Patient/p2")}},
			{All: []search.Clause{tok("_type", "", "RiskAssessment"), ref("subject", "", "", "Patient/p1")}},
		}}}}, []string{"Observation/o3", "Observation/o4", "RiskAssessment/ra1"}},
		{"_type alone", search.Query{Count: 100, Filter: []search.Clause{tok("_type", "", "RiskAssessment")}},
			[]string{"RiskAssessment/ra1", "RiskAssessment/ra2"}},

		// _id and _lastUpdated (search.html#id, #lastUpdated).
		{"_id", P(id("p1")), []string{"p1"}},
		{"_id is case-sensitive", P(id("P1")), none},
		{"_id OR", P(id("p1", "p3", "nobody")), []string{"p1", "p3"}},
		{"_id :not", P(tok("_id", "not", "p1", "p2")), []string{"p3", "p4", "p5", "p6"}},
		{"_id SQL fragment", P(id("' OR 1=1 --")), none},
		{"_id and a parameter", P(id("p1", "p2"), tok("gender", "", "female")), []string{"p2"}},
		{"_lastUpdated eq minute", P(date("_lastUpdated", "eq"+corpusTime(6).Format("2006-01-02T15:04Z"))), []string{"p3", "p4", "p5"}},
		{"_lastUpdated ge", P(date("_lastUpdated", "ge"+corpusTime(6).Format(time.RFC3339))), []string{"p3", "p4", "p5", "p6"}},
		{"_lastUpdated lt", P(date("_lastUpdated", "lt"+corpusTime(6).Format(time.RFC3339))), []string{"p1", "p2"}},

		// special: near (search.html#near). Ann Arbor to Detroit is
		// about 54 km.
		{"near within 1 km", typed("Location", near("42.2547|-83.6945|1|km")), []string{"loc1"}},
		{"near within 60 km", typed("Location", near("42.2547|-83.6945|60|km")), []string{"loc1", "loc2"}},
		{"near within 30 mi", typed("Location", near("42.2547|-83.6945|30|[mi_i]")), []string{"loc1"}},
		{"near without a distance", typed("Location", near("42.33|-83.05")), []string{"loc2"}},
		{"near far away", typed("Location", near("0|0|1|km")), none},
		// 179.3948°E to 179.9°W is 0.705° of longitude across the
		// antimeridian, 75 km at this latitude.
		{"near across the antimeridian", typed("Location", near("-16.4308|-179.9|100|km")), []string{"loc3"}},
		{"near across the antimeridian, too far", typed("Location", near("-16.4308|-179.9|50|km")), none},

		// several types and every type.
		{"several types", search.Query{Types: []string{"Patient", "Practitioner"}, Filter: []search.Clause{str("name", "", "joe")}, Count: 100},
			[]string{"Practitioner/dr1"}},
		{"every type by _id", search.Query{Filter: []search.Clause{id("e1", "vs3")}, Count: 100},
			[]string{"Encounter/e1", "ValueSet/vs3"}},
		{"every type by _lastUpdated", search.Query{Filter: []search.Clause{date("_lastUpdated", "ge"+corpusTime(len(searchCorpus)-1).Format(time.RFC3339))}, Count: 100},
			lastMinute()},
		{"every type, no filter", search.Query{Types: []string{"ValueSet", "DiagnosticReport"}, Count: 100},
			[]string{"DiagnosticReport/r1", "ValueSet/vs1", "ValueSet/vs2", "ValueSet/vs3"}},
	}
}

// expansion is n made-up codes and then the codes given: an OR list as
// long as an expanded ValueSet.
func expansion(n int, codes ...string) []string {
	out := make([]string, 0, n+len(codes))
	for i := range n {
		out = append(out, fmt.Sprintf("http://example.org/expanded|c%d", i))
	}
	return append(out, codes...)
}

// lastMinute lists the corpus resources of the last _lastUpdated minute.
func lastMinute() []string {
	var out []string
	last := corpusTime(len(searchCorpus) - 1)
	for i, d := range searchCorpus {
		if !corpusTime(i).Before(last) {
			out = append(out, d.typ+"/"+d.id)
		}
	}
	return out
}

func testSearch(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	for _, tc := range searchCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := searchAll(t, s, tc.q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			withType := len(tc.q.Types) != 1
			g := matchIDs(got, withType)
			slices.Sort(g)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(g, want) {
				t.Errorf("got %q, want %q", g, want)
			}
		})
	}
}

// testSearchUnsupported: what a backend cannot answer is ErrUnsupported,
// not a wrong answer.
func testSearchUnsupported(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	for _, tc := range []struct {
		name string
		q    search.Query
	}{
		{"token :in", typed("Observation", tok("code", "in", "http://hl7.org/fhir/ValueSet/observation-codes"))},
		{"token :below", typed("Observation", tok("code", "below", "http://loinc.org|2339-0"))},
		{"sort on a composite", search.Query{Types: []string{"Observation"}, Count: 10,
			Sort: []search.SortKey{{Param: "code-value-quantity", Type: search.Composite}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Search(t.Context(), &tc.q)
			if !errors.Is(err, store.ErrUnsupported) {
				t.Errorf("Search: %v, want ErrUnsupported", err)
			}
		})
	}
}

// sortCase expects matches in groups: each group's members in any order,
// the groups in the given order.
type sortCase struct {
	name string
	sort []search.SortKey
	want [][]string
}

func asc(param string, typ search.Type) search.SortKey {
	return search.SortKey{Param: param, Type: typ}
}
func desc(param string, typ search.Type) search.SortKey {
	return search.SortKey{Param: param, Type: typ, Descending: true}
}

// testSearchSort: search.html#_sort — ascending by a resource's lowest
// value, descending by its highest, resources without a value last,
// several keys in priority order; and each order pages the same.
func testSearchSort(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	g := func(ids ...string) []string { return ids }
	for _, tc := range []sortCase{
		{"date ascending", []search.SortKey{asc("birthdate", search.Date)},
			[][]string{g("p1"), g("p2"), g("p3"), g("p5"), g("p4", "p6")}},
		{"date descending", []search.SortKey{desc("birthdate", search.Date)},
			[][]string{g("p5"), g("p3"), g("p2"), g("p1"), g("p4", "p6")}},
		// On the folded text: "100% o'brien_x\y" sorts before "astrom".
		{"string", []search.SortKey{asc("family", search.String)},
			[][]string{g("p4"), g("p2"), g("p3"), g("p1"), g("p5"), g("p6")}},
		// p3 is "Carreno Quinones": it sorts as carreno, not by its
		// later word quinones (which family=quin still finds).
		{"string descending", []search.SortKey{desc("family", search.String)},
			[][]string{g("p5"), g("p1"), g("p3"), g("p2"), g("p4"), g("p6")}},
		// p1 is given Peter and James: ascending sorts it as james,
		// descending as peter.
		{"repeating, ascending on the lowest", []search.SortKey{asc("given", search.String)},
			[][]string{g("p4"), g("p2"), g("p1"), g("p5"), g("p3"), g("p6")}},
		{"repeating, descending on the highest", []search.SortKey{desc("given", search.String)},
			[][]string{g("p3"), g("p1"), g("p5"), g("p2"), g("p4"), g("p6")}},
		{"two keys", []search.SortKey{asc("gender", search.Token), desc("birthdate", search.Date)},
			[][]string{g("p2"), g("p5"), g("p1"), g("p4"), g("p3"), g("p6")}},
		{"_id", []search.SortKey{asc("_id", search.Token)},
			[][]string{g("p1"), g("p2"), g("p3"), g("p4"), g("p5"), g("p6")}},
		{"-_id", []search.SortKey{desc("_id", search.Token)},
			[][]string{g("p6"), g("p5"), g("p4"), g("p3"), g("p2"), g("p1")}},
		// Patients are corpus entries 4–9: minutes 1, 1, 2, 2, 2, 3.
		{"_lastUpdated with ties", []search.SortKey{asc("_lastUpdated", search.Date)},
			[][]string{g("p1", "p2"), g("p3", "p4", "p5"), g("p6")}},
		{"-_lastUpdated with ties", []search.SortKey{desc("_lastUpdated", search.Date)},
			[][]string{g("p6"), g("p3", "p4", "p5"), g("p1", "p2")}},
		{"reference", []search.SortKey{asc("organization", search.Reference), asc("_id", search.Token)},
			[][]string{g("p1"), g("p2"), g("p3"), g("p4"), g("p5"), g("p6")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := search.Query{Types: []string{"Patient"}, Sort: tc.sort, Count: 100}
			whole, err := searchAll(t, s, q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			checkGroups(t, matchIDs(whole, false), tc.want)
			for _, count := range []int{1, 2, 4} {
				q.Count = count
				paged, err := searchAll(t, s, q)
				if err != nil {
					t.Fatalf("Search, count %d: %v", count, err)
				}
				if g, w := matchIDs(paged, false), matchIDs(whole, false); !slices.Equal(g, w) {
					t.Errorf("count %d pages %q, one page %q", count, g, w)
				}
			}
		})
	}
	t.Run("sorted filter", func(t *testing.T) {
		q := typed("Observation", ref("subject", "", "", "Patient/p1", "Patient/p2"))
		q.Sort = []search.SortKey{desc("date", search.Date)}
		got, err := searchAll(t, s, q)
		if err != nil {
			t.Fatal(err)
		}
		// Descending on the end of each range: o2 is an open period, o3
		// ends at Jan 15 00:00:01, o4 (all of Jan 14) at Jan 15 00:00,
		// o1 at Jan 14 10:00:01.
		checkGroups(t, matchIDs(got, false), [][]string{g("o2"), g("o3"), g("o4"), g("o1")})
	})
	t.Run("quantity", func(t *testing.T) {
		q := typed("Observation", missing("value-quantity", search.Quantity, false))
		q.Sort = []search.SortKey{asc("value-quantity", search.Quantity)}
		got, err := searchAll(t, s, q)
		if err != nil {
			t.Fatal(err)
		}
		// o6 is "<5": it starts at minus infinity.
		checkGroups(t, matchIDs(got, false), [][]string{g("o6"), g("o3"), g("o2"), g("o1"), g("o5")})
	})
}

func checkGroups(t *testing.T, got []string, want [][]string) {
	t.Helper()
	i := 0
	for _, grp := range want {
		if i+len(grp) > len(got) {
			t.Errorf("got %q, want groups %q", got, want)
			return
		}
		part := slices.Clone(got[i : i+len(grp)])
		slices.Sort(part)
		w := slices.Clone(grp)
		slices.Sort(w)
		if !slices.Equal(part, w) {
			t.Errorf("got %q, want groups %q", got, want)
			return
		}
		i += len(grp)
	}
	if i != len(got) {
		t.Errorf("got %q, want groups %q", got, want)
	}
}

// testSearchTotals: search.html#total and _count=0.
func testSearchTotals(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	base := typed("Observation", tok("status", "", "final"))
	const matches = 5 // o1 o3 o5 o6 o8
	for _, tc := range []struct {
		name  string
		total search.TotalMode
		count int
	}{
		{"accurate", search.TotalAccurate, 2},
		{"estimate", search.TotalEstimate, 2},
		{"none", search.TotalNone, 2},
		{"count 0", search.TotalNone, 0},
		{"count 0 accurate", search.TotalAccurate, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := base
			q.Total, q.Count = tc.total, tc.count
			for page := 1; ; page++ {
				p, err := s.Search(t.Context(), &q)
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				switch {
				case tc.count == 0:
					if len(p.Matches) != 0 || p.Next != "" || p.Total != matches {
						t.Errorf("count 0: %d matches, Next %q, Total %d; want none, none, %d", len(p.Matches), p.Next, p.Total, matches)
					}
				case tc.total == search.TotalAccurate:
					if p.Total != matches {
						t.Errorf("page %d: Total %d, want %d", page, p.Total, matches)
					}
				case tc.total == search.TotalEstimate:
					if p.Total < 0 {
						t.Errorf("page %d: Total %d, want an estimate", page, p.Total)
					}
				default:
					if p.Total != -1 && p.Total != matches {
						t.Errorf("page %d: Total %d, want -1 (or the true %d)", page, p.Total, matches)
					}
				}
				if p.Next == "" {
					break
				}
				q.Cursor = p.Next
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		q := typed("Observation", tok("status", "", "cancelled"))
		q.Total = search.TotalAccurate
		p, err := s.Search(t.Context(), &q)
		if err != nil || len(p.Matches) != 0 || p.Total != 0 || p.Next != "" {
			t.Errorf("no match: %d matches, Total %d, Next %q, %v", len(p.Matches), p.Total, p.Next, err)
		}
	})
}

// testSearchChanges: only current, non-deleted versions match; an update
// is found by its new values and no longer by its old ones.
func testSearchChanges(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	at := searchCorpusAt.Add(time.Hour)
	commitEach(t, s,
		indexed(t, "Patient", "p5", 2, at, `"name":[{"family":"Jones","given":["John"]}],"gender":"male","birthDate":"2000-02-29"`),
		store.Change{Type: "Observation", ID: "o1", Version: 2, LastUpdated: at, Method: store.MethodDelete},
	)
	for _, tc := range []searchCase{
		{"old value gone", typed("Patient", str("name", "", "smith")), nil},
		{"new value found", typed("Patient", str("name", "", "jones")), []string{"p5"}},
		{"removed identifier gone", typed("Patient", tok("identifier", "", "12345")), []string{"p1"}},
		{"deleted not found", typed("Observation", tok("code", "", "2339-0")), []string{"o3", "o5"}},
		{"deleted not in the type", typed("Observation", date("date", "2013-01-14")), []string{"o4"}},
		{"deleted not listed", typed("Observation"), []string{"o2", "o3", "o4", "o5", "o6", "o7", "o8"}},
		{"deleted not a chain source", typed("Observation", chain("subject", []string{"Patient"}, str("name", "", "peter"))), []string{"o2"}},
		{"deleted not a _has referrer", typed("Patient", has("Observation", "patient", tok("code", "", "2339-0"))), []string{"p2", "p3"}},
		{"deleted not by _id", typed("Observation", id("o1")), nil},
		{"deleted :missing", typed("Observation", missing("encounter", search.Reference, false)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := searchAll(t, s, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			g := matchIDs(got, false)
			slices.Sort(g)
			if !slices.Equal(g, tc.want) && !(len(g) == 0 && len(tc.want) == 0) {
				t.Errorf("got %q, want %q", g, tc.want)
			}
		})
	}
	t.Run("re-created", func(t *testing.T) {
		commit(t, s, indexed(t, "Observation", "o1", 3, at.Add(time.Minute), `"status":"final","code":{"coding":[{"code":"new"}]}`))
		got, err := searchAll(t, s, typed("Observation", tok("code", "", "new")))
		if err != nil || len(got) != 1 || got[0].ID != "o1" || got[0].Version != 3 {
			t.Fatalf("re-created o1: %v, %v", matchIDs(got, false), err)
		}
		if got[0].LastUpdated.UnixMicro() != at.Add(time.Minute).UnixMicro() {
			t.Errorf("LastUpdated %s", got[0].LastUpdated)
		}
	})
}

// testSearchPagingWhileWriting: keyset paging stays correct while data
// changes between pages — nothing repeats or is skipped among resources
// that exist throughout, resources created after the position are found
// on later pages, deleted ones are not.
func testSearchPagingWhileWriting(t *testing.T, s store.Store) {
	at := searchCorpusAt
	obs := func(id string, v int64, day int) store.Change {
		return indexed(t, "Observation", id, v, at, fmt.Sprintf(`"status":"final","code":{"coding":[{"code":"x"}]},"effectiveDateTime":"2020-01-%02d"`, day))
	}
	var changes []store.Change
	for d := 1; d <= 10; d++ {
		changes = append(changes, obs(fmt.Sprintf("d%02d", d), 1, d))
	}
	commitEach(t, s, changes...)

	q := typed("Observation", tok("code", "", "x"))
	q.Sort = []search.SortKey{asc("date", search.Date)}
	q.Count = 3
	var got []string
	for page := 1; ; page++ {
		p, err := s.Search(t.Context(), &q)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		got = append(got, matchIDs(p.Matches, false)...)
		if page == 1 {
			commitEach(t, s,
				obs("early", 1, 2), // before the position: not seen
				obs("late", 1, 9),  // after: seen, between d08 and d09… or d09 and d10
				obs("d07", 2, 11),  // moved after d10
				store.Change{Type: "Observation", ID: "d08", Version: 2, LastUpdated: at, Method: store.MethodDelete},
			)
		}
		if p.Next == "" {
			break
		}
		if page > 10 {
			t.Fatal("paging does not end")
		}
		q.Cursor = p.Next
	}
	want := [][]string{{"d01"}, {"d02"}, {"d03"}, {"d04"}, {"d05"}, {"d06"}, {"d09", "late"}, {"d10"}, {"d07"}}
	checkGroups(t, got, want)
}

// testSearchInvalidCursor: a cursor not issued for this query is refused.
func testSearchInvalidCursor(t *testing.T, s store.Store) {
	loadCorpus(t, s)
	q := typed("Patient")
	q.Count = 1
	q.Sort = []search.SortKey{asc("birthdate", search.Date)}
	first, err := s.Search(t.Context(), &q)
	if err != nil || first.Next == "" {
		t.Fatalf("first page: Next %q, %v", first.Next, err)
	}
	valid := first.Next
	q.Cursor = valid
	if _, err := s.Search(t.Context(), &q); err != nil {
		t.Fatalf("the cursor the store issued is refused: %v", err)
	}
	mid := len(valid) / 2
	swap := byte('A')
	if valid[mid] == 'A' {
		swap = 'B'
	}
	other := q
	other.Sort = []search.SortKey{desc("birthdate", search.Date)}
	filtered := q
	filtered.Filter = []search.Clause{str("name", "", "peter")}
	for _, tc := range []struct {
		name string
		q    search.Query
		c    string
	}{
		{"garbage", q, "not a cursor"},
		{"SQL", q, "' OR 1=1 --"},
		{"one character changed", q, valid[:mid] + string(swap) + valid[mid+1:]},
		{"cut short", q, valid[:mid]},
		{"extended", q, valid + "AAAA"},
		{"another sort", other, valid},
		{"another filter", filtered, valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Cursor = tc.c
			if _, err := s.Search(t.Context(), &tc.q); !errors.Is(err, store.ErrInvalidCursor) {
				t.Errorf("error %v, want ErrInvalidCursor", err)
			}
		})
	}
}
