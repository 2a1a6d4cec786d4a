package mongo

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestEscapeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"resourceType", "resourceType"},
		{"a.b", "a%2Eb"},
		{"$where", "%24where"},
		{"a$b", "a$b"}, // only a leading $ is an operator
		{"100%", "100%25"},
		{"%2E", "%252E"}, // escaping is reversible: % itself is escaped
		{"x\x00y", "x%00y"},
		{"http://x.org/ext", "http://x%2Eorg/ext"},
	} {
		if got := escapeKey(tc.in); got != tc.want {
			t.Errorf("escapeKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNativeDoc: JSON numbers keep their digits (Decimal128, FHIR
// decimals carry their precision: 1.50 is not 1.5), integers are integers,
// keys are escaped, and what is not one JSON object gets no native copy.
func TestNativeDoc(t *testing.T) {
	d, ok := nativeDoc([]byte(`{"v":1.50,"n":7,"big":12345678901,"e":1e3,"a.b":{"$c":[true,null,"s"]}}`), true)
	if !ok {
		t.Fatal("not converted")
	}
	m := map[string]any{}
	for _, e := range d {
		m[e.Key] = e.Value
	}
	if dec, ok := m["v"].(bson.Decimal128); !ok || dec.String() != "1.50" {
		t.Errorf("v = %#v, want Decimal128 1.50", m["v"])
	}
	if m["n"] != int32(7) || m["big"] != int64(12345678901) {
		t.Errorf("n = %#v, big = %#v", m["n"], m["big"])
	}
	if dec, ok := m["e"].(bson.Decimal128); !ok || dec.String() != "1E+3" {
		t.Errorf("e = %#v, want Decimal128 1E+3", m["e"])
	}
	inner, ok := m["a%2Eb"].(bson.D)
	if !ok || len(inner) != 1 || inner[0].Key != "%24c" {
		t.Errorf("a.b = %#v, want escaped keys", m["a%2Eb"])
	}
	if d, _ := nativeDoc([]byte(`{"v":1.50}`), false); d[0].Value != 1.5 {
		t.Errorf("without Decimal128: %#v, want the double 1.5", d[0].Value)
	}
	for _, b := range []string{``, ` `, `[1]`, `{"a":1} {"b":2}`, `{"a":`, "{\"a\":\"\xff\"}", `"s"`} {
		if _, ok := nativeDoc([]byte(b), true); ok {
			t.Errorf("nativeDoc(%q) converted", b)
		}
	}
}
