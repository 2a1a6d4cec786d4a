package search

import (
	"math"
	"time"
)

// Entry is one index entry: a value a resource is found by, for one
// parameter, normalised for its type. It is a plain value that a SQL
// table (one column per field) and a MongoDB array of subdocuments can
// both store and index. Which fields are set depends on Type:
//
//	string     Value (as written, for :exact), Text (Fold(Value), for the
//	           default starts-with and :contains; a Phonetic parameter
//	           holds Phonetic keys instead). HumanName and Address give one
//	           entry per part and one for the whole. _text has Text only:
//	           the narrative's plain text, folded.
//	token      System, Code; Text is the folded display or text, for :text.
//	           Codes, ids, strings and uris give Code only; booleans Code
//	           "true"/"false"; an Identifier System|value, with the codings
//	           of its type as Components (for :of-type); a ContactPoint
//	           its value; a CodeableConcept one entry per coding and one for
//	           its text.
//	date       Start, End: the range [Start, End) the value covers at its
//	           precision (2013-01 is January). A Period without start or end
//	           is open: MinTime, MaxTime. A Timing spans its events.
//	number     Value (the decimal as written: "5.40"), Num (its value), Lo,
//	           Hi (the range [Lo, Hi) its precision covers: 5.40 →
//	           [5.395, 5.405), search.html#number). A Range has Lo, Hi only.
//	quantity   as number, plus System, Code and Unit. A comparator ("<5")
//	           opens the range on its side (-MaxNumber, MaxNumber). Money
//	           has System "urn:iso:std:iso:4217" and its currency as Code.
//	reference  Ref: "Type/id" for a relative reference or an absolute one
//	           under a configured base, the absolute URL otherwise, "#id"
//	           for a contained resource, the URL of a canonical; Value: the
//	           version (…/_history/2, canonical|1.0). System and Code:
//	           the reference's identifier, for :identifier.
//	uri        Value.
//	composite  Components: one entry per component, in order; one tuple
//	           per combination of the components' values.
//	special    near: Components latitude, longitude (numbers).
//
// A parameter with no value has no entry: :missing=true is "no entry for
// the parameter".
type Entry struct {
	Param string `json:"param"`
	Type  Type   `json:"type"`

	Value  string `json:"value,omitempty"`
	Text   string `json:"text,omitempty"`
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
	Unit   string `json:"unit,omitempty"`
	Ref    string `json:"ref,omitempty"`

	Num float64 `json:"num,omitempty"`
	Lo  float64 `json:"lo,omitempty"`
	Hi  float64 `json:"hi,omitempty"`

	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`

	Components []Entry `json:"components,omitempty"`
}

// The bounds of open ranges. They are finite, so that every store can
// hold them: a Period without end ends at MaxTime, a quantity "<5" starts
// at -MaxNumber. Dates are in UTC at millisecond precision (what BSON
// keeps); a range finer than that is widened to whole milliseconds.
var (
	MinTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// MaxNumber bounds open number and quantity ranges.
const MaxNumber = math.MaxFloat64

func (e *Entry) equal(o *Entry) bool {
	if e.Param != o.Param || e.Type != o.Type || e.Value != o.Value || e.Text != o.Text ||
		e.System != o.System || e.Code != o.Code || e.Unit != o.Unit || e.Ref != o.Ref ||
		e.Num != o.Num || e.Lo != o.Lo || e.Hi != o.Hi || !e.Start.Equal(o.Start) || !e.End.Equal(o.End) ||
		len(e.Components) != len(o.Components) {
		return false
	}
	for i := range e.Components {
		if !e.Components[i].equal(&o.Components[i]) {
			return false
		}
	}
	return true
}
