package bulk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// includeAssociatedData (export.html#query-parameters, E-PA-06, and the
// include-associated-data code system):
//
//   - LatestProvenanceResources: for each exported resource, the most
//     recent Provenance whose target is that resource (the greatest
//     Provenance.recorded; then meta.lastUpdated, then id);
//   - RelevantProvenanceResources: every Provenance whose target is an
//     exported resource.
//
// Both together are Relevant (conflicting values: the least restrictive).
// With either, the export's Provenance file holds these Provenance and no
// other ("Other Provenance resources will not be returned", IG 2.0.0),
// whatever _type says; without, Provenance is a type like any other.
// Provenance are found by searching Provenance?target= for each page of
// exported resources; like _typeFilter, that search reads current
// versions (README), and the Provenance are then written as they were at
// transactionTime. Their ids are held in memory until the end of the job:
// as many as there are associated Provenance.
const (
	provenanceLatest   = "latest"
	provenanceRelevant = "relevant"
)

// associatedData resolves includeAssociatedData's values into the spec.
func (k *kickoffParser) associatedData(values []string) error {
	for _, v := range values {
		switch v {
		case "LatestProvenanceResources":
			if k.sp.Provenance == "" {
				k.sp.Provenance = provenanceLatest
			}
		case "RelevantProvenanceResources":
			k.sp.Provenance = provenanceRelevant
		default:
			// _custom values: none is defined by this server.
			if err := k.ignore(false, "includeAssociatedData", fmt.Sprintf("includeAssociatedData value %q is not supported", v)); err != nil {
				return err
			}
		}
	}
	if k.sp.Provenance == "" {
		return nil
	}
	if !k.grant.allows("Provenance") {
		return outcome.New(http.StatusForbidden, outcome.CodeForbidden,
			"this client may not read Provenance resources, which includeAssociatedData asks for", "includeAssociatedData")
	}
	k.sp.Types = slices.DeleteFunc(k.sp.Types, func(t string) bool { return t == "Provenance" })
	return nil
}

// provenanceOf is what an export needs of a Provenance.
type provenanceOf struct {
	Target []struct {
		Reference string `json:"reference"`
	} `json:"target"`
	Recorded string `json:"recorded"`
	Meta     struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
}

// associate records the Provenance of the exported resources typ/ids.
func (x *exporter) associate(ctx context.Context, typ string, ids []string) error {
	if x.sp.Provenance == "" || typ == "Provenance" || len(ids) == 0 {
		return nil
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = typ + "/" + id
	}
	q, _, err := x.h.cfg.Registry.Parse([]string{"Provenance"}, url.Values{"target": {strings.Join(refs, ",")}},
		search.ParseOptions{Strict: true})
	if err != nil {
		return err
	}
	q.Count, q.Total = 1000, search.TotalNone
	type best struct {
		id, recorded, updated string
	}
	latest := map[string]best{} // exported resource (typ/id) → its latest Provenance
	var relevant []string
	for {
		p, err := x.h.st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, m := range p.Matches {
			if x.sp.Provenance == provenanceRelevant {
				relevant = append(relevant, m.ID)
				continue
			}
			var pv provenanceOf
			if err := json.Unmarshal(m.Body, &pv); err != nil {
				return err
			}
			cand := best{m.ID, pv.Recorded, pv.Meta.LastUpdated}
			for _, t := range pv.Target {
				ttyp, tid, ok := patientRef(t.Reference)
				if !ok || ttyp != typ || !slices.Contains(ids, tid) {
					continue
				}
				cur, seen := latest[ttyp+"/"+tid]
				if !seen || later(cand.recorded, cand.updated, cand.id, cur.recorded, cur.updated, cur.id) {
					latest[ttyp+"/"+tid] = cand
				}
			}
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	x.mu.Lock() // the lanes associate at once
	defer x.mu.Unlock()
	for _, id := range relevant {
		x.provenance[id] = true
	}
	for _, b := range latest {
		x.provenance[b.id] = true
	}
	return nil
}

// later orders Provenance by recorded, then lastUpdated, then id. FHIR
// instants of one server compare as text once normalized; recorded
// values from elsewhere may carry other offsets, so they are parsed.
func later(rec1, upd1, id1, rec2, upd2, id2 string) bool {
	if c := compareInstants(rec1, rec2); c != 0 {
		return c > 0
	}
	if c := compareInstants(upd1, upd2); c != 0 {
		return c > 0
	}
	return id1 > id2
}

func compareInstants(a, b string) int {
	ta, erra := time.Parse(time.RFC3339Nano, a)
	tb, errb := time.Parse(time.RFC3339Nano, b)
	switch {
	case erra != nil || errb != nil:
		return strings.Compare(a, b)
	case ta.Before(tb):
		return -1
	case ta.After(tb):
		return 1
	}
	return 0
}

// exportProvenance writes the associated Provenance, as of
// transactionTime.
func (x *exporter) exportProvenance(ctx context.Context, out output) error {
	if x.sp.Provenance == "" || len(x.provenance) == 0 {
		return nil
	}
	q := store.ScanQuery{Type: "Provenance", At: x.sp.TransactionTime, Count: x.h.cfg.pageSize}
	pages, stop := x.scan(ctx, q)
	defer stop()
	for sc := range pages {
		if sc.err != nil {
			return sc.err
		}
		for _, r := range sc.page.Resources {
			if !x.provenance[r.ID] {
				continue
			}
			if err := x.write(ctx, out, "Provenance", r); err != nil {
				return err
			}
		}
		if err := x.renew(ctx, "Provenance"); err != nil {
			return err
		}
	}
	return out.close(ctx)
}
