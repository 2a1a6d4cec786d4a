package search

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// hostileTargets are the parameters every hostile value is sent to: one
// of each type, a chain and a _has.
var hostileTargets = []struct{ typ, param string }{
	{"Patient", "name"},                          // string
	{"Patient", "identifier"},                    // token
	{"Patient", "birthdate"},                     // date
	{"RiskAssessment", "probability"},            // number
	{"Observation", "value-quantity"},            // quantity
	{"Patient", "general-practitioner"},          // reference
	{"ValueSet", "url"},                          // uri
	{"Observation", "code-value-quantity"},       // composite
	{"Patient", "_id"},                           // token, exact
	{"Location", "near"},                         // special
	{"Patient", "_text"},                         // narrative
	{"Observation", "subject:Patient.name"},      // chain
	{"Patient", "_has:Observation:patient:code"}, // reverse chain
}

// Each hostile value, sent to each target in turn: 'd' when it must be
// taken as plain data (the clause's value is the text sent), '4' when it
// must be a 400 OperationOutcome. Never a panic, never an operator.
var hostileValues = []struct {
	name, value, want string
}{
	{"single quote", `'`, "dd444dd4d4ddd"},
	{"double quote", `"`, "dd444dd4d4ddd"},
	{"percent", `%`, "dd444dd4d4ddd"},
	{"underscore", `_`, "dd444dd4d4ddd"},
	{"LIKE pattern", `%a_b%`, "dd444dd4d4ddd"},
	{"backslash", `\`, "dd444dd4d4ddd"},
	{"SQL", `' OR 1=1 --`, "dd444dd4d4ddd"},
	{"SQL statement", `'; DROP TABLE resources; --`, "dd444dd4d4ddd"},
	{"Mongo operator", `{"$ne":1}`, "dd444dd4d4ddd"},
	{"Mongo where", `$where: 1`, "dd444dd4d4ddd"},
	{"double encoded", `%27%20OR%20%271%27%3D%271`, "dd444dd4d4ddd"},
	{"markup", `<script>alert(1)</script>`, "dd444dd4d4ddd"},
	{"path", `../../etc/passwd`, "dd444dd4d4ddd"},
	{"NUL", "a\x00b", "dd444dd4d4ddd"},
	{"invalid UTF-8", "\xff\xfe", "dd444dd4d4ddd"},
	{"regex", `.*`, "dd444dd4d4ddd"},
	{"prefix on a string", `gt2020`, "ddddddd4d4ddd"},
	{"month 13", `2020-13`, "dd444dd4d4ddd"},
	{"NaN", `NaN`, "dd444dd4d4ddd"},
	{"huge exponent", `1e99999`, "dd444dd4d4ddd"},
	{"10 kB", strings.Repeat("a", 10<<10), "4444444444444"},
}

func TestParseHostile(t *testing.T) {
	for _, h := range hostileValues {
		for i, target := range hostileTargets {
			t.Run(h.name+"/"+target.param, func(t *testing.T) {
				q, _, err := Parse([]string{target.typ}, url.Values{target.param: {h.value}}, ParseOptions{})
				if h.want[i] == '4' {
					if err == nil {
						t.Fatalf("accepted: %s", dump(q.Filter))
					}
					checkRefusal(t, err)
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(q.Filter) != 1 {
					t.Fatalf("filter %s", dump(q.Filter))
				}
				c := &q.Filter[0]
				for c.Chain != nil || c.Has != nil {
					if c.Chain != nil {
						c = &c.Chain.Filter
					} else {
						c = &c.Has.Filter
					}
				}
				if len(c.Values) != 1 || c.Values[0].Raw != unescape(h.value) {
					t.Errorf("not taken as data: %s", dump(c))
				}
			})
		}
	}
}

// checkRefusal: a 400 OperationOutcome whose issues name the parameter
// and say why, without echoing a long value back.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var oe *outcome.Error
	if !errors.As(err, &oe) || oe.Status != 400 || len(oe.Issues) == 0 {
		t.Fatalf("error %v, want a 400 *outcome.Error", err)
	}
	for _, is := range oe.Issues {
		if is.Severity != outcome.SevError || is.Code == "" || is.Diagnostics == "" || len(is.Diagnostics) > 500 {
			t.Errorf("issue %+v", is)
		}
	}
}

// Whole hostile queries: the bounds on the work one search asks for.
func TestParseBounds(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, "&")
	}
	for _, tc := range []struct {
		name, query string
		code        string // the issue code; "" when accepted
	}{
		{"100 clauses", many(100, func(int) string { return "name=x" }), ""},
		{"101 clauses", many(101, func(int) string { return "name=x" }), outcome.CodeTooCostly},
		{"100 alternatives", "name=" + many(100, func(int) string { return "x" }), ""},
		{"101 alternatives", "name=" + strings.Repeat("x,", 100) + "x", outcome.CodeTooCostly},
		{"201 parameters", many(201, func(i int) string { return "p" + strings.Repeat("x", i%7) + "=1" }), outcome.CodeTooCostly},
		{"4 kB value", "name=" + strings.Repeat("a", 4<<10), ""},
		{"4 kB + 1", "name=" + strings.Repeat("a", 4<<10+1), outcome.CodeTooCostly},
		{"long parameter name", strings.Repeat("a", 300) + "=1", outcome.CodeTooCostly},
		{"ten _has", strings.Repeat("_has:Patient:link:", 10) + "name=x", outcome.CodeTooCostly},
		{"chain ten levels", "organization" + strings.Repeat(".partof", 9) + ".name=x", outcome.CodeTooCostly},
		{"_count=-1", "_count=-1", outcome.CodeInvalid},
		{"_count=1e9", "_count=1e9", outcome.CodeInvalid},
		{"_sort unknown", "_sort=nonesuch", outcome.CodeInvalid},
		{"_sort SQL", "_sort=name%3BDROP", outcome.CodeInvalid},
		{"tampered paging token", "_page=%27%20OR%201%3D1", ""},
		{"unknown parameter lenient", "nonesuch=1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, _, err := Parse([]string{"Patient"}, params, ParseOptions{})
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if q.Cursor != params.Get("_page") {
					t.Errorf("cursor %q", q.Cursor)
				}
				return
			}
			checkRefusal(t, err)
			var oe *outcome.Error
			errors.As(err, &oe)
			if oe.Issues[0].Code != tc.code {
				t.Errorf("code %s, want %s: %v", oe.Issues[0].Code, tc.code, err)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic or fail other than with a 400,
// and what it applies reads back as the same query.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.query)
	}
	for _, h := range hostileValues[:len(hostileValues)-1] {
		f.Add("name=" + url.QueryEscape(h.value))
	}
	f.Fuzz(func(t *testing.T, query string) {
		params, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, types := range [][]string{{"Patient"}, {"Observation"}, nil} {
			q, rep, err := Parse(types, params, ParseOptions{})
			if err != nil {
				var oe *outcome.Error
				if !errors.As(err, &oe) || oe.Status != 400 || len(oe.Issues) == 0 {
					t.Fatalf("%q: error %v", query, err)
				}
				continue
			}
			again, err := url.ParseQuery(rep.Self)
			if err != nil {
				t.Fatalf("%q: self %q: %v", query, rep.Self, err)
			}
			q2, rep2, err := Parse(types, again, ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("%q: self %q: %v", query, rep.Self, err)
			}
			q2.Cursor = q.Cursor
			if !reflect.DeepEqual(q, q2) || rep.Self != rep2.Self {
				t.Fatalf("%q: self %q reads as\n%s\nnot\n%s", query, rep.Self, dump(q2), dump(q))
			}
		}
	})
}
