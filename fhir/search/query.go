package search

import "time"

// Query is a parsed search (search.html), neutral to any backend: the REST
// layer builds it with Parse and a store compiles it to its own query
// language. Every value in it is already typed and normalised the same way
// Extract normalises index entries, so a backend compares like with like
// and never interprets client text (no operator or SQL injection surface).
type Query struct {
	// Types are the resource types searched: one for a type-level search,
	// the _type list (or nil: every type) for a system-level one.
	Types []string
	// Filter is a conjunction: a resource matches when every clause does.
	Filter []Clause
	// Sort orders matches (_sort); the backend breaks ties by a stable,
	// unique key so paging never repeats or skips a resource.
	Sort []SortKey
	// Count is the page size (_count): 0 asks for no entries (a total only).
	Count int
	// Total is how much effort to spend on Bundle.total (_total); empty
	// when the client did not ask, leaving it to the server.
	Total TotalMode
	// Cursor continues a previous page; empty starts at the first.
	Cursor string

	// Include lists _include and _revinclude, by parameter name (_include,
	// _include:iterate, _revinclude, …) and in the order given.
	Include []Include
	// Summary is _summary ("true", "text", "data", "count", "false"), or
	// empty when not asked. "count" also sets Count 0 and Total accurate.
	Summary string
	// Elements is _elements: the top-level elements to return.
	Elements []string
}

// Include is one _include or _revinclude (search.html#include).
//
//	_include=MedicationRequest:patient          {Type: MedicationRequest, Param: patient}
//	_include=MedicationRequest:subject:Patient  {…, Target: Patient}
//	_include=*                                  {Type: *, Param: *}
//	_revinclude=Provenance:target               {Type: Provenance, Param: target, Reverse: true}
//
// For _include, Type is the type of the resources whose reference
// parameter Param is followed; for _revinclude, the type of the resources
// included, which point at the matches through Param. Target, when set,
// restricts the type at the other end. Iterate (":iterate", or the older
// ":recurse") applies it to included resources too.
type Include struct {
	Type, Param, Target string
	Reverse, Iterate    bool
}

// TotalMode is _total (search.html#total).
type TotalMode string

const (
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)

// SortKey is one _sort parameter.
type SortKey struct {
	Param      string // a search parameter of every type in Query.Types, or _id, _lastUpdated
	Type       Type
	Descending bool
}

// Clause is one occurrence of a search parameter: it matches when any of
// its Values matches (a comma-separated list is an OR).
type Clause struct {
	// Param is the parameter's code ("birthdate", "_id"), Type its type.
	// Param "_type" (Type Token, each Value's Code a resource type) tests
	// the resource's own type: Parse never produces it (it reads _type
	// into Query.Types); access control uses it inside Any and All to
	// confine each type of a several-type search by that type's rule.
	// It never drives a query on its own.
	Param string
	Type  Type
	// Modifier is the modifier after ':' without it: "", "missing",
	// "exact", "contains", "text", "not", "above", "below", "in",
	// "not-in", "of-type", "identifier", or for a reference
	// ":[type]" the type name in TargetType with Modifier "type".
	Modifier   string
	TargetType string
	// Values are alternatives (OR). For :missing there is one value whose
	// Missing field says true or false.
	Values []Value
	// Chain, when set, makes this a chained search (search.html#chaining):
	// the clause matches resources whose reference Param points at a
	// resource of type Chain.Types (one of them) that matches Chain.Filter.
	// Values are then empty.
	Chain *Chain
	// Any, when set, makes the clause a disjunction of other clauses: it
	// matches when one of them does. Parse never produces it; the server
	// uses it for compartments (Patient/123/Observation is subject or
	// performer or … pointing at Patient/123). Param, Values empty.
	Any []Clause
	// All, when set, makes the clause a conjunction of other clauses: it
	// matches when every one of them does. Parse never produces it; the
	// server's access control uses it (a compartment and a granular scope
	// restriction, inside an Any of several scopes). Param, Values empty.
	All []Clause
	// Has, when set, is a reverse chain (search.html#has): the clause
	// matches resources that some resource of type Has.Type references
	// through Has.Param and that matches Has.Filter. Param, Values empty.
	Has *Has
}

// Chain is the target side of a chained parameter.
type Chain struct {
	Types  []string // the target types (the :[type] modifier, or every target of the parameter)
	Filter Clause   // the parameter after the dot, itself possibly chained
}

// Has is a _has reverse chain.
type Has struct {
	Type   string // the referring type (_has:Observation:…)
	Param  string // its reference parameter pointing here (…:patient:…)
	Filter Clause // the condition on the referring resource (…:code=1234), possibly another _has
}

// Prefix is a comparison prefix (search.html#prefix).
type Prefix string

const (
	Eq Prefix = "eq"
	Ne Prefix = "ne"
	Gt Prefix = "gt"
	Lt Prefix = "lt"
	Ge Prefix = "ge"
	Le Prefix = "le"
	Sa Prefix = "sa"
	Eb Prefix = "eb"
	Ap Prefix = "ap"
)

// Value is one search value, typed by the parameter type:
//
//	string     Text: folded like Entry.Text (Phonetic for phonetic params);
//	           Raw keeps the client's text for :exact.
//	token      System, Code; HasSystem distinguishes "|code" (no system)
//	           from "code" (any system); for :text, Text (folded).
//	           For :of-type, Components hold type system/code and Code the value.
//	date       Prefix, Start, End: the range the value's precision covers.
//	           Prefix is never empty: no prefix is Eq (also for number
//	           and quantity).
//	number     Prefix, Num, Lo, Hi: the value and its implicit range
//	           (search.html#number: with gt lt ge le sa eb the precision
//	           is ignored, so compare Num; eq ne ap use [Lo, Hi)).
//	quantity   as number, plus System, Code (unit code, or the unit text
//	           when no system is given).
//	reference  Ref: "Type/id", an absolute URL, or a canonical URL with
//	           Value holding the version (like Entry.Value: "canonical|1.0"
//	           and "Patient/1/_history/2" give "1.0", "2"); RefType the
//	           type of a "Type/id" or of an absolute URL that ends in one.
//	           A bare "id" (no '/', no ':') keeps Ref "id" with RefType
//	           empty for the backend to match any type, unless the
//	           parameter has a single target type (then "Type/id").
//	           For :identifier, System and Code.
//	uri        Value (exact), or Value as prefix for :below / :above.
//	composite  Components: one Value per component, in order.
//	special    near: Components latitude, longitude (numbers) and, when
//	           a distance is given, a third: the distance as a quantity
//	           (Num, Code the unit, default "km").
type Value struct {
	Raw    string
	Prefix Prefix

	Text      string
	System    string
	Code      string
	HasSystem bool
	Value     string
	Ref       string
	RefType   string

	Num, Lo, Hi float64
	Start, End  time.Time

	Missing    bool
	Components []Value
}
