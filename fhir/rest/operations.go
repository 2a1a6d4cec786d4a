package rest

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// operation is one row of the operations table (operations.html). Like
// the interaction table it drives both the routes and the
// CapabilityStatement (rest.operation for the system level,
// rest.resource.operation for types), so neither can claim what the other
// does not have.
type operation struct {
	name string // the code after '$'
	// definition is the canonical URL of the official OperationDefinition
	// the server implements.
	definition string
	levels     []level
	// types restricts the resource types the operation is invoked on; nil
	// is every type.
	types   []string
	methods []string
	handle  func(*API, http.ResponseWriter, *http.Request) error
	// enabled, when set, says whether the CapabilityStatement lists the
	// operation under cfg (it is routed either way, and says why not).
	enabled func(Config) bool
}

// operationAccess is the operation → scope mapping, by operation name
// (SMART App Launch scopes-and-launch-context.html defines no operation
// scopes: an operation needs the scopes of what it reads and returns).
// mountOperations checks the invocation before the handler runs, and the
// handler leaves out what returns does not allow (returnable). An
// operation without a row is refused to every token. README "Access
// control" repeats this table; keep the two equal.
var operationAccess = map[string]opAccess{
	// Type level: reads and writes no data, so any valid token. Instance
	// level: reads the resource (to tell that it exists).
	"validate": {instance: "r"},
	// The patient is read; everything else is found by search and read.
	"everything": {instance: "r", returns: "rs"},
	// Reads the SearchParameter's state (searchparams.go).
	"reindex-status": {instance: "r"},
}

// opAccess is one operation's row of operationAccess.
type opAccess struct {
	// typeLevel and instance are the SMART letters the access needs on
	// the type the operation is invoked on, at that level (403 without).
	// At the instance level the resource itself must also be one the
	// access may read: one it may not see is 404, as for a read.
	typeLevel, instance string
	// returns are the letters needed on every type of resource the
	// operation returns: types without them are left out, and a _type
	// naming one is 403 (as C-SC-08 for search).
	returns string
}

var operations = []operation{
	{
		name:       "validate",
		definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate",
		levels:     []level{typeLevel, instanceLevel},
		methods:    []string{http.MethodPost},
		handle:     (*API).validate,
	},
	{
		name:       "everything",
		definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
		levels:     []level{instanceLevel},
		types:      []string{"Patient"},
		methods:    []string{http.MethodGet, http.MethodHead},
		handle:     (*API).everything,
	},
	{
		// Kiln's own: the state of a custom SearchParameter and the
		// progress of its reindex (searchparams.go, fhir/reindex). Listed
		// only when custom parameters are on.
		name:       "reindex-status",
		definition: "https://kiln-fhir.github.io/OperationDefinition/SearchParameter-reindex-status",
		levels:     []level{instanceLevel},
		types:      []string{"SearchParameter"},
		methods:    []string{http.MethodGet, http.MethodHead},
		handle:     (*API).reindexStatus,
		enabled:    func(cfg Config) bool { return cfg.SearchParams != nil },
	},
}

// opPat matches an operation segment; '$' is outside the id alphabet, so
// an operation is never taken for an id, nor an id for an operation.
const opPat = `{op:\$[^/]*}`

// paths are the route patterns of op, one per level.
func (op operation) paths() []string {
	typ := typePat
	if op.types != nil {
		typ = "{type:(?:" + strings.Join(op.types, "|") + ")}"
	}
	var out []string
	for _, l := range op.levels {
		switch l {
		case systemLevel:
			out = append(out, "/$"+op.name)
		case typeLevel:
			out = append(out, "/"+typ+"/$"+op.name)
		case instanceLevel:
			out = append(out, "/"+typ+"/"+idPat+"/$"+op.name)
		}
	}
	return out
}

// appliesTo reports whether op is invoked on typ at level l.
func (op operation) appliesTo(typ string, l level) bool {
	return slices.Contains(op.levels, l) && (op.types == nil || slices.Contains(op.types, typ))
}

// mountOperations routes every operation of the table, then answers any
// other $name path: 405 when the operation exists there with another
// method, 404 otherwise (never "invalid id").
func (a *API) mountOperations(r *mux.Router) {
	for _, op := range operations {
		handle := func(a *API, w http.ResponseWriter, r *http.Request) error {
			if err := a.permitOperation(r, op); err != nil {
				return err
			}
			return op.handle(a, w, r)
		}
		for _, p := range op.paths() {
			r.Handle(p, a.wrap("$"+op.name, handle)).Methods(op.methods...)
		}
	}
	r.Handle("/"+opPat, a.wrap("unknown", (*API).unknownOperation))
	r.Handle("/"+typePat+"/"+opPat, a.wrap("unknown", (*API).unknownOperation))
	r.Handle("/"+typePat+"/"+idPat+"/"+opPat, a.wrap("unknown", (*API).unknownOperation))
}

func (a *API) unknownOperation(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	name := strings.TrimPrefix(v["op"], "$")
	l := systemLevel
	switch {
	case v["id"] != "":
		l = instanceLevel
	case v["type"] != "":
		l = typeLevel
	}
	for _, op := range operations {
		if op.name == name && (l == systemLevel && slices.Contains(op.levels, l) || op.appliesTo(v["type"], l)) {
			return outcome.Newf(http.StatusMethodNotAllowed, outcome.CodeNotSupported,
				"$%s takes %s", name, strings.Join(op.methods, " or ")).With("Allow", strings.Join(op.methods, ", "))
		}
	}
	return outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "operation $%s is not supported on %s", name, r.URL.Path)
}

// operationEntries are the CapabilityStatement operation entries
// (CapabilityStatement.rest.resource.operation, or rest.operation when typ
// is empty) for the operations invoked on typ, or at the system level:
// those of the table, then those another handler serves (ext).
func operationEntries(typ string, cfg Config) []map[string]string {
	ext := cfg.ExternalOperations
	var out []map[string]string
	for _, op := range operations {
		if op.enabled != nil && !op.enabled(cfg) {
			continue
		}
		if typ == "" && !slices.Contains(op.levels, systemLevel) ||
			typ != "" && !op.appliesTo(typ, typeLevel) && !op.appliesTo(typ, instanceLevel) {
			continue
		}
		out = append(out, map[string]string{"name": op.name, "definition": op.definition})
	}
	for _, op := range ext {
		if typ == "" && op.System || typ != "" && slices.Contains(op.Types, typ) {
			out = append(out, map[string]string{"name": op.Name, "definition": op.Definition})
		}
	}
	return out
}

// permitOperation checks what op needs, by its row of operationAccess,
// on the type it is invoked on.
func (a *API) permitOperation(r *http.Request, op operation) error {
	acc, ok := operationAccess[op.name]
	if !ok {
		if boundOf(r.Context()) == nil {
			return nil
		}
		return refuse("no scope grants $%s", op.name) // fail closed
	}
	v := mux.Vars(r)
	needs := acc.typeLevel
	if v["id"] != "" {
		needs = acc.instance
	}
	for _, l := range needs {
		if err := a.permit(r.Context(), Op(l), v["type"], nil); err != nil {
			return err
		}
	}
	return nil
}

// returnable reports whether operation name may give the access bound to
// ctx resources of typ (every letter of its row's returns).
func (a *API) returnable(ctx context.Context, name, typ string) bool {
	for _, l := range operationAccess[name].returns {
		if a.permit(ctx, Op(l), typ, nil) != nil {
			return false
		}
	}
	return true
}
