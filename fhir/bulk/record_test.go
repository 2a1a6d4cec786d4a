package bulk

import (
	"fmt"
	"slices"
	"testing"
)

// seedPortal writes, for p1 and p2, the portal records the R4 Patient
// compartment does not reach (fhir/search record.go): a Task the patient
// requested, one the patient owns, an Invoice, the PaymentNotice paying
// it, and a PaymentReconciliation naming that notice (p1) or the Invoice
// (p2).
func seedPortal(s *server) {
	for _, p := range []string{"p1", "p2"} {
		s.put("Patient", p, patientJSON(p, "female"))
		s.put("Task", "req-"+p, fmt.Sprintf(`{"resourceType":"Task","id":"req-%s","status":"requested","intent":"order","requester":{"reference":"Patient/%s"}}`, p, p))
		s.put("Task", "own-"+p, fmt.Sprintf(`{"resourceType":"Task","id":"own-%s","status":"ready","intent":"order","owner":{"reference":"Patient/%s"}}`, p, p))
		s.put("Invoice", "inv-"+p, fmt.Sprintf(`{"resourceType":"Invoice","id":"inv-%s","status":"issued","subject":{"reference":"Patient/%s"}}`, p, p))
		s.put("PaymentNotice", "pn-"+p, fmt.Sprintf(`{"resourceType":"PaymentNotice","id":"pn-%s","status":"active","created":"2026-01-02",`+
			`"request":{"reference":"Invoice/inv-%s"},"payment":{"reference":"PaymentReconciliation/x"},"recipient":{"display":"Clinic"},"amount":{"value":10,"currency":"USD"}}`, p, p))
		detail := "PaymentNotice/pn-" + p
		if p == "p2" {
			detail = "Invoice/inv-" + p
		}
		s.put("PaymentReconciliation", "rec-"+p, fmt.Sprintf(`{"resourceType":"PaymentReconciliation","id":"rec-%s","status":"active","created":"2026-01-02",`+
			`"paymentDate":"2026-01-02","paymentAmount":{"value":10,"currency":"USD"},"detail":[{"type":{"text":"payment"},"request":{"reference":%q}}]}`, p, detail))
	}
}

// TestPatientTokenExportsRecord: a token confined to one patient exports
// that patient's record as the REST API confines the token (issue 5: one
// set of portal rules for read, search, $everything and export): the
// Task it requested or owns, the PaymentNotice of its Invoice, the
// PaymentReconciliation naming either; never the other patient's. A
// Patient-level export by an unconfined client stays the R4 Patient
// compartment (export.html, E-PA-03).
func TestPatientTokenExportsRecord(t *testing.T) {
	s := newServer(t, Config{Authorizer: tokens{
		"sys": {Client: "analytics"},
		"p1":  {Client: "portal p1", Patient: "p1"},
		"p2":  {Client: "portal p2", Patient: "p2"},
	}})
	seedPortal(s)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	record := func(p string) []string {
		return []string{"Invoice/inv-" + p, "Patient/" + p, "PaymentNotice/pn-" + p, "PaymentReconciliation/rec-" + p, "Task/own-" + p, "Task/req-" + p}
	}
	for _, tc := range []struct {
		token, path string
		want        []string
	}{
		{"p1", "/$export", record("p1")},
		{"p1", "/Patient/$export", record("p1")},
		{"p2", "/Patient/$export", record("p2")},
		{"p1", "/Patient/$export?_type=PaymentReconciliation,Task", []string{"PaymentReconciliation/rec-p1", "Task/own-p1", "Task/req-p1"}},
		// The compartment: Invoices by subject, no Task by requester or
		// owner, no PaymentNotice, no PaymentReconciliation.
		{"sys", "/Patient/$export", []string{"Invoice/inv-p1", "Invoice/inv-p2", "Patient/p1", "Patient/p2"}},
	} {
		t.Run(tc.token+" "+tc.path, func(t *testing.T) {
			m := s.poll(s.kickoff(tc.path, bearer(tc.token)...), bearer(tc.token)...)
			got := ids(s.download(m.Output, bearer(tc.token)...))
			if !slices.Equal(got, tc.want) {
				t.Errorf("exported %v, want %v", got, tc.want)
			}
		})
	}
}
