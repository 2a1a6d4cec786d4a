package rest

import (
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// TestDirectoryInREADME: the directory table in the README lists exactly
// the types of the table in code.
func TestDirectoryInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "| type | why a portal needs it |")
	if !ok {
		t.Fatal("README has no directory table")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	var inREADME []string
	for _, m := range regexp.MustCompile(`(?m)^\| ([A-Za-z]+) \|`).FindAllStringSubmatch(section, -1) {
		inREADME = append(inREADME, m[1])
	}
	var inCode []string
	for typ := range directory {
		inCode = append(inCode, typ)
	}
	slices.Sort(inREADME)
	slices.Sort(inCode)
	if !slices.Equal(inREADME, inCode) {
		t.Errorf("README directory types %v, code %v", inREADME, inCode)
	}
}

// TestPortalInREADME: the portal table in the README lists exactly the
// types of the table in code, and every parameter it names is a reference
// parameter of the type (a typo would silently reach nothing).
func TestPortalInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "| portal type | reached when | why a portal needs it |")
	if !ok {
		t.Fatal("README has no portal table")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	var inREADME, inCode []string
	for _, m := range regexp.MustCompile(`(?m)^\| ([A-Za-z]+) \|`).FindAllStringSubmatch(section, -1) {
		inREADME = append(inREADME, m[1])
	}
	reg := search.Default()
	for _, typ := range search.PortalTypes() {
		pr, _ := search.Portal(typ)
		inCode = append(inCode, typ)
		if !strings.Contains(section, "| "+typ+" |") || !strings.Contains(section, pr.Why) {
			t.Errorf("README portal row of %s does not say %q", typ, pr.Why)
		}
		params := slices.Clone(pr.Params)
		if pr.Via != "" {
			params = append(params, pr.Via)
		}
		for _, p := range params {
			if sp, ok := reg.Param(typ, p); !ok || sp.Type != search.Reference {
				t.Errorf("%s: %s is not a reference search parameter", typ, p)
			}
		}
		for _, target := range pr.Through {
			if _, ok := reg.RecordClause("p1", target); !ok {
				t.Errorf("%s goes through %s, which is in no patient's record", typ, target)
			}
		}
	}
	slices.Sort(inREADME)
	slices.Sort(inCode)
	if !slices.Equal(inREADME, inCode) {
		t.Errorf("README portal types %v, code %v", inREADME, inCode)
	}
}

// TestSatisfies: a granular restriction evaluated on a resource agrees
// with the token matching of search.html#token that the store applies.
func TestSatisfies(t *testing.T) {
	reg := search.Default()
	body := []byte(`{"resourceType":"Observation","id":"o1","status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],` +
		`"code":{"coding":[{"code":"nosys"}]},"subject":{"reference":"Patient/p1"}}`)
	entries, err := reg.Extract("Observation", body)
	if err != nil {
		t.Fatal(err)
	}
	doc := &document{typ: "Observation", id: "o1", entries: entries}
	cases := []struct {
		query string
		want  bool
	}{
		{"category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true},
		{"category=laboratory", true},
		{"category=http://terminology.hl7.org/CodeSystem/observation-category|", true},
		{"category=|laboratory", false},
		{"category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", false},
		{"category=vital-signs,laboratory", true},
		{"code=|nosys", true},
		{"code=http://loinc.org|nosys", false},
		{"subject=Patient/p1", true},
		{"subject=Patient/p2", false},
		{"_id=o1", true},
		{"status:not=final", false}, // modifiers are not evaluated: fail closed
		{"date=ge2020", false},      // nor other parameter types
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, _, err := reg.Parse([]string{"Observation"}, v, search.ParseOptions{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := satisfies(doc, &q.Filter[0]); got != tc.want {
				t.Errorf("satisfies = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOperationAccessRows: every operation routed has a row in the
// operation → scope table, and every row names an operation, with SMART
// letters only. An operation without a row would be refused to every
// token (fail closed) — a new operation must say what it needs.
func TestOperationAccessRows(t *testing.T) {
	routed := map[string]bool{}
	for _, op := range operations {
		routed[op.name] = true
		if _, ok := operationAccess[op.name]; !ok {
			t.Errorf("$%s has no row in operationAccess", op.name)
		}
	}
	for name, acc := range operationAccess {
		if !routed[name] {
			t.Errorf("operationAccess names $%s, which is not routed", name)
		}
		for _, letters := range []string{acc.typeLevel, acc.instance, acc.returns} {
			if strings.Trim(letters, "cruds") != "" {
				t.Errorf("$%s: %q is not a subset of cruds", name, letters)
			}
		}
	}
}

// TestOperationAccessInREADME: the README's operation → scope table
// names exactly the operations of operationAccess.
func TestOperationAccessInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "| operation | invoked on | needs | returns |")
	if !ok {
		t.Fatal("README has no operation → scope table")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	var inREADME, inCode []string
	for _, m := range regexp.MustCompile("(?m)^\\| `\\$([a-z-]+)` \\|").FindAllStringSubmatch(section, -1) {
		if !slices.Contains(inREADME, m[1]) {
			inREADME = append(inREADME, m[1])
		}
	}
	for name := range operationAccess {
		inCode = append(inCode, name)
	}
	slices.Sort(inREADME)
	slices.Sort(inCode)
	if !slices.Equal(inREADME, inCode) {
		t.Errorf("README operations %v, code %v", inREADME, inCode)
	}
}
