package rest

import (
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
		for _, p := range op.paths() {
			r.Handle(p, a.wrap("$"+op.name, op.handle)).Methods(op.methods...)
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
// is empty) for the operations invoked on typ, or at the system level.
func operationEntries(typ string) []map[string]string {
	var out []map[string]string
	for _, op := range operations {
		if typ == "" && !slices.Contains(op.levels, systemLevel) ||
			typ != "" && !op.appliesTo(typ, typeLevel) && !op.appliesTo(typ, instanceLevel) {
			continue
		}
		out = append(out, map[string]string{"name": op.name, "definition": op.definition})
	}
	return out
}
