package search

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// The expected queries below are written from search.html (R4) and the
// R4 SearchParameter definitions, not from Parse's output.

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// cl is a clause without modifier; clm one with.
func cl(param string, typ Type, vs ...Value) Clause {
	return Clause{Param: param, Type: typ, Values: vs}
}

func clm(param string, typ Type, mod string, vs ...Value) Clause {
	return Clause{Param: param, Type: typ, Modifier: mod, Values: vs}
}

func text(raw, folded string) Value { return Value{Raw: raw, Text: folded} }
func code(raw string) Value         { return Value{Raw: raw, Code: raw} }
func sysCode(raw, system, code string) Value {
	return Value{Raw: raw, System: system, Code: code, HasSystem: true}
}
func when(raw string, pr Prefix, start, end string) Value {
	return Value{Raw: raw, Prefix: pr, Start: utc(start), End: utc(end)}
}
func num(raw string, pr Prefix, v, lo, hi float64) Value {
	return Value{Raw: raw, Prefix: pr, Num: v, Lo: lo, Hi: hi}
}
func ref(raw, r, typ string) Value { return Value{Raw: raw, Ref: r, RefType: typ} }
func missing(b bool) Value {
	if b {
		return Value{Raw: "true", Missing: true}
	}
	return Value{Raw: "false"}
}

var (
	based = func() *Registry {
		r, err := New(WithBase("https://kiln.example/fhir/"), WithLocation(time.FixedZone("EST", -5*3600)))
		if err != nil {
			panic(err)
		}
		return r
	}()
	patient     = []string{"Patient"}
	observation = []string{"Observation"}
)

type parseCase struct {
	name   string
	types  []string // nil: system level
	query  string
	strict bool
	reg    *Registry // nil: Default()

	// On success: the filter (when want is nil: Types, Count and the rest
	// are then the defaults), or the whole query; what was ignored; the
	// self query when set.
	filter  []Clause
	want    *Query
	ignored []string
	self    string
	// On failure: the expression of each issue, in order.
	errs []string
}

var parseCases = []parseCase{
	// string (search.html#string)
	{name: "string starts-with, folded", types: patient, query: "name=Peter",
		filter: []Clause{cl("name", String, text("Peter", "peter"))}},
	{name: "string accents and case folded", types: patient, query: "given=%C3%89VELYN",
		filter: []Clause{cl("given", String, text("ÉVELYN", "evelyn"))}},
	{name: "string whitespace folded", types: patient, query: "name=Carre%C3%B1o++Qui%C3%B1ones",
		filter: []Clause{cl("name", String, text("Carreño  Quiñones", "carreno quinones"))}},
	{name: "string :exact keeps the text", types: patient, query: "given:exact=Eve",
		filter: []Clause{clm("given", String, "exact", text("Eve", "eve"))}},
	{name: "string :contains", types: patient, query: "given:contains=eve",
		filter: []Clause{clm("given", String, "contains", text("eve", "eve"))}},
	{name: "string :missing", types: patient, query: "name:missing=true",
		filter: []Clause{clm("name", String, "missing", missing(true))}},
	{name: "string :missing=false", types: patient, query: "family:missing=false",
		filter: []Clause{clm("family", String, "missing", missing(false))}},
	{name: "string :missing takes true or false", types: patient, query: "name:missing=yes", errs: []string{"name:missing"}},
	{name: "comma is OR", types: patient, query: "family=peter,paul",
		filter: []Clause{cl("family", String, text("peter", "peter"), text("paul", "paul"))}},
	{name: "repeat is AND", types: patient, query: "family=peter&family=paul",
		filter: []Clause{cl("family", String, text("peter", "peter")), cl("family", String, text("paul", "paul"))}},
	{name: "no prefixes on strings", types: patient, query: "name=gtx",
		filter: []Clause{cl("name", String, text("gtx", "gtx"))}},
	{name: "escaped comma is data", types: patient, query: `name=a\,b`,
		filter: []Clause{cl("name", String, text("a,b", "a,b"))}},
	{name: "phonetic uses Soundex", types: patient, query: "phonetic=Smyth",
		filter: []Clause{cl("phonetic", String, text("Smyth", "S530"))}},
	{name: "phonetic without letters", types: patient, query: "phonetic=1234", errs: []string{"phonetic"}},
	{name: "address part", types: patient, query: "address-city=N%C3%B6rre",
		filter: []Clause{cl("address-city", String, text("Nörre", "norre"))}},
	{name: "empty value ignored", types: patient, query: "name=", self: "_count=50"},
	{name: "blank value ignored", types: patient, query: "name=%20%20", self: "_count=50"},
	{name: "empty alternatives dropped", types: patient, query: "family=,peter,",
		filter: []Clause{cl("family", String, text("peter", "peter"))}},
	{name: "_text searches the narrative anywhere", types: patient, query: "_text=Fever",
		filter: []Clause{clm("_text", String, "contains", text("Fever", "fever"))}},
	{name: "_text has no :exact", types: patient, query: "_text:exact=fever", errs: []string{"_text:exact"}},
	{name: "unknown modifier on string", types: patient, query: "name:foo=x", errs: []string{"name:foo"}},
	{name: "empty modifier", types: patient, query: "name:=x", errs: []string{"name:"}},

	// token (search.html#token)
	{name: "token code", types: patient, query: "gender=male",
		filter: []Clause{cl("gender", Token, code("male"))}},
	{name: "token system|code", types: observation, query: "code=http://loinc.org|1234-5",
		filter: []Clause{cl("code", Token, sysCode("http://loinc.org|1234-5", "http://loinc.org", "1234-5"))}},
	{name: "token |code has no system", types: patient, query: "identifier=|12345",
		filter: []Clause{cl("identifier", Token, sysCode("|12345", "", "12345"))}},
	{name: "token system|", types: patient, query: "identifier=urn:oid:1.2.36.146.595.217.0.1|",
		filter: []Clause{cl("identifier", Token, sysCode("urn:oid:1.2.36.146.595.217.0.1|", "urn:oid:1.2.36.146.595.217.0.1", ""))}},
	{name: "token escaped bar is data", types: observation, query: `code=a\|b`,
		filter: []Clause{cl("code", Token, Value{Raw: "a|b", Code: "a|b"})}},
	{name: "token escaped comma in code", types: observation, query: `code=http://x|a\,b`,
		filter: []Clause{cl("code", Token, sysCode("http://x|a,b", "http://x", "a,b"))}},
	{name: "token escaped backslash then comma", types: observation, query: `code=a\\,b`,
		filter: []Clause{cl("code", Token, Value{Raw: `a\`, Code: `a\`}, code("b"))}},
	{name: "token lone backslash is data", types: observation, query: `code=a\b`,
		filter: []Clause{cl("code", Token, Value{Raw: `a\b`, Code: `a\b`})}},
	{name: "token escaped dollar", types: observation, query: `code=a\$b`,
		filter: []Clause{cl("code", Token, Value{Raw: "a$b", Code: "a$b"})}},
	{name: "token :text folded", types: observation, query: "code:text=Blood+Pressure",
		filter: []Clause{clm("code", Token, "text", Value{Raw: "Blood Pressure", Text: "blood pressure"})}},
	{name: "token :not", types: patient, query: "gender:not=male",
		filter: []Clause{clm("gender", Token, "not", code("male"))}},
	{name: "token :of-type", types: patient, query: "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345",
		filter: []Clause{clm("identifier", Token, "of-type", Value{Raw: "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345", Code: "12345",
			Components: []Value{{System: "http://terminology.hl7.org/CodeSystem/v2-0203", Code: "MR", HasSystem: true}}})}},
	{name: "token :of-type needs three parts", types: patient, query: "identifier:of-type=MR|12345", errs: []string{"identifier:of-type"}},
	{name: "token :in", types: observation, query: "code:in=http://hl7.org/fhir/ValueSet/observation-vitalsignresult",
		filter: []Clause{clm("code", Token, "in", Value{Raw: "http://hl7.org/fhir/ValueSet/observation-vitalsignresult", Value: "http://hl7.org/fhir/ValueSet/observation-vitalsignresult"})}},
	{name: "token :not-in", types: observation, query: "code:not-in=http://example.org/vs",
		filter: []Clause{clm("code", Token, "not-in", Value{Raw: "http://example.org/vs", Value: "http://example.org/vs"})}},
	{name: "token :below", types: observation, query: "code:below=http://snomed.info/sct|235862008",
		filter: []Clause{clm("code", Token, "below", sysCode("http://snomed.info/sct|235862008", "http://snomed.info/sct", "235862008"))}},
	{name: "token bar alone", types: observation, query: "code=|", errs: []string{"code"}},
	{name: "token boolean", types: patient, query: "active=true",
		filter: []Clause{cl("active", Token, code("true"))}},
	{name: "_id exact, no system", types: patient, query: "_id=abc,DEF",
		filter: []Clause{cl("_id", Token, code("abc"), code("DEF"))}},
	{name: "_id bar is part of the id", types: patient, query: "_id=a|b",
		filter: []Clause{cl("_id", Token, Value{Raw: "a|b", Code: "a|b"})}},
	{name: "_id has no :text", types: patient, query: "_id:text=x", errs: []string{"_id:text"}},
	{name: "_tag", types: patient, query: "_tag=http://example.org/tags|vip",
		filter: []Clause{cl("_tag", Token, sysCode("http://example.org/tags|vip", "http://example.org/tags", "vip"))}},
	{name: "_security", types: patient, query: "_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
		filter: []Clause{cl("_security", Token, sysCode("http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"))}},
	{name: "unknown token modifier", types: observation, query: "code:foo=x", errs: []string{"code:foo"}},

	// date (search.html#date)
	{name: "date day", types: patient, query: "birthdate=2013-01-14",
		filter: []Clause{cl("birthdate", Date, when("2013-01-14", Eq, "2013-01-14T00:00:00Z", "2013-01-15T00:00:00Z"))}},
	{name: "date year", types: patient, query: "birthdate=2000",
		filter: []Clause{cl("birthdate", Date, when("2000", Eq, "2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"))}},
	{name: "date month", types: patient, query: "birthdate=2013-01",
		filter: []Clause{cl("birthdate", Date, when("2013-01", Eq, "2013-01-01T00:00:00Z", "2013-02-01T00:00:00Z"))}},
	{name: "date second, escaped colons", types: observation, query: "date=ge2013-01-14T10%3A00%3A00Z",
		filter: []Clause{cl("date", Date, when("ge2013-01-14T10:00:00Z", Ge, "2013-01-14T10:00:00Z", "2013-01-14T10:00:01Z"))}},
	{name: "date minute in the server zone", types: observation, query: "date=lt2013-01-14T10:00",
		filter: []Clause{cl("date", Date, when("lt2013-01-14T10:00", Lt, "2013-01-14T10:00:00Z", "2013-01-14T10:01:00Z"))}},
	{name: "date with offset", types: observation, query: "date=2013-01-14T10:00:00%2B01:00",
		filter: []Clause{cl("date", Date, when("2013-01-14T10:00:00+01:00", Eq, "2013-01-14T09:00:00Z", "2013-01-14T09:00:01Z"))}},
	{name: "date with unencoded plus", types: observation, query: "date=2013-01-14T10:00:00+01:00",
		filter: []Clause{cl("date", Date, when("2013-01-14T10:00:00 01:00", Eq, "2013-01-14T09:00:00Z", "2013-01-14T09:00:01Z"))}},
	{name: "date milliseconds", types: observation, query: "date=2013-01-14T10:00:00.123Z",
		filter: []Clause{cl("date", Date, when("2013-01-14T10:00:00.123Z", Eq, "2013-01-14T10:00:00.123Z", "2013-01-14T10:00:00.124Z"))}},
	{name: "date every prefix", types: observation, query: "date=eq2013,ne2013,gt2013,lt2013,ge2013,le2013,sa2013,eb2013,ap2013",
		filter: []Clause{cl("date", Date,
			when("eq2013", Eq, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("ne2013", Ne, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("gt2013", Gt, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("lt2013", Lt, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("ge2013", Ge, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("le2013", Le, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("sa2013", Sa, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("eb2013", Eb, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"),
			when("ap2013", Ap, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"))}},
	{name: "date in the registry's zone", types: patient, reg: based, query: "birthdate=2013-01-14",
		filter: []Clause{cl("birthdate", Date, when("2013-01-14", Eq, "2013-01-14T05:00:00Z", "2013-01-15T05:00:00Z"))}},
	{name: "date month 13", types: observation, query: "date=2020-13", errs: []string{"date"}},
	{name: "date 30 February", types: observation, query: "date=2020-02-30", errs: []string{"date"}},
	{name: "date in words", types: observation, query: "date=23%20May%202009", errs: []string{"date"}},
	{name: "date unknown prefix", types: observation, query: "date=xx2013", errs: []string{"date"}},
	{name: "date prefix alone", types: observation, query: "date=ge", errs: []string{"date"}},
	{name: "date hour without minutes", types: observation, query: "date=2013-01-14T10", errs: []string{"date"}},
	{name: "_lastUpdated", types: patient, query: "_lastUpdated=gt2024-05-01",
		filter: []Clause{cl("_lastUpdated", Date, when("gt2024-05-01", Gt, "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"))}},
	{name: "date :missing", types: patient, query: "birthdate:missing=true",
		filter: []Clause{clm("birthdate", Date, "missing", missing(true))}},
	{name: "date has no :exact", types: patient, query: "birthdate:exact=2013", errs: []string{"birthdate:exact"}},

	// number (search.html#number)
	{name: "number 100 is [99.5, 100.5)", types: []string{"RiskAssessment"}, query: "probability=100",
		filter: []Clause{cl("probability", Number, num("100", Eq, 100, 99.5, 100.5))}},
	{name: "number 100.00 is [99.995, 100.005)", types: []string{"RiskAssessment"}, query: "probability=100.00",
		filter: []Clause{cl("probability", Number, num("100.00", Eq, 100, 99.995, 100.005))}},
	// search.html gives 1e2 as "to 1 significant figure" but writes the
	// range [95, 105); the registry's numberRange follows the words: half
	// a unit of the one significant digit, [50, 150).
	{name: "number exponent", types: []string{"RiskAssessment"}, query: "probability=1e2",
		filter: []Clause{cl("probability", Number, num("1e2", Eq, 100, 50, 150))}},
	{name: "number 1.5e2 is [145, 155)", types: []string{"RiskAssessment"}, query: "probability=1.5E2",
		filter: []Clause{cl("probability", Number, num("1.5E2", Eq, 150, 145, 155))}},
	{name: "number prefix", types: []string{"RiskAssessment"}, query: "probability=gt0.8",
		filter: []Clause{cl("probability", Number, num("gt0.8", Gt, 0.8, 0.75, 0.85))}},
	{name: "number negative", types: []string{"RiskAssessment"}, query: "probability=-5",
		filter: []Clause{cl("probability", Number, num("-5", Eq, -5, -5.5, -4.5))}},
	{name: "number words", types: []string{"RiskAssessment"}, query: "probability=abc", errs: []string{"probability"}},
	{name: "number fraction", types: []string{"RiskAssessment"}, query: "probability=1/2", errs: []string{"probability"}},
	{name: "number hex", types: []string{"RiskAssessment"}, query: "probability=0x10", errs: []string{"probability"}},
	{name: "number beyond float64", types: []string{"RiskAssessment"}, query: "probability=1e999", errs: []string{"probability"}},
	{name: "number leading dot", types: []string{"RiskAssessment"}, query: "probability=.5", errs: []string{"probability"}},

	// quantity (search.html#quantity)
	{name: "quantity number|system|code", types: observation, query: "value-quantity=5.4|http://unitsofmeasure.org|mg",
		filter: []Clause{cl("value-quantity", Quantity, Value{Raw: "5.4|http://unitsofmeasure.org|mg", Prefix: Eq, Num: 5.4, Lo: 5.35, Hi: 5.45,
			System: "http://unitsofmeasure.org", Code: "mg"})}},
	{name: "quantity number||unit", types: observation, query: "value-quantity=5.4||mg",
		filter: []Clause{cl("value-quantity", Quantity, Value{Raw: "5.4||mg", Prefix: Eq, Num: 5.4, Lo: 5.35, Hi: 5.45, Code: "mg"})}},
	{name: "quantity number alone", types: observation, query: "value-quantity=5.4",
		filter: []Clause{cl("value-quantity", Quantity, num("5.4", Eq, 5.4, 5.35, 5.45))}},
	{name: "quantity prefix", types: observation, query: "value-quantity=le5.4|http://unitsofmeasure.org|mg",
		filter: []Clause{cl("value-quantity", Quantity, Value{Raw: "le5.4|http://unitsofmeasure.org|mg", Prefix: Le, Num: 5.4, Lo: 5.35, Hi: 5.45,
			System: "http://unitsofmeasure.org", Code: "mg"})}},
	{name: "quantity two parts", types: observation, query: "value-quantity=5.4|mg", errs: []string{"value-quantity"}},
	{name: "quantity not a number", types: observation, query: "value-quantity=ab||mg", errs: []string{"value-quantity"}},

	// reference (search.html#reference)
	{name: "reference type/id", types: observation, query: "subject=Patient/123",
		filter: []Clause{cl("subject", Reference, ref("Patient/123", "Patient/123", "Patient"))}},
	{name: "reference bare id, several targets", types: observation, query: "subject=123",
		filter: []Clause{cl("subject", Reference, ref("123", "123", ""))}},
	{name: "reference bare id, one target", types: observation, query: "patient=123",
		filter: []Clause{cl("patient", Reference, ref("123", "Patient/123", "Patient"))}},
	{name: "reference under the base is relative", types: observation, reg: based, query: "subject=https://kiln.example/fhir/Patient/123",
		filter: []Clause{cl("subject", Reference, ref("https://kiln.example/fhir/Patient/123", "Patient/123", "Patient"))}},
	{name: "reference elsewhere stays absolute", types: observation, reg: based, query: "subject=http://other.example/fhir/Patient/123",
		filter: []Clause{cl("subject", Reference, ref("http://other.example/fhir/Patient/123", "http://other.example/fhir/Patient/123", "Patient"))}},
	{name: "reference :[type]", types: observation, query: "subject:Patient=123",
		filter: []Clause{{Param: "subject", Type: Reference, Modifier: "type", TargetType: "Patient", Values: []Value{ref("123", "Patient/123", "Patient")}}}},
	{name: "reference :[type] not a target", types: observation, query: "subject:Medication=1", errs: []string{"subject:Medication"}},
	{name: "reference :[type] against another type", types: observation, query: "subject:Patient=Group/1", errs: []string{"subject:Patient"}},
	{name: "reference :type is not a modifier", types: observation, query: "subject:type=1", errs: []string{"subject:type"}},
	{name: "reference :identifier", types: observation, query: "subject:identifier=urn:oid:1.2.3|123",
		filter: []Clause{clm("subject", Reference, "identifier", sysCode("urn:oid:1.2.3|123", "urn:oid:1.2.3", "123"))}},
	{name: "reference :missing", types: observation, query: "subject:missing=false",
		filter: []Clause{clm("subject", Reference, "missing", missing(false))}},
	{name: "reference version", types: observation, query: "subject=Patient/123/_history/2",
		filter: []Clause{cl("subject", Reference, Value{Raw: "Patient/123/_history/2", Ref: "Patient/123", RefType: "Patient", Value: "2"})}},
	{name: "reference canonical|version", types: []string{"QuestionnaireResponse"}, query: "questionnaire=http://example.org/Questionnaire/q1|2.0",
		filter: []Clause{cl("questionnaire", Reference, Value{Raw: "http://example.org/Questionnaire/q1|2.0", Ref: "http://example.org/Questionnaire/q1", RefType: "Questionnaire", Value: "2.0"})}},
	{name: "reference has no prefixes", types: observation, query: "subject=gt5",
		filter: []Clause{cl("subject", Reference, ref("gt5", "gt5", ""))}},

	// uri (search.html#uri)
	{name: "uri exact", types: []string{"ValueSet"}, query: "url=http://hl7.org/fhir/ValueSet/administrative-gender",
		filter: []Clause{cl("url", URI, Value{Raw: "http://hl7.org/fhir/ValueSet/administrative-gender", Value: "http://hl7.org/fhir/ValueSet/administrative-gender"})}},
	{name: "uri :below", types: []string{"ValueSet"}, query: "url:below=http://hl7.org/fhir/",
		filter: []Clause{clm("url", URI, "below", Value{Raw: "http://hl7.org/fhir/", Value: "http://hl7.org/fhir/"})}},
	{name: "uri :above", types: []string{"ValueSet"}, query: "url:above=http://hl7.org/fhir/ValueSet/x/y",
		filter: []Clause{clm("url", URI, "above", Value{Raw: "http://hl7.org/fhir/ValueSet/x/y", Value: "http://hl7.org/fhir/ValueSet/x/y"})}},
	{name: "uri :below on a URN", types: []string{"ValueSet"}, query: "url:below=urn:oid:1.2", errs: []string{"url:below"}},
	{name: "_profile", types: patient, query: "_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
		filter: []Clause{cl("_profile", URI, Value{Raw: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient", Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"})}},
	{name: "uri has no :contains", types: []string{"ValueSet"}, query: "url:contains=hl7", errs: []string{"url:contains"}},

	// composite (search.html#composite)
	{name: "composite token$quantity", types: observation, query: "code-value-quantity=http://loinc.org|8480-6$gt100",
		filter: []Clause{cl("code-value-quantity", Composite, Value{Raw: "http://loinc.org|8480-6$gt100", Components: []Value{
			sysCode("http://loinc.org|8480-6", "http://loinc.org", "8480-6"),
			num("gt100", Gt, 100, 99.5, 100.5)}})}},
	{name: "composite component", types: observation, query: "component-code-value-quantity=http://loinc.org|8480-6$lt60",
		filter: []Clause{cl("component-code-value-quantity", Composite, Value{Raw: "http://loinc.org|8480-6$lt60", Components: []Value{
			sysCode("http://loinc.org|8480-6", "http://loinc.org", "8480-6"),
			num("lt60", Lt, 60, 59.5, 60.5)}})}},
	{name: "composite quantity with unit", types: observation, query: "code-value-quantity=8480-6$120||mm%5BHg%5D",
		filter: []Clause{cl("code-value-quantity", Composite, Value{Raw: "8480-6$120||mm[Hg]", Components: []Value{
			code("8480-6"),
			{Raw: "120||mm[Hg]", Prefix: Eq, Num: 120, Lo: 119.5, Hi: 120.5, Code: "mm[Hg]"}}})}},
	{name: "composite token$date", types: observation, query: "code-value-date=http://loinc.org|1234-5$ge2020-01",
		filter: []Clause{cl("code-value-date", Composite, Value{Raw: "http://loinc.org|1234-5$ge2020-01", Components: []Value{
			sysCode("http://loinc.org|1234-5", "http://loinc.org", "1234-5"),
			when("ge2020-01", Ge, "2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z")}})}},
	{name: "composite escaped dollar", types: observation, query: `code-value-string=a\$b$x`,
		filter: []Clause{cl("code-value-string", Composite, Value{Raw: "a$b$x", Components: []Value{
			{Raw: "a$b", Code: "a$b"}, text("x", "x")}})}},
	{name: "composite one part", types: observation, query: "code-value-quantity=http://loinc.org|8480-6", errs: []string{"code-value-quantity"}},
	{name: "composite empty part", types: observation, query: "code-value-quantity=8480-6$", errs: []string{"code-value-quantity"}},
	{name: "composite bad part", types: observation, query: "code-value-quantity=8480-6$high", errs: []string{"code-value-quantity"}},
	{name: "composite multipleOr false", types: observation, query: "code-value-quantity=a$1,b$2", errs: []string{"code-value-quantity"}},
	{name: "composite takes no modifier", types: observation, query: "code-value-quantity:exact=a$1", errs: []string{"code-value-quantity:exact"}},

	// special: Location near
	{name: "near with distance", types: []string{"Location"}, query: "near=42.256|-83.694|11.2|mi_us",
		filter: []Clause{cl("near", Special, Value{Raw: "42.256|-83.694|11.2|mi_us", Components: []Value{
			num("42.256", Eq, 42.256, 42.2555, 42.2565),
			num("-83.694", Eq, -83.694, -83.6945, -83.6935),
			{Raw: "11.2", Prefix: Eq, Num: 11.2, Lo: 11.15, Hi: 11.25, Code: "mi_us"}}})}},
	{name: "near kilometres by default", types: []string{"Location"}, query: "near=42|-83|5",
		filter: []Clause{cl("near", Special, Value{Raw: "42|-83|5", Components: []Value{
			num("42", Eq, 42, 41.5, 42.5), num("-83", Eq, -83, -83.5, -82.5),
			{Raw: "5", Prefix: Eq, Num: 5, Lo: 4.5, Hi: 5.5, Code: "km"}}})}},
	{name: "near without distance", types: []string{"Location"}, query: "near=42|-83",
		filter: []Clause{cl("near", Special, Value{Raw: "42|-83", Components: []Value{
			num("42", Eq, 42, 41.5, 42.5), num("-83", Eq, -83, -83.5, -82.5)}})}},
	{name: "near off the globe", types: []string{"Location"}, query: "near=200|0", errs: []string{"near"}},
	{name: "near one number", types: []string{"Location"}, query: "near=42", errs: []string{"near"}},

	// chaining (search.html#chaining)
	{name: "chain with type", types: []string{"DiagnosticReport"}, query: "subject:Patient.name=peter",
		filter: []Clause{{Param: "subject", Type: Reference, Chain: &Chain{Types: []string{"Patient"},
			Filter: cl("name", String, text("peter", "peter"))}}}},
	// Observation.subject refers to Group, Device, Patient, Location; of
	// those, Patient and Location have a name parameter.
	{name: "chain to every target with the parameter", types: observation, query: "subject.name=peter",
		filter: []Clause{{Param: "subject", Type: Reference, Chain: &Chain{Types: []string{"Patient", "Location"},
			Filter: cl("name", String, text("peter", "peter"))}}}},
	{name: "chain two levels", types: observation, query: "patient.organization.name=Acme",
		filter: []Clause{{Param: "patient", Type: Reference, Chain: &Chain{Types: []string{"Patient"},
			Filter: Clause{Param: "organization", Type: Reference, Chain: &Chain{Types: []string{"Organization"},
				Filter: cl("name", String, text("Acme", "acme"))}}}}}},
	{name: "chain leaf modifier", types: observation, query: "subject:Patient.name:exact=Peter",
		filter: []Clause{{Param: "subject", Type: Reference, Chain: &Chain{Types: []string{"Patient"},
			Filter: clm("name", String, "exact", text("Peter", "peter"))}}}},
	{name: "chain leaf token OR", types: observation, query: "subject:Patient.gender=male,female",
		filter: []Clause{{Param: "subject", Type: Reference, Chain: &Chain{Types: []string{"Patient"},
			Filter: cl("gender", Token, code("male"), code("female"))}}}},
	{name: "chain evaluated on its own per clause", types: patient, query: "general-practitioner.name=Joe&general-practitioner.address-state=MN",
		filter: []Clause{
			{Param: "general-practitioner", Type: Reference, Chain: &Chain{Types: []string{"Practitioner", "Organization"},
				Filter: cl("address-state", String, text("MN", "mn"))}},
			{Param: "general-practitioner", Type: Reference, Chain: &Chain{Types: []string{"Practitioner", "Organization"},
				Filter: cl("name", String, text("Joe", "joe"))}}}},
	// location is a reference of Encounter and a uri of DocumentReference,
	// both of which AuditEvent.entity may point to.
	{name: "chain to a parameter of different types", types: []string{"AuditEvent"}, query: "entity.location=x", errs: []string{"entity.location"}},
	{name: "chain to a parameter of different types, typed", types: []string{"AuditEvent"}, query: "entity:Encounter.location=Location/1",
		filter: []Clause{{Param: "entity", Type: Reference, Chain: &Chain{Types: []string{"Encounter"},
			Filter: cl("location", Reference, ref("Location/1", "Location/1", "Location"))}}}},
	{name: "chain to nothing", types: observation, query: "subject.foo=x", errs: []string{"subject.foo"}},
	{name: "chain through a string", types: patient, query: "name.family=x", errs: []string{"name.family"}},
	{name: "chain through :identifier", types: observation, query: "subject:identifier.name=x", errs: []string{"subject:identifier.name"}},
	{name: "chain to a type that is not a target", types: observation, query: "subject:Medication.code=x", errs: []string{"subject:Medication.code"}},
	{name: "chain ten levels", types: patient, query: "organization.partof.partof.partof.partof.partof.partof.partof.partof.name=x",
		errs: []string{"organization.partof.partof.partof.partof.partof.partof.partof.partof.name"}},
	{name: "chain four levels is served", types: patient, query: "organization.partof.partof.partof.name=x",
		filter: []Clause{{Param: "organization", Type: Reference, Chain: &Chain{Types: []string{"Organization"},
			Filter: Clause{Param: "partof", Type: Reference, Chain: &Chain{Types: []string{"Organization"},
				Filter: Clause{Param: "partof", Type: Reference, Chain: &Chain{Types: []string{"Organization"},
					Filter: Clause{Param: "partof", Type: Reference, Chain: &Chain{Types: []string{"Organization"},
						Filter: cl("name", String, text("x", "x"))}}}}}}}}}},

	// reverse chaining (search.html#has)
	{name: "_has", types: patient, query: "_has:Observation:patient:code=1234-5",
		filter: []Clause{{Has: &Has{Type: "Observation", Param: "patient", Filter: cl("code", Token, code("1234-5"))}}}},
	{name: "_has OR inside", types: patient, query: "_has:Observation:patient:code=a,b",
		filter: []Clause{{Has: &Has{Type: "Observation", Param: "patient", Filter: cl("code", Token, code("a"), code("b"))}}}},
	{name: "_has with modifier", types: patient, query: "_has:Observation:patient:code:text=glucose",
		filter: []Clause{{Has: &Has{Type: "Observation", Param: "patient", Filter: clm("code", Token, "text", Value{Raw: "glucose", Text: "glucose"})}}}},
	{name: "_has nested", types: patient, query: "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/x",
		filter: []Clause{{Has: &Has{Type: "Observation", Param: "patient", Filter: Clause{
			Has: &Has{Type: "AuditEvent", Param: "entity", Filter: cl("agent", Reference, ref("Practitioner/x", "Practitioner/x", "Practitioner"))}}}}}},
	{name: "_has independent", types: patient, query: "_has:Observation:patient:code=a&_has:Observation:patient:date=2020",
		filter: []Clause{
			{Has: &Has{Type: "Observation", Param: "patient", Filter: cl("code", Token, code("a"))}},
			{Has: &Has{Type: "Observation", Param: "patient", Filter: cl("date", Date, when("2020", Eq, "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"))}}}},
	{name: "_has through a token", types: patient, query: "_has:Observation:code:code=x", errs: []string{"_has:Observation:code:code"}},
	{name: "_has unknown type", types: patient, query: "_has:Foo:patient:code=x", errs: []string{"_has:Foo:patient:code"}},
	{name: "_has unknown inner parameter", types: patient, query: "_has:Observation:patient:foo=x", errs: []string{"_has:Observation:patient:foo"}},
	{name: "_has reference not to this type", types: patient, query: "_has:Observation:encounter:code=x", errs: []string{"_has:Observation:encounter:code"}},
	{name: "_has without parameter", types: patient, query: "_has:Observation:patient=x", errs: []string{"_has:Observation:patient"}},

	// result parameters (search.html#return)
	{name: "_sort keys", types: observation, query: "_sort=-date,status",
		want: &Query{Types: observation, Count: 50, Sort: []SortKey{{Param: "date", Type: Date, Descending: true}, {Param: "status", Type: Token}}},
		self: "_sort=-date,status&_count=50"},
	{name: "_sort _id and _lastUpdated", types: observation, query: "_sort=_lastUpdated,-_id",
		want: &Query{Types: observation, Count: 50, Sort: []SortKey{{Param: "_lastUpdated", Type: Date}, {Param: "_id", Type: Token, Descending: true}}}},
	{name: "_sort unknown", types: observation, query: "_sort=foo", errs: []string{"_sort"}},
	{name: "_sort with modifier", types: patient, query: "_sort=name:exact", errs: []string{"_sort"}},
	{name: "_sort composite", types: observation, query: "_sort=code-value-quantity", errs: []string{"_sort"}},
	{name: "_sort:asc is not R4", types: patient, query: "_sort:asc=name", errs: []string{"_sort:asc"}},
	{name: "_count", types: patient, query: "_count=10", want: &Query{Types: patient, Count: 10}, self: "_count=10"},
	{name: "_count=0 is a total only", types: patient, query: "_count=0", want: &Query{Types: patient, Count: 0, Total: TotalAccurate}},
	{name: "_count negative", types: patient, query: "_count=-1", errs: []string{"_count"}},
	{name: "_count exponent", types: patient, query: "_count=1e9", errs: []string{"_count"}},
	{name: "_count words", types: patient, query: "_count=ten", errs: []string{"_count"}},
	{name: "_count clamped", types: patient, query: "_count=1000000000", want: &Query{Types: patient, Count: 1000},
		ignored: []string{"_count"}, self: "_count=1000"},
	{name: "_count beyond int", types: patient, query: "_count=99999999999999999999999", want: &Query{Types: patient, Count: 1000},
		ignored: []string{"_count"}},
	{name: "_count twice", types: patient, query: "_count=1&_count=2", errs: []string{"_count"}},
	{name: "_total", types: patient, query: "_total=accurate", want: &Query{Types: patient, Count: 50, Total: TotalAccurate}},
	{name: "_total unknown", types: patient, query: "_total=exact", errs: []string{"_total"}},
	{name: "_summary=count", types: patient, query: "_summary=count&_count=10",
		want: &Query{Types: patient, Count: 0, Total: TotalAccurate, Summary: "count"}, self: "_count=0&_total=accurate&_summary=count"},
	{name: "_summary=true", types: patient, query: "_summary=true", want: &Query{Types: patient, Count: 50, Summary: "true"}},
	{name: "_summary unknown", types: patient, query: "_summary=yes", errs: []string{"_summary"}},
	{name: "_summary=text with _include", types: []string{"MedicationRequest"}, query: "_summary=text&_include=MedicationRequest:medication",
		errs: []string{"_summary"}},
	{name: "_elements", types: patient, query: "_elements=identifier,active,identifier&_elements=name",
		want: &Query{Types: patient, Count: 50, Elements: []string{"identifier", "active", "name"}}, self: "_count=50&_elements=identifier,active,name"},
	{name: "_elements not a name", types: patient, query: "_elements=name%27--", errs: []string{"_elements"}},
	{name: "_include", types: []string{"MedicationRequest"}, query: "patient=P&_include=MedicationRequest:medication",
		want: &Query{Types: []string{"MedicationRequest"}, Count: 50,
			Filter:  []Clause{cl("patient", Reference, ref("P", "Patient/P", "Patient"))},
			Include: []Include{{Type: "MedicationRequest", Param: "medication"}}},
		self: "patient=P&_count=50&_include=MedicationRequest:medication"},
	{name: "_include target and iterate", types: []string{"MedicationRequest"},
		query: "_include=MedicationRequest:subject:Patient&_include:iterate=MedicationRequest:intended-performer&_include:recurse=Patient:organization",
		want: &Query{Types: []string{"MedicationRequest"}, Count: 50, Include: []Include{
			{Type: "MedicationRequest", Param: "subject", Target: "Patient"},
			{Type: "MedicationRequest", Param: "intended-performer", Iterate: true},
			{Type: "Patient", Param: "organization", Iterate: true}}},
		self: "_count=50&_include=MedicationRequest:subject:Patient&_include:iterate=MedicationRequest:intended-performer&_include:iterate=Patient:organization"},
	{name: "_include wildcards", types: observation, query: "_include=*&_include=Observation:*",
		want: &Query{Types: observation, Count: 50, Include: []Include{{Type: "*", Param: "*"}, {Type: "Observation", Param: "*"}}}},
	{name: "_revinclude", types: observation, query: "_revinclude=Provenance:target&_revinclude:iterate=AuditEvent:entity:Provenance",
		want: &Query{Types: observation, Count: 50, Include: []Include{
			{Type: "Provenance", Param: "target", Reverse: true},
			{Type: "AuditEvent", Param: "entity", Target: "Provenance", Reverse: true, Iterate: true}}}},
	{name: "_include target not allowed", types: observation, query: "_include=Observation:subject:Medication", errs: []string{"_include"}},
	{name: "_include not a reference", types: observation, query: "_include=Observation:code", errs: []string{"_include"}},
	{name: "_include lists several", types: observation, query: "_include=Observation:subject,Observation:patient", errs: []string{"_include"}},
	{name: "_include unknown modifier", types: observation, query: "_include:deep=Observation:subject", errs: []string{"_include:deep"}},
	{name: "_page is the cursor, not in self", types: patient, query: "name=x&_page=opaque-token%2B%2F",
		want: &Query{Types: patient, Count: 50, Cursor: "opaque-token+/", Filter: []Clause{cl("name", String, text("x", "x"))}},
		self: "name=x&_count=50"},
	{name: "_contained=false is the default", types: patient, query: "_contained=false", want: &Query{Types: patient, Count: 50}},
	{name: "_contained=true not supported", types: patient, query: "_contained=true", want: &Query{Types: patient, Count: 50},
		ignored: []string{"_contained"}},
	{name: "_contained=true strict", types: patient, strict: true, query: "_contained=true", errs: []string{"_contained"}},
	{name: "_containedType", types: patient, query: "_containedType=contained", want: &Query{Types: patient, Count: 50},
		ignored: []string{"_containedType"}},
	{name: "_contained unknown", types: patient, query: "_contained=maybe", errs: []string{"_contained"}},

	// common parameters, system level
	// search.html#list: _list names a stored List, resolved by the server.
	{name: "_list", types: patient, query: "_list=42", filter: []Clause{cl("_list", Token, code("42"))}, self: "_list=42&_count=50"},
	{name: "_list strict", types: patient, strict: true, query: "_list=42", filter: []Clause{cl("_list", Token, code("42"))}},
	{name: "_list at system level", types: nil, query: "_list=a.1,b-2", filter: []Clause{cl("_list", Token, code("a.1"), code("b-2"))}},
	{name: "_list empty is ignored", types: patient, query: "_list=", want: &Query{Types: patient, Count: 50}},
	{name: "_list functional list refused", types: patient, query: "_list=$current-allergies", errs: []string{"_list"}},
	{name: "_list not an id", types: patient, query: "_list=List/42", errs: []string{"_list"}},
	{name: "_list modifier", types: patient, query: "_list:not=42", errs: []string{"_list:not"}},
	{name: "_content refused", types: patient, query: "_content=cancer", errs: []string{"_content"}},
	{name: "_query refused", types: patient, query: "_query=current-high-risk", errs: []string{"_query"}},
	{name: "_filter ignored", types: patient, query: "_filter=name+eq+x", ignored: []string{"_filter"}},
	{name: "_format kept for links", types: patient, query: "_format=json&name=x",
		filter: []Clause{cl("name", String, text("x", "x"))}, self: "_format=json&name=x&_count=50"},
	{name: "_type", types: nil, query: "_type=Patient,Observation&_id=1",
		want: &Query{Types: []string{"Patient", "Observation"}, Count: 50, Filter: []Clause{cl("_id", Token, code("1"))}},
		self: "_id=1&_type=Patient,Observation&_count=50"},
	{name: "_type narrows the parameters", types: nil, query: "_type=Patient&name=x",
		want: &Query{Types: patient, Count: 50, Filter: []Clause{cl("name", String, text("x", "x"))}}},
	{name: "system level allows common parameters", types: nil, query: "_lastUpdated=2024",
		want: &Query{Count: 50, Filter: []Clause{cl("_lastUpdated", Date, when("2024", Eq, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"))}}},
	{name: "system level without _type", types: nil, query: "name=x", errs: []string{"name"}},
	{name: "parameter not common to _type", types: nil, query: "_type=Patient,Observation&code=x", errs: []string{"code"}},
	{name: "_type unknown", types: nil, query: "_type=Foo", errs: []string{"_type"}},
	{name: "_type at type level", types: patient, query: "_type=Observation", ignored: []string{"_type"}, self: "_count=50"},
	{name: "unknown resource type", types: []string{"Foo"}, query: "name=x", errs: []string{""}},

	// strict and lenient (search.html#errors)
	{name: "unknown parameter ignored", types: patient, query: "foo=1&name=x", ignored: []string{"foo"},
		filter: []Clause{cl("name", String, text("x", "x"))}, self: "name=x&_count=50"},
	{name: "unknown parameter strict", types: patient, strict: true, query: "foo=1&name=x", errs: []string{"foo"}},
	{name: "unknown parameter repeated, reported once", types: patient, query: "foo=1&foo=2", ignored: []string{"foo"}},
	{name: "token OR", types: observation, query: "status=final,amended",
		filter: []Clause{cl("status", Token, code("final"), code("amended"))}},
	{name: "token AND", types: observation, query: "code=a&code=b",
		filter: []Clause{cl("code", Token, code("a")), cl("code", Token, code("b"))}},
	{name: "names are case-sensitive", types: patient, query: "Name=x", ignored: []string{"Name"}},
	{name: "unknown modifier even lenient", types: patient, query: "name:foo=x&bar=1", errs: []string{"name:foo"}},
	{name: "every problem reported", types: patient, strict: true, query: "birthdate=2020-13&name:foo=x&_count=-1&zzz=1",
		errs: []string{"_count", "birthdate", "name:foo", "zzz"}},
	{name: "canonical self", types: patient, query: "_count=10&gender=male&name=Peter&foo=1&name=paul&_sort=name&_page=xyz",
		ignored: []string{"foo"},
		want: &Query{Types: patient, Count: 10, Cursor: "xyz", Sort: []SortKey{{Param: "name", Type: String}},
			Filter: []Clause{cl("gender", Token, code("male")), cl("name", String, text("Peter", "peter")), cl("name", String, text("paul", "paul"))}},
		self: "gender=male&name=Peter&name=paul&_sort=name&_count=10"},
	{name: "self escapes what must be", types: patient, query: "name=a%26b+c%3Dd",
		filter: []Clause{cl("name", String, text("a&b c=d", "a&b c=d"))}, self: "name=a%26b%20c%3Dd&_count=50"},
	{name: "self with token and chain", types: observation, query: "code=http://loinc.org|1234-5&subject:Patient.name=peter",
		self: "code=http://loinc.org%7C1234-5&subject:Patient.name=peter&_count=50",
		filter: []Clause{cl("code", Token, sysCode("http://loinc.org|1234-5", "http://loinc.org", "1234-5")),
			{Param: "subject", Type: Reference, Chain: &Chain{Types: []string{"Patient"}, Filter: cl("name", String, text("peter", "peter"))}}}},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			reg := tc.reg
			if reg == nil {
				reg = Default()
			}
			params, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, rep, err := reg.Parse(tc.types, params, ParseOptions{Strict: tc.strict})
			if tc.errs != nil {
				checkParseError(t, err, tc.errs)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := tc.want
			if want == nil {
				want = &Query{Types: tc.types, Count: 50, Filter: tc.filter}
			}
			if !reflect.DeepEqual(q, want) {
				t.Errorf("query\n got %s\nwant %s", dump(q), dump(want))
			}
			var ignored []string
			for _, ig := range rep.Ignored {
				ignored = append(ignored, ig.Param)
				if ig.Reason == "" {
					t.Errorf("%s ignored without a reason", ig.Param)
				}
			}
			if !reflect.DeepEqual(ignored, tc.ignored) {
				t.Errorf("ignored %q, want %q", ignored, tc.ignored)
			}
			if tc.self != "" && rep.Self != tc.self {
				t.Errorf("self %q, want %q", rep.Self, tc.self)
			}
			// The self query is a query: read again, it asks the same
			// (less the cursor, which a next link adds).
			again, err := url.ParseQuery(rep.Self)
			if err != nil {
				t.Fatalf("self %q: %v", rep.Self, err)
			}
			q2, rep2, err := reg.Parse(tc.types, again, ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("self %q: %v", rep.Self, err)
			}
			q2.Cursor = q.Cursor
			if !reflect.DeepEqual(q2, q) || rep2.Self != rep.Self {
				t.Errorf("self %q parses to\n%s\nnot\n%s", rep.Self, dump(q2), dump(q))
			}
		})
	}
}

func checkParseError(t *testing.T, err error, exprs []string) {
	t.Helper()
	var oe *outcome.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v, want an *outcome.Error", err)
	}
	if oe.Status != 400 {
		t.Errorf("status %d, want 400", oe.Status)
	}
	var got []string
	for _, is := range oe.Issues {
		if is.Severity != outcome.SevError || is.Code == "" || is.Diagnostics == "" {
			t.Errorf("issue %+v", is)
		}
		got = append(got, strings.Join(is.Expression, ","))
	}
	if !reflect.DeepEqual(got, exprs) {
		t.Errorf("issues at %q, want %q: %v", got, exprs, err)
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestReportIssues(t *testing.T) {
	params, _ := url.ParseQuery("foo=1&_filter=2")
	_, rep, err := Parse(patient, params, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issues := rep.Issues()
	if len(issues) != 2 {
		t.Fatalf("issues %+v", issues)
	}
	for i, want := range []string{"_filter", "foo"} {
		is := issues[i]
		if is.Severity != outcome.Warning || is.Code != outcome.CodeNotSupported || len(is.Expression) != 1 || is.Expression[0] != want {
			t.Errorf("issue %d: %+v", i, is)
		}
	}
}

func TestParseOptions(t *testing.T) {
	params, _ := url.ParseQuery("name=x")
	q, rep, err := Parse(patient, params, ParseOptions{DefaultCount: 20, MaxCount: 100})
	if err != nil || q.Count != 20 || rep.Self != "name=x&_count=20" {
		t.Fatalf("default count: %v %d %q", err, q.Count, rep.Self)
	}
	params, _ = url.ParseQuery("_count=500")
	q, _, err = Parse(patient, params, ParseOptions{MaxCount: 100})
	if err != nil || q.Count != 100 {
		t.Fatalf("max count: %v %d", err, q.Count)
	}
}

func BenchmarkParse(b *testing.B) {
	params, _ := url.ParseQuery("patient=Patient/123&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&date=ge2020-01-01&_sort=-date&_count=10")
	for b.Loop() {
		if _, _, err := Parse(observation, params, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
