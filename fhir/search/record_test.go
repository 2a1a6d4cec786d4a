package search

import (
	"context"
	"slices"
	"testing"
)

// TestRecordPatients: the patients whose record holds a resource, by the
// compartment and the portal rules, following Via through the bodies
// read (PaymentReconciliation → PaymentNotice → Invoice), and no further
// than a reference of a Through type.
func TestRecordPatients(t *testing.T) {
	reg := Default()
	stored := map[string]string{
		"Invoice/i1":       `{"resourceType":"Invoice","id":"i1","status":"issued","subject":{"reference":"Patient/p1"},"recipient":{"reference":"Patient/p2"}}`,
		"PaymentNotice/n1": `{"resourceType":"PaymentNotice","id":"n1","request":{"reference":"Invoice/i1"}}`,
		"Claim/c3":         `{"resourceType":"Claim","id":"c3","patient":{"reference":"Patient/p3"}}`,
	}
	read := func(_ context.Context, typ, id string) ([]byte, bool, error) {
		b, ok := stored[typ+"/"+id]
		return []byte(b), ok, nil
	}
	for _, tc := range []struct {
		typ, body string
		want      []string
	}{
		{"Patient", `{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p9"},"type":"seealso"}]}`, []string{"p1", "p9"}},
		{"Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/d"}]}`, []string{"p1"}},
		{"Task", `{"resourceType":"Task","for":{"reference":"Patient/p1"},"requester":{"reference":"Patient/p2"},"owner":{"reference":"Patient/p3"}}`, []string{"p1", "p2", "p3"}},
		{"PaymentNotice", `{"resourceType":"PaymentNotice","request":{"reference":"Invoice/i1"}}`, []string{"p1", "p2"}},
		{"PaymentNotice", `{"resourceType":"PaymentNotice","request":{"reference":"Invoice/missing"}}`, nil},
		{"PaymentNotice", `{"resourceType":"PaymentNotice","request":{"reference":"Patient/p1"}}`, nil}, // not a Through type
		{"PaymentReconciliation", `{"resourceType":"PaymentReconciliation","detail":[{"request":{"reference":"PaymentNotice/n1"}},{"request":{"reference":"Claim/c3"}}]}`, []string{"p1", "p2", "p3"}},
		{"PaymentReconciliation", `{"resourceType":"PaymentReconciliation","request":{"reference":"Task/t1"}}`, nil},
		{"Practitioner", `{"resourceType":"Practitioner","id":"d"}`, nil},
	} {
		got, err := reg.RecordPatients(t.Context(), tc.typ, []byte(tc.body), "", read)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: patients %v, want %v", tc.typ, tc.body, got, tc.want)
		}
	}
	// The types a record can hold: the compartment's and the portal's.
	types := reg.RecordTypes()
	for _, typ := range []string{"Patient", "Observation", "Task", "PaymentNotice", "PaymentReconciliation", "Invoice"} {
		if !slices.Contains(types, typ) {
			t.Errorf("RecordTypes lacks %s", typ)
		}
	}
	if slices.Contains(types, "Practitioner") || slices.Contains(types, "ValueSet") {
		t.Errorf("RecordTypes %v holds a type no patient's record holds", types)
	}
}
