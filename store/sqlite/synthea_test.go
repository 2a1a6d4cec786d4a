package sqlite

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/synthea"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// syntheaResource is one resource of the Synthea bundles in testdata,
// ready to be written as many times as a benchmark needs with fresh ids:
// its body cut at every UUID (resource ids, and the identifiers Synthea
// derives from them), and its index entries.
type syntheaResource struct {
	typ, id string
	parts   []string // body = parts[0] + replicaID(uuids[0]) + parts[1] + …
	uuids   []string
	index   []search.Entry
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// loadSynthea reads testdata/synthea. Bundle-internal references
// ("urn:uuid:…") become relative ones ("Patient/…") before the index is
// computed, so that reference searches (and patient=) find them.
func loadSynthea(tb testing.TB) []syntheaResource {
	tb.Helper()
	bundles, err := synthea.Load("../../testdata/synthea")
	if err != nil {
		tb.Fatal(err)
	}
	var out []syntheaResource
	for _, bundle := range bundles {
		type header struct{ ResourceType, ID string }
		heads := make([]header, len(bundle.Entries))
		var pairs []string // "urn:uuid:…" → "Type/…"
		for i, e := range bundle.Entries {
			if err := json.Unmarshal(e.Resource, &heads[i]); err != nil {
				tb.Fatal(err)
			}
			pairs = append(pairs, `"`+e.FullURL+`"`, `"`+heads[i].ResourceType+"/"+strings.TrimPrefix(e.FullURL, "urn:uuid:")+`"`)
		}
		refs := strings.NewReplacer(pairs...)
		for i, e := range bundle.Entries {
			body := refs.Replace(string(e.Resource))
			index, err := search.Extract(heads[i].ResourceType, []byte(body))
			if err != nil {
				tb.Fatal(err)
			}
			r := syntheaResource{typ: heads[i].ResourceType, id: heads[i].ID, index: index}
			last := 0
			for _, m := range uuidRE.FindAllStringIndex(body, -1) {
				r.parts = append(r.parts, body[last:m[0]])
				r.uuids = append(r.uuids, body[m[0]:m[1]])
				last = m[1]
			}
			r.parts = append(r.parts, body[last:])
			out = append(out, r)
		}
	}
	return out
}

// replicaID is the id of corpus id in replica n.
func replicaID(id string, n int) string {
	if n == 0 {
		return id
	}
	return id + "-" + strconv.Itoa(n)
}

// replica returns the body and index entries of r in replica n: every
// UUID, in the body and in the entries, replaced by its replica id.
func (r *syntheaResource) replica(n int) (id string, body []byte, index []search.Entry) {
	var b strings.Builder
	for i, p := range r.parts {
		b.WriteString(p)
		if i < len(r.uuids) {
			b.WriteString(replicaID(r.uuids[i], n))
		}
	}
	index = make([]search.Entry, len(r.index))
	copy(index, r.index)
	for i := range index {
		patchIDs(&index[i], n)
	}
	return replicaID(r.id, n), []byte(b.String()), index
}

func patchIDs(e *search.Entry, n int) {
	if n == 0 {
		return
	}
	e.Ref = uuidRE.ReplaceAllStringFunc(e.Ref, func(u string) string { return replicaID(u, n) })
	if len(e.Code) == 36 && uuidRE.MatchString(e.Code) {
		e.Code = replicaID(e.Code, n)
	}
	if len(e.Components) > 0 {
		e.Components = append([]search.Entry(nil), e.Components...)
		for i := range e.Components {
			patchIDs(&e.Components[i], n)
		}
	}
}
