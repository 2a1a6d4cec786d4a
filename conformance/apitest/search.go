package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// testSearch is FHIR search over HTTP (search.html, http.html#search):
// the corpus cases on Synthea and the official examples, scenarios on data
// of their own, and the conditional interactions that rest on search.
func testSearch(t *testing.T, c *Client, opts Options) {
	// The corpus first, while the server holds nothing else.
	t.Run("corpus", func(t *testing.T) {
		if opts.SkipCorpus {
			t.Skip("Options.SkipCorpus")
		}
		cc := *c
		cc.T = t
		loadCorpus(t, &cc, opts)
		for _, sc := range slices.Concat(searchCases(), terminologyCases(), listCases(), compartmentAllCases()) {
			t.Run(sc.name, func(t *testing.T) {
				cc := *c
				cc.T = t
				runSearchCase(t, &cc, sc)
			})
		}
	})
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *Client)
	}{
		{"string matching", testSearchStrings},
		{"token escapes and AND", testSearchTokens},
		{"chains are evaluated one by one", testSearchChainIndependence},
		{"writes show in search", testSearchFollowsWrites},
		{"paging while data changes", testSearchPagingStable},
		{"tampered paging links", testSearchTamperedLinks},
		{"previous and first links", testSearchPagingBack},
		{"POST search continues by GET or POST", testSearchPostPaging},
		{"an ambiguous bare id", testSearchAmbiguousID},
		{"codes match whatever their case", testSearchTokenCase},
		{"ValueSets, CodeSystems and Lists", testSearchResolved},
		{"every type of a compartment", testSearchCompartmentAll},
		{"_list in the CapabilityStatement", testListCapability},
		{"conditional create", testConditionalCreate},
		{"conditional update", testConditionalUpdate},
		{"conditional delete", testConditionalDelete},
	} {
		t.Run(sc.name, func(t *testing.T) {
			cc := *c
			cc.T = t
			sc.run(t, &cc)
		})
	}
}

// searchCase is one search and the answer the specification gives on the
// corpus, written down from the data files and search.html.
type searchCase struct {
	name string
	// query is the search relative to the base: "Patient?name=x" (type),
	// "?_type=…" (system), "Patient/x/Observation" (compartment); {base}
	// stands for the base URL.
	query string
	// body, when set, makes it a POST with a form body (query is then the
	// _search path, possibly with parameters of its own).
	body   string
	header []string // alternating key, value
	// status, when set, is the error expected, with an OperationOutcome.
	status int
	// either accepts a 400 OperationOutcome as well as the result in want
	// (hostile input: a clear refusal or a correct answer, never more).
	either bool
	// want are the matches ("Type/id") over every page, in any order.
	want []string
	// groups, for _sort, are the matches in order; the members of a group
	// tie and may come in any order.
	groups [][]string
	// total, when set, is the Bundle.total required.
	total *int
	// incl are the resources included (search.mode include) over every
	// page; none unless listed.
	incl []string
	// check makes more assertions on the result.
	check func(testing.TB, *searchResult)
}

func n(i int) *int { return &i }

// searchBundle is a searchset page as read from the wire.
type searchBundle = wireBundle

// searchEntry is one entry of a page, decoded.
type searchEntry struct {
	key      string // "Type/id"
	mode     string
	resource map[string]any
}

// searchResult is a search followed through its next links.
type searchResult struct {
	pages    []searchBundle
	entries  [][]searchEntry // per page
	matches  []string        // in order, over every page
	included []string        // over every page, each once
	outcomes []map[string]any
	issues   []map[string]any // of a refusal
}

func (r *searchResult) self() string {
	if len(r.pages) == 0 {
		return ""
	}
	return r.pages[0].link("self")
}

// maxPages bounds how far a search is followed.
const maxPages = 200

// search runs a search and follows its next links, checking each page
// against search.html and bundle.html (A-SB-*). limit is the _count asked
// for (-1: none).
func search(t testing.TB, c *Client, method, path, body string, header []string, limit int) (*searchResult, Response) {
	t.Helper()
	var first Response
	if method == "POST" {
		first = c.Do("POST", path, []byte(body), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
	} else {
		first = c.Do("GET", path, nil, header...)
	}
	if first.Status != 200 {
		return nil, first
	}
	res := &searchResult{}
	seenMatch := map[string]bool{}
	seenInclude := map[string]bool{}
	r := first
	for page := 0; ; page++ {
		b, entries := readSearchPage(t, r, limit)
		res.pages = append(res.pages, b)
		res.entries = append(res.entries, entries)
		for _, e := range entries {
			switch e.mode {
			case "match":
				if seenMatch[e.key] {
					t.Errorf("page %d: %s matches again (already on an earlier page)", page+1, e.key)
				}
				seenMatch[e.key] = true
				res.matches = append(res.matches, e.key)
			case "include":
				if !seenInclude[e.key] {
					seenInclude[e.key] = true
					res.included = append(res.included, e.key)
				}
			case "outcome":
				res.outcomes = append(res.outcomes, e.resource)
			}
		}
		next := b.link("next")
		if next == "" {
			break
		}
		if page+1 == maxPages {
			t.Fatalf("still a next link after %d pages", maxPages)
		}
		// http.html#paging: links are followed with GET, whatever started the search.
		r = c.Do("GET", next, nil, header...)
		if r.Status != 200 {
			t.Fatalf("next page (%s): status %d\n%s", next, r.Status, truncate(r.Body))
		}
	}
	return res, first
}

// readSearchPage decodes one page and checks what every searchset must be.
func readSearchPage(t testing.TB, r Response, limit int) (searchBundle, []searchEntry) {
	t.Helper()
	var b searchBundle
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("searchset is not JSON: %v\n%s", err, truncate(r.Body))
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("a %s of type %q, want a searchset Bundle (A-SB-01)", b.ResourceType, b.Type)
	}
	if b.link("self") == "" {
		t.Errorf("no self link (A-SB-04)")
	}
	fullURLs := map[string]bool{}
	matches := 0
	var out []searchEntry
	for i, e := range b.Entry {
		if len(e.Resource) == 0 {
			t.Errorf("entry %d has no resource (A-SB-10)", i)
			continue
		}
		if e.Search == nil {
			t.Errorf("entry %d has no search.mode (A-SB-07)", i)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(e.Resource))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		typ, _ := m["resourceType"].(string)
		id, _ := m["id"].(string)
		se := searchEntry{mode: e.Search.Mode, resource: m}
		switch e.Search.Mode {
		case "match", "include":
			se.key = typ + "/" + id
			if typ == "" || id == "" {
				t.Errorf("entry %d: a %s entry without resourceType or id", i, e.Search.Mode)
			}
			if !strings.HasSuffix(e.FullURL, "/"+se.key) || strings.Contains(e.FullURL, "/_history/") {
				t.Errorf("entry %s: fullUrl %q is not the resource's version-independent URL (A-SB-11)", se.key, e.FullURL)
			}
			if fullURLs[e.FullURL] {
				t.Errorf("entry %s appears twice on one page (A-SB-11)", se.key)
			}
			fullURLs[e.FullURL] = true
			if e.Search.Mode == "match" {
				matches++
			}
		case "outcome":
			if typ != "OperationOutcome" {
				t.Errorf("entry %d: mode outcome on a %s", i, typ)
			}
			for _, is := range issueList(m) {
				if sev := is["severity"]; sev == "error" || sev == "fatal" {
					t.Errorf("an outcome entry with an %v issue in a searchset (A-SB-08): %v", sev, is)
				}
			}
		default:
			t.Errorf("entry %d: search.mode %q (A-SB-07)", i, e.Search.Mode)
		}
		out = append(out, se)
	}
	if limit >= 0 && matches > limit {
		t.Errorf("%d matches on a page with _count=%d (B-CNT-01)", matches, limit)
	}
	return b, out
}

func issueList(m map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := m["issue"].([]any)
	for _, is := range list {
		if im, ok := is.(map[string]any); ok {
			out = append(out, im)
		}
	}
	return out
}

// countParam is the _count a query asks for, or -1.
func countParam(query, body string) int {
	_, q, _ := strings.Cut(query, "?")
	n := -1
	for _, s := range []string{q, body} {
		v, err := url.ParseQuery(s)
		if err != nil {
			continue
		}
		if c, err := strconv.Atoi(v.Get("_count")); err == nil && c >= 0 && c <= 1000 {
			n = c
		}
	}
	return n
}

func runSearchCase(t *testing.T, c *Client, sc searchCase) {
	path := "/" + strings.ReplaceAll(sc.query, "{base}", c.Base)
	method := "GET"
	if sc.body != "" {
		method = "POST"
	}
	res, r := search(t, c, method, path, sc.body, sc.header, countParam(sc.query, sc.body))
	if sc.status != 0 || (sc.either && r.Status == 400) {
		want := sc.status
		if want == 0 {
			want = 400
		}
		issues := expectOutcome(t, r, want, sc.query)
		if sc.check != nil {
			sc.check(t, &searchResult{issues: issues})
		}
		return
	}
	if res == nil {
		t.Fatalf("status %d, want 200 and a searchset\n%s", r.Status, truncate(r.Body))
	}
	want := sc.want
	if sc.groups != nil {
		want = slices.Concat(sc.groups...)
	}
	compareSets(t, "matches", res.matches, want)
	if sc.groups != nil {
		checkOrder(t, res.matches, sc.groups)
	}
	compareSets(t, "included", res.included, sc.incl)
	if sc.total != nil {
		if got := res.pages[0].Total; got == nil || *got != *sc.total {
			t.Errorf("Bundle.total %v, want %d", fmtTotal(got), *sc.total)
		}
	}
	if sc.total != nil && len(want) == 0 && len(sc.incl) == 0 {
		// _summary=count (B-CNT-03): the total, no entries, no next link.
		if len(res.pages) != 1 || len(res.pages[0].Entry) > len(res.outcomes) {
			t.Errorf("_summary=count: %d pages, %d entries; want one page and no entries", len(res.pages), len(res.pages[0].Entry))
		}
	}
	if sc.check != nil {
		sc.check(t, res)
	}
}

func fmtTotal(p *int) string {
	if p == nil {
		return "absent"
	}
	return strconv.Itoa(*p)
}

// compareSets reports the difference between got and want as sets.
func compareSets(t testing.TB, what string, got, want []string) {
	t.Helper()
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range list {
			m[x] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var missing, extra []string
	for x := range w {
		if !g[x] {
			missing = append(missing, x)
		}
	}
	for x := range g {
		if !w[x] {
			extra = append(extra, x)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	sort.Strings(missing)
	sort.Strings(extra)
	t.Errorf("%s: got %d, want %d; missing %v; unexpected %v", what, len(g), len(w), short(missing), short(extra))
}

func short(list []string) []string {
	if len(list) > 12 {
		return append(list[:12:12], fmt.Sprintf("… %d more", len(list)-12))
	}
	return list
}

// checkOrder checks that the matches come group by group.
func checkOrder(t testing.TB, got []string, groups [][]string) {
	t.Helper()
	rank := map[string]int{}
	for i, g := range groups {
		for _, x := range g {
			rank[x] = i
		}
	}
	last := 0
	for i, x := range got {
		r, ok := rank[x]
		if !ok {
			continue // reported as unexpected
		}
		if r < last {
			t.Errorf("sort order: %s at position %d comes before what precedes it; got %v", x, i, got)
			return
		}
		last = r
	}
}

// --- checks for the case table ---

// ignored: a lenient search leaves the parameter out of the self link and
// says so in an outcome entry (search.html#errors, A-SB-04).
func ignored(param string) func(testing.TB, *searchResult) {
	return func(t testing.TB, r *searchResult) {
		t.Helper()
		self := r.self()
		if strings.Contains(self, "?"+param+"=") || strings.Contains(self, "&"+param+"=") {
			t.Errorf("self link %q keeps the ignored parameter %s", self, param)
		}
		for _, oo := range r.outcomes {
			for _, is := range issueList(oo) {
				if mentions(is, param) {
					return
				}
			}
		}
		t.Errorf("no search.mode=outcome entry warns about %s (outcomes: %v)", param, r.outcomes)
	}
}

// names: the refusal names the parameter.
func names(param string) func(testing.TB, *searchResult) {
	return func(t testing.TB, r *searchResult) {
		t.Helper()
		for _, is := range r.issues {
			if mentions(is, param) {
				return
			}
		}
		t.Errorf("no issue names %s: %v", param, r.issues)
	}
}

func mentions(issue map[string]any, param string) bool {
	exprs, _ := issue["expression"].([]any)
	for _, e := range exprs {
		if e == param {
			return true
		}
	}
	d, _ := issue["diagnostics"].(string)
	return strings.Contains(d, param)
}

// subsetted: every match keeps keep, lacks drop and is tagged SUBSETTED
// (search.html#elements, #summary).
func subsetted(keep, drop []string) func(testing.TB, *searchResult) {
	return func(t testing.TB, r *searchResult) {
		t.Helper()
		for _, page := range r.entries {
			for _, e := range page {
				if e.mode != "match" {
					continue
				}
				for _, k := range keep {
					if e.resource[k] == nil {
						t.Errorf("%s: %s is missing", e.key, k)
					}
				}
				for _, k := range drop {
					if e.resource[k] != nil {
						t.Errorf("%s: %s is still there", e.key, k)
					}
				}
				if !hasSubsettedTag(e.resource) {
					t.Errorf("%s: no SUBSETTED tag", e.key)
				}
			}
		}
	}
}

func hasSubsettedTag(res map[string]any) bool {
	m, _ := res["meta"].(map[string]any)
	tags, _ := m["tag"].([]any)
	for _, tg := range tags {
		if tm, ok := tg.(map[string]any); ok && tm["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

// includesWhole: _elements does not apply to included resources
// (search.html#elements).
func includesWhole(key string) func(testing.TB, *searchResult) {
	return func(t testing.TB, r *searchResult) {
		t.Helper()
		for _, page := range r.entries {
			for _, e := range page {
				if e.mode == "include" && (e.resource[key] == nil || hasSubsettedTag(e.resource)) {
					t.Errorf("included %s was subsetted", e.key)
				}
			}
		}
	}
}

// includedOnEveryPage: each page carries the includes of its own matches
// (search.html#include: even when an earlier page had them).
func includedOnEveryPage(key string) func(testing.TB, *searchResult) {
	return func(t testing.TB, r *searchResult) {
		t.Helper()
		for i, page := range r.entries {
			hasMatch, hasInclude := false, false
			for _, e := range page {
				hasMatch = hasMatch || e.mode == "match"
				hasInclude = hasInclude || (e.mode == "include" && e.key == key)
			}
			if hasMatch && !hasInclude {
				t.Errorf("page %d has matches but does not include %s", i+1, key)
			}
		}
	}
}
