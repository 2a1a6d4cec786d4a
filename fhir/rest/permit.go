package rest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// Access control: SMART App Launch scopes applied to every FHIR
// interaction (scopes-and-launch-context.html). Every handler asks the two
// functions of the hook contract, permit (may this request do op on this
// type, and on this resource) and confine (the clause a search of a type
// must AND in). Both read the Access that authenticate bound to the
// request context; without one (Config.Auth nil, --auth=none) everything
// is allowed. README "Access control" describes the rules for people.

// Op is what a request does to a resource type, in SMART v2 letters.
type Op byte

const (
	OpCreate Op = 'c'
	OpRead   Op = 'r'
	OpUpdate Op = 'u'
	OpDelete Op = 'd'
	OpSearch Op = 's'
)

func (op Op) String() string {
	switch op {
	case OpCreate:
		return "create"
	case OpRead:
		return "read"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpSearch:
		return "search"
	}
	return string(op)
}

// Errors an Authorizer returns for a request it cannot authenticate
// (RFC 6750 §3.1).
var (
	// ErrNoToken: the request carries no bearer token (401 without an
	// error code, as RFC 6750 §3.1 asks).
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken: the token is malformed, unknown, expired, revoked
	// or meant for another audience (401 error="invalid_token").
	ErrInvalidToken = errors.New("invalid bearer token")
)

// Authorizer authenticates requests. The SMART authorization server
// implements it (cmd/kiln adapts its grants); fhir/rest never imports it.
type Authorizer interface {
	// Authorize returns the access granted to the request's bearer token,
	// or an error wrapping ErrNoToken or ErrInvalidToken (→ 401). Any
	// other error is a failure of the authorizer (500, or 503 for
	// store.ErrUnavailable), never a grant.
	Authorize(r *http.Request) (*Access, error)
}

// Access is what one token allows.
type Access struct {
	ClientID string
	// FHIRUser is the user the token acts for: "Patient/123",
	// "Practitioner/9", … relative or absolute (the id_token's fhirUser
	// claim), or "" (no user: backend services).
	FHIRUser string
	// Patient is the id of the patient in context ("123"; "Patient/123"
	// is read the same); patient/ rules confine to its compartment.
	// Empty: patient/ rules grant nothing.
	Patient string
	// Rules are the granted scopes, one per scope; a request is allowed
	// when one of them allows it.
	Rules []Rule
}

// Rule is one granted scope, parsed.
type Rule struct {
	// Context is "patient", "user" or "system"; anything else grants
	// nothing.
	Context string
	// Type is a resource type or "*".
	Type string
	// Ops is a subset of "cruds" (SMART v2 letters; v1 .read is "rs",
	// .write "cud", .* "cruds").
	Ops string
	// Query is a granular restriction (v2 "?category=…"): only resources
	// matching it are reached. Nil: none. A query the search registry
	// cannot parse for a type makes the rule grant nothing on that type.
	Query url.Values
}

// directory lists the types outside the Patient compartment (or, for
// Schedule, reached only through its actor) that a patient portal needs
// whole: under patient/ rules (and user/ rules of a Patient) a rule that
// allows r or s on one of them reaches every resource of the type, and
// no patient/ rule ever allows writing them. README "Access control"
// repeats this table; keep the two equal.
var directory = map[string]string{
	"Practitioner":      "who treats the patient (names, qualifications)",
	"PractitionerRole":  "where and in which role a practitioner works",
	"Organization":      "the provider organizations and payers named in the record",
	"Location":          "where care happens",
	"HealthcareService": "the services a portal offers to book",
	"Medication":        "drug definitions that MedicationRequests point to",
	"Slot":              "free and busy times to book an appointment (no patient data)",
	"Schedule":          "the calendars slots belong to (no patient data)",
}

// realm names the protected resource in WWW-Authenticate (RFC 6750 §3).
const realm = "kiln"

type accessKey struct{}

// bound is the access of one request, with what permit needs to read
// references as the store indexed them.
type bound struct {
	access *Access
	base   string // the request's base when the registry has no configured one (stamp)
}

func boundOf(ctx context.Context) *bound {
	b, _ := ctx.Value(accessKey{}).(*bound)
	return b
}

// authenticate runs the Authorizer once per request and binds the access
// to the request context (nil Authorizer: nothing is bound, everything
// allowed).
func (a *API) authenticate(r *http.Request) (*http.Request, error) {
	if a.cfg.Auth == nil {
		return r, nil
	}
	acc, err := a.cfg.Auth.Authorize(r)
	switch {
	case errors.Is(err, ErrNoToken):
		// RFC 6750 §3.1: no error code when the request has no credentials.
		return nil, outcome.New(http.StatusUnauthorized, outcome.CodeLogin, "a bearer token is required").
			With("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	case errors.Is(err, ErrInvalidToken), err == nil && acc == nil:
		return nil, outcome.New(http.StatusUnauthorized, outcome.CodeLogin, "the bearer token is invalid, expired or revoked").
			With("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
	case err != nil:
		return nil, fmt.Errorf("rest: authorize: %w", err)
	}
	info(r).access = acc
	b := &bound{access: acc}
	if a.cfg.BaseURL == "" {
		b.base = a.base(r)
	}
	return r.WithContext(context.WithValue(r.Context(), accessKey{}, b)), nil
}

// permit reports whether the access bound to ctx may do op on typ; body is
// the resource concerned when there is one (read result, write payload, the
// current version before an update or delete), nil otherwise. nil: allowed.
// The error is an *outcome.Error (401 or 403) ready to return.
//
// Without body it checks the type: 403 when no rule allows op on typ.
// With body it checks the resource: a read or search of a resource the
// access cannot see is the same 404 as a resource that does not exist
// (existence is not revealed); a write of one is 403.
func (a *API) permit(ctx context.Context, op Op, typ string, body []byte) error {
	b := boundOf(ctx)
	if b == nil {
		return nil
	}
	reaches := a.reaches(b.access, op, typ)
	if len(reaches) == 0 {
		return forbidden(op, typ)
	}
	if body == nil {
		return nil
	}
	// Only the parameters the rules test are extracted from the body
	// (all of them would cost more than the read itself); a rule that
	// reaches every resource needs none.
	var names []string
	for _, rc := range reaches {
		if rc.whole() {
			return nil
		}
		names = append(names, rc.params...)
		names = append(names, rc.via...)
		if rc.selfBody != nil {
			names = append(names, rc.selfBody.Param)
		}
		for _, cl := range rc.filter {
			names = append(names, cl.Param)
		}
	}
	doc, err := a.decode(typ, body, b.base, names)
	if err != nil {
		return err
	}
	write := op == OpCreate || op == OpUpdate || op == OpDelete
	for _, rc := range reaches {
		ok := rc.admits(doc, write)
		if ok && (rc.via != nil || rc.self != nil) {
			ok, err = a.stored(ctx, rc, doc, write)
			if err != nil {
				return err
			}
		}
		if ok {
			return nil
		}
	}
	if !write {
		return notVisible()
	}
	return refuse("the access token does not allow this %s: the resource (as stored or as sent) is outside what its scopes reach", op)
}

// confine returns a clause the store must AND into any search of typ so that
// only resources the access may see match (nil: no restriction).
func (a *API) confine(ctx context.Context, typ string) (*search.Clause, error) {
	return a.restrict(ctx, OpSearch, typ)
}

// restrict is the clause selecting the resources of typ on which op is
// allowed: nil when every one is, 403 when none is.
func (a *API) restrict(ctx context.Context, op Op, typ string) (*search.Clause, error) {
	b := boundOf(ctx)
	if b == nil {
		return nil, nil
	}
	reaches := a.reaches(b.access, op, typ)
	if len(reaches) == 0 {
		return nil, forbidden(op, typ)
	}
	var either []search.Clause
	for _, rc := range reaches {
		cl := rc.clause(typ)
		if cl == nil {
			return nil, nil // one rule reaches everything
		}
		either = append(either, *cl)
	}
	if len(either) == 1 {
		return &either[0], nil
	}
	return &search.Clause{Any: either}, nil
}

// confineQuery confines a parsed search: its types (one clause, or for
// several types one per type, told apart by _type), the targets of its
// chains and the referrers of its _has, so that no clause can test a
// resource the access cannot see (search.html#chaining, #has): a chain
// is a question about the resource at the other end, and its answer would
// otherwise leak.
func (a *API) confineQuery(ctx context.Context, q *search.Query) error {
	if boundOf(ctx) == nil {
		return nil
	}
	if len(q.Types) == 0 {
		// Every type: those the access may search. A wildcard rule that
		// reaches everything keeps "every type" as is.
		if cl, err := a.confine(ctx, "*"); err == nil && cl == nil {
			return a.confineClauses(ctx, q.Filter)
		}
		for _, t := range a.cfg.Registry.Types() {
			if _, err := a.confine(ctx, t); err == nil {
				q.Types = append(q.Types, t)
			}
		}
		if len(q.Types) == 0 {
			return forbidden(OpSearch, "any type")
		}
	}
	cl, err := a.confineTypes(ctx, q.Types)
	if err != nil {
		return err
	}
	// The client's clauses are confined, not the access's own: its chains
	// (portal via) are confined by construction and must not need s on
	// the type they go through.
	if err := a.confineClauses(ctx, q.Filter); err != nil {
		return err
	}
	if cl != nil {
		q.Filter = append(q.Filter, *cl)
	}
	return nil
}

// confineTypes is the clause confining a search of types: confine of the
// one type, or an Any of (_type = T and confine(T)) over several.
func (a *API) confineTypes(ctx context.Context, types []string) (*search.Clause, error) {
	if len(types) == 1 {
		return a.confine(ctx, types[0])
	}
	var either []search.Clause
	restricted := false
	for _, t := range types {
		cl, err := a.confine(ctx, t)
		if err != nil {
			return nil, err // C-SC-08: a denied type in _type is refused, not dropped
		}
		is := search.Clause{Param: "_type", Type: search.Token, Values: []search.Value{{Raw: t, Code: t}}}
		if cl == nil {
			either = append(either, is)
			continue
		}
		restricted = true
		either = append(either, search.Clause{All: []search.Clause{is, *cl}})
	}
	if !restricted {
		return nil, nil
	}
	return &search.Clause{Any: either}, nil
}

// confineClauses confines, in place, what the chains and _has of cls
// reach.
func (a *API) confineClauses(ctx context.Context, cls []search.Clause) error {
	for i := range cls {
		cl := &cls[i]
		if err := a.confineClauses(ctx, cl.Any); err != nil {
			return err
		}
		if err := a.confineClauses(ctx, cl.All); err != nil {
			return err
		}
		switch {
		case cl.Chain != nil:
			inner := []search.Clause{cl.Chain.Filter}
			if err := a.confineClauses(ctx, inner); err != nil {
				return err
			}
			// A target type the access may not search cannot be pointed
			// at by anything it may see: the chain drops it. With none
			// left the chain is refused.
			var targets []string
			for _, t := range cl.Chain.Types {
				if _, err := a.confine(ctx, t); err == nil {
					targets = append(targets, t)
				}
			}
			if len(targets) == 0 {
				return forbidden(OpSearch, strings.Join(cl.Chain.Types, ", "))
			}
			ct, err := a.confineTypes(ctx, targets)
			if err != nil {
				return err
			}
			chain := *cl.Chain
			chain.Types = targets
			chain.Filter = inner[0]
			if ct != nil {
				chain.Filter = search.Clause{All: []search.Clause{inner[0], *ct}}
			}
			cl.Chain = &chain
		case cl.Has != nil:
			inner := []search.Clause{cl.Has.Filter}
			if err := a.confineClauses(ctx, inner); err != nil {
				return err
			}
			ct, err := a.confine(ctx, cl.Has.Type)
			if err != nil {
				return err
			}
			has := *cl.Has
			has.Filter = inner[0]
			if ct != nil {
				has.Filter = search.Clause{All: []search.Clause{inner[0], *ct}}
			}
			cl.Has = &has
		}
	}
	return nil
}

// reach is what one rule lets an access see of a type.
type reach struct {
	// patient, when set, confines to the Patient compartment of
	// Patient/patient (compartmentdefinition-patient.html).
	patient string
	// params are the compartment's parameters for the type.
	params []string
	// filter is the rule's granular restriction, parsed for the type.
	filter []search.Clause
	// via, when set, reaches a resource through what its reference
	// parameters via point at: a resource of a type in targets matching
	// that type's clause (portal; practitioner linkage). The store
	// answers, on search (a chain) and on read and write (stored).
	via     []string
	targets map[string]search.Clause
	// self, when set, is a clause the resource itself must match in the
	// store (a Patient linked to a practitioner); selfBody, when set,
	// admits a resource whose body matches it without the store (a
	// Patient being created with the practitioner as generalPractitioner).
	self, selfBody *search.Clause
}

// whole reports whether rc reaches every resource of its type.
func (rc reach) whole() bool {
	return rc.patient == "" && rc.via == nil && rc.self == nil && len(rc.filter) == 0
}

// reaches lists what each rule allowing op on typ reaches; empty when
// none does.
func (a *API) reaches(acc *Access, op Op, typ string) []reach {
	if !auditWritable(op, typ) {
		return nil // the audit trail is the server's alone (audit.go)
	}
	var out []reach
	for _, rl := range acc.Rules {
		if rl.Type != typ && rl.Type != "*" || !strings.ContainsRune(rl.Ops, rune(op)) {
			continue
		}
		var rc reach
		confined := false
		switch rl.Context {
		case "system":
		case "user":
			// A Practitioner (or PractitionerRole) user sees the patients
			// linked to it (linked). A Patient user is confined like a
			// patient/ scope; any other user (RelatedPerson, none) gets
			// nothing until its rule is written down.
			kind, id := userRef(acc.FHIRUser)
			switch kind {
			case "Practitioner", "PractitionerRole":
				if id == "" {
					continue
				}
				var ok bool
				if rc, ok = a.linked(kind+"/"+id, op, typ); !ok {
					continue
				}
			case "Patient":
				confined, rc.patient = true, id
			default:
				continue
			}
		case "patient":
			confined, rc.patient = true, strings.TrimPrefix(acc.Patient, "Patient/")
		default:
			continue
		}
		if confined {
			if rc.patient == "" || strings.Contains(rc.patient, "/") {
				continue // no patient in context: a confined rule reaches nothing
			}
			if _, ok := directory[typ]; ok {
				if op != OpRead && op != OpSearch {
					continue // directory data is never written under patient scopes
				}
				rc.patient = "" // readable whole
			} else if pr, ok := search.Portal(typ); ok && pr.Via != "" {
				// The portal rules (fhir/search record.go, README "Access
				// control"): reached through what Via points at.
				if pr.ReadOnly && op != OpRead && op != OpSearch {
					continue
				}
				rc.via, rc.targets = []string{pr.Via}, map[string]search.Clause{}
				for _, t := range pr.Through {
					if cl, ok := a.cfg.Registry.RecordClause(rc.patient, t); ok {
						rc.targets[t] = cl
					}
				}
				rc.patient = "" // the targets' clauses hold it
			} else {
				rc.params = a.cfg.Registry.RecordParams(typ)
				if typ != "Patient" && len(rc.params) == 0 {
					continue // outside the patient's record and not directory data
				}
			}
		}
		if len(rl.Query) > 0 {
			q, _, err := a.cfg.Registry.Parse([]string{typ}, rl.Query, search.ParseOptions{Strict: true})
			if err != nil || len(q.Filter) == 0 || len(q.Include) > 0 || slices.ContainsFunc(q.Filter, reachesOther) {
				// A restriction that cannot apply to typ grants nothing; nor
				// does one with a chain or _has, which would test resources
				// the access is not confined to (confineQuery leaves the
				// access's own clauses as they are).
				continue
			}
			rc.filter = q.Filter
		}
		out = append(out, rc)
	}
	return out
}

// reachesOther reports whether cl tests another resource (chain or _has).
func reachesOther(cl search.Clause) bool {
	return cl.Chain != nil || cl.Has != nil || slices.ContainsFunc(cl.Any, reachesOther) || slices.ContainsFunc(cl.All, reachesOther)
}

// linked is what a Practitioner (or PractitionerRole) user, user (as
// "Practitioner/9"), reaches of typ under a user/ rule allowing op: the
// record of every patient linked to it, where a Patient is linked when
//
//   - its generalPractitioner is the user (Patient.general-practitioner),
//   - an Encounter of the patient has the user as participant
//     (Encounter.participant), or
//   - a CareTeam of the patient has the user as participant
//     (CareTeam.participant).
//
// The rule is a clause on Patient (the store runs it through _has), so a
// search is "in the compartment of some linked patient": for each
// compartment parameter p of typ, p:Patient.<linked>. Directory data and
// types outside the Patient compartment hold no patient record and are
// reached whole. ok false: the rule reaches nothing of typ.
func (a *API) linked(user string, op Op, typ string) (rc reach, ok bool) {
	kind, _, _ := strings.Cut(user, "/")
	ref := func(p string) search.Clause {
		return search.Clause{Param: p, Type: search.Reference, Values: []search.Value{{Raw: user, Ref: user, RefType: kind}}}
	}
	gp := ref("general-practitioner")
	patient := search.Clause{Any: []search.Clause{
		gp,
		{Has: &search.Has{Type: "Encounter", Param: "patient", Filter: ref("participant")}},
		{Has: &search.Has{Type: "CareTeam", Param: "patient", Filter: ref("participant")}},
	}}
	switch typ {
	case "*":
		return reach{}, false // "every type" is not reached whole: searched type by type
	case "Patient":
		return reach{self: &patient, selfBody: &gp}, true
	}
	if _, dir := directory[typ]; dir {
		return reach{}, true
	}
	var params []string
	for _, p := range a.cfg.Registry.RecordParams(typ) {
		if sp, ok := a.cfg.Registry.Param(typ, p); ok && slices.Contains(sp.Targets, "Patient") {
			params = append(params, p)
		}
	}
	if len(params) == 0 {
		return reach{}, true // not patient data
	}
	return reach{via: params, targets: map[string]search.Clause{"Patient": patient}}, true
}

// userRef splits a fhirUser into type and id; it may be relative
// ("Practitioner/9") or absolute ("https://ehr.example/fhir/Practitioner/9"),
// as id_tokens carry it (SMART: fhirUser claim).
func userRef(user string) (typ, id string) {
	parts := strings.Split(user, "/")
	if len(parts) < 2 {
		return "", ""
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

// clause is the search clause selecting what rc reaches of typ; nil when
// it reaches every resource.
func (rc reach) clause(typ string) *search.Clause {
	var all []search.Clause
	if rc.self != nil {
		all = append(all, *rc.self)
	}
	if rc.via != nil {
		// p:T.<T's clause> for each parameter p and target type T, one
		// chain per type since their clauses differ.
		member := search.Clause{}
		for _, p := range rc.via {
			for _, t := range slices.Sorted(maps.Keys(rc.targets)) {
				member.Any = append(member.Any, search.Clause{Param: p, Type: search.Reference,
					Chain: &search.Chain{Types: []string{t}, Filter: rc.targets[t]}})
			}
		}
		all = append(all, member)
	}
	if rc.patient != "" {
		ref := "Patient/" + rc.patient
		member := search.Clause{}
		if typ == "Patient" {
			member.Any = append(member.Any, search.Clause{Param: "_id", Type: search.Token, Values: []search.Value{{Raw: rc.patient, Code: rc.patient}}})
		}
		for _, p := range rc.params {
			if p == "{def}" {
				continue // the patient itself: _id above
			}
			member.Any = append(member.Any, search.Clause{Param: p, Type: search.Reference,
				Values: []search.Value{{Raw: ref, Ref: ref, RefType: "Patient"}}})
		}
		all = append(all, member)
	}
	all = append(all, rc.filter...)
	switch len(all) {
	case 0:
		return nil
	case 1:
		return &all[0]
	}
	return &search.Clause{All: all}
}

// document is a resource decoded for the checks: its id and index entries.
type document struct {
	typ, id string
	entries []search.Entry
}

func (a *API) decode(typ string, body []byte, base string, names []string) (*document, error) {
	entries, err := a.cfg.Registry.ExtractParams(typ, body, base, append(names, "_id"))
	if err != nil {
		return nil, fmt.Errorf("rest: permit: %w", err)
	}
	doc := &document{typ: typ, entries: entries}
	for _, e := range entries {
		if e.Param == "_id" {
			doc.id = e.Code
		}
	}
	return doc, nil
}

// admits reports whether rc reaches doc. For a write (the body as sent,
// or as stored before an update or delete), a patient-confined rule also
// refuses a resource that any compartment parameter links to another
// patient: a patient may not place data in somebody else's record.
func (rc reach) admits(doc *document, write bool) bool {
	if rc.patient != "" {
		ref := "Patient/" + rc.patient
		in := doc.typ == "Patient" && doc.id == rc.patient
		for _, e := range doc.entries {
			if e.Type != search.Reference || !containsParam(rc.params, e.Param) {
				continue
			}
			if e.Ref == ref {
				in = true
			} else if write && strings.HasPrefix(e.Ref, "Patient/") {
				return false
			}
		}
		if !in {
			return false
		}
	}
	for i := range rc.filter {
		if !satisfies(doc, &rc.filter[i]) {
			return false
		}
	}
	return true
}

// stored reports whether the store places doc in rc's reach (via,
// self). Through via, a read needs one reference to a target type that
// matches its clause; a write needs one and every such reference to
// match (a patient may not file a payment notice for another patient's
// invoice, a practitioner may not write into an unlinked patient's
// record). References to other types are not judged here. The store
// answers with the same clauses a search uses.
func (a *API) stored(ctx context.Context, rc reach, doc *document, write bool) (bool, error) {
	if rc.self != nil {
		if rc.selfBody != nil && satisfies(doc, rc.selfBody) {
			return true, nil
		}
		if doc.id == "" {
			return false, nil // not stored yet
		}
		return a.matchStored(ctx, doc.typ, doc.id, *rc.self)
	}
	in := false
	for _, e := range doc.entries {
		if e.Type != search.Reference || !slices.Contains(rc.via, e.Param) {
			continue
		}
		typ, id, ok := strings.Cut(e.Ref, "/")
		target, known := rc.targets[typ]
		if !ok || strings.Contains(id, "/") || !known {
			continue // absolute, contained or another type
		}
		match, err := a.matchStored(ctx, typ, id, target)
		switch {
		case err != nil:
			return false, err
		case match:
			in = true
		case write:
			return false, nil
		}
	}
	return in, nil
}

// matchStored reports whether the stored resource typ/id matches cl.
func (a *API) matchStored(ctx context.Context, typ, id string, cl search.Clause) (bool, error) {
	q := &search.Query{Types: []string{typ}, Count: 1, Total: search.TotalNone, Filter: []search.Clause{
		{Param: "_id", Type: search.Token, Values: []search.Value{{Raw: id, Code: id}}}, cl,
	}}
	page, err := a.searcher.Search(ctx, q)
	if err != nil {
		return false, fmt.Errorf("rest: permit: %w", err)
	}
	return len(page.Matches) > 0, nil
}

func containsParam(params []string, p string) bool {
	for _, q := range params {
		if q == p {
			return true
		}
	}
	return false
}

// satisfies evaluates a granular restriction on a resource's index entries,
// as the store would (search.html#token, #reference, #uri, #string). Only
// plain token, reference, uri and string parameters and _id are
// evaluated: anything else does not match, so a read or write under such
// a rule is refused (fail closed) while a search still applies it in the
// store.
func satisfies(doc *document, cl *search.Clause) bool {
	if cl.Modifier != "" || cl.Chain != nil || cl.Has != nil || cl.Any != nil || cl.All != nil {
		return false
	}
	for _, v := range cl.Values {
		if cl.Param == "_id" {
			if v.Code == doc.id && v.System == "" {
				return true
			}
			continue
		}
		for _, e := range doc.entries {
			if e.Param != cl.Param || e.Type != cl.Type {
				continue
			}
			switch cl.Type {
			case search.Token:
				switch {
				case !v.HasSystem && v.Code == e.Code,
					v.HasSystem && v.System == "" && e.System == "" && v.Code == e.Code,
					v.HasSystem && v.System != "" && v.Code == "" && e.System == v.System,
					v.HasSystem && v.System != "" && e.System == v.System && e.Code == v.Code:
					return true
				}
			case search.Reference:
				if e.Ref == v.Ref || v.RefType == "" && strings.HasSuffix(e.Ref, "/"+v.Ref) {
					return true
				}
			case search.URI:
				if e.Value == v.Value {
					return true
				}
			case search.String:
				if strings.HasPrefix(e.Text, v.Text) {
					return true
				}
			}
		}
	}
	return false
}

// forbidden is the 403 for an interaction no granted scope allows
// (RFC 6750 §3.1 insufficient_scope).
func forbidden(op Op, typ string) error {
	return refuse("the access token's scopes do not allow %s on %s", op, typ)
}

// refuse is a 403 of access control: the token is valid but does not
// reach what the request asks (RFC 6750 §3.1 insufficient_scope).
func refuse(format string, args ...any) error {
	return outcome.Newf(http.StatusForbidden, outcome.CodeForbidden, format, args...).
		With("WWW-Authenticate", `Bearer realm="`+realm+`", error="insufficient_scope"`)
}

// notVisible answers a read of a resource the access may not see exactly
// as a read of one that does not exist.
func notVisible() error {
	return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "resource not found")
}

// isNotVisible reports whether err is permit's answer for a resource the
// access may not see (to filter it out rather than fail).
func isNotVisible(err error) bool {
	var oe *outcome.Error
	return errors.As(err, &oe) && (oe.Status == http.StatusNotFound || oe.Status == http.StatusForbidden)
}
