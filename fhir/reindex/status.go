package reindex

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/kiln-fhir/kiln/store"
)

// Status is the answer of GET [base]/SearchParameter/[id]/$reindex-status:
// a Parameters resource (parameters.html) saying whether the parameter is
// searchable and how far its reindex job is.
//
//	state       code     indexing | active | failed | invalid | inactive
//	code        code     the parameter's code
//	reason      string   why it is failed, invalid or inactive
//	base        code     each resource type it applies to (repeats)
//	job         string   the reindex job of this version
//	jobState    code     queued | running | done | failed
//	pass        code     full | catch-up | done
//	total       integer  resources the job reads in its full pass
//	read, updated, skipped, failed   integer  the job's counts so far
//	percent     decimal  read of total, at most 100
//
// A SearchParameter that never existed is 404, a deleted one 410 (its
// parameter is gone), as a read would say.
func (m *Registry) Status(ctx context.Context, id string) ([]byte, error) {
	r, err := m.st.Read(ctx, "SearchParameter", id)
	if err != nil {
		return nil, err
	}
	// The job may have ended since the last Poll: read the state anew, so
	// that "active" here means searchable now.
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	out := parameters{}
	p := m.cur.Load().params[id]
	if p == nil || p.version != r.Version {
		sp, _ := decodeSP(r.Body)
		out.code("state", stateInactive)
		if sp.Code != "" {
			out.code("code", sp.Code)
		}
		out.str("reason", "the SearchParameter's status is "+strconv.Quote(sp.Status)+": only an active one joins the registry")
		return json.Marshal(out.resource())
	}
	out.code("state", p.state)
	out.code("code", p.sp.Code)
	if p.reason != "" {
		out.str("reason", p.reason)
	}
	for _, t := range p.types {
		out.code("base", t)
	}
	if p.state == stateInvalid {
		return json.Marshal(out.resource())
	}
	job, err := m.st.Job(ctx, p.job)
	if errors.Is(err, store.ErrNotFound) {
		return json.Marshal(out.resource())
	}
	if err != nil {
		return nil, err
	}
	out.str("job", job.ID)
	out.code("jobState", string(job.State))
	var pr progress
	if json.Unmarshal([]byte(job.Progress), &pr) == nil {
		if pr.Pass != "" {
			out.code("pass", pr.Pass)
		}
		out.integer("total", pr.Counts.Total)
		out.integer("read", pr.Counts.Read)
		out.integer("updated", pr.Counts.Updated)
		out.integer("skipped", pr.Counts.Skipped)
		out.integer("failed", pr.Counts.Failed)
		pct := 100.0
		if pr.Pass != "done" && pr.Counts.Total > 0 {
			pct = min(100, float64(pr.Counts.Read)*100/float64(pr.Counts.Total))
		} else if pr.Pass != "done" {
			pct = 0
		}
		out.decimal("percent", pct)
	}
	var res result
	if job.State == store.JobFailed && json.Unmarshal(job.Result, &res) == nil && res.Error != "" {
		out.str("reason", res.Error)
	}
	return json.Marshal(out.resource())
}

// parameters builds a Parameters resource.
type parameters []map[string]any

func (p *parameters) add(name, key string, v any) {
	*p = append(*p, map[string]any{"name": name, key: v})
}
func (p *parameters) code(name, v string)        { p.add(name, "valueCode", v) }
func (p *parameters) str(name, v string)         { p.add(name, "valueString", v) }
func (p *parameters) integer(name string, v int) { p.add(name, "valueInteger", v) }
func (p *parameters) decimal(name string, v float64) {
	p.add(name, "valueDecimal", json.Number(strconv.FormatFloat(v, 'f', 1, 64)))
}
func (p parameters) resource() map[string]any {
	return map[string]any{"resourceType": "Parameters", "parameter": []map[string]any(p)}
}
