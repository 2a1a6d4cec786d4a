package resource

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCanonicalEdgeCases checks the canonical JSON made from the body
// (encode.go) against google/fhir's marshal, byte for byte, on values
// google/fhir normalises and on their neighbours that it keeps; the
// official examples and Synthea are compared in TestStampSplice. fromBody
// says which path the body must take: false where google/fhir writes a
// value otherwise than it was sent (encode.go lists how), so only its
// marshal gives the canonical form.
func TestCanonicalEdgeCases(t *testing.T) {
	cases := []struct {
		fromBody bool
		body     string
	}{
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.2Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.23Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.2345Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.123456789Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17-00:00"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17+00:00"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17+14:00"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveInstant":"2015-02-07T13:28:17.2Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":"2015-02-07T13:28:17.2+01:00"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":"2015-02-07T13:28:17.1234567Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"10:00:00.5"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e3}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":-0}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":0.000000000000000000001}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1E-3}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":-0}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a\u00e9\u2028\/<>&\t"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":" padded "}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x  y"},"valueBoolean":true}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1/_history/2"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"http://x.org/fhir/Patient/1"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p1"},"contained":[{"resourceType":"Patient","id":"p1"}]}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:7b0d5e1a-0000-0000-0000-000000000000"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=a|b"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1","display":"d"},"_status":{"extension":[{"url":"http://e","valueString":"v"}]}}`},
		{true, `{"resourceType":"Patient","name":[{"given":["a"],"_given":[{"id":"g1"}]}]}`},
		{false, `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:00:00+10:00"}]}}`},
		{true, `{"resourceType":"Patient","gender":"other","_gender":{"extension":[{"url":"http://x","valueString":"y"}]}}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":1.10}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","extension":[{"url":"a","valueInteger":3}]}]}`},
		{true, `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &amp; b</p></div>"}}`},
		{true, `{"resourceType":"Patient","multipleBirthInteger":2,"active":false}`},
		{true, `{"resourceType":"Patient","id":"abc","meta":{"versionId":"9","lastUpdated":"2000-01-01T00:00:00Z","tag":[{"code":"t"}],"source":"s"}}`},
		{true, `{"resourceType":"Patient","meta":{"extension":[{"url":"http://x","valueString":"y"}]}}`},
		{true, `{"resourceType":"Patient","implicitRules":"http://x","language":"en-US"}`},
		{true, `{"resourceType":"Patient","telecom":[{"system":"phone","value":"1","rank":1}]}`},
		{true, `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"a"}}]}`},
		{true, `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"decimal","initial":[{"valueDecimal":3.0}]}]}]}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"origin":{"value":0},"period":1.0,"dimensions":1,"data":"1 2 E U"}}`},
		{true, `{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"\ud83d\ude00"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"\u007f"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.000Z"}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.000000Z"}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectivePeriod":{"start":"2015-02-07T13:28:17.5-05:00"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":12345678901234567890}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":0.1e1}}`},
		{false, `{"resourceType":"Patient","multipleBirthInteger":-0}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRange":{"low":{"value":1.0}}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"code":{"text":"x"},"valueCodeableConcept":{"coding":[{"system":"http://x","code":"c","userSelected":true}]}}]}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[{"text":"a","authorReference":{"reference":"Practitioner/1"}}]}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"type":"Patient","identifier":{"value":"1"}}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1"},"focus":[{"reference":"Patient/1/_history/x"}]}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"https://x.org/Patient/1/_history/2"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a.b-c"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"patient/1"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1?x=y"}}`},
		{true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"/Patient/1"}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1","_reference":{"extension":[{"url":"http://x","valueString":"y"}]}}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"_reference":{"extension":[{"url":"http://x","valueString":"y"}]}}}`},
		{true, `{"resourceType":"Binary","contentType":"text/plain","data":"aGVs bG8="}`},
		{true, `{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbA=="}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueBase64Binary":"aGVs bG8="}]}`},
		{false, `{"resourceType":"Patient","extension":[{"url":"http://x","valueReference":{"reference":"Patient/2","_reference":{"id":"r"}}}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueReference":{"reference":"Patient/2","extension":[{"url":"http://y","valueString":"z"}]}}]}`},
		{false, `{"resourceType":"Patient","extension":[{"url":"http://x","valueInstant":"2015-02-07T13:28:17.5Z"}]}`},
		{false, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":-0}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":-0.0}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":1E+2}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valuePositiveInt":1}],"_active":{"id":"a"},"active":true}`},
		{true, `{"resourceType":"Patient","_active":{"id":"a"}}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueUri":"urn:oid:1.2.3"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"\ufffd\ufeff"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDate":"2020-01"}]}`},
		{false, `{"resourceType":"Patient","extension":[{"url":"http://x","valueDateTime":"2020-01-01T00:00:00.000-00:00"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueMarkdown":"# x\r\n"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueId":"a.b"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueOid":"urn:oid:1.2"}]}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueCode":"A"}],"gender":"male"}`},
		{false, `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"#","_reference":{"id":"q"}}}]}`},
		{false, `{"resourceType":"Patient","extension":[]}`},
		{false, `{"resourceType":"Patient","name":[{"given":[],"family":"x"}]}`},
		{false, `{"resourceType":"Patient","deceasedBoolean":false,"_deceasedBoolean":{"id":"d"}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"v","_valueString":{"extension":[{"url":"http://x","valueCode":"c"}]}}`},
		{false, `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"id":"b"}}`},
		{false, `{"resourceType":"Patient","maritalStatus":{},"name":[{}]}`},
		{true, `{"resourceType":"Patient","active":true,"_active":{"id":"a"}}`},
		{true, `{"resourceType":"Patient","extension":[{"url":"http://x","valueInstant":"2015-02-07T13:28:17.123456+05:30"}]}`},
		{false, `{"resourceType":"Observation","status":"finAl","code":{"text":"x"}}`},
		{false, `{"resourceType":"Observation","status":"entered_in_error","code":{"text":"x"}}`},
		{false, `{"resourceType":"Observation","status":"final","code":{"text":{}}}`},
		{true, `{"resourceType":"Observation","status":"entered-in-error","code":{"text":"X_Y","coding":[{"code":"LA_6"}]}}`},
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, c := range cases {
		r, err := Parse([]byte(c.body))
		if err != nil {
			t.Errorf("Parse(%s): %v", c.body, err)
			continue
		}
		if got := r.val != nil; got != c.fromBody {
			t.Errorf("%s: from the body %v, want %v", c.body, got, c.fromBody)
		}
		for _, id := range []string{"abc", "n0t-plain id\u2028\"é"} {
			got, err := r.Stamp(id, 3, at)
			if err != nil {
				t.Fatalf("%s: Stamp: %v", c.body, err)
			}
			old, err := parse([]byte(c.body), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := old.marshal(id, 3, at)
			if err != nil {
				t.Fatal(err)
			}
			resourceTypeFirst(want)
			if !bytes.Equal(got, want) {
				t.Errorf("%s stamped %q:\n got %s\nwant %s", c.body, id, got, want)
			}
			// Decoded is what the bytes decode to, when at hand.
			if dec := r.Decoded(); dec != nil {
				d := json.NewDecoder(bytes.NewReader(got))
				d.UseNumber()
				var m map[string]any
				if err := d.Decode(&m); err != nil || !reflect.DeepEqual(m, dec) {
					t.Errorf("%s: Decoded() = %v, want %v (%v)", c.body, dec, m, err)
				}
			} else if c.fromBody {
				t.Errorf("%s: Decoded() = nil after a Stamp", c.body)
			}
		}
	}
}

// TestAppendString checks appendString against encoding/json with
// SetEscapeHTML(false), which google/fhir's marshaller writes with: every
// ASCII character, the characters encoding/json escapes beyond it, and
// invalid UTF-8.
func TestAppendString(t *testing.T) {
	ss := []string{"", "plain", "é😀", "<a href=\"x\">&amp;</a>", "\u2028\u2029", "\ufffd", "a\xffb", "\xe2\x80", "tab\there"}
	for c := 0; c < 0x80; c++ {
		ss = append(ss, string(rune(c)), "x"+string(rune(c))+"é")
	}
	for _, s := range ss {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if got := string(appendString(nil, s)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}
