package mongo

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// groupTokens is the number of token values above which tokenListConds
// groups them: below it each value is its own alternative, as before.
const groupTokens = 16

// tokenListConds is tokenConds for each value of an OR list. A long list —
// an expanded ValueSet or subsumption (fhir/terminology) can send up to a
// thousand codes — becomes one {c: {$in: […]}, s: system} per system
// instead of an $or of a thousand branches, which the index answers with
// one scan per code either way but which costs far less to plan (and, on
// FerretDB, to evaluate).
func tokenListConds(vs []search.Value, x string) []bson.D {
	var out []bson.D
	if len(vs) <= groupTokens {
		for i := range vs {
			out = append(out, tokenConds(&vs[i], x)...)
		}
		return out
	}
	var (
		systems []string
		codes   = map[string]bson.A{}
		anyCode bson.A // codes of any system
	)
	for i := range vs {
		v := &vs[i]
		switch {
		case v.Code == "":
			out = append(out, tokenConds(v, x)...) // system| (or nothing)
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
		out = append(out, bson.D{{Key: x + "c", Value: cmp("$in", codes[s])}, {Key: x + "s", Value: s}})
	}
	if len(anyCode) > 0 {
		out = append(out, bson.D{{Key: x + "c", Value: cmp("$in", anyCode)}})
	}
	return out
}
