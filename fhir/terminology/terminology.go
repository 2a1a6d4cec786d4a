// Package terminology answers the token modifiers that need terminology —
// :in and :not-in against a stored ValueSet, :above and :below against a
// stored CodeSystem's hierarchy (search.html#token) — without a
// terminology server and without any backend knowing about them: Resolve
// rewrites such a clause into a plain OR list of system|code tokens
// (negated for :not-in), which every backend already answers through its
// indexes.
//
// ValueSets and CodeSystems are read from the same store as everything
// else, through its ordinary read and search interfaces, so a ValueSet
// created over the API is used by the next search.
package terminology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Source is where ValueSets and CodeSystems are found.
type Source interface {
	store.Resources
	store.Searcher
}

// MaxCodes bounds an expansion: a ValueSet or a subsumption that selects
// more codes is refused (422) rather than sent to the store as an
// unbounded OR list.
const MaxCodes = 1000

// maxDepth bounds ValueSet imports (compose.include.valueSet) followed
// from one ValueSet, so that a cycle or a deep chain ends with an answer.
const maxDepth = 8

// Code is one member of an expansion: System and Code, or System alone for
// a whole code system (compose.include with a system and nothing else, for
// a code system not stored here: every code of it).
type Code struct {
	System, Code string
}

func (c Code) String() string { return c.System + "|" + c.Code }

// expander expands within one search: what it read once it does not read
// again.
type expander struct {
	src     Source
	systems map[string]*codeSystem // by canonical url; nil: not stored
}

func newExpander(src Source) *expander {
	return &expander{src: src, systems: map[string]*codeSystem{}}
}

// badRequest is a 400 about the value of the parameter named.
func badRequest(param, format string, args ...any) error {
	return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, fmt.Sprintf(format, args...), param)
}

// tooLarge is the refusal of an expansion past MaxCodes.
func tooLarge(param, what string) error {
	return outcome.New(http.StatusUnprocessableEntity, outcome.CodeTooCostly,
		fmt.Sprintf("%s selects more than %d codes; Kiln expands at most %d for a search", what, MaxCodes, MaxCodes), param)
}

// find reads the resource a reference names: "Type/id" (a ValueSet or
// CodeSystem on this server) or a canonical URL, with an optional
// "|version". It returns nil when there is none.
func (e *expander) find(ctx context.Context, param, typ, ref string) ([]byte, error) {
	if id, ok := strings.CutPrefix(ref, typ+"/"); ok && !strings.ContainsAny(id, "/|") {
		got, err := e.src.Read(ctx, typ, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
			return nil, nil
		}
		return got.Body, err
	}
	url, version, _ := strings.Cut(ref, "|")
	filter := []search.Clause{{Param: "url", Type: search.URI, Values: []search.Value{{Raw: url, Value: url}}}}
	if version != "" {
		filter = append(filter, search.Clause{Param: "version", Type: search.Token, Values: []search.Value{{Raw: version, Code: version}}})
	}
	page, err := e.src.Search(ctx, &search.Query{Types: []string{typ}, Filter: filter, Count: 2, Total: search.TotalNone})
	if err != nil {
		return nil, fmt.Errorf("terminology: find %s %s: %w", typ, url, err)
	}
	switch len(page.Matches) {
	case 0:
		return nil, nil
	case 1:
		return page.Matches[0].Body, nil
	}
	return nil, badRequest(param, "several %ss have the url %s: name one with %s|[version] or %s/[id]", typ, url, url, typ)
}

// codeSet is an expansion under construction: codes in order of first
// appearance, without repeats.
type codeSet struct {
	list []Code
	has  map[Code]bool
}

func (s *codeSet) add(c Code) {
	if s.has == nil {
		s.has = map[Code]bool{}
	}
	if !s.has[c] {
		s.has[c] = true
		s.list = append(s.list, c)
	}
}

func (s *codeSet) len() int { return len(s.list) }

type valueSet struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []conceptSet `json:"include"`
		Exclude []conceptSet `json:"exclude"`
	} `json:"compose"`
	Expansion *struct {
		Contains []contains `json:"contains"`
	} `json:"expansion"`
}

type contains struct {
	System   string     `json:"system"`
	Code     string     `json:"code"`
	Contains []contains `json:"contains"`
}

type conceptSet struct {
	System  string `json:"system"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
	ValueSet []string `json:"valueSet"`
}

// ExpandValueSet expands the ValueSet ref names (valueset.html#expansion):
// expansion.contains when the ValueSet carries one, else compose: each
// include (its concepts, or its filters, or its whole system; intersected
// with the ValueSets it imports) less each exclude.
func ExpandValueSet(ctx context.Context, src Source, param, ref string) ([]Code, error) {
	return newExpander(src).valueSet(ctx, param, ref, nil)
}

func (e *expander) valueSet(ctx context.Context, param, ref string, path []string) ([]Code, error) {
	if slices.Contains(path, ref) {
		return nil, badRequest(param, "ValueSet %s imports itself (through %s)", ref, strings.Join(path, " → "))
	}
	if len(path) >= maxDepth {
		return nil, badRequest(param, "ValueSet %s: imports nest deeper than %d", ref, maxDepth)
	}
	path = append(path, ref)
	body, err := e.find(ctx, param, "ValueSet", ref)
	if err != nil {
		return nil, err
	}
	if body == nil {
		why := "no ValueSet with that url or id is stored on this server"
		if len(path) > 1 {
			why = "imported by " + path[len(path)-2] + ": " + why
		}
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotFound, fmt.Sprintf("unknown ValueSet %s (%s)", ref, why), param)
	}
	var vs valueSet
	if err := json.Unmarshal(body, &vs); err != nil {
		return nil, fmt.Errorf("terminology: ValueSet %s: %w", ref, err)
	}
	var out codeSet
	if vs.Expansion != nil && len(vs.Expansion.Contains) > 0 {
		var walk func([]contains) error
		walk = func(cs []contains) error {
			for _, c := range cs {
				if c.Code != "" && c.System != "" {
					if out.add(Code{c.System, c.Code}); out.len() > MaxCodes {
						return tooLarge(param, "ValueSet "+ref)
					}
				}
				if err := walk(c.Contains); err != nil {
					return err
				}
			}
			return nil
		}
		return out.list, walk(vs.Expansion.Contains)
	}
	if vs.Compose == nil {
		return nil, badRequest(param, "ValueSet %s has neither an expansion nor a compose to expand", ref)
	}
	for _, inc := range vs.Compose.Include {
		codes, err := e.conceptSet(ctx, param, ref, inc, path)
		if err != nil {
			return nil, err
		}
		for _, c := range codes {
			if out.add(c); out.len() > MaxCodes {
				return nil, tooLarge(param, "ValueSet "+ref)
			}
		}
	}
	for _, exc := range vs.Compose.Exclude {
		codes, err := e.conceptSet(ctx, param, ref, exc, path)
		if err != nil {
			return nil, err
		}
		drop := map[Code]bool{}
		listed := map[string]bool{} // systems the exclude lists codes of
		for _, c := range codes {
			drop[c] = true
			if c.Code != "" {
				listed[c.System] = true
			}
		}
		kept := out.list[:0]
		for _, c := range out.list {
			switch {
			case drop[c], drop[Code{System: c.System}]:
				continue
			case c.Code == "" && listed[c.System]:
				// A whole code system not stored here cannot be listed, so
				// codes cannot be taken out of it.
				return nil, badRequest(param, "ValueSet %s excludes codes from all of %s, a code system not stored here: Kiln cannot list what remains", ref, c.System)
			}
			kept = append(kept, c)
		}
		out.list = kept
	}
	return out.list, nil
}

// conceptSet is one compose.include or compose.exclude
// (valueset.html#compose): the codes of its system part (concepts,
// filters, or the whole system) intersected with each ValueSet it names.
func (e *expander) conceptSet(ctx context.Context, param, ref string, cs conceptSet, path []string) ([]Code, error) {
	var result []Code
	have := false // result holds a set (nil is then the empty set)
	if cs.System != "" {
		have = true
		switch {
		case len(cs.Concept) > 0 && len(cs.Filter) > 0:
			return nil, badRequest(param, "ValueSet %s: an include with both concepts and filters (valueset.html: vsd-3)", ref)
		case len(cs.Concept) > 0:
			for _, c := range cs.Concept {
				result = append(result, Code{cs.System, c.Code})
			}
		case len(cs.Filter) > 0:
			sys, err := e.codeSystem(ctx, param, cs.System)
			if err != nil {
				return nil, err
			}
			if sys == nil {
				return nil, badRequest(param, "ValueSet %s filters %s, a code system not stored on this server: Kiln cannot evaluate the filter", ref, cs.System)
			}
			var keep map[string]bool
			for _, f := range cs.Filter {
				var codes []string
				switch {
				case f.Property != "concept" && f.Property != "code":
					return nil, badRequest(param, "ValueSet %s: filter on property %q is not supported (only concept is-a, descendent-of, =)", ref, f.Property)
				case f.Op == "is-a":
					codes = sys.below(f.Value, true)
				case f.Op == "descendent-of":
					codes = sys.below(f.Value, false)
				case f.Op == "=":
					if sys.has(f.Value) {
						codes = []string{f.Value}
					}
				default:
					return nil, badRequest(param, "ValueSet %s: filter op %q is not supported (only is-a, descendent-of, =)", ref, f.Op)
				}
				next := map[string]bool{}
				for _, c := range codes {
					if keep == nil || keep[c] {
						next[c] = true
					}
				}
				keep = next
			}
			for _, c := range sys.order {
				if keep[c] {
					result = append(result, Code{cs.System, c})
				}
			}
		default:
			// The whole system: its codes when it is stored here with
			// them, otherwise every code of the system (a system| token).
			sys, err := e.codeSystem(ctx, param, cs.System)
			if err != nil {
				return nil, err
			}
			if sys == nil || len(sys.order) == 0 || sys.content != "complete" {
				result = []Code{{System: cs.System}}
				break
			}
			if len(sys.order) > MaxCodes {
				return nil, tooLarge(param, "ValueSet "+ref+" (all of "+cs.System+")")
			}
			for _, c := range sys.order {
				result = append(result, Code{cs.System, c})
			}
		}
	}
	for _, imp := range cs.ValueSet {
		codes, err := e.valueSet(ctx, param, imp, path)
		if err != nil {
			return nil, err
		}
		if !have {
			result, have = codes, true
			continue
		}
		result = intersect(result, codes)
	}
	return result, nil
}

// intersect keeps the codes of a that are in b; a whole system on either
// side stands for every code of it.
func intersect(a, b []Code) []Code {
	inB := map[Code]bool{}
	for _, c := range b {
		inB[c] = true
	}
	var out []Code
	for _, c := range a {
		switch {
		case inB[c], c.Code != "" && inB[Code{System: c.System}]:
			out = append(out, c)
		case c.Code == "":
			for _, d := range b {
				if d.System == c.System {
					out = append(out, d)
				}
			}
		}
	}
	return out
}
