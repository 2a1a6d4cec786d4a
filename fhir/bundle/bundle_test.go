package bundle

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	ids := map[string]string{"urn:uuid:a": "Patient/1", "http://x.org/fhir/Patient/p": "Patient/2"}
	fn := func(v string, k Kind) (string, error) {
		if v == "urn:uuid:bad" {
			return "", errors.New("unknown")
		}
		if r, ok := ids[v]; ok {
			return r, nil
		}
		return v, nil
	}
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"reference", `{"subject":{"reference":"urn:uuid:a"}}`, `{"subject":{"reference":"Patient/1"}}`, false},
		{"in an extension", `{"extension":[{"url":"u","valueReference":{"reference":"urn:uuid:a"}}]}`, `{"extension":[{"url":"u","valueReference":{"reference":"Patient/1"}}]}`, false},
		{"in a contained resource", `{"contained":[{"resourceType":"Provenance","target":[{"reference":"urn:uuid:a"}]}]}`, `{"contained":[{"resourceType":"Provenance","target":[{"reference":"Patient/1"}]}]}`, false},
		{"a uri element", `{"url":"urn:uuid:a"}`, `{"url":"Patient/1"}`, false},
		{"narrative href and src", `{"div":"<div><a href=\"urn:uuid:a\">x</a><img src='http://x.org/fhir/Patient/p'/></div>"}`,
			`{"div":"<div><a href=\"Patient/1\">x</a><img src='Patient/2'/></div>"}`, false},
		{"nothing to change keeps the bytes", `{ "valueDecimal": 1.50 }`, `{ "valueDecimal": 1.50 }`, false},
		{"decimals keep their digits", `{"valueDecimal":1.50,"subject":{"reference":"urn:uuid:a"}}`, `{"subject":{"reference":"Patient/1"},"valueDecimal":1.50}`, false},
		{"error stops", `{"subject":{"reference":"urn:uuid:bad"}}`, "", true},
		{"not JSON", `{"subject":`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Rewrite([]byte(tc.in), fn)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			// Unchanged, the bytes are kept; rewritten, the keys come in
			// any order and only the values count.
			if string(got) != tc.want && (tc.in == tc.want || !reflect.DeepEqual(decoded(t, got), decoded(t, []byte(tc.want)))) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// RewriteValue's value is what the bytes decode to.
			out, v, err := RewriteValue([]byte(tc.in), fn)
			if err != nil || !reflect.DeepEqual(v, decoded(t, out)) {
				t.Errorf("RewriteValue: value %v, bytes %s (%v)", v, out, err)
			}
		})
	}
}

func decoded(t *testing.T, b []byte) any {
	t.Helper()
	v, err := Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// TestAppendJSON checks that what appendJSON writes decodes to the value
// it was given, for every kind of value and string escaping.
func TestAppendJSON(t *testing.T) {
	in := `{"s":"plain","e":"é😀\u2028\"\\\n\t<&>\u0001","n":[1.50,-0,1E-22,12345678901234567890],"b":[true,false,null],"o":{"":{},"a":[]}}`
	v := decoded(t, []byte(in))
	out, err := appendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) || !reflect.DeepEqual(decoded(t, out), v) {
		t.Errorf("appendJSON: %s does not decode to %v", out, v)
	}
	if _, err := appendJSON(nil, 1.5); err == nil {
		t.Error("appendJSON(float64) did not fail: Decode never returns one")
	}
}

func TestReferences(t *testing.T) {
	var got []string
	err := References([]byte(`{"subject":{"reference":"Patient/1"},"contained":[{"who":{"reference":"#x"}}],"url":"not a reference"}`), func(r string) { got = append(got, r) })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "#x,Patient/1" {
		t.Errorf("got %v", got)
	}
}

func TestAbsolute(t *testing.T) {
	for _, tc := range []struct {
		fullURL, ref, want string
		ok                 bool
	}{
		{"http://x.org/fhir/Observation/1", "Patient/2", "http://x.org/fhir/Patient/2", true},
		{"https://x.org/Observation/1/_history/3", "Patient/2/_history/1", "https://x.org/Patient/2/_history/1", true},
		{"urn:uuid:a", "Patient/2", "", false},
		{"http://x.org/fhir/Observation/1", "#c", "", false},
		{"http://x.org/fhir/Observation/1", "http://y.org/Patient/2", "", false},
		{"http://x.org/fhir/observation/1", "Patient/2", "", false},
	} {
		got, ok := Absolute(tc.fullURL, tc.ref)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Absolute(%q, %q) = %q, %v; want %q, %v", tc.fullURL, tc.ref, got, ok, tc.want, tc.ok)
		}
	}
}
