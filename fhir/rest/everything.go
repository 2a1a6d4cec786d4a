package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// everythingRefs are the types that Patient/[id]/$everything adds when a
// resource of the compartment references them
// (patient-operation-everything.html: "any resource referenced from
// those, including binaries and attachments" — Kiln follows references to
// these four, which is what an EHR exchanging a record needs).
var everythingRefs = []string{"Medication", "Practitioner", "Organization", "Location"}

// everythingCursor is where the next page of $everything starts. The
// pages list, in this order: the Patient itself; the compartment, type by
// type in a fixed order, each type paged with the store's keyset cursor;
// then the referenced resources, sorted, by offset into that list.
type everythingCursor struct {
	Phase int    `json:"p"`           // phaseMembers or phaseRefs
	Type  int    `json:"t,omitempty"` // index into the compartment's types
	Store string `json:"c,omitempty"` // the store's cursor within that type
	Ref   int    `json:"r,omitempty"` // offset into the referenced resources
}

const (
	phaseMembers = 1
	phaseRefs    = 2
)

// everythingQuery is a parsed $everything request.
type everythingQuery struct {
	count  int
	since  time.Time
	types  map[string]bool // nil: every type
	cursor *everythingCursor
	used   url.Values // what the self and next links repeat
}

func (q *everythingQuery) wants(typ string) bool { return q.types == nil || q.types[typ] }

// everything is GET [base]/Patient/[id]/$everything
// (patient-operation-everything.html): the Patient, every resource in its
// record (compartmentdefinition-patient, and the portal rules of
// search.Portal: a Task the patient requested, the PaymentNotice of the
// patient's Invoice — what the patient's own searches reach) and the Medication,
// Practitioner, Organization and Location resources those reference, as
// a searchset Bundle paged by _count. _since keeps resources last updated
// at or after the instant; _type keeps the listed types.
func (a *API) everything(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	q, err := everythingParams(r.URL.Query())
	if err != nil {
		return err
	}
	// Access (operations table: r on Patient, checked before; rs on every
	// type returned). A type the access may not search and read is left
	// out; asked for by _type it is 403, as C-SC-08 has it for search.
	// The Patient itself is covered by the read.
	for typ := range q.types {
		if typ != "Patient" && !a.returnable(ctx, "everything", typ) {
			return forbidden(OpSearch, typ)
		}
	}
	patient, err := a.store.Read(ctx, "Patient", id)
	// As a read: a patient the access may not see, deleted or not, is the
	// same 404 as one that does not exist (a 410 would tell it existed).
	if err := a.permitVersion(ctx, OpRead, patient, err); err != nil {
		return err
	}
	if err != nil {
		return readError(err, patient)
	}
	base := a.base(r)
	b := newBundle("searchset", a.now())
	add := func(res store.Resource, mode string) {
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "/" + res.Type + "/" + res.ID, Resource: res.Body, Search: &entrySearch{Mode: mode}})
	}
	members := a.compartmentTypes()
	cur := q.cursor
	if cur == nil {
		cur = &everythingCursor{Phase: phaseMembers}
		if q.wants("Patient") && !patient.LastUpdated.Before(q.since) {
			add(patient, "match")
		}
	}
	for cur.Phase == phaseMembers && len(b.Entry) < q.count {
		if cur.Type >= len(members) {
			*cur = everythingCursor{Phase: phaseRefs}
			break
		}
		typ := members[cur.Type]
		if !q.wants(typ) || !a.returnable(ctx, "everything", typ) {
			*cur = everythingCursor{Phase: phaseMembers, Type: cur.Type + 1}
			continue
		}
		page, err := a.compartmentPage(r, typ, id, q.since, q.count-len(b.Entry), cur.Store)
		if err != nil {
			return err
		}
		for _, m := range page.Matches {
			if typ == "Patient" && m.ID == id {
				continue // listed first
			}
			if a.permit(ctx, OpRead, m.Type, m.Body) != nil {
				continue // confine should have kept it out; never leak it
			}
			add(m, "match")
		}
		if page.Next != "" {
			cur.Store = page.Next
		} else {
			*cur = everythingCursor{Phase: phaseMembers, Type: cur.Type + 1}
		}
	}
	if cur.Phase == phaseRefs && len(b.Entry) < q.count {
		refs, err := a.everythingRefs(r, id, members, q)
		if err != nil {
			return err
		}
		for cur.Ref < len(refs) && len(b.Entry) < q.count {
			key := refs[cur.Ref]
			cur.Ref++
			typ, rid, _ := strings.Cut(key, "/")
			res, err := a.store.Read(ctx, typ, rid)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				continue // a dangling reference adds nothing
			}
			if err != nil {
				return err
			}
			if res.LastUpdated.Before(q.since) || a.permit(ctx, OpRead, typ, res.Body) != nil {
				continue
			}
			add(res, "include")
		}
		if cur.Ref >= len(refs) {
			cur = nil // done
		}
	}
	self := base + r.URL.Path
	if enc := q.used.Encode(); enc != "" {
		self += "?" + enc
	}
	b.Link = append(b.Link, bundleLink{"self", self})
	if cur != nil {
		next := cloneValues(q.used)
		next.Set(pageParam, encodeEverythingCursor(*cur))
		b.Link = append(b.Link, bundleLink{"next", base + r.URL.Path + "?" + next.Encode()})
	}
	return b.write(w, r)
}

// compartmentTypes are the types of the patient's record (the Patient
// compartment and the portal types, search.RecordTypes), Patient first
// (the patient's own record leads), then alphabetically.
func (a *API) compartmentTypes() []string {
	out := []string{"Patient"}
	for _, t := range a.cfg.Registry.RecordTypes() {
		if t != "Patient" && resource.IsType(t) {
			out = append(out, t)
		}
	}
	return out
}

// compartmentPage is one page of the resources of typ in the record of
// Patient/patient (search.RecordClause: the compartment's parameters and
// the portal rules, the same clause a patient's own search is confined
// by), confined to what the access may see.
func (a *API) compartmentPage(r *http.Request, typ, patient string, since time.Time, count int, cursor string) (store.SearchPage, error) {
	member, ok := a.cfg.Registry.RecordClause(patient, typ)
	if !ok {
		return store.SearchPage{}, nil
	}
	q := &search.Query{Types: []string{typ}, Filter: []search.Clause{member}, Count: count, Total: search.TotalNone, Cursor: cursor}
	if !since.IsZero() {
		q.Filter = append(q.Filter, search.Clause{Param: "_lastUpdated", Type: search.Date,
			Values: []search.Value{{Raw: since.Format(time.RFC3339Nano), Prefix: search.Ge, Start: since, End: since}}})
	}
	limit, err := a.confine(r.Context(), typ)
	if err != nil {
		return store.SearchPage{}, err
	}
	if limit != nil {
		q.Filter = append(q.Filter, *limit)
	}
	return a.searcher.Search(r.Context(), q)
}

// everythingRefs lists, sorted and without repeats, the Medication,
// Practitioner, Organization and Location resources ("Type/id") that the
// whole compartment references (not only the resources _since keeps: a
// practitioner updated since is wanted even when the encounter citing it
// is not). Only references to this server count: relative, or absolute
// under its base.
func (a *API) everythingRefs(r *http.Request, patientID string, members []string, q everythingQuery) ([]string, error) {
	wanted := map[string]bool{}
	for _, t := range everythingRefs {
		wanted[t] = q.wants(t) && a.returnable(r.Context(), "everything", t)
	}
	set := map[string]bool{}
	base := a.base(r) + "/"
	scan := func(body []byte) {
		for _, s := range references(body) {
			s = strings.TrimPrefix(s, base)
			typ, id, ok := strings.Cut(s, "/")
			if id, _, _ = strings.Cut(id, "/_history/"); ok && wanted[typ] && resource.ValidID(id) {
				set[typ+"/"+id] = true
			}
		}
	}
	patient, err := a.store.Read(r.Context(), "Patient", patientID)
	if err != nil {
		return nil, readError(err, patient)
	}
	scan(patient.Body)
	for _, typ := range members {
		if !a.returnable(r.Context(), "everything", typ) {
			// Only what is returned is followed: the references of a type
			// left out would tell about resources the access cannot see.
			continue
		}
		for cursor := ""; ; {
			page, err := a.compartmentPage(r, typ, patientID, time.Time{}, maxCount, cursor)
			if err != nil {
				return nil, err
			}
			for _, m := range page.Matches {
				scan(m.Body)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// references returns every Reference.reference in a stored resource. The
// canonical JSON is compact, so the key appears as "reference":"…"; inside
// a string value its quotes would be escaped and cannot match.
func references(body []byte) []string {
	key := []byte(`"reference":"`)
	var out []string
	for {
		i := bytes.Index(body, key)
		if i < 0 {
			return out
		}
		body = body[i+len(key):]
		end := bytes.IndexByte(body, '"')
		if end < 0 {
			return out
		}
		if !bytes.Contains(body[:end], []byte(`\`)) {
			out = append(out, string(body[:end]))
		}
		body = body[end:]
	}
}

// everythingParams reads _count, _since, _type and the page cursor. start
// and end (the clinical date range) are not supported: refusing them is
// better than answering more than was asked.
func everythingParams(params url.Values) (everythingQuery, error) {
	q := everythingQuery{count: defaultCount, used: url.Values{}}
	for name, vals := range params {
		switch name {
		case "_count", "_since", pageParam:
			if len(vals) > 1 {
				return q, outcome.New(http.StatusBadRequest, outcome.CodeInvalid, name+" may appear only once", name)
			}
		}
		v := vals[0]
		switch name {
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return q, outcome.New(http.StatusBadRequest, outcome.CodeValue, "_count must be a positive integer", "_count")
			}
			q.count = min(n, maxCount)
			q.used.Set(name, strconv.Itoa(q.count))
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, outcome.New(http.StatusBadRequest, outcome.CodeValue,
					"_since must be an instant with a time zone, e.g. 2024-01-31T09:30:00Z", "_since")
			}
			q.since = t
			q.used.Set(name, v)
		case "_type":
			q.types = map[string]bool{}
			for _, t := range strings.Split(strings.Join(vals, ","), ",") {
				t = strings.TrimSpace(t)
				if !resource.IsType(t) {
					return q, outcome.New(http.StatusBadRequest, outcome.CodeValue, "_type lists an unknown resource type: "+t, "_type")
				}
				q.types[t] = true
			}
			q.used.Set(name, strings.Join(slices.Sorted(maps.Keys(q.types)), ","))
		case pageParam:
			c, ok := decodeEverythingCursor(v)
			if !ok {
				return q, outcome.New(http.StatusBadRequest, outcome.CodeValue, "invalid or expired paging cursor", pageParam)
			}
			q.cursor = &c
		case "start", "end":
			return q, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "$everything does not support "+name+" (a clinical date range)", name)
		}
	}
	return q, nil
}

func encodeEverythingCursor(c everythingCursor) string {
	b, _ := json.Marshal(c) // ints and a string: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeEverythingCursor(s string) (everythingCursor, bool) {
	var c everythingCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	ok := (c.Phase == phaseMembers || c.Phase == phaseRefs) && c.Type >= 0 && c.Ref >= 0
	return c, ok
}
