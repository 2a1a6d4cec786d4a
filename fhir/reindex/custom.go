package reindex

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// spResource is the part of a SearchParameter resource a server runs on,
// with its status: only an active one joins the registry
// (searchparameter.html: draft and retired parameters are not for use).
type spResource struct {
	defs.SearchParameter
	Status string `json:"status"`
}

func decodeSP(body []byte) (spResource, error) {
	var sp spResource
	if err := json.Unmarshal(body, &sp); err != nil {
		return spResource{}, outcome.New(http.StatusBadRequest, outcome.CodeStructure,
			"the SearchParameter cannot be read: "+err.Error(), "SearchParameter")
	}
	return sp, nil
}

// customTypes are the parameter types a custom SearchParameter may have:
// every type of search.html#ptypes but special, whose matching a server
// defines per parameter and which an expression cannot say.
var customTypes = []string{"number", "date", "string", "token", "reference", "composite", "quantity", "uri"}

// invalid is the answer to a SearchParameter the server cannot serve: 422
// (http.html#create: the content violates a rule of the server), naming
// the element.
func invalid(element, format string, args ...any) error {
	return outcome.New(http.StatusUnprocessableEntity, outcome.CodeInvalid, fmt.Sprintf(format, args...), "SearchParameter."+element)
}

// check decides whether an active SearchParameter can join builtin beside
// the other custom parameters: the resource types it applies to, or an
// *outcome.Error naming the offending element. A custom code never
// replaces a built-in one (searches written against the specification
// would silently change meaning) nor another custom parameter's on a type
// both apply to.
func check(builtin *search.Registry, others []spResource, sp spResource) ([]string, error) {
	switch {
	case sp.URL == "":
		return nil, invalid("url", "a SearchParameter needs a url: it is the parameter's definition in the CapabilityStatement")
	case sp.Code == "":
		return nil, invalid("code", "a SearchParameter needs a code: the name searches use")
	case !validCode(sp.Code):
		return nil, invalid("code", "code %q: a custom code is a letter followed by letters, digits, '-' or '_' (':' starts a modifier, '.' a chain, '$' a composite's part, '_' the specification's own parameters)", sp.Code)
	case len(sp.Base) == 0:
		return nil, invalid("base", "a SearchParameter needs at least one base resource type")
	case !slices.Contains(customTypes, sp.Type):
		return nil, invalid("type", "type %q: Kiln serves custom parameters of type %s", sp.Type, strings.Join(customTypes, ", "))
	case strings.TrimSpace(sp.Expression) == "":
		return nil, invalid("expression", "a SearchParameter needs an expression (FHIRPath) that selects the values to index")
	}
	known := builtin.Types()
	var types []string
	for i, b := range sp.Base {
		switch {
		case b == "Resource" || b == "DomainResource":
			for _, t := range known {
				if b == "Resource" || (t != "Bundle" && t != "Binary" && t != "Parameters") {
					types = append(types, t)
				}
			}
		case slices.Contains(known, b):
			types = append(types, b)
		default:
			return nil, invalid(fmt.Sprintf("base[%d]", i), "base %q is not an R4 resource type", b)
		}
	}
	if _, err := fhirpath.Compile(sp.Expression); err != nil {
		return nil, invalid("expression", "the expression does not compile: %v", err)
	}
	for _, t := range types {
		if p, ok := builtin.Param(t, sp.Code); ok {
			return nil, invalid("code", "code %q is already a search parameter of %s (%s): a custom parameter cannot replace a built-in one", sp.Code, t, p.URL)
		}
	}
	for _, o := range others {
		if o.Code != sp.Code || o.URL == sp.URL {
			continue
		}
		for _, b := range o.Base {
			if slices.Contains(types, b) || b == "Resource" || b == "DomainResource" {
				return nil, invalid("code", "code %q is already the custom search parameter %s of %s", sp.Code, o.URL, b)
			}
		}
	}
	n, err := builtin.With(sp.SearchParameter)
	if err != nil {
		return nil, invalid("expression", "%s", strings.TrimPrefix(err.Error(), "search: "))
	}
	var out []string
	for _, t := range types {
		if p, ok := n.Param(t, sp.Code); ok && p.URL == sp.URL {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func validCode(code string) bool {
	for i := 0; i < len(code); i++ {
		c := code[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '_')) {
			return false
		}
	}
	return code != ""
}

// errorText is the diagnostics of an *outcome.Error, or err's text.
func errorText(err error) string {
	var e *outcome.Error
	if errors.As(err, &e) && len(e.Issues) > 0 {
		return e.Issues[0].Diagnostics
	}
	return err.Error()
}
