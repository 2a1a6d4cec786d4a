package apitest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The acceptance map (conformance/ACCEPTANCE.md) says which test shows
// each checklist line of sections A, B and E and each bullet of issues 2,
// 3, 4 and 6. These tests keep it true: every test it cites exists, every
// checklist line is there once, and its totals add up.

const repoRoot = "../.."

// checklistIDs are the line ids of checklist sections A, B and E
// (/work/shared/spec/checklist.md, 2026-12-07), in its order.
var checklistIDs = strings.Fields(`
A-GEN-01 A-GEN-02 A-GEN-03 A-GEN-04 A-GEN-05 A-GEN-06 A-GEN-07 A-GEN-08 A-GEN-09 A-GEN-10 A-GEN-11 A-GEN-12 A-GEN-13 A-GEN-14 A-GEN-15
A-VER-01 A-VER-02 A-VER-03 A-RD-01 A-RD-02 A-RD-03 A-RD-04 A-RD-05 A-RD-06 A-RD-07 A-RD-08
A-CR-01 A-CR-02 A-CR-03 A-CR-04 A-CR-05 A-CR-06 A-UP-01 A-UP-02 A-UP-03 A-UP-04 A-UP-05 A-UP-06
A-VC-01 A-VC-02 A-VC-03 A-PA-01 A-PA-02 A-PA-03 A-PA-04 A-DE-01 A-DE-02 A-DE-03 A-DE-04 A-DE-05
A-CC-01 A-CC-02 A-CC-03 A-CC-04 A-CC-05 A-PR-01 A-PR-02 A-PR-03 A-ER-01 A-ER-02 A-ER-03
A-BT-01 A-BT-02 A-BT-03 A-BT-04 A-BT-05 A-BT-06 A-BT-07 A-BT-08 A-BT-09 A-BT-10 A-BT-11 A-BT-12 A-BT-13 A-BT-14 A-BT-15 A-BT-16
A-HI-01 A-HI-02 A-HI-03 A-HI-04 A-HI-05 A-HI-06
A-SB-01 A-SB-02 A-SB-03 A-SB-04 A-SB-05 A-SB-06 A-SB-07 A-SB-08 A-SB-09 A-SB-10 A-SB-11 A-SB-12
A-CS-01 A-CS-02 A-CS-03 A-CS-04 A-CS-05 A-CS-06 A-CS-07 A-CS-08
B-GEN-01 B-GEN-02 B-GEN-03 B-GEN-04 B-GEN-05 B-GEN-06 B-GEN-07 B-GEN-08 B-GEN-09 B-GEN-10 B-GEN-11
B-STR-01 B-STR-02 B-STR-03 B-STR-04 B-TOK-01 B-TOK-02 B-TOK-03 B-TOK-04 B-TOK-05
B-DT-01 B-DT-02 B-DT-03 B-DT-04 B-DT-05 B-DT-06 B-NUM-01 B-NUM-02 B-QTY-01 B-QTY-02
B-REF-01 B-REF-02 B-REF-03 B-REF-04 B-REF-05 B-REF-06 B-URI-01 B-MIS-01 B-CHN-01 B-HAS-01 B-COMP-01
B-INC-01 B-INC-02 B-INC-03 B-INC-04 B-INC-05 B-SORT-01 B-CNT-01 B-CNT-02 B-CNT-03 B-SUM-01 B-ELE-01 B-CON-01 B-QRY-01
E-KO-01 E-KO-02 E-KO-03 E-KO-04 E-KO-05 E-KO-06 E-KO-07 E-KO-08
E-PA-01 E-PA-02 E-PA-03 E-PA-04 E-PA-05 E-PA-06 E-PA-07 E-PA-08
E-ST-01 E-ST-02 E-ST-03 E-ST-04 E-ST-05 E-ST-06 E-ST-07 E-ST-08 E-ST-09 E-DL-01 E-DL-02
E-FI-01 E-FI-02 E-FI-03 E-FI-04 E-FI-05 E-FI-06 E-FI-07 E-FI-08 E-FI-09`)

// statuses a row may have; the first word of its last cell.
var statuses = []string{"covered", "partial", "gap", "in progress", "n/a"}

var (
	aliasLine   = regexp.MustCompile("^- `([a-z]+):` = `([A-Za-z0-9_./]+)`")
	codeSpan    = regexp.MustCompile("`((?:[^`\\\\]|\\\\.)+)`")
	citation    = regexp.MustCompile(`^([a-z]+):(.+)$`)
	funcName    = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	totalsRow   = regexp.MustCompile(`^\| (Total|[ABE]|Issue \d) \|`)
	checklistID = regexp.MustCompile(`^[ABE]-[A-Z]+-\d+$`)
)

// mapRow is one table row of the map.
type mapRow struct {
	key, status string
	cites       []string
	line, cells int
}

// readMap parses ACCEPTANCE.md: the alias legend, the checklist rows,
// the issue rows and the totals table.
func readMap(t *testing.T) (aliases map[string]string, lines, bullets []mapRow, totals map[string][]int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "conformance", "ACCEPTANCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	aliases, totals = map[string]string{}, map[string][]int{}
	issue := ""
	for i, l := range strings.Split(string(b), "\n") {
		if m := aliasLine.FindStringSubmatch(l); m != nil {
			aliases[m[1]] = m[2]
			continue
		}
		if h, ok := strings.CutPrefix(l, "### Issue "); ok {
			issue = "Issue " + strings.Fields(h)[0]
			continue
		}
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "|--") || strings.HasPrefix(l, "| Line ") || strings.HasPrefix(l, "| Bullet ") || strings.HasPrefix(l, "| Section ") {
			continue
		}
		cells := splitRow(l)
		if totalsRow.MatchString(l) {
			var n []int
			for _, c := range cells[1:] {
				v, err := strconv.Atoi(c)
				if err != nil {
					t.Fatalf("line %d: totals cell %q: %v", i+1, c, err)
				}
				n = append(n, v)
			}
			totals[cells[0]] = n
			continue
		}
		row := mapRow{key: cells[0], status: cells[len(cells)-1], line: i + 1, cells: len(cells)}
		for _, m := range codeSpan.FindAllStringSubmatch(l, -1) {
			row.cites = append(row.cites, strings.ReplaceAll(m[1], `\|`, "|"))
		}
		if checklistID.MatchString(row.key) {
			lines = append(lines, row)
		} else if issue != "" {
			row.key = issue + ": " + row.key
			bullets = append(bullets, row)
		}
	}
	return aliases, lines, bullets, totals
}

// splitRow splits a table row on the pipes that are not escaped.
func splitRow(l string) []string {
	var cells []string
	var cur strings.Builder
	l = strings.TrimSpace(l)
	l = strings.TrimSuffix(strings.TrimPrefix(l, "|"), "|")
	for i := 0; i < len(l); i++ {
		if l[i] == '\\' && i+1 < len(l) && l[i+1] == '|' {
			cur.WriteString(`\|`)
			i++
			continue
		}
		if l[i] == '|' {
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(l[i])
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func statusOf(cell string) string {
	for _, s := range statuses {
		if strings.HasPrefix(cell, s) {
			return s
		}
	}
	return ""
}

// sources caches the Go source of a directory (tests included).
type sources map[string]string

func (s sources) of(t *testing.T, dir string) string {
	if src, ok := s[dir]; ok {
		return src
	}
	files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	s[dir] = all.String()
	return s[dir]
}

// check reports why a citation names nothing, or "".
//
//	alias:Func            a function (a Go test, a benchmark, an apitest scenario or helper)
//	alias:Func/sub/…      and its subtest: the whole "sub/…", or each part, is a string literal there
//	corpus:case name      a search corpus case (searchCase.name)
func (s sources) check(t *testing.T, aliases map[string]string, cite string) string {
	m := citation.FindStringSubmatch(cite)
	if m == nil {
		return ""
	}
	dir, ok := aliases[m[1]]
	if !ok {
		return ""
	}
	src := s.of(t, dir)
	if m[1] == "corpus" {
		if !regexp.MustCompile(`name:\s+` + regexp.QuoteMeta(strconv.Quote(m[2]))).MatchString(src) {
			return fmt.Sprintf("no search case named %q in %s", m[2], dir)
		}
		return ""
	}
	fn, sub, _ := strings.Cut(m[2], "/")
	if !funcName.MatchString(fn) {
		return fmt.Sprintf("%q is not a function name", fn)
	}
	if !regexp.MustCompile(`(?m)^func (\([^)]*\) )?` + fn + `\(`).MatchString(src) {
		return fmt.Sprintf("no func %s in %s", fn, dir)
	}
	if sub == "" || strings.Contains(src, strconv.Quote(sub)) {
		return ""
	}
	for _, part := range strings.Split(sub, "/") {
		if !strings.Contains(src, strconv.Quote(part)) {
			return fmt.Sprintf("no subtest %q in %s", part, dir)
		}
	}
	return ""
}

// TestAcceptanceMap: every cited test exists, every checklist line of A,
// B and E has exactly one row, covered and partial rows cite a test, and
// the totals table is what the rows say.
func TestAcceptanceMap(t *testing.T) {
	aliases, lines, bullets, totals := readMap(t)
	if len(aliases) < 5 || aliases["corpus"] == "" {
		t.Fatalf("alias legend not found: %v", aliases)
	}
	src := sources{}
	cited := 0
	for _, r := range lines {
		if r.cells != 5 { // Line | Level | Requirement | Test(s) | Status
			t.Errorf("line %d (%s): %d cells, want 5 (an unescaped pipe?)", r.line, r.key, r.cells)
		}
	}
	for _, r := range bullets {
		if r.cells != 3 { // Bullet | Test(s) | Status
			t.Errorf("line %d (%s): %d cells, want 3 (an unescaped pipe?)", r.line, r.key, r.cells)
		}
	}
	for _, r := range append(slices.Clone(lines), bullets...) {
		st := statusOf(r.status)
		if st == "" {
			t.Errorf("line %d (%s): status %q does not start with one of %v", r.line, r.key, r.status, statuses)
		}
		n := 0
		for _, c := range r.cites {
			if m := citation.FindStringSubmatch(c); m == nil || aliases[m[1]] == "" {
				continue
			}
			n++
			if why := src.check(t, aliases, c); why != "" {
				t.Errorf("line %d (%s): `%s`: %s", r.line, r.key, c, why)
			}
		}
		cited += n
		if (st == "covered" || st == "partial") && n == 0 {
			t.Errorf("line %d (%s) is %s but cites no test", r.line, r.key, st)
		}
	}
	if cited < 200 {
		t.Errorf("only %d citations checked: is the alias legend intact?", cited)
	}

	var got []string
	seen := map[string]int{}
	for _, r := range lines {
		if seen[r.key] > 0 {
			t.Errorf("line %d: %s has a row already (line %d)", r.line, r.key, seen[r.key])
		}
		seen[r.key] = r.line
		got = append(got, r.key)
	}
	for _, id := range checklistIDs {
		if seen[id] == 0 {
			t.Errorf("checklist line %s has no row", id)
		}
	}
	if len(got) != len(checklistIDs) {
		t.Errorf("%d checklist rows, the checklist has %d lines", len(got), len(checklistIDs))
	}

	// The totals: lines, then one count per status, per section and issue.
	count := map[string][]int{}
	add := func(key, status string) {
		if count[key] == nil {
			count[key] = make([]int, 1+len(statuses))
		}
		count[key][0]++
		count[key][1+slices.Index(statuses, status)]++
	}
	for _, r := range lines {
		add(r.key[:1], statusOf(r.status))
		add("Total", statusOf(r.status))
	}
	for _, r := range bullets {
		add(r.key[:strings.Index(r.key, ":")], statusOf(r.status))
	}
	for key, want := range count {
		if !slices.Equal(totals[key], want) {
			t.Errorf("totals row %q says %v; the rows say %v (lines, %s)", key, totals[key], want, strings.Join(statuses, ", "))
		}
	}
	for key := range totals {
		if count[key] == nil {
			t.Errorf("totals row %q has no rows", key)
		}
	}
}

// TestREADMEStartsWithTheTwoCommands: issue 2, "The README starts with
// the two commands that work on a fresh machine"; the Makefile has them
// (and bench), and .ci/run calls make test.
func TestREADMEStartsWithTheTwoCommands(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme := read("README.md")
	head, _, ok := strings.Cut(readme, "\n## ")
	if !ok {
		t.Fatal("README has no sections")
	}
	if !regexp.MustCompile("(?m)^```sh\nmake run .*\nmake test .*\n```").MatchString(head) {
		t.Errorf("the README does not open with a block of `make run` and `make test`:\n%s", head)
	}
	for _, section := range []string{"## Configuration", "## Architecture", "## Running in production", "## Benchmarks"} {
		if !strings.Contains(readme, "\n"+section+"\n") {
			t.Errorf("README lacks the section %q", section)
		}
	}
	makefile := read("Makefile")
	for _, target := range []string{"run", "test", "bench"} {
		if !regexp.MustCompile(`(?m)^` + target + `:`).MatchString(makefile) {
			t.Errorf("Makefile has no %s target", target)
		}
	}
	if !regexp.MustCompile(`(?m)^make test$`).MatchString(read(".ci/run")) {
		t.Errorf(".ci/run does not call make test")
	}
}
