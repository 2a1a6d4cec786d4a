package rest_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/rest"
)

// portalRecords are the resources of one patient the portal rules
// (fhir/search record.go) reach, created by the loader.
type portalRecords struct {
	taskFor, taskRequester, taskOwner string // Task for / requester / owner = the patient
	invoice, notice, reconciliation   string
}

// addPortalRecords creates, with the admin token, p's Tasks, an Invoice
// for p, a PaymentNotice for that Invoice and a PaymentReconciliation
// whose detail names it.
func addPortalRecords(t *testing.T, admin *authClient, p person, org string) portalRecords {
	t.Helper()
	create := func(typ, body string) string {
		t.Helper()
		r := admin.Do("POST", "/"+typ, []byte(body))
		if r.Status != http.StatusCreated {
			t.Fatalf("creating %s: %d %s", typ, r.Status, r.Body)
		}
		return idOf(t, r.Body)
	}
	pt := `{"reference":"Patient/` + p.id + `"}`
	var rec portalRecords
	rec.taskFor = create("Task", `{"resourceType":"Task","status":"requested","intent":"order","for":`+pt+`}`)
	rec.taskRequester = create("Task", `{"resourceType":"Task","status":"requested","intent":"order","requester":`+pt+`}`)
	rec.taskOwner = create("Task", `{"resourceType":"Task","status":"ready","intent":"order","owner":`+pt+`}`)
	rec.invoice = create("Invoice", `{"resourceType":"Invoice","status":"issued","subject":`+pt+`}`)
	rec.reconciliation = create("PaymentReconciliation", reconciliation("Invoice/"+rec.invoice))
	rec.notice = create("PaymentNotice", paymentNotice(rec.invoice, rec.reconciliation, org))
	return rec
}

// reconciliation is a PaymentReconciliation whose one detail's request
// is ref.
func reconciliation(ref string) string {
	return `{"resourceType":"PaymentReconciliation","status":"active","created":"2026-01-02",` +
		`"paymentDate":"2026-01-02","paymentAmount":{"value":10,"currency":"USD"},"detail":[{"type":{"text":"payment"},"request":{"reference":"` + ref + `"}}]}`
}

func paymentNotice(invoice, reconciliation, org string) string {
	req := ""
	if invoice != "" {
		req = `"request":{"reference":"` + invoice + `"},`
		if !strings.Contains(invoice, "/") {
			req = `"request":{"reference":"Invoice/` + invoice + `"},`
		}
	}
	return `{"resourceType":"PaymentNotice","status":"active","created":"2026-01-02",` + req +
		`"payment":{"reference":"PaymentReconciliation/` + reconciliation + `"},` +
		`"recipient":{"reference":"Organization/` + org + `"},"amount":{"value":10,"currency":"USD"}}`
}

func task(fields string) []byte {
	return []byte(`{"resourceType":"Task","status":"requested","intent":"order",` + fields + `}`)
}

// TestPortalRules: the explicit rules for Task and PaymentNotice (issue 5:
// "Task by for/requester", "PaymentNotice … through the Invoice they
// point to") under patient A's token: A reaches its own, never B's, by
// read, search, chain, _has, _revinclude and write, and may file a Task
// or a PaymentNotice only for itself. PaymentReconciliation is read
// through its detail's Invoice or PaymentNotice, never written.
func TestPortalRules(t *testing.T) {
	f := newFixture(t)
	a, b := f.a, f.b
	admin := f.client(t, "admin")
	org := a.ids["Organization"][0]
	ra := addPortalRecords(t, admin, a, org)
	rb := addPortalRecords(t, admin, b, org)
	bIDs := append(slices.Clone(f.bOnly), b.id, rb.taskFor, rb.taskRequester, rb.taskOwner, rb.invoice, rb.notice, rb.reconciliation)
	// A reconciliation whose detail names A's PaymentNotice, not the Invoice.
	rr := admin.Do("POST", "/PaymentReconciliation", []byte(reconciliation("PaymentNotice/"+ra.notice)))
	if rr.Status != http.StatusCreated {
		t.Fatalf("creating a PaymentReconciliation: %d %s", rr.Status, rr.Body)
	}
	viaNotice := idOf(t, rr.Body)

	f.toks.add("A", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id, Patient: a.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}})
	// A Patient user's user/ scopes are confined like patient/ ones; this
	// token has no scope on Invoice: the PaymentNotice rule goes through
	// the Invoice without reading it.
	f.toks.add("A-notices", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + a.id,
		Rules: []rest.Rule{{Context: "user", Type: "PaymentNotice", Ops: "crs"}}})
	f.toks.add("B", &rest.Access{ClientID: "portal", FHIRUser: "Patient/" + b.id, Patient: b.id,
		Rules: []rest.Rule{{Context: "patient", Type: "*", Ops: "cruds"}}})

	aTasks := []string{"Task/" + ra.taskFor, "Task/" + ra.taskRequester, "Task/" + ra.taskOwner}
	pt := func(id string) string { return `{"reference":"Patient/` + id + `"}` }
	cases := []struct {
		name, token, method, path string
		body                      []byte
		want                      int
		exactly                   []string // a 200 Bundle holds exactly these entries (any order)
	}{
		{"read own Task by for", "A", "GET", "/Task/" + ra.taskFor, nil, 200, nil},
		{"read own Task by requester", "A", "GET", "/Task/" + ra.taskRequester, nil, 200, nil},
		{"read own Task by owner", "A", "GET", "/Task/" + ra.taskOwner, nil, 200, nil},
		{"read B's Task by for", "A", "GET", "/Task/" + rb.taskFor, nil, 404, nil},
		{"read B's Task by requester", "A", "GET", "/Task/" + rb.taskRequester, nil, 404, nil},
		{"vread B's Task", "A", "GET", "/Task/" + rb.taskOwner + "/_history/1", nil, 404, nil},
		{"history of B's Task", "A", "GET", "/Task/" + rb.taskRequester + "/_history", nil, 404, nil},
		{"search Task", "A", "GET", "/Task", nil, 200, aTasks},
		{"search Task by B's requester", "A", "GET", "/Task?requester=Patient/" + b.id, nil, 200, []string{}},
		{"search B's Task by _id", "A", "GET", "/Task?_id=" + rb.taskOwner + "," + rb.taskFor, nil, 200, []string{}},
		{"B's compartment Task", "A", "GET", "/Patient/" + b.id + "/Task", nil, 200, []string{}},
		{"chain to B's Task", "A", "GET", "/Task?part-of._id=" + rb.taskFor, nil, 200, []string{}},
		{"_has B's Task", "A", "GET", "/Patient?_has:Task:requester:_id=" + rb.taskRequester, nil, 200, []string{}},
		{"_revinclude Task", "A", "GET", "/Patient?_revinclude=Task:requester&_revinclude=Task:owner", nil, 200,
			[]string{"Patient/" + a.id, "Task/" + ra.taskRequester, "Task/" + ra.taskOwner}},
		// Before A files anything below.
		{"system search _type", "A", "GET", "/?_type=PaymentNotice,Task&_count=100", nil, 200, append([]string{"PaymentNotice/" + ra.notice}, aTasks...)},
		{"refill request for self", "A", "POST", "/Task", task(`"for":` + pt(a.id) + `,"requester":` + pt(a.id)), 201, nil},
		{"request as self, no for", "A", "POST", "/Task", task(`"requester":` + pt(a.id)), 201, nil},
		{"Task for B", "A", "POST", "/Task", task(`"for":` + pt(b.id)), 403, nil},
		{"Task for B requested by self", "A", "POST", "/Task", task(`"for":` + pt(b.id) + `,"requester":` + pt(a.id)), 403, nil},
		{"Task owned by B requested by self", "A", "POST", "/Task", task(`"owner":` + pt(b.id) + `,"requester":` + pt(a.id)), 403, nil},
		{"Task naming nobody", "A", "POST", "/Task", task(`"description":"x"`), 403, nil},
		{"update B's Task", "A", "PUT", "/Task/" + rb.taskFor, task(`"id":"` + rb.taskFor + `","for":` + pt(a.id)), 403, nil},
		{"move own Task to B", "A", "PUT", "/Task/" + ra.taskFor, task(`"id":"` + ra.taskFor + `","for":` + pt(b.id)), 403, nil},
		{"delete B's Task", "A", "DELETE", "/Task/" + rb.taskRequester, nil, 403, nil},

		{"read own PaymentNotice", "A", "GET", "/PaymentNotice/" + ra.notice, nil, 200, nil},
		{"read B's PaymentNotice", "A", "GET", "/PaymentNotice/" + rb.notice, nil, 404, nil},
		{"search PaymentNotice", "A", "GET", "/PaymentNotice", nil, 200, []string{"PaymentNotice/" + ra.notice}},
		{"search PaymentNotice without Invoice scope", "A-notices", "GET", "/PaymentNotice", nil, 200, []string{"PaymentNotice/" + ra.notice}},
		{"read own PaymentNotice without Invoice scope", "A-notices", "GET", "/PaymentNotice/" + ra.notice, nil, 200, nil},
		{"read B's Invoice without Invoice scope", "A-notices", "GET", "/Invoice/" + rb.invoice, nil, 403, nil},
		{"search PaymentNotice for B's Invoice", "A", "GET", "/PaymentNotice?request=Invoice/" + rb.invoice, nil, 200, []string{}},
		{"chain PaymentNotice to B", "A", "GET", "/PaymentNotice?request:Invoice.subject=Patient/" + b.id, nil, 200, []string{}},
		{"_has B's PaymentNotice", "A", "GET", "/Invoice?_has:PaymentNotice:request:_id=" + rb.notice, nil, 200, []string{}},
		{"_revinclude PaymentNotice", "A", "GET", "/Invoice?_revinclude=PaymentNotice:request", nil, 200,
			[]string{"Invoice/" + ra.invoice, "PaymentNotice/" + ra.notice}},
		{"pay own Invoice", "A", "POST", "/PaymentNotice", []byte(paymentNotice(ra.invoice, ra.reconciliation, org)), 201, nil},
		{"pay own Invoice without Invoice scope", "A-notices", "POST", "/PaymentNotice", []byte(paymentNotice(ra.invoice, ra.reconciliation, org)), 201, nil},
		{"pay B's Invoice", "A", "POST", "/PaymentNotice", []byte(paymentNotice(rb.invoice, ra.reconciliation, org)), 403, nil},
		{"pay a missing Invoice", "A", "POST", "/PaymentNotice", []byte(paymentNotice("no-such-invoice", ra.reconciliation, org)), 403, nil},
		{"notice for another type", "A", "POST", "/PaymentNotice", []byte(paymentNotice("Patient/"+a.id, ra.reconciliation, org)), 403, nil},
		{"notice with no request", "A", "POST", "/PaymentNotice", []byte(paymentNotice("", ra.reconciliation, org)), 403, nil},
		{"update B's PaymentNotice", "A", "PUT", "/PaymentNotice/" + rb.notice, []byte(paymentNotice(ra.invoice, ra.reconciliation, org)[:1] +
			`"id":"` + rb.notice + `",` + paymentNotice(ra.invoice, ra.reconciliation, org)[1:]), 403, nil},
		{"point own PaymentNotice at B's Invoice", "A", "PUT", "/PaymentNotice/" + ra.notice, []byte(paymentNotice(rb.invoice, ra.reconciliation, org)[:1] +
			`"id":"` + ra.notice + `",` + paymentNotice(rb.invoice, ra.reconciliation, org)[1:]), 403, nil},
		{"delete B's PaymentNotice", "A", "DELETE", "/PaymentNotice/" + rb.notice, nil, 403, nil},
		{"transaction paying B's Invoice", "A", "POST", "/", txBundle("transaction",
			txEntry("POST", "PaymentNotice", []byte(paymentNotice(rb.invoice, ra.reconciliation, org))),
			txEntry("POST", "Task", task(`"requester":`+pt(a.id)))), 403, nil},
		{"transaction filing a Task for B", "A", "POST", "/", txBundle("transaction",
			txEntry("POST", "Task", task(`"for":`+pt(b.id)))), 403, nil},
		{"batch reading B's PaymentNotice and Task", "A", "POST", "/", txBundle("batch",
			txEntry("GET", "PaymentNotice/"+rb.notice, nil), txEntry("GET", "Task?requester=Patient/"+b.id, nil)), 200, nil},

		// PaymentReconciliation through detail-request (Kiln's own
		// SearchParameter on detail.request): to A's Invoice, or to A's
		// PaymentNotice (a chain through its Invoice); read-only.
		{"read own PaymentReconciliation", "A", "GET", "/PaymentReconciliation/" + ra.reconciliation, nil, 200, nil},
		{"read own PaymentReconciliation via the notice", "A", "GET", "/PaymentReconciliation/" + viaNotice, nil, 200, nil},
		{"read B's PaymentReconciliation", "A", "GET", "/PaymentReconciliation/" + rb.reconciliation, nil, 404, nil},
		{"search PaymentReconciliation", "A", "GET", "/PaymentReconciliation", nil, 200,
			[]string{"PaymentReconciliation/" + ra.reconciliation, "PaymentReconciliation/" + viaNotice}},
		{"search PaymentReconciliation by B's Invoice", "A", "GET", "/PaymentReconciliation?detail-request=Invoice/" + rb.invoice, nil, 200, []string{}},
		{"chain PaymentReconciliation to B", "A", "GET", "/PaymentReconciliation?detail-request:Invoice.subject=Patient/" + b.id, nil, 200, []string{}},
		{"_revinclude PaymentReconciliation", "A", "GET", "/Invoice?_revinclude=PaymentReconciliation:detail-request", nil, 200,
			[]string{"Invoice/" + ra.invoice, "PaymentReconciliation/" + ra.reconciliation}},
		{"create PaymentReconciliation for own Invoice", "A", "POST", "/PaymentReconciliation", []byte(reconciliation("Invoice/" + ra.invoice)), 403, nil},
		{"update own PaymentReconciliation", "A", "PUT", "/PaymentReconciliation/" + ra.reconciliation,
			[]byte(reconciliation("Invoice/" + ra.invoice)[:1] + `"id":"` + ra.reconciliation + `",` + reconciliation("Invoice/" + ra.invoice)[1:]), 403, nil},
		{"delete own PaymentReconciliation", "A", "DELETE", "/PaymentReconciliation/" + ra.reconciliation, nil, 403, nil},

		// The same rules seen from B: B's own, none of A's.
		{"B searches Task", "B", "GET", "/Task", nil, 200, []string{"Task/" + rb.taskFor, "Task/" + rb.taskRequester, "Task/" + rb.taskOwner}},
		{"B searches PaymentNotice", "B", "GET", "/PaymentNotice", nil, 200, []string{"PaymentNotice/" + rb.notice}},
		{"B reads A's PaymentNotice", "B", "GET", "/PaymentNotice/" + ra.notice, nil, 404, nil},
		{"B searches PaymentReconciliation", "B", "GET", "/PaymentReconciliation", nil, 200, []string{"PaymentReconciliation/" + rb.reconciliation}},
		{"B reads A's PaymentReconciliation via the notice", "B", "GET", "/PaymentReconciliation/" + viaNotice, nil, 404, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.client(t, c.token).Do(c.method, c.path, c.body)
			if r.Status != c.want {
				t.Fatalf("%s %s: status %d, want %d\n%.400s", c.method, c.path, r.Status, c.want, r.Body)
			}
			if c.token == "A" || c.token == "A-notices" {
				if id := leaked(t, r.Body, bIDs); id != "" {
					t.Fatalf("%s %s: the response names %s of B's record:\n%.300s", c.method, c.path, id, r.Body)
				}
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

	// B's portal records, and A's reconciliation, are unchanged: every
	// one at version 1.
	for _, ref := range []string{"Task/" + rb.taskFor, "Task/" + rb.taskRequester, "Task/" + rb.taskOwner,
		"PaymentNotice/" + rb.notice, "Invoice/" + rb.invoice, "PaymentReconciliation/" + ra.reconciliation} {
		r := admin.Do("GET", "/"+ref, nil)
		if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`"versionId":"1"`)) {
			t.Errorf("B's %s changed: %d %.200s", ref, r.Status, r.Body)
		}
	}
}
