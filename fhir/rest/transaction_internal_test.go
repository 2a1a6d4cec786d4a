package rest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// TestTxResponseJSON: the batch-response and transaction-response Bundles
// written by hand are byte for byte what encoding/json wrote
// (http.html#transaction-response), escapes included.
func TestTxResponseJSON(t *testing.T) {
	odd := "a\"b\\c\n\r\t\b\f\x01\x1f<&>é\u2028\u2029\xff😀"
	res := json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"O'Brien <x>"}]}`)
	oo := json.RawMessage(outcome.Resource([]outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeInvalid, Diagnostics: odd, Expression: []string{"Bundle.entry[3]"}}}))
	cases := map[string]txResponseBundle{
		"no entries": {ResourceType: "Bundle", ID: "x", Meta: bundleMeta{LastUpdated: "2020-01-01T00:00:00Z"}, Type: "batch-response"},
		"entries": {
			ResourceType: "Bundle", ID: odd, Meta: bundleMeta{LastUpdated: odd}, Type: "transaction-response",
			Entry: []txReply{
				{FullURL: "http://x/Patient/p1", Resource: res, Response: txResponse{Status: "201 Created", Location: "Patient/p1/_history/1", Etag: `W/"1"`, LastModified: "2020-01-01T00:00:00Z"}},
				{Response: txResponse{Status: "204 No Content"}},
				{FullURL: odd, Response: txResponse{Status: "200 OK", Outcome: oo}},
				{Response: txResponse{Status: "400 Bad Request", Outcome: oo}},
				{Resource: res, Response: txResponse{Status: odd, Location: odd, Etag: odd, LastModified: odd}},
				{},
			},
		},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkEncoder(t, b, b.appendJSON) })
	}
	// A field added to these types must be added to the encoder too.
	checkFieldCounts(t, map[reflect.Type]int{
		reflect.TypeOf(txResponseBundle{}): 5, reflect.TypeOf(txReply{}): 3, reflect.TypeOf(txResponse{}): 5,
	})
}

// TestCompacted: a GET entry's body, indented under _pretty, is embedded
// compact, as encoding/json embedded a json.RawMessage.
func TestCompacted(t *testing.T) {
	for in, want := range map[string]string{
		"{\n  \"a\": [1, 2],\n  \"b\": \"x y\"\n}": `{"a":[1,2],"b":"x y"}`,
		`{"a":"<&>"}`: `{"a":"<&>"}`,
	} {
		if got := compacted([]byte(in)); string(got) != want {
			t.Errorf("compacted(%q) = %s, want %s", in, got, want)
		}
	}
}
