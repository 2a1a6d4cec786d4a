package rest_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/audit"
	"github.com/kiln-fhir/kiln/fhir/rest"
)

// TestPortalRecordInEverything: Patient/$everything returns the
// patient's record as the patient's own searches reach it (issue 5: one
// set of portal rules, fhir/search record.go): the Tasks by for,
// requester and owner, the PaymentNotice of the patient's Invoice, the
// PaymentReconciliations naming the Invoice or the notice; never B's.
// Whoever asks (the patient, or a system client) gets the same record.
func TestPortalRecordInEverything(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	admin := f.client(t, "admin")
	org := a.ids["Organization"][0]
	ra := addPortalRecords(t, admin, a, org)
	rb := addPortalRecords(t, admin, b, org)
	rr := admin.Do("POST", "/PaymentReconciliation", []byte(reconciliation("PaymentNotice/"+ra.notice)))
	if rr.Status != http.StatusCreated {
		t.Fatalf("creating a PaymentReconciliation: %d %s", rr.Status, rr.Body)
	}
	viaNotice := idOf(t, rr.Body)
	f.toks.add("A", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "rs"}}})
	bIDs := append(slices.Clone(f.bOnly), b.id, rb.taskFor, rb.taskRequester, rb.taskOwner, rb.invoice, rb.notice, rb.reconciliation)

	portalTypes := "/$everything?_count=1000&_type=Task,Invoice,PaymentNotice,PaymentReconciliation"
	want := []string{"Invoice/" + ra.invoice, "PaymentNotice/" + ra.notice,
		"PaymentReconciliation/" + ra.reconciliation, "PaymentReconciliation/" + viaNotice,
		"Task/" + ra.taskFor, "Task/" + ra.taskOwner, "Task/" + ra.taskRequester}
	slices.Sort(want)
	for _, token := range []string{"A", "admin"} {
		t.Run(token, func(t *testing.T) {
			r := f.client(t, token).Do("GET", "/Patient/"+a.id+portalTypes, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("$everything: %d %.300s", r.Status, r.Body)
			}
			if id := leaked(t, r.Body, bIDs); id != "" {
				t.Fatalf("$everything of A names %s of B's record", id)
			}
			got := bundleIDs(t, r)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("$everything of A: %v, want %v", got, want)
			}
			// The same resources as A's own searches of those types.
			var searched []string
			for _, typ := range []string{"Task", "Invoice", "PaymentNotice", "PaymentReconciliation"} {
				sr := f.client(t, "A").Do("GET", "/"+typ+"?_count=1000", nil)
				if sr.Status != http.StatusOK {
					t.Fatalf("A searches %s: %d", typ, sr.Status)
				}
				searched = append(searched, bundleIDs(t, sr)...)
			}
			slices.Sort(searched)
			if !slices.Equal(got, searched) {
				t.Errorf("$everything %v, A's searches %v", got, searched)
			}
		})
	}
}

// TestAuditPortalAttribution: an AuditEvent about a resource of a
// patient's record counts that patient by the portal rules too (issue
// 5, "who looked at my chart"): a system client reading the Task A
// requested, the PaymentNotice of A's Invoice and the reconciliation
// naming it is listed in A's AuditEvents, and not in B's.
func TestAuditPortalAttribution(t *testing.T) {
	f, db := newAuditFixture(t, audit.Config{Interval: 10 * time.Millisecond}, nil)
	admin, pa, pb := f.client(t, "admin"), f.client(t, "pa"), f.client(t, "pb")
	writes := []struct{ path, body string }{
		{"/Patient/A", `{"resourceType":"Patient","id":"A"}`},
		{"/Patient/B", `{"resourceType":"Patient","id":"B"}`},
		{"/Task/req-a", `{"resourceType":"Task","id":"req-a","status":"requested","intent":"order","requester":{"reference":"Patient/A"}}`},
		{"/Invoice/inv-a", `{"resourceType":"Invoice","id":"inv-a","status":"issued","subject":{"reference":"Patient/A"}}`},
		{"/PaymentNotice/pn-a", `{"resourceType":"PaymentNotice","id":"pn-a","status":"active","created":"2026-01-02","request":{"reference":"Invoice/inv-a"},` +
			`"payment":{"reference":"PaymentReconciliation/rec-a"},"recipient":{"display":"Clinic"},"amount":{"value":10,"currency":"USD"}}`},
		{"/PaymentReconciliation/rec-a", `{"resourceType":"PaymentReconciliation","id":"rec-a","status":"active","created":"2026-01-02",` +
			`"paymentDate":"2026-01-02","paymentAmount":{"value":10,"currency":"USD"},"detail":[{"type":{"text":"payment"},"request":{"reference":"PaymentNotice/pn-a"}}]}`},
	}
	for _, w := range writes {
		if r := admin.Do("PUT", w.path, []byte(w.body)); r.Status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", w.path, r.Status, r.Body)
		}
	}
	reads := []string{"Task/req-a", "PaymentNotice/pn-a", "PaymentReconciliation/rec-a"}
	for _, ref := range reads {
		if r := admin.Do("GET", "/"+ref, nil); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d", ref, r.Status)
		}
	}
	waitStored(t, db, len(writes)+len(reads))
	seen := func(c *authClient) map[string]bool {
		out := map[string]bool{}
		for _, e := range auditEvents(t, c.Do("GET", "/AuditEvent?_count=200", nil)) {
			if e.client() == "loader" && e.Action == "R" {
				out[e.target()] = true
			}
		}
		return out
	}
	inA, inB := seen(pa), seen(pb)
	for _, ref := range reads {
		if !inA[ref] {
			t.Errorf("A's AuditEvents lack the read of %s (A's record by the portal rules)", ref)
		}
		if inB[ref] {
			t.Errorf("B's AuditEvents hold the read of %s", ref)
		}
	}
}
