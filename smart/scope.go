package smart

import (
	"net/url"
	"slices"
	"strings"
)

// Scope is one SMART resource scope, normalised
// (scopes-and-launch-context.html#scopes-for-requesting-fhir-resources).
type Scope struct {
	Context string     // "patient", "user" or "system"
	Type    string     // resource type or "*"
	Ops     string     // v2 letters in the order c, r, u, d, s
	Query   url.Values // granular restriction (?category=…), nil if none
	Raw     string
}

// v1 suffixes and what they mean in v2 letters
// (scopes-and-launch-context.html#scope-equivalence).
var v1Ops = map[string]string{"read": "rs", "write": "cud", "*": "cruds"}

// ParseScope parses a resource scope. It answers false for everything
// else: identity and launch scopes (openid, fhirUser, launch/patient,
// offline_access…) and malformed resource scopes. Out-of-order or unknown
// v2 letters (".dus", ".rx") are refused rather than guessed: the spec
// allows ignoring them and forbids reading them as broader access.
func ParseScope(s string) (Scope, bool) {
	sc := Scope{Raw: s}
	rest := s
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil || len(q) == 0 {
			return Scope{}, false
		}
		sc.Query = q
		rest = rest[:i]
	}
	ctx, rest, ok := strings.Cut(rest, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return Scope{}, false
	}
	typ, ops, ok := strings.Cut(rest, ".")
	if !ok || !validType(typ) {
		return Scope{}, false
	}
	if v, ok := v1Ops[ops]; ok {
		ops = v
	} else if !validOps(ops) {
		return Scope{}, false
	}
	sc.Context, sc.Type, sc.Ops = ctx, typ, ops
	return sc, true
}

func validType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validOps: one or more of c r u d s, each at most once, in that order.
func validOps(ops string) bool {
	const order = "cruds"
	if ops == "" {
		return false
	}
	pos := 0
	for _, c := range ops {
		i := strings.IndexRune(order[pos:], c)
		if i < 0 {
			return false
		}
		pos += i + 1
	}
	return true
}

// covers reports whether a client registered for reg may be granted the
// requested scope req. Resource scopes compare by context, type ("*"
// covers every type), letters (a subset) and restriction (an unrestricted
// registration covers any restriction of it; a restricted one covers only
// the same restriction). Every other scope must be registered verbatim.
func covers(reg, req string) bool {
	if reg == req {
		return true
	}
	r, ok1 := ParseScope(reg)
	q, ok2 := ParseScope(req)
	if !ok1 || !ok2 || r.Context != q.Context {
		return false
	}
	if r.Type != "*" && r.Type != q.Type {
		return false
	}
	for _, c := range q.Ops {
		if !strings.ContainsRune(r.Ops, c) {
			return false
		}
	}
	return r.Query == nil || r.Query.Encode() == q.Query.Encode()
}

// scopeStrategy is fosite's ScopeStrategy: may a client whose registered
// scopes are haystack be granted needle?
func scopeStrategy(haystack []string, needle string) bool {
	return slices.ContainsFunc(haystack, func(reg string) bool { return covers(reg, needle) })
}

// allowed keeps the requested scopes the registration covers, in request
// order, without duplicates (RFC 6749 §3.3: the server may grant less
// than asked and says so in the token response's scope).
func allowed(registered, requested []string) (keep, cut []string) {
	for _, s := range requested {
		switch {
		case s == "" || slices.Contains(keep, s):
		case scopeStrategy(registered, s):
			keep = append(keep, s)
		default:
			cut = append(cut, s)
		}
	}
	return keep, cut
}

// categories are the categories for which the consent page offers
// granular scopes in place of a resource-level Condition or Observation
// scope: those ONC HTI-1 (g)(10) names (checklist C-SC-07; US Core 6
// "SMART scopes").
var categories = map[string][]string{
	"Condition": {
		"http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis",
		"http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item",
		"http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern",
	},
	"Observation": {
		"http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"http://terminology.hl7.org/CodeSystem/observation-category|social-history",
		"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
		"http://terminology.hl7.org/CodeSystem/observation-category|survey",
		"http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh",
	},
}

// granular lists the category scopes a user may grant instead of the
// requested scope sc (scopes-and-launch-context.html#finer-grained-
// resource-constraints-using-search-parameters; C-SC-07: "the
// authorization UI must let the patient grant sub-resource scopes
// instead"): for a resource-level Condition or Observation scope that
// reads or searches, one per category, with sc's context and its r and s
// letters. Each is within sc (covers), so it is within the client's
// registration too. Nil for any other scope.
func granular(sc string) []string {
	p, ok := ParseScope(sc)
	if !ok || p.Query != nil {
		return nil
	}
	var ops string
	for _, c := range "rs" {
		if strings.ContainsRune(p.Ops, c) {
			ops += string(c)
		}
	}
	if ops == "" {
		return nil
	}
	var out []string
	for _, cat := range categories[p.Type] {
		out = append(out, p.Context+"/"+p.Type+"."+ops+"?category="+cat)
	}
	return out
}

var opWords = map[rune]string{'c': "create", 'r': "read", 'u': "update", 'd': "delete", 's': "search"}

var contextWords = map[string]string{
	"openid":           "Know who you are",
	"fhirUser":         "Know which person record (patient or practitioner) is yours",
	"launch":           "Receive the record that is open in your health system",
	"launch/patient":   "Know which patient record to work with",
	"launch/encounter": "Know which visit to work with",
	"offline_access":   "Keep access after you log out, until you revoke it",
	"online_access":    "Keep access while you stay logged in",
}

// describe says a scope in plain words for the consent page.
func describe(s string) string {
	if w, ok := contextWords[s]; ok {
		return w
	}
	sc, ok := ParseScope(s)
	if !ok {
		return s
	}
	var ops []string
	for _, c := range sc.Ops {
		ops = append(ops, opWords[c])
	}
	what := sc.Type + " records"
	if sc.Type == "*" {
		what = "all kinds of records"
	}
	whose := map[string]string{
		"patient": "of the selected patient",
		"user":    "you are allowed to see",
		"system":  "on this server",
	}[sc.Context]
	d := strings.ToUpper(strings.Join(ops, ", ")[:1]) + strings.Join(ops, ", ")[1:] + " " + what + " " + whose
	if sc.Query != nil {
		var parts []string
		for k, vs := range sc.Query {
			for _, v := range vs {
				if _, code, ok := strings.Cut(v, "|"); ok {
					v = code
				}
				parts = append(parts, k+" "+v)
			}
		}
		slices.Sort(parts)
		d += " (only " + strings.Join(parts, ", ") + ")"
	}
	return d
}
