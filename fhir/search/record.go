package search

import (
	"context"
	"maps"
	"slices"
	"strings"
)

// A patient's record, as a patient portal sees it: the R4 Patient
// compartment (compartmentdefinition-patient.html) and, for the types a
// portal needs that the compartment reaches in part or not at all, the
// portal rules below (issue 5: explicit, documented rules instead of a
// blanket refusal or grant). Access control (fhir/rest permit,
// $everything), patient bulk export (fhir/bulk) and audit attribution
// (fhir/audit) all read the record from here, so that they agree. README
// "Access control" repeats the table; fhir/rest TestPortalInREADME keeps
// the two equal.

// PortalRule is how a resource of one type belongs to a patient's record
// besides the compartment.
type PortalRule struct {
	// Params are reference parameters that, pointing at the patient, put
	// a resource in the record besides the compartment's own (and, for a
	// patient's write, that may not point at another patient).
	Params []string
	// Via and Through: the resource is in the record when what its
	// reference parameter Via points at is of a type in Through and in
	// the record (search: a chain, Via:T.<T's record clause>).
	Via     string
	Through []string
	// ReadOnly: a patient-confined rule reads and searches the type but
	// never writes it (the payer's records).
	ReadOnly bool
	// Why a portal needs the type, in the README's words.
	Why string
}

var portal = map[string]PortalRule{
	// R4 puts Task in the compartment by patient (Task.for when a Patient)
	// and focus; a refill request the patient files names them as
	// requester, a to-do assigned to them names them as owner.
	"Task": {Params: []string{"requester", "owner"},
		Why: "refill requests and to-dos the patient files (`requester`) or must do (`owner`)"},
	// PaymentNotice is in no compartment; it is the patient's when the
	// request it answers is (bill pay: request = the patient's Invoice).
	"PaymentNotice": {Via: "request", Through: []string{"Invoice", "Claim"},
		Why: "paying a bill: the notice of payment for the patient's Invoice (or Claim)"},
	// PaymentReconciliation is in no compartment either, and R4 gives
	// detail.request no search parameter (its `request` is a Task): Kiln's
	// built-in detail-request (conformance/defs search-parameters-kiln).
	"PaymentReconciliation": {Via: "detail-request", Through: []string{"Claim", "Invoice", "PaymentNotice"}, ReadOnly: true,
		Why: "seeing a bill settled: the payer's reconciliation whose detail names the patient's Invoice, PaymentNotice or Claim"},
}

// Portal returns the portal rule of typ, if it has one.
func Portal(typ string) (PortalRule, bool) {
	pr, ok := portal[typ]
	return pr, ok
}

// PortalTypes lists the types with a portal rule, sorted.
func PortalTypes() []string { return slices.Sorted(maps.Keys(portal)) }

// RecordParams returns the reference parameters through which a resource
// of typ is in a patient's record directly: the Patient compartment's
// ("{def}" included, as Compartment has it) and the portal rule's
// Params. Nil for a type reached only through Via, or not at all.
func (r *Registry) RecordParams(typ string) []string {
	return slices.Concat(r.Compartment("Patient", typ), portal[typ].Params)
}

// RecordClause is the clause selecting the resources of typ in the record
// of Patient/patient; ok is false when the record holds none of typ. The
// Patient itself is selected by _id (and the patients it links to, as the
// compartment has it).
func (r *Registry) RecordClause(patient, typ string) (Clause, bool) {
	return r.recordClause(patient, typ, 0)
}

// maxVia bounds how many Via steps a clause may chain (PaymentReconciliation
// → PaymentNotice → Invoice is two): the table has no cycle, and this keeps
// a future one from recursing forever.
const maxVia = 3

func (r *Registry) recordClause(patient, typ string, depth int) (Clause, bool) {
	member := Clause{}
	if pr := portal[typ]; pr.Via != "" {
		if depth >= maxVia {
			return Clause{}, false
		}
		for _, t := range slices.Sorted(slices.Values(pr.Through)) {
			if in, ok := r.recordClause(patient, t, depth+1); ok {
				member.Any = append(member.Any, Clause{Param: pr.Via, Type: Reference,
					Chain: &Chain{Types: []string{t}, Filter: in}})
			}
		}
		return member, len(member.Any) > 0
	}
	ref := "Patient/" + patient
	if typ == "Patient" {
		member.Any = append(member.Any, Clause{Param: "_id", Type: Token, Values: []Value{{Raw: patient, Code: patient}}})
	}
	for _, p := range r.RecordParams(typ) {
		if p == "{def}" {
			continue // the patient itself: _id above
		}
		member.Any = append(member.Any, Clause{Param: p, Type: Reference,
			Values: []Value{{Raw: ref, Ref: ref, RefType: "Patient"}}})
	}
	return member, len(member.Any) > 0
}

// RecordTypes lists the types a patient's record can hold, sorted:
// those of the Patient compartment and the portal types.
func (r *Registry) RecordTypes() []string {
	var out []string
	for _, t := range r.Types() {
		if _, ok := r.RecordClause("p", t); ok {
			out = append(out, t)
		}
	}
	return out
}

// ReadFunc reads the current body of typ/id for RecordPatients; ok false
// when there is none (never existed, or deleted).
type ReadFunc func(ctx context.Context, typ, id string) (body []byte, ok bool, err error)

// RecordPatients returns the ids of the patients whose record holds the
// resource typ with body, sorted and without repeats: those its record
// parameters reference (the Patient itself, by its id), and for a
// portal type reached through Via, the patients of what Via points at,
// read with read (absolute references under base count as relative;
// others, and contained ones, are not followed). It agrees with
// RecordClause: a resource is in P's record by one exactly when the
// other says so.
func (r *Registry) RecordPatients(ctx context.Context, typ string, body []byte, base string, read ReadFunc) ([]string, error) {
	set := map[string]bool{}
	if err := r.recordPatients(ctx, typ, body, base, read, 0, set); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(set)), nil
}

func (r *Registry) recordPatients(ctx context.Context, typ string, body []byte, base string, read ReadFunc, depth int, set map[string]bool) error {
	pr := portal[typ]
	names := []string{"_id"}
	if pr.Via != "" {
		if depth >= maxVia {
			return nil
		}
		names = append(names, pr.Via)
	} else {
		names = append(names, r.RecordParams(typ)...)
	}
	entries, err := r.ExtractParams(typ, body, base, names)
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch {
		case e.Param == "_id":
			if typ == "Patient" && e.Code != "" {
				set[e.Code] = true
			}
		case e.Type != Reference:
		case pr.Via != "":
			t, id, ok := strings.Cut(e.Ref, "/")
			if !ok || strings.Contains(id, "/") || !slices.Contains(pr.Through, t) {
				continue
			}
			target, found, err := read(ctx, t, id)
			if err != nil {
				return err
			}
			if found {
				if err := r.recordPatients(ctx, t, target, base, read, depth+1, set); err != nil {
					return err
				}
			}
		default:
			if id, ok := strings.CutPrefix(e.Ref, "Patient/"); ok && id != "" && !strings.Contains(id, "/") {
				set[id] = true
			}
		}
	}
	return nil
}
