package sqlite

import "github.com/kiln-fhir/kiln/fhir/search"

// groupTokens is the number of token values above which tokenValues
// groups them: below it each value is its own seek, as before.
const groupTokens = 16

// tokenValues is tokenValue for each value of an OR list. A long list —
// an expanded ValueSet or subsumption (fhir/terminology) can send up to a
// thousand codes — is grouped into one "code IN (…)" seek per system,
// because SQLite caps a compound SELECT at 500 terms and an expression
// tree at depth 1000, and one seek per code would pass both.
func tokenValues(vs []search.Value, code, system string) []frag {
	var out []frag
	if len(vs) <= groupTokens {
		for i := range vs {
			out = append(out, tokenValue(&vs[i], code, system)...)
		}
		return out
	}
	var (
		systems []string
		codes   = map[string][]any{}
		anyCode []any // codes of any system
	)
	for i := range vs {
		v := &vs[i]
		switch {
		case v.Code == "":
			out = append(out, tokenValue(v, code, system)...) // system| (or nothing)
		case v.HasSystem || v.System != "":
			if _, seen := codes[v.System]; !seen {
				systems = append(systems, v.System)
			}
			codes[v.System] = append(codes[v.System], v.Code)
		default:
			anyCode = append(anyCode, v.Code)
		}
	}
	for _, s := range systems {
		cs := codes[s]
		out = append(out, frag{code + " IN (" + placeholders(len(cs)) + ") AND " + system + " = ?", append(cs, s)})
	}
	if len(anyCode) > 0 {
		out = append(out, frag{code + " IN (" + placeholders(len(anyCode)) + ")", anyCode})
	}
	return out
}
