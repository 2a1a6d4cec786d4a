package rest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/audit"
)

// Audit: every request made with a valid token is reported to
// Config.Audit once it has been answered (issue 5: who, which app, what,
// when, outcome). Handlers note what the request addressed, searched,
// read and wrote in the request's reqInfo; observe hands it over. The
// Auditor must not block (fhir/audit queues and drops on overflow).
// Requests without a token (401) and --auth=none are not audited: there
// is nobody to record.

// Auditor receives the audit events (fhir/audit.Writer).
type Auditor interface {
	Record(audit.Event)
}

// auditWritable reports whether op may be done on typ by a token. No
// token may create, update or delete an AuditEvent, whatever its scopes
// (system/ included): the audit trail is written by the server alone and
// is append-only (auditevent.html: AuditEvents are not changed once
// written).
func auditWritable(op Op, typ string) bool {
	return typ != "AuditEvent" || op == OpRead || op == OpSearch
}

// touch notes a resource the request read or wrote (nil: a delete or no
// body), from which the audit derives the patients concerned.
func touch(ctx context.Context, body []byte) {
	if body == nil {
		return
	}
	if ri, ok := ctx.Value(infoKey{}).(*reqInfo); ok && ri.access != nil {
		ri.touched = append(ri.touched, body)
	}
}

// noteTarget notes the resource an instance-level request addresses (and
// the patient of a compartment search, Patient/X/…).
func noteTarget(r *http.Request) {
	ri := info(r)
	if ri.access == nil {
		return
	}
	v := mux.Vars(r)
	switch {
	case v["compartment"] != "" && v["id"] != "":
		ri.target = v["compartment"] + "/" + v["id"]
	case v["type"] != "" && v["id"] != "":
		ri.target = v["type"] + "/" + v["id"]
		if v["vid"] != "" {
			ri.target += "/_history/" + v["vid"]
		}
	}
}

// noteQuery notes the parameters of a search (those of a POST _search
// body too). They may hold patient data: they go into the AuditEvent
// only, never into the log.
func noteQuery(r *http.Request, params url.Values) {
	ri := info(r)
	if ri.access == nil {
		return
	}
	ri.query = queryOf(r.URL.Path, params.Encode())
}

// queryOf is the search as a URL relative to the base
// (auditevent.html example-search stores the query URL).
func queryOf(path, raw string) string {
	path = strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/_search")
	if raw == "" {
		return path
	}
	return path + "?" + raw
}

// audit reports an answered request made with a token.
func (a *API) audit(r *http.Request, ri *reqInfo, status int, start time.Time) {
	if a.cfg.Audit == nil || ri.access == nil {
		return
	}
	query := ri.query
	if query == "" && r.URL.RawQuery != "" {
		query = queryOf(r.URL.Path, r.URL.RawQuery)
	}
	acc := ri.access
	a.cfg.Audit.Record(audit.Event{
		Time:        start,
		Interaction: ri.interaction,
		Status:      status,
		ClientID:    acc.ClientID,
		FHIRUser:    acc.FHIRUser,
		Patient:     acc.Patient,
		Target:      ri.target,
		Query:       query,
		Base:        a.base(r),
		Touched:     ri.touched,
	})
}
