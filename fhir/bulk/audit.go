package bulk

import (
	"net/http"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/audit"
)

// Audit: every bulk request made with a token (kick-off, status poll,
// file download, cancel) is reported to Config.Audit once answered, as
// the REST API reports its requests (fhir/rest/audit.go), so that an
// export appears in the audit trail: subtype export, the app and user of
// the token, the job's status URL as the entity, and, for a
// patient-confined token, the patient (so that the patient sees the
// export of their record in their own AuditEvents). A valid token the
// Authorizer refuses outright (403: no scope an export can use) is
// audited too, with its outcome, when the Authorizer can name its client
// (Identifier). Requests without a valid token and --auth=none are not
// audited: there is nobody to record.

// auditKey keys the request's requestAudit in its context.
type auditKey struct{}

// requestAudit is what ServeHTTP learns of a request while it runs: the
// grant, once the Authorizer gave one.
type requestAudit struct {
	grant   Grant
	granted bool
}

// audit reports an answered bulk request.
func (h *Handler) audit(r *http.Request, sw *statusWriter, ep endpoint, ra *requestAudit, start time.Time) {
	if h.cfg.Audit == nil || !ra.granted || ra.grant.ClientID == "" {
		return
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	base := h.base(r)
	e := audit.Event{
		Time:        start,
		Interaction: "$export",
		Operation:   "export",
		Status:      status,
		ClientID:    ra.grant.ClientID,
		FHIRUser:    ra.grant.FHIRUser,
		Patient:     ra.grant.Patient,
		Base:        base,
	}
	switch {
	case ep.what == "kickoff":
		e.JobStep = "kick-off"
		// The job exists once accepted; a refused kick-off has none,
		// and its request (which may name patients) is the query.
		e.Job = sw.Header().Get("Content-Location")
		e.Query = strings.TrimPrefix(r.URL.Path, "/")
		if r.URL.RawQuery != "" {
			e.Query += "?" + r.URL.RawQuery
		}
	case ep.what == "status" && r.Method == http.MethodDelete:
		e.JobStep, e.Job = "cancel", base+statusPath+ep.id
	case ep.what == "status":
		e.JobStep, e.Job = "status", base+statusPath+ep.id
	case ep.what == "file":
		e.JobStep, e.Job = "download "+ep.file, base+statusPath+ep.id
	}
	h.cfg.Audit.Record(e)
}
