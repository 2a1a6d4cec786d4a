package sqlite

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Search compiles a search.Query to one SQL statement over the index
// tables (schema.go) and runs it; a second statement counts when a total
// is asked for. Only the SQL's shape comes from the query (which
// parameters, modifiers, prefixes, how many values); every value, pid and
// type name is a bound parameter.
//
// Shape. Each clause compiles to a predicate on a candidate resource (an
// EXISTS probe of its rows through the (rid, pid) index) and, when the
// clause can only match resources that have a matching row, to a row set
// (a UNION ALL of seeks on the table's primary key or hi index, one per
// value, or per part of a value whose prefix needs two ranges). One
// clause's row set drives the query — current is entered by rowid from it
// — and every other clause is probed per candidate. Which one drives is
// measured, not guessed: each candidate set is counted up to driveProbe
// rows and the smallest wins (the planner has no statistics, and a
// clause's selectivity depends on its value: status=final versus an
// identifier). A query with no such clause (only :missing=true, :not, or
// nothing) walks the type's live resources in the current_type index.
//
// Order. Without _sort, matches come in rid order (the order resources
// were first created). With _sort, each key is computed per match by a
// probe of the (rid, pid) index — the lowest value for ascending, the
// highest for descending (search.html#_sort) — resources without a value
// come last in both directions, and rid breaks ties.
//
// Paging is keyset: the cursor holds the last match's sort values and
// rid, and the next page asks for rows after that position in the same
// order. Resources written between pages appear or disappear where they
// sort; nothing shifts or repeats.
//
// Total: accurate counts the matches on every page (a COUNT over the same
// statement, without the keyset and limit; over the driving set alone
// when the query is one clause). estimate counts on the first page only,
// unless that page already holds every match, and carries the number in
// the cursor: later pages repeat it, so it may be out of date by the
// writes made while paging, which is what an estimate allows; for a
// one-clause query it counts index rows rather than distinct resources
// (an upper bound, about twice as fast). none counts nothing (-1), except
// that Count 0 (a total only) counts accurately.

// driveProbe bounds the rows counted per candidate driving clause;
// a candidate with at most driveEnough rows is taken without probing the
// others.
const (
	driveProbe  = 1000
	driveEnough = 100
)

// Search implements store.Searcher.
func (s *Store) Search(ctx context.Context, q *search.Query) (store.SearchPage, error) {
	if q.Count < 0 {
		return store.SearchPage{}, fmt.Errorf("sqlite: search: count %d is negative", q.Count)
	}
	plan, err := s.plan(ctx, q)
	if err != nil {
		return store.SearchPage{}, err
	}
	page := store.SearchPage{Total: -1}
	var next, prev *cursorPos
	if q.Count > 0 {
		if page.Matches, prev, next, err = s.fetch(ctx, plan, q.Count); err != nil {
			return store.SearchPage{}, err
		}
	}
	var count *frag
	switch {
	case q.Count == 0 || q.Total == search.TotalAccurate:
		count = &plan.count
	case q.Total != search.TotalEstimate:
	case plan.cursor != nil && plan.cursor.total >= 0:
		page.Total = int(plan.cursor.total)
	case plan.cursor == nil && next == nil:
		page.Total = len(page.Matches) // the first page holds every match
	default:
		count = &plan.estimate
	}
	if count != nil {
		if page.Total, err = s.count(ctx, *count); err != nil {
			return store.SearchPage{}, fmt.Errorf("sqlite: search: count: %w", s.mapErr(ctx, err))
		}
	}
	for _, c := range []struct {
		pos *cursorPos
		out *string
	}{{next, &page.Next}, {prev, &page.Prev}} {
		if c.pos == nil {
			continue
		}
		c.pos.total = -1
		if q.Total == search.TotalEstimate {
			c.pos.total = int64(page.Total)
		}
		*c.out = encodeSearchCursor(*c.pos, plan.fingerprint)
	}
	return page, nil
}

// count runs a count statement, or, with the read cache on, answers
// from the totals counted since the last acknowledged write (countCache):
// the same statement over the same data counts the same. A count over
// hundreds of thousands of index rows takes the better part of a second
// in pure-Go SQLite; a portal repeating a total between writes pays that
// once.
func (s *Store) count(ctx context.Context, f frag) (int, error) {
	n, err := s.counts(ctx, f, 1)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// counts is count for a statement of n count columns (its row scanned
// into n ints).
func (s *Store) counts(ctx context.Context, f frag, n int) ([]int, error) {
	vals := make([]int, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	if s.cache == nil {
		err := s.queryRow(ctx, f).Scan(dest...)
		return vals, err
	}
	gen := s.cache.writes.Load() // before the count reads anything
	key := countKey(f)
	if len(key) > countKeyMax {
		// A query this long (a POSTed form can carry megabytes of
		// values) is counted every time rather than held.
		err := s.queryRow(ctx, f).Scan(dest...)
		return vals, err
	}
	if got, ok := s.cache.counts.get(key, gen); ok && len(got) == n {
		return got, nil
	}
	if err := s.queryRow(ctx, f).Scan(dest...); err != nil {
		return nil, err
	}
	s.cache.counts.put(key, gen, vals)
	return vals, nil
}

// countKeyMax bounds the key of a kept count, so that the count cache
// holds at most countCacheSize × countKeyMax bytes of keys.
const countKeyMax = 16 << 10

// countKey is a statement and its values as one string, each value
// tagged with its type and strings with their length, so that no two
// different statements share a key.
func countKey(f frag) string {
	b := binary.AppendUvarint(nil, uint64(len(f.sql)))
	b = append(b, f.sql...)
	for _, a := range f.args {
		switch v := a.(type) {
		case int64:
			b = binary.AppendVarint(append(b, tagInt), v)
		case int:
			b = binary.AppendVarint(append(b, tagInt), int64(v))
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(v))
		case string:
			b = binary.AppendUvarint(append(b, tagText), uint64(len(v)))
			b = append(b, v...)
		default:
			b = fmt.Appendf(append(b, tagNull), "%T:%#v;", v, v)
		}
	}
	return string(b)
}

// fetch runs the page statement: up to count matches, with the cursors
// of the pages before and after them (nil where there is none). The page
// statement reads count+1 rows next to the cursor, in page order: the
// extra row, when there is one, is the last going forward and the first
// going backward (plan), and says that more follow that way.
func (s *Store) fetch(ctx context.Context, plan *searchPlan, count int) (matches []store.Resource, prev, next *cursorPos, err error) {
	matches, pos, err := s.pageRows(ctx, plan, plan.page)
	if err == nil && plan.fallback != nil && len(matches) <= count {
		// The window walked held too few matches to fill the page: the
		// page is not known to be complete, so gather it (plan).
		matches, pos, err = s.pageRows(ctx, plan, *plan.fallback)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	back := plan.cursor != nil && plan.cursor.back
	more := len(matches) > count
	if more && back {
		matches, pos = matches[1:], pos[1:]
	} else if more {
		matches, pos = matches[:count], pos[:count]
	}
	if len(matches) == 0 {
		return matches, nil, nil, nil
	}
	first, last := pos[0], pos[len(pos)-1]
	first.back = true
	// Going forward there is a page before unless this is the first;
	// going backward there is a page after (the one the client came
	// from).
	if (back && more) || (!back && plan.cursor != nil) {
		prev = &first
	}
	if back || more {
		next = &last
	}
	return matches, prev, next, nil
}

// pageRows runs a page statement of plan: the matches and their positions.
func (s *Store) pageRows(ctx context.Context, plan *searchPlan, page frag) ([]store.Resource, []cursorPos, error) {
	rows, err := s.query(ctx, page)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
	}
	defer rows.Close()
	var (
		rid, lu int64
		keys    = make([]any, len(plan.keys))
		matches []store.Resource
		pos     []cursorPos
		r       store.Resource
		method  string
		dest    = []any{&rid}
	)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	dest = append(dest, &r.Type, &r.ID, &r.Version, &lu, &method, &r.Body)
	for rows.Next() {
		r = store.Resource{}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
		}
		r.LastUpdated = time.UnixMicro(lu).UTC()
		r.Method = store.Method(method)
		matches = append(matches, r)
		pos = append(pos, cursorPos{rid: rid, keys: slices.Clone(keys)})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
	}
	return matches, pos, nil
}

// searchPlan is a compiled query.
type searchPlan struct {
	page, count frag
	// fallback, when set, is the page gathered from the driving set, for
	// when page (a bounded walk of the type: windowWalk) found no more
	// than count matches.
	fallback    *frag
	estimate    frag // count, or a cheaper upper bound of it
	keys        []sortKey
	cursor      *cursorPos // the position the page starts after; nil on the first page
	fingerprint []byte
}

// plan compiles q: resolves its parameters to pids, picks the driving
// clause and writes the page and count statements.
func (s *Store) plan(ctx context.Context, q *search.Query) (*searchPlan, error) {
	ps, err := s.paramSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
	}
	c := &compiler{p: ps, now: time.Now()}
	plan := &searchPlan{fingerprint: searchFingerprint(q)}
	types := q.Types
	if len(types) == 0 {
		types = nil // every type (search.Query)
	}

	var conds []cond
	for i := range q.Filter {
		cd, err := c.clause(&q.Filter[i], types, "c")
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		conds = append(conds, cd)
	}
	driver := -1
	best := math.MaxInt
	var drivable []int
	for i, cd := range conds {
		if cd.set != nil {
			drivable = append(drivable, i)
		}
	}
	if len(drivable) == 1 && conds[drivable[0]].probe != nil {
		// A lone _has with many referrers: walk the type (ordered.go).
		i := drivable[0]
		walk, err := s.hasWalk(ctx, conds[i], q.Count)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		if walk {
			conds[i].set, conds[i].pred, drivable = nil, *conds[i].probe, nil
		}
	}
	slices.SortStableFunc(drivable, func(a, b int) int { return conds[a].rank - conds[b].rank })
	if len(drivable) == 1 || s.othersBroad(conds, drivable) {
		// Alone, or the first ranked (a patient's reference) against
		// clauses already known to reach driveProbe: it drives whatever
		// its own count, which is left unknown (best), as for a lone
		// clause.
		driver = drivable[0]
		drivable = drivable[:1]
	}
	for _, i := range drivable {
		if len(drivable) == 1 {
			break
		}
		var n int
		probe := driveProbeOf(conds[i])
		var err error
		if conds[i].rank == 0 {
			// A reference or an id: its values rarely repeat between
			// writes (every patient of a portal), so not worth a place
			// in the count cache.
			err = s.queryRow(ctx, probe).Scan(&n)
		} else {
			// A code, a string, a range: the same few come back with every
			// patient (category=laboratory, date=ge2020), each a thousand
			// index rows to count: counted once per write (Store.counts).
			n, err = s.count(ctx, probe)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
		}
		if n < best {
			driver, best = i, n
		}
		if n <= driveEnough {
			break // small enough: probing the others costs more than it could save
		}
	}
	// A broad clause alone (a code without its system, a range) is
	// measured too when the page might walk the type instead (windowWalk).
	if len(drivable) == 1 && windowable(conds[driver], q, types) {
		// Counted through the count cache: a broad clause is asked for
		// again and again (a portal's category list), where a patient's
		// clauses rarely repeat between writes.
		n, err := s.count(ctx, driveProbeOf(conds[driver]))
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", s.mapErr(ctx, err))
		}
		best = n
	}

	var where []frag
	if driver >= 0 {
		// Enter current by rowid from the driving set; the unary + keeps
		// the planner from preferring current_type for the type test.
		where = append(where, conds[driver].set.wrap("c.rid IN (", ")"))
		if types != nil {
			where = append(where, frag{"+c.type IN (" + placeholders(len(types)) + ")", anys(types)})
		}
		where = append(where, frag{sql: "+c.deleted = 0"})
	} else {
		if types != nil {
			where = append(where, frag{"c.type IN (" + placeholders(len(types)) + ")", anys(types)})
		}
		where = append(where, frag{sql: "c.deleted = 0"})
	}
	for i, cd := range conds {
		if i != driver {
			where = append(where, cd.pred)
		}
	}
	filter := joinFrags(" AND ", where)
	plan.count = filter.wrap("SELECT count(*) FROM current AS c WHERE ", "")
	plan.estimate = plan.count
	if driver >= 0 && len(conds) == 1 && conds[driver].exact {
		// The driving set is the answer: count it without a lookup of
		// current per match. An estimate counts its rows, not the
		// resources: a resource with two matching rows (the same code in
		// two codings) counts twice.
		plan.count = conds[driver].set.wrap("SELECT count(DISTINCT rid) FROM (", ")")
		plan.estimate = conds[driver].set.wrap("SELECT count(*) FROM (", ")")
	}

	if q.Count == 0 {
		return plan, nil
	}
	for _, k := range q.Sort {
		sk, err := c.sortKey(k, types)
		if err != nil {
			return nil, fmt.Errorf("sqlite: search: %w", err)
		}
		plan.keys = append(plan.keys, sk)
	}
	if q.Cursor != "" {
		pos, ok := decodeSearchCursor(q.Cursor, plan.fingerprint, len(plan.keys))
		if !ok {
			return nil, fmt.Errorf("sqlite: search: %w", store.ErrInvalidCursor)
		}
		plan.cursor = &pos
	}

	// inner: the matches with their sort keys; page: the window after the
	// cursor; the outer statement adds the bodies of that window only.
	// The page's matches: from current, the driving set gathered by IN,
	// or walked in rid order when it can be (ordered.go) and it pays: the
	// set is large (its probe reached driveProbe, or it was not probed)
	// and the page can stop early (no _sort, which ranks every match).
	// The count keeps the IN form.
	from, pageFilter := frag{sql: "current AS c"}, filter
	cols := []frag{{sql: "c.rid AS rid"}}
	bounded := false // from is a bounded walk of the type: fall back to gathering
	switch {
	case driver >= 0 && conds[driver].walk != nil && best >= driveProbe && len(plan.keys) == 0:
		var seek frag
		var walk string
		walk, seek = conds[driver].walk.walk()
		from = frag{sql: walk}
		pageFilter = joinFrags(" AND ", append([]frag{seek}, where[1:]...))
		// x.rid, not c.rid: the planner sees that the walk delivers it
		// in order and needs no sort for ORDER BY rid.
		cols[0] = frag{sql: "x.rid AS rid"}
	case driver >= 0 && best >= driveProbe && windowable(conds[driver], q, types) && (plan.cursor == nil || !plan.cursor.back):
		var after *int64
		if plan.cursor != nil {
			after = &plan.cursor.rid
		}
		from = windowWalk(types[0], after, q.Count)
		// Every clause is a test of the row, the driver's too.
		pageFilter = joinFrags(" AND ", append([]frag{conds[driver].pred}, where[1:]...))
		bounded = true
	}
	var order, outerOrder []string
	type term struct {
		expr string
		desc bool
		val  any
	}
	var terms []term // the order, for the keyset condition
	for i, k := range plan.keys {
		name := fmt.Sprintf("k%d", i)
		cols = append(cols, k.expr.wrap("", " AS "+name))
		var cur any
		if plan.cursor != nil {
			cur = plan.cursor.keys[i]
		}
		if k.nullable {
			// Resources without a value come last either way.
			// Parenthesised: > binds tighter than IS in SQLite.
			order = append(order, "("+name+" IS NULL)")
			outerOrder = append(outerOrder, "(p."+name+" IS NULL)")
			terms = append(terms, term{expr: "(" + name + " IS NULL)", val: cur == nil})
		}
		dir := ""
		if k.desc {
			dir = " DESC"
		}
		order = append(order, name+dir)
		outerOrder = append(outerOrder, "p."+name+dir)
		terms = append(terms, term{expr: name, desc: k.desc, val: cur})
	}
	order = append(order, "rid")
	outerOrder = append(outerOrder, "p.rid")
	inner := joinFrags(", ", cols).wrap("SELECT ", " FROM ").append(from).append(frag{sql: " WHERE "}).append(pageFilter)

	windowWhere := frag{sql: "1"}
	if plan.cursor != nil {
		terms = append(terms, term{expr: "rid", val: plan.cursor.rid})
		// (t0, t1, …) after (v0, v1, …) in the order's directions:
		// t0 after v0, or t0 = v0 and t1 after v1, and so on; before, for
		// a backward cursor. IS compares NULLs as equal.
		var ors []frag
		for i, t := range terms {
			var ands []frag
			for _, e := range terms[:i] {
				ands = append(ands, frag{e.expr + " IS ?", []any{e.val}})
			}
			op := " > ?"
			if t.desc != plan.cursor.back {
				op = " < ?"
			}
			ands = append(ands, frag{t.expr + op, []any{t.val}})
			ors = append(ors, joinFrags(" AND ", ands).wrap("(", ")"))
		}
		windowWhere = joinFrags(" OR ", ors)
	}
	keyCols := "p.rid"
	for i := range plan.keys {
		keyCols += fmt.Sprintf(", p.k%d", i)
	}
	if plan.cursor != nil && plan.cursor.back {
		// The count+1 matches just before the cursor: the window is read
		// in the reverse order, and the outer statement puts it back.
		for i, o := range order {
			if d, ok := strings.CutSuffix(o, " DESC"); ok {
				order[i] = d
			} else {
				order[i] = o + " DESC"
			}
		}
	}
	pageOf := func(inner frag) frag {
		window := inner.wrap("SELECT * FROM (", ") WHERE ").append(windowWhere).
			append(frag{" ORDER BY " + strings.Join(order, ", ") + " LIMIT ?", []any{q.Count + 1}})
		return window.wrap("SELECT "+keyCols+", c.type, c.id, c.version, c.last_updated, v.method, v.body FROM (",
			") AS p CROSS JOIN current AS c ON c.rid = p.rid CROSS JOIN versions AS v ON v.seq = c.seq ORDER BY "+
				strings.Join(outerOrder, ", "))
	}
	plan.page = pageOf(inner)
	if bounded {
		gather := pageOf(joinFrags(", ", cols).wrap("SELECT ", " FROM current AS c WHERE ").append(filter))
		plan.fallback = &gather
	}
	return plan, nil
}

// driveProbeOf counts cd's driving set up to driveProbe rows.
func driveProbeOf(cd cond) frag {
	return cd.set.wrap("SELECT count(*) FROM (", fmt.Sprintf(" LIMIT %d)", driveProbe))
}

// othersBroad reports whether every driving candidate after the first
// (drivable is in rank order) is known, from the count cache, to reach
// driveProbe rows: then the first drives whatever it counts (a tie goes
// to the first too), and probing it would be a statement for nothing.
func (s *Store) othersBroad(conds []cond, drivable []int) bool {
	if s.cache == nil || len(drivable) < 2 {
		return false
	}
	gen := s.cache.writes.Load()
	for _, i := range drivable[1:] {
		n, ok := s.cache.counts.get(countKey(driveProbeOf(conds[i])), gen)
		if !ok || len(n) != 1 || n[0] < driveProbe {
			return false
		}
	}
	return true
}

// windowFactor: a bounded walk of the type (windowWalk) reads this many
// resources per match the page needs, at most windowMax: it fills the
// page when at least one resource in windowFactor matches.
const (
	windowFactor = 20
	windowMax    = 5000
)

// windowable reports whether the page of a query driven by cd alone
// might walk the type (windowWalk): a clause that cannot be walked in rid
// order through its own rows (a code without its system, a range, a
// composite; not a string, whose matches are few, nor a _has, which has
// its own walk: ordered.go), one type, no _sort.
func windowable(cd cond, q *search.Query, types []string) bool {
	return cd.set != nil && cd.walk == nil && cd.probe == nil && cd.rank != 2 && cd.rank >= 1 &&
		q.Count > 0 && len(q.Sort) == 0 && len(types) == 1
}

// windowWalk is the FROM of a page that walks the type's live resources
// in rid order (current_type), after the cursor's rid when there is one,
// at most windowFactor per match the page needs, testing every clause on
// each (the current row aliased c). A clause with thousands of matches
// (category=laboratory: 40% of a million resources' Observations) is
// gathered whole by the usual `c.rid IN (set)`, hundreds of milliseconds
// for a page of ten; when its matches are dense the walk fills the page
// after a few dozen probes. When it does not fill the page the matches
// may continue past the window, so the page is gathered after all
// (searchPlan.fallback): a sparse clause pays the walk in vain.
func windowWalk(typ string, after *int64, count int) frag {
	f := frag{"(SELECT t.rid FROM current AS t INDEXED BY current_type WHERE t.type = ? AND t.deleted = 0", []any{typ}}
	if after != nil {
		f = f.append(frag{" AND t.rid > ?", []any{*after}})
	}
	return f.append(frag{" ORDER BY t.rid LIMIT ?) AS w CROSS JOIN current AS c ON c.rid = w.rid",
		[]any{min(windowMax, windowFactor*(count+1))}})
}

// frag is a piece of SQL and the values of its placeholders, in order.
type frag struct {
	sql  string
	args []any
}

func (f frag) wrap(before, after string) frag { return frag{before + f.sql + after, f.args} }

// prependArgs puts args before f's own: they belong to placeholders
// wrapped in front of f.
func (f frag) prependArgs(args []any) frag {
	return frag{f.sql, append(slices.Clip(args), f.args...)}
}

func (f frag) append(g frag) frag {
	return frag{f.sql + g.sql, append(slices.Clip(f.args), g.args...)}
}

func joinFrags(sep string, fs []frag) frag {
	var out frag
	for i, f := range fs {
		if i > 0 {
			out.sql += sep
		}
		out.sql += f.sql
		out.args = append(out.args, f.args...)
	}
	return out
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL" // x IN (NULL) is never true
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func anys[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// cond is a compiled clause.
type cond struct {
	// set selects the rid of every matching resource (repeats allowed);
	// nil when the clause can match resources that have no index row (a
	// negation), or when driving from it would enumerate a whole type.
	set *frag
	// pred tests the current row (alias given to clause) for the clause.
	pred frag
	// exact: set yields only live resources of the types the clause was
	// compiled for (index rows exist only for those), so a query of this
	// clause alone is answered without testing current.
	exact bool
	// rank orders the driving candidates by how selective their kind of
	// clause usually is (lower first): a reference or an id names one
	// resource, a token code a concept, a range a share of everything.
	rank int
	// walk, when set, is set as one seek whose rows come in rid order, for
	// the page to walk instead of gathering set (ordered.go).
	walk *alt
	// probe, when set, is pred as a correlated probe that gathers nothing,
	// for a _has whose referrers are too many to gather (ordered.go).
	probe *frag
}

// alt is one way for a resource to match a clause: index rows found
// through tables (the first aliased x, the row of the resource itself;
// the others joined to it by their on) satisfying where. A clause
// matches when any alt does.
type alt struct {
	tables []aliased
	where  frag
}

type aliased struct{ table, alias, on string }

// from lists the tables. A probe (of one candidate resource) names each
// table's (rid, pid) index: the planner, which has no statistics, would
// otherwise walk a (pid, hi) index for max(hi) or hi > ?, reading a
// whole parameter per candidate.
func (a alt) from(probe bool) string {
	var b strings.Builder
	for i, t := range a.tables {
		if i > 0 {
			// CROSS JOIN keeps the written order: the first table (a
			// composite's code, an identifier's value) is the selective
			// one to seek, the others are looked up by (rid, tup).
			b.WriteString(" CROSS JOIN ")
		}
		b.WriteString(t.table + " AS " + t.alias)
		if probe {
			b.WriteString(" INDEXED BY " + t.table + "_rid")
		}
		if t.on != "" {
			b.WriteString(" ON " + t.on)
		}
	}
	return b.String()
}

func (a alt) set() frag { return a.where.wrap("SELECT x.rid FROM "+a.from(false)+" WHERE ", "") }

func (a alt) exists(res string) frag {
	return a.where.wrap("EXISTS (SELECT 1 FROM "+a.from(true)+" WHERE x.rid = "+res+".rid AND ", ")")
}

// alts makes the cond of a positive clause from its alternatives.
func alts(as []alt, res string) cond {
	if len(as) == 0 {
		return cond{pred: frag{sql: "0"}, set: &frag{sql: "SELECT NULL AS rid WHERE 0"}}
	}
	sets := make([]frag, len(as))
	preds := make([]frag, len(as))
	for i, a := range as {
		sets[i], preds[i] = a.set(), a.exists(res)
	}
	set := joinFrags(" UNION ALL ", sets)
	return cond{set: &set, pred: joinFrags(" OR ", preds).wrap("(", ")"), exact: true}
}

// negate makes the cond of a negated clause: the resources with no
// matching row, those with no row at all included.
func negate(cd cond) cond {
	return cond{pred: cd.pred.wrap("NOT ", "")}
}

// compiler compiles one query against a snapshot of the params table.
type compiler struct {
	p       *paramSnapshot
	now     time.Time
	aliases int
}

func (c *compiler) alias() string {
	c.aliases++
	return fmt.Sprintf("c%d", c.aliases)
}

func unsupported(cl *search.Clause, why string) error {
	name := cl.Param
	if cl.Modifier != "" {
		name += ":" + cl.Modifier
	}
	return fmt.Errorf("%s: %s: %w", name, why, store.ErrUnsupported)
}

// clause compiles one clause over resources of types (nil: any type),
// testing the current row aliased res.
func (c *compiler) clause(cl *search.Clause, types []string, res string) (cond, error) {
	switch {
	case cl.Any != nil:
		return c.any(cl, types, res)
	case cl.All != nil:
		return c.all(cl, types, res)
	case cl.Has != nil:
		return c.has(cl, types, res)
	case cl.Chain != nil:
		return c.chain(cl, types, res)
	case cl.Param == "_id":
		return c.id(cl, types, res)
	case cl.Param == "_type":
		return c.resourceType(cl, res)
	case cl.Param == "_lastUpdated":
		return c.lastUpdated(cl, types, res)
	case cl.Modifier == "missing":
		return c.missing(cl, types, res)
	case len(cl.Values) == 0:
		return cond{}, fmt.Errorf("%s: a clause without values", cl.Param)
	}
	var as []alt
	negated := false
	switch cl.Type {
	case search.String:
		kind := kindString
		for i := range cl.Values {
			w, err := stringValue(cl, &cl.Values[i], "x")
			if err != nil {
				return cond{}, err
			}
			as = append(as, c.simple(types, cl.Param, kind, w)...)
		}
	case search.Token:
		switch cl.Modifier {
		case "", "not":
			negated = cl.Modifier == "not"
			as = c.simple(types, cl.Param, kindToken, tokenValues(cl.Values, "x.code", "x.system"))
		case "text":
			// search.html#token :text: the display or text starts with the
			// value. Not a seek: the parameter's rows are walked (schema.go).
			for i := range cl.Values {
				as = append(as, c.simple(types, cl.Param, kindToken, prefix("x.text", cl.Values[i].Text))...)
			}
		case "of-type":
			for i := range cl.Values {
				as = append(as, c.ofType(types, cl.Param, &cl.Values[i]))
			}
		default:
			return cond{}, unsupported(cl, "token modifier not supported (no terminology server)")
		}
	case search.Date:
		if cl.Modifier != "" {
			return cond{}, unsupported(cl, "modifier not defined for dates")
		}
		for i := range cl.Values {
			as = append(as, c.simple(types, cl.Param, kindDate, c.dateValue(&cl.Values[i], "x"))...)
		}
	case search.Number, search.Quantity:
		if cl.Modifier != "" {
			return cond{}, unsupported(cl, "modifier not defined for numbers and quantities")
		}
		for i := range cl.Values {
			as = append(as, c.simple(types, cl.Param, string(cl.Type), numberValue(&cl.Values[i], "x", cl.Type == search.Quantity))...)
		}
	case search.Reference:
		switch cl.Modifier {
		case "", "type":
			for i := range cl.Values {
				as = append(as, c.simple(types, cl.Param, kindReference, refValue(cl, &cl.Values[i], "x"))...)
			}
		case "identifier":
			for i := range cl.Values {
				as = append(as, c.simple(types, identifierName(cl.Param), kindToken, tokenValue(&cl.Values[i], "x.code", "x.system"))...)
			}
		default:
			return cond{}, unsupported(cl, "reference modifier not supported")
		}
	case search.URI:
		for i := range cl.Values {
			w, err := uriValue(cl, &cl.Values[i], "x")
			if err != nil {
				return cond{}, err
			}
			as = append(as, c.simple(types, cl.Param, kindURI, w)...)
		}
	case search.Composite:
		if cl.Modifier != "" {
			return cond{}, unsupported(cl, "composite parameters take no modifier (search.html#composite)")
		}
		for i := range cl.Values {
			a, err := c.composite(cl, types, &cl.Values[i])
			if err != nil {
				return cond{}, err
			}
			as = append(as, a...)
		}
	case search.Special:
		if cl.Modifier != "" {
			return cond{}, unsupported(cl, "modifier not defined for special parameters")
		}
		for i := range cl.Values {
			a, err := c.near(cl, types, &cl.Values[i])
			if err != nil {
				return cond{}, err
			}
			as = append(as, a...)
		}
	default:
		return cond{}, unsupported(cl, "parameter type "+string(cl.Type)+" is not searchable")
	}
	cd := alts(as, res)
	cd.rank = rankOf(cl)
	cd.walk = ordered(as)
	if negated {
		return negate(cd), nil
	}
	return cd, nil
}

// rankOf is a clause's rank (cond.rank).
func rankOf(cl *search.Clause) int {
	switch {
	case cl.Type == search.Reference, cl.Param == "_id", cl.Modifier == "of-type",
		cl.Type == search.Token && cl.Param == "identifier":
		return 0
	case cl.Type == search.Token && cl.Modifier == "", cl.Type == search.URI, cl.Type == search.Composite:
		return 1
	case cl.Type == search.String && cl.Modifier != "contains":
		return 2
	}
	return 3 // ranges, :text, :contains, :missing
}

// simple turns value conditions on one table (each seekable on its own)
// into alts over the pids of (types, name, kind).
func (c *compiler) simple(types []string, name, kind string, parts []frag) []alt {
	pids := c.p.pids(types, name, kind)
	if len(pids) == 0 {
		return nil // no resource ever had a value: nothing matches
	}
	pidf := frag{"x.pid IN (" + placeholders(len(pids)) + ")", anys(pids)}
	out := make([]alt, len(parts))
	for i, p := range parts {
		out[i] = alt{tables: []aliased{{table: tableOf(kind), alias: "x"}}, where: pidf.append(p.wrap(" AND ", ""))}
	}
	return out
}

// prefix is a starts-with test on a column, as a range so that it seeks
// (and so that %, _ and \ in the value are plain characters).
func prefix(col, p string) []frag {
	if p == "" {
		return []frag{{sql: "1"}}
	}
	if hi, ok := successor(p); ok {
		return []frag{{col + " >= ? AND " + col + " < ?", []any{p, hi}}}
	}
	return []frag{{col + " >= ?", []any{p}}}
}

// successor is the least string greater than every string starting with
// p, in SQLite's BINARY (byte) order: p with its last byte below 0xff
// incremented and what follows dropped.
func successor(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// stringValue: search.html#string. The default is starts-with on the
// folded text, :contains a substring of it, :exact the value as written.
// _text (the narrative) is matched as :contains: its one entry is the
// whole folded narrative, where starts-with would rarely be what a client
// means.
func stringValue(cl *search.Clause, v *search.Value, x string) ([]frag, error) {
	switch {
	case cl.Modifier == "contains" || (cl.Modifier == "" && cl.Param == "_text"):
		return []frag{{"instr(" + x + ".text, ?) > 0", []any{v.Text}}}, nil
	case cl.Modifier == "":
		return prefix(x+".text", v.Text), nil
	case cl.Modifier == "exact":
		text := v.Text
		if text == "" {
			text = search.Fold(v.Raw)
		}
		return []frag{{x + ".text = ? AND " + x + ".value = ?", []any{text, v.Raw}}}, nil
	}
	return nil, unsupported(cl, "string modifier not defined")
}

// tokenValue: search.html#token, on the given code and system columns.
// Codes match exactly (case-sensitively), as most code systems require.
func tokenValue(v *search.Value, code, system string) []frag {
	switch {
	case v.HasSystem && v.Code == "" && v.System == "": // "|"
		return nil
	case v.Code == "" && (v.HasSystem || v.System != ""): // system|
		return []frag{{system + " = ?", []any{v.System}}}
	case v.HasSystem || v.System != "": // system|code, |code
		return []frag{{code + " = ? AND " + system + " = ?", []any{v.Code, v.System}}}
	case v.Code == "":
		return nil
	}
	return []frag{{code + " = ?", []any{v.Code}}} // code, any system
}

// ofType: search.html#token :of-type, [type system]|[type code]|[value]:
// an identifier row with the value and a row of its type's codings in the
// same tuple.
func (c *compiler) ofType(types []string, param string, v *search.Value) alt {
	ids := c.p.pids(types, param, kindToken)
	tps := c.p.pids(types, ofTypeName(param), kindToken)
	var t search.Value
	if len(v.Components) > 0 {
		t = v.Components[0]
	}
	w := frag{"x.pid IN (" + placeholders(len(ids)) + ") AND x.code = ? AND x1.pid IN (" +
		placeholders(len(tps)) + ") AND x1.code = ? AND x1.system = ?",
		append(append(append(anys(ids), v.Code), anys(tps)...), t.Code, t.System)}
	return alt{tables: []aliased{{table: "ix_token", alias: "x"},
		{table: "ix_token", alias: "x1", on: "x1.rid = x.rid AND x1.tup = x.tup"}}, where: w}
}

func floorMilli(t time.Time) int64 { return t.UnixMilli() }

func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%1_000_000 != 0 {
		ms++
	}
	return ms
}

// dateValue: search.html#prefix with date ranges. The resource's value is
// the range [lo, hi) (search.Entry), the search value the range [S, E) its
// precision covers:
//
//	eq  S <= lo and hi <= E              (the value contains the target)
//	ne  not eq
//	gt  hi > E                           (the part above the value overlaps it)
//	lt  lo < S                           (the part below overlaps it)
//	ge  gt or eq
//	le  lt or eq
//	sa  lo >= E                          (starts after the value)
//	eb  hi <= S                          (ends before it)
//	ap  the target overlaps [S-d, E+d), d a tenth of the time between
//	    now and S (the specification's recommendation)
//
// Conditions on hi seek in two parts (schema.go): ranges of at most a day
// through the primary key, since their lo is within a day below hi, and
// wider ones through the partial (pid, hi) index.
func (c *compiler) dateValue(v *search.Value, x string) []frag {
	s, e := floorMilli(v.Start), ceilMilli(v.End)
	lo, hi := x+".lo", x+".hi"
	eq := frag{lo + " >= ? AND " + lo + " < ? AND " + hi + " <= ?", []any{s, e, e}}
	// hiAbove: hi > b, and lo < below when below is set.
	hiAbove := func(b int64, below *int64) []frag {
		narrow := frag{lo + " > ? AND " + hi + " > ?", []any{b - day, b}}
		wide := frag{hi + " > ? AND " + hi + " - " + lo + " > " + dayMillis, []any{b}}
		if below != nil {
			narrow = narrow.append(frag{" AND " + lo + " < ?", []any{*below}})
			wide = wide.append(frag{" AND " + lo + " < ?", []any{*below}})
		}
		return []frag{narrow, wide}
	}
	switch v.Prefix {
	case search.Ne:
		return append([]frag{{lo + " < ?", []any{s}}}, hiAbove(e, nil)...)
	case search.Gt:
		return hiAbove(e, nil)
	case search.Lt:
		return []frag{{lo + " < ?", []any{s}}}
	case search.Ge:
		return append(hiAbove(e, nil), eq)
	case search.Le:
		return []frag{{lo + " < ?", []any{s}}, eq}
	case search.Sa:
		return []frag{{lo + " >= ?", []any{e}}}
	case search.Eb:
		return []frag{{lo + " < ? AND " + hi + " <= ?", []any{s, s}}}
	case search.Ap:
		d := approxMillis(c.now, v.Start)
		end := e + d
		return hiAbove(s-d, &end)
	}
	return []frag{eq}
}

// day is the width below which a date range is found through lo alone; it
// must match ix_date_hi's WHERE clause (schema.go), spelled dayMillis.
const (
	day       = 86_400_000
	dayMillis = "86400000"
)

// approxMillis is ap's tolerance: a tenth of the time between now and t.
func approxMillis(now, t time.Time) int64 {
	d := now.Sub(t)
	if d < 0 {
		d = -d
	}
	return (d / 10).Milliseconds()
}

// numberValue: search.html#number and #quantity. A resource's value is
// stored as [lo, hi] (numberBounds): the value itself, or a Range's
// bounds. eq and ne use the search value's implicit range [Lo, Hi) (100
// is [99.5, 100.5)); the other prefixes compare with the value exactly:
//
//	eq  Lo <= lo and hi < Hi     ne  not eq
//	gt  hi > v                   lt  lo < v
//	ge  hi >= v                  le  lo <= v
//	sa  lo > v                   eb  hi < v
//	ap  [lo, hi] overlaps v ± 10% (at least the implicit range)
//
// A quantity's unit: system|code matches both, ||code matches the code
// or the unit text. Units are compared as written: no UCUM conversion,
// so 1000 mg does not find 1 g.
func numberValue(v *search.Value, x string, quantity bool) []frag {
	return numberValueUnits(v, x, quantity, x+".system", x+".code", x+".unit")
}

// numberValueUnits is numberValue with the unit in the given columns.
func numberValueUnits(v *search.Value, x string, quantity bool, system, code, unitCol string) []frag {
	lo, hi := x+".lo", x+".hi"
	n := v.Num
	// hiFrom: hi > b (or >= when inclusive) in two seeks: plain values
	// (lo = hi) through the primary key, ranges through the partial
	// (pid, hi) index (schema.go).
	hiFrom := func(op string, b float64) []frag {
		return []frag{{lo + " " + op + " ?", []any{b}}, {hi + " " + op + " ? AND " + hi + " > " + lo, []any{b}}}
	}
	var parts []frag
	switch v.Prefix {
	case search.Ne:
		parts = append([]frag{{lo + " < ?", []any{v.Lo}}}, hiFrom(">=", v.Hi)...)
	case search.Gt:
		parts = hiFrom(">", n)
	case search.Lt:
		parts = []frag{{lo + " < ?", []any{n}}}
	case search.Ge:
		parts = hiFrom(">=", n)
	case search.Le:
		parts = []frag{{lo + " <= ?", []any{n}}}
	case search.Sa:
		parts = []frag{{lo + " > ?", []any{n}}}
	case search.Eb:
		parts = []frag{{lo + " < ? AND " + hi + " < ?", []any{n, n}}}
	case search.Ap:
		d := math.Abs(n) / 10
		from, to := min(n-d, v.Lo), max(n+d, v.Hi)
		parts = []frag{{lo + " >= ? AND " + lo + " <= ?", []any{from, to}},
			{hi + " >= ? AND " + hi + " > " + lo + " AND " + lo + " <= ?", []any{from, to}}}
	default:
		if v.Lo < v.Hi {
			parts = []frag{{lo + " >= ? AND " + lo + " < ? AND " + hi + " < ?", []any{v.Lo, v.Hi, v.Hi}}}
		} else { // no implicit range given: the exact value
			parts = []frag{{lo + " = ? AND " + hi + " = ?", []any{n, n}}}
		}
	}
	if !quantity {
		return parts
	}
	var unit frag
	switch {
	case v.System != "":
		unit = frag{" AND " + system + " = ? AND " + code + " = ?", []any{v.System, v.Code}}
	case v.Code != "":
		unit = frag{" AND (" + code + " = ? OR " + unitCol + " = ?)", []any{v.Code, v.Code}}
	default:
		return parts
	}
	for i := range parts {
		parts[i] = parts[i].append(unit)
	}
	return parts
}

// refValue: search.html#reference. "Type/id" matches that resource; a
// bare id any resource with that id (or of the :[type] modifier's type);
// an absolute URL, canonical or other reference the stored string, and a
// canonical's |version the stored version.
func refValue(cl *search.Clause, v *search.Value, x string) []frag {
	typ, id := splitRef(v.Ref)
	if typ == "" && id != "" && !strings.ContainsAny(id, "/:#|?") { // a bare id
		typ = v.RefType
		if cl.Modifier == "type" && cl.TargetType != "" {
			typ = cl.TargetType
		}
		if typ == "" {
			return []frag{refVersion(frag{x + ".ref_id = ?", []any{id}}, v, x)}
		}
	}
	if cl.Modifier == "type" && cl.TargetType != "" && typ != cl.TargetType {
		return nil // Patient/1 is not an Organization
	}
	return []frag{refVersion(frag{x + ".ref_id = ? AND " + x + ".ref_type = ?", []any{id, typ}}, v, x)}
}

func refVersion(f frag, v *search.Value, x string) frag {
	if v.Value == "" {
		return f
	}
	return f.append(frag{" AND " + x + ".ver = ?", []any{v.Value}})
}

// uriValue: search.html#uri. Exact and case-sensitive; :below matches
// URIs that start with the value, :above URIs the value starts with.
func uriValue(cl *search.Clause, v *search.Value, x string) ([]frag, error) {
	switch cl.Modifier {
	case "":
		return []frag{{x + ".value = ?", []any{v.Value}}}, nil
	case "below":
		return prefix(x+".value", v.Value), nil
	case "above":
		// Every prefix of the value, each an index seek.
		return []frag{{x + ".value IN (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < length(?)) SELECT substr(?, 1, i) FROM n)",
			[]any{v.Value, v.Value}}}, nil
	}
	return nil, unsupported(cl, "uri modifier not defined")
}

// composite: search.html#composite. The components of one tuple must
// each match their part of the value: a compact tuple is one ix_comp row
// (the code seeks, the value is tested in the row); another is rows under
// name$i sharing rid and tup.
func (c *compiler) composite(cl *search.Clause, types []string, v *search.Value) ([]alt, error) {
	if len(v.Components) == 0 {
		return nil, fmt.Errorf("%s: a composite value without components", cl.Param)
	}
	var out []alt
	for _, kp := range c.p.kinds(types, cl.Param) {
		kind, pids := kp.kind, kp.pids
		if !strings.HasPrefix(kind, kindComposite) || len(v.Components) != 2 {
			continue
		}
		first := tokenValue(&v.Components[0], "x.code", "x.system")
		var second []frag
		cv := &v.Components[1]
		switch kind[len(kindComposite):] {
		case kindToken:
			second = tokenValue(cv, "x.vcode", "x.vsystem")
		case kindQuantity, kindNumber:
			second = numberValueUnits(cv, "x", kind == kindComposite+kindQuantity, "x.vsystem", "x.vcode", "x.unit")
		case kindDate:
			second = c.dateValue(cv, "x")
		case kindString:
			var err error
			if second, err = stringValue(&search.Clause{Param: cl.Param}, cv, "x"); err != nil {
				return nil, err
			}
		case kindURI:
			second = []frag{{"x.value = ?", []any{cv.Value}}}
		}
		if len(first) == 0 || len(second) == 0 {
			continue
		}
		where := frag{"x.pid IN (" + placeholders(len(pids)) + ") AND ", anys(pids)}.
			append(first[0]).append(joinFrags(" OR ", wrapAll(second)).wrap(" AND (", ")"))
		out = append(out, alt{tables: []aliased{{table: "ix_comp", alias: "x"}}, where: where})
	}
	generic, err := c.componentRows(cl, types, v)
	return append(out, generic...), err
}

// componentRows matches a tuple stored as one row per component.
func (c *compiler) componentRows(cl *search.Clause, types []string, v *search.Value) ([]alt, error) {
	var tables []aliased
	var where []frag
	for i := range v.Components {
		name := componentName(cl.Param, i)
		kinds := c.p.kinds(types, name)
		switch len(kinds) {
		case 0:
			return nil, nil // no resource has this composite
		case 1:
		default:
			return nil, unsupported(cl, "component stored with several types")
		}
		kind, pids := kinds[0].kind, kinds[0].pids
		x := "x"
		if i == 0 {
			tables = append(tables, aliased{table: tableOf(kind), alias: x})
		} else {
			x = fmt.Sprintf("x%d", i)
			tables = append(tables, aliased{table: tableOf(kind), alias: x, on: x + ".rid = x.rid AND " + x + ".tup = x.tup"})
		}
		cv := &v.Components[i]
		var parts []frag
		switch kind {
		case kindString:
			var err error
			if parts, err = stringValue(&search.Clause{Param: name}, cv, x); err != nil {
				return nil, err
			}
		case kindToken:
			parts = tokenValue(cv, x+".code", x+".system")
		case kindDate:
			parts = c.dateValue(cv, x)
		case kindNumber, kindQuantity:
			parts = numberValue(cv, x, kind == kindQuantity)
		case kindReference:
			parts = refValue(&search.Clause{}, cv, x)
		case kindURI:
			parts, _ = uriValue(&search.Clause{}, cv, x)
		}
		if len(parts) == 0 {
			return nil, nil
		}
		where = append(where, frag{x + ".pid IN (" + placeholders(len(pids)) + ")", anys(pids)},
			joinFrags(" OR ", wrapAll(parts)).wrap("(", ")"))
	}
	return []alt{{tables: tables, where: joinFrags(" AND ", where)}}, nil
}

func wrapAll(fs []frag) []frag {
	out := make([]frag, len(fs))
	for i, f := range fs {
		out[i] = f.wrap("(", ")")
	}
	return out
}

// near: search.html#near, latitude|longitude[|distance[|units]]. A
// position (Location.position) is two rows, latitude under name$0 and
// longitude under name$1 in one tuple. The latitude band seeks; within it
// the distance is tested on an equirectangular projection (longitude
// scaled by the cosine of the searched latitude), which for the distances
// near is used for (town, county) is within half a percent of the
// great-circle distance. No sort by distance.
func (c *compiler) near(cl *search.Clause, types []string, v *search.Value) ([]alt, error) {
	p, unit, err := search.Near(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.Param, err)
	}
	if unit != "" {
		return nil, unsupported(cl, "distance unit "+unit+" (km, m, mi)")
	}
	lat, long, km := p.Lat, p.Long, p.Km
	lats := c.p.pids(types, componentName(cl.Param, 0), kindNumber)
	longs := c.p.pids(types, componentName(cl.Param, 1), kindNumber)
	if len(lats) == 0 || len(longs) == 0 {
		return nil, nil
	}
	dLat := km / search.KmPerDegree
	scale := math.Cos(lat * math.Pi / 180)
	where := frag{"x.pid IN (" + placeholders(len(lats)) + ") AND x.lo >= ? AND x.lo <= ? AND x1.pid IN (" +
		placeholders(len(longs)) + ") AND ((x.lo - ?) * (x.lo - ?) + " +
		"(min(abs(x1.lo - ?), 360 - abs(x1.lo - ?)) * ?) * (min(abs(x1.lo - ?), 360 - abs(x1.lo - ?)) * ?)) <= ?",
		slices.Concat(anys(lats), []any{lat - dLat, lat + dLat}, anys(longs),
			[]any{lat, lat, long, long, scale, long, long, scale, dLat * dLat})}
	return []alt{{tables: []aliased{{table: "ix_number", alias: "x"},
		{table: "ix_number", alias: "x1", on: "x1.rid = x.rid AND x1.tup = x.tup"}}, where: where}}, nil
}

// missing: search.html#missing. :missing=true matches resources with no
// value for the parameter, :missing=false those with one. A token's value
// may be a text alone and a reference's an identifier alone, so both
// look at those rows too.
func (c *compiler) missing(cl *search.Clause, types []string, res string) (cond, error) {
	if len(cl.Values) != 1 {
		return cond{}, fmt.Errorf("%s:missing: one value, true or false", cl.Param)
	}
	type src struct{ name, kind string }
	var srcs []src
	switch cl.Type {
	case search.Reference:
		srcs = []src{{cl.Param, kindReference}, {identifierName(cl.Param), kindToken}}
	case search.Composite, search.Special:
		for _, k := range c.p.kinds(types, componentName(cl.Param, 0)) {
			srcs = append(srcs, src{componentName(cl.Param, 0), k.kind})
		}
		for _, k := range c.p.kinds(types, cl.Param) {
			srcs = append(srcs, src{cl.Param, k.kind})
		}
	default:
		srcs = []src{{cl.Param, string(cl.Type)}}
	}
	var as []alt
	drive := true
	for _, s := range srcs {
		if tableOf(s.kind) == "" {
			continue
		}
		as = append(as, c.simple(types, s.name, s.kind, []frag{{sql: "1"}})...)
		// ix_ref is keyed by the referenced resource, not pid: every row
		// of a parameter is not one range of it.
		drive = drive && s.kind != kindReference
	}
	cd := alts(as, res)
	cd.rank = 3
	if cl.Values[0].Missing {
		return negate(cd), nil
	}
	if !drive {
		cd.set = nil
	}
	return cd, nil
}

// id answers _id from current: exact and case-sensitive, no system
// (search.html#id).
func (c *compiler) id(cl *search.Clause, types []string, res string) (cond, error) {
	switch cl.Modifier {
	case "missing": // every resource has an id
		if len(cl.Values) == 1 && !cl.Values[0].Missing {
			return cond{pred: frag{sql: "1"}}, nil
		}
		return cond{pred: frag{sql: "0"}, set: &frag{sql: "SELECT NULL AS rid WHERE 0"}}, nil
	case "", "not":
	default:
		return cond{}, unsupported(cl, "modifier not supported on _id")
	}
	var ids []any
	for _, v := range cl.Values {
		if (v.HasSystem && v.System != "") || (!v.HasSystem && v.System != "") || v.Code == "" {
			continue // an id has no system
		}
		ids = append(ids, v.Code)
	}
	if types == nil {
		types = c.p.types
	}
	in := "(" + placeholders(len(ids)) + ")"
	pred := frag{res + ".id IN " + in, ids}
	if cl.Modifier == "not" {
		return cond{pred: pred.wrap("NOT ", "")}, nil
	}
	set := frag{"SELECT t.rid FROM current AS t WHERE t.type IN (" + placeholders(len(types)) + ") AND t.id IN " + in +
		" AND t.deleted = 0", append(anys(types), ids...)}
	return cond{pred: pred, set: &set, exact: true}, nil
}

// lastUpdated answers _lastUpdated from current.last_updated, a point in
// time at microsecond precision: its range is [t, t+1µs), and the date
// prefixes (dateValue) reduce to ranges of t.
func (c *compiler) lastUpdated(cl *search.Clause, types []string, res string) (cond, error) {
	switch cl.Modifier {
	case "missing":
		if len(cl.Values) == 1 && !cl.Values[0].Missing {
			return cond{pred: frag{sql: "1"}}, nil
		}
		return cond{pred: frag{sql: "0"}, set: &frag{sql: "SELECT NULL AS rid WHERE 0"}}, nil
	case "":
	default:
		return cond{}, unsupported(cl, "modifier not defined for dates")
	}
	if len(cl.Values) == 0 {
		return cond{}, fmt.Errorf("%s: a clause without values", cl.Param)
	}
	type span struct{ lo, hi *int64 } // [lo, hi), nil: open
	var spans []span
	for _, v := range cl.Values {
		s, e := ceilMicro(v.Start), ceilMicro(v.End)
		switch v.Prefix {
		case search.Ne:
			spans = append(spans, span{nil, &s}, span{&e, nil})
		case search.Gt, search.Sa:
			spans = append(spans, span{&e, nil})
		case search.Lt, search.Eb:
			spans = append(spans, span{nil, &s})
		case search.Ge:
			spans = append(spans, span{&s, nil})
		case search.Le:
			spans = append(spans, span{nil, &e})
		case search.Ap:
			d := approxMillis(c.now, v.Start) * 1000
			lo, hi := s-d, e+d
			spans = append(spans, span{&lo, &hi})
		default:
			spans = append(spans, span{&s, &e})
		}
	}
	if types == nil {
		types = c.p.types
	}
	cmp := func(col string, sp span) frag {
		var w []frag
		if sp.lo != nil {
			w = append(w, frag{col + " >= ?", []any{*sp.lo}})
		}
		if sp.hi != nil {
			w = append(w, frag{col + " < ?", []any{*sp.hi}})
		}
		return joinFrags(" AND ", w)
	}
	var sets, preds []frag
	for _, sp := range spans {
		preds = append(preds, cmp(res+".last_updated", sp))
		sets = append(sets, cmp("t.last_updated", sp).wrap("SELECT t.rid FROM current AS t WHERE t.type IN ("+
			placeholders(len(types))+") AND t.deleted = 0 AND ", "").prependArgs(anys(types)))
	}
	set := joinFrags(" UNION ALL ", sets)
	return cond{set: &set, pred: joinFrags(" OR ", wrapAll(preds)).wrap("(", ")"), exact: true, rank: 3}, nil
}

// any matches when one of cl.Any does (a compartment: subject or
// performer or … pointing at the patient). It can drive only when every
// alternative can.
func (c *compiler) any(cl *search.Clause, types []string, res string) (cond, error) {
	if len(cl.Any) == 0 {
		return alts(nil, res), nil
	}
	var sets, preds []frag
	out := cond{exact: true}
	drivable := true
	for i := range cl.Any {
		cd, err := c.clause(&cl.Any[i], types, res)
		if err != nil {
			return cond{}, err
		}
		preds = append(preds, cd.pred)
		out.exact = out.exact && cd.exact
		out.rank = max(out.rank, cd.rank)
		if cd.set == nil {
			drivable = false
		} else {
			sets = append(sets, *cd.set)
		}
	}
	out.pred = joinFrags(" OR ", preds).wrap("(", ")")
	if drivable {
		set := joinFrags(" UNION ALL ", sets)
		out.set = &set
	}
	return out, nil
}

// all matches when every one of cl.All does (access control: a
// compartment and a granular restriction). Its set is the most selective
// kind of its drivable parts, the others tested on each of its rows; with
// no drivable part it has no set.
func (c *compiler) all(cl *search.Clause, types []string, res string) (cond, error) {
	if len(cl.All) == 0 {
		return cond{}, fmt.Errorf("an empty conjunction")
	}
	conds := make([]cond, len(cl.All))
	preds := make([]frag, len(cl.All))
	driver := -1
	for i := range cl.All {
		cd, err := c.clause(&cl.All[i], types, res)
		if err != nil {
			return cond{}, err
		}
		conds[i], preds[i] = cd, cd.pred
		if cd.set != nil && (driver < 0 || cd.rank < conds[driver].rank) {
			driver = i
		}
	}
	out := cond{pred: joinFrags(" AND ", preds).wrap("(", ")"), rank: 3}
	if driver < 0 {
		return out, nil
	}
	out.rank = conds[driver].rank
	if len(conds) == 1 {
		return conds[0], nil
	}
	// The others are tested on the driver's rows, against a row of current
	// aliased res: inside the subquery that alias shadows the outer one.
	var rest []frag
	for i, cd := range conds {
		if i != driver {
			rest = append(rest, cd.pred)
		}
	}
	set := conds[driver].set.wrap("SELECT "+res+".rid FROM current AS "+res+" WHERE "+res+".rid IN (", ") AND ").
		append(joinFrags(" AND ", rest))
	out.set = &set
	return out, nil
}

// resourceType answers the server's _type clause (search.Clause.Param):
// a test of the current row's type, never a driving set.
func (c *compiler) resourceType(cl *search.Clause, res string) (cond, error) {
	if cl.Modifier != "" {
		return cond{}, unsupported(cl, "_type takes no modifier")
	}
	var names []any
	for _, v := range cl.Values {
		names = append(names, v.Code)
	}
	if len(names) == 0 {
		return cond{pred: frag{sql: "0"}}, nil
	}
	return cond{pred: frag{res + ".type IN (" + placeholders(len(names)) + ")", names}, rank: 3}, nil
}

// ridSet selects the resources of types matching cd, compiled for the
// current row aliased res: cd's own set when it has one, otherwise a walk
// of the types' live resources.
func ridSet(cd cond, types []string, res string) frag {
	if cd.set != nil {
		return *cd.set
	}
	f := frag{sql: "SELECT " + res + ".rid FROM current AS " + res + " WHERE "}
	if types != nil {
		f = f.append(frag{res + ".type IN (" + placeholders(len(types)) + ") AND ", anys(types)})
	}
	return f.append(cd.pred.wrap(res+".deleted = 0 AND ", ""))
}

// chain: search.html#chaining. The clause matches resources whose
// reference cl.Param points at a resource of one of Chain.Types that
// matches Chain.Filter (itself possibly chained).
func (c *compiler) chain(cl *search.Clause, types []string, res string) (cond, error) {
	if len(cl.Chain.Types) == 0 {
		return cond{}, fmt.Errorf("%s: a chain without target types", cl.Param)
	}
	ta := c.alias()
	inner, err := c.clause(&cl.Chain.Filter, cl.Chain.Types, ta)
	if err != nil {
		return cond{}, err
	}
	pids := c.p.pids(types, cl.Param, kindReference)
	if len(pids) == 0 {
		return alts(nil, res), nil
	}
	targets := ridSet(inner, cl.Chain.Types, ta)
	pidf := frag{"x.pid IN (" + placeholders(len(pids)) + ")", anys(pids)}
	pred := pidf.wrap("EXISTS (SELECT 1 FROM ix_ref AS x INDEXED BY ix_ref_rid WHERE x.rid = "+res+".rid AND ", " AND (x.ref_type, x.ref_id) IN (SELECT t.type, t.id FROM current AS t WHERE t.rid IN (").
		append(targets).append(frag{sql: ")))"})
	cd := cond{pred: pred, rank: inner.rank}
	if inner.set != nil {
		set := targets.wrap("SELECT x.rid FROM (", ") AS t0 CROSS JOIN current AS t ON t.rid = t0.rid CROSS JOIN ix_ref AS x ON ").
			append(pidf).append(frag{sql: " AND x.ref_id = t.id AND x.ref_type = t.type"})
		cd.set, cd.exact = &set, true // x: rows of the referring resources
	}
	return cd, nil
}

// has: search.html#has. The clause matches resources that a resource of
// Has.Type matching Has.Filter (itself possibly a _has) references through
// its parameter Has.Param.
func (c *compiler) has(cl *search.Clause, types []string, res string) (cond, error) {
	h := cl.Has
	ra := c.alias()
	inner, err := c.clause(&h.Filter, []string{h.Type}, ra)
	if err != nil {
		return cond{}, err
	}
	pids := c.p.pids([]string{h.Type}, h.Param, kindReference)
	if len(pids) == 0 {
		return alts(nil, res), nil
	}
	referrers := ridSet(inner, []string{h.Type}, ra)
	pidf := frag{"x.pid IN (" + placeholders(len(pids)) + ")", anys(pids)}
	// The unary + keeps the planner on the primary key (pid, ref_id,
	// ref_type): a seek for this resource, then a test of each referrer
	// against the materialised set, rather than a seek per referrer.
	pred := pidf.wrap("EXISTS (SELECT 1 FROM ix_ref AS x WHERE ", " AND x.ref_id = "+res+".id AND x.ref_type = "+res+".type AND +x.rid IN (").
		append(referrers).append(frag{sql: "))"})
	cd := cond{pred: pred, rank: inner.rank}
	// The same test without the set: this resource's referrers, each
	// tested for the inner clause (ordered.go, hasWalk).
	cd.probe = hasProbe(anys(pids), inner.pred, h.Type, ra, res)
	if inner.set != nil {
		set := referrers.wrap("SELECT t.rid FROM (", ") AS r0 CROSS JOIN ix_ref AS x ON x.rid = r0.rid AND ").
			append(pidf).append(frag{sql: " CROSS JOIN current AS t ON t.type = x.ref_type AND t.id = x.ref_id"})
		cd.set = &set
	}
	return cd, nil
}

// sortKey is one compiled _sort key.
type sortKey struct {
	expr     frag
	desc     bool
	nullable bool
}

// sortKey compiles a _sort parameter (search.html#_sort): ascending on a
// resource's lowest value, descending on its highest. Strings sort on the
// folded text (case- and accent-insensitive), tokens on the code,
// references on "Type/id", dates and quantities on their range.
func (c *compiler) sortKey(k search.SortKey, types []string) (sortKey, error) {
	switch k.Param {
	case "_id":
		return sortKey{expr: frag{sql: "c.id"}, desc: k.Descending}, nil
	case "_lastUpdated":
		return sortKey{expr: frag{sql: "c.last_updated"}, desc: k.Descending}, nil
	}
	agg := "min"
	if k.Descending {
		agg = "max"
	}
	var col, kind string
	switch k.Type {
	case search.String:
		col, kind = "x.text", kindString
	case search.Token:
		col, kind = "x.code", kindToken
	case search.Date:
		col, kind = "x.lo", kindDate
		if k.Descending {
			col = "x.hi"
		}
	case search.Number, search.Quantity:
		col, kind = "x.lo", string(k.Type)
		if k.Descending {
			col = "x.hi"
		}
	case search.Reference:
		col, kind = "iif(x.ref_type = '', x.ref_id, x.ref_type || '/' || x.ref_id)", kindReference
	case search.URI:
		col, kind = "x.value", kindURI
	default:
		return sortKey{}, fmt.Errorf("_sort=%s: sorting on a %s parameter: %w", k.Param, k.Type, store.ErrUnsupported)
	}
	pids := c.p.pids(types, k.Param, kind)
	only := ""
	if kind == kindString {
		only = " AND x.value != ''" // not the words of a family name (search.Extract)
	}
	return sortKey{
		expr: frag{"(SELECT " + agg + "(" + col + ") FROM " + tableOf(kind) + " AS x INDEXED BY " + tableOf(kind) +
			"_rid WHERE x.rid = c.rid AND x.pid IN (" +
			placeholders(len(pids)) + ")" + only + ")", anys(pids)},
		desc:     k.Descending,
		nullable: true,
	}, nil
}

// paramSnapshot is the params table as of one search. Rows are only ever
// added, so a snapshot stays true; it is reloaded when max(pid) moved.
type paramSnapshot struct {
	max    int64
	byName map[string][]paramRow
	types  []string // every type with a params row: every type ever written
	// gen is readCache.writes before the snapshot was read; cached says
	// there is a read cache and gen is set.
	gen    uint64
	cached bool
}

type paramRow struct {
	pid       int64
	typ, kind string
}

func (p *paramSnapshot) pids(types []string, name, kind string) []int64 {
	var out []int64
	for _, r := range p.byName[name] {
		if r.kind == kind && (types == nil || slices.Contains(types, r.typ)) {
			out = append(out, r.pid)
		}
	}
	return out
}

// kindPids are the pids of one parameter name and kind.
type kindPids struct {
	kind string
	pids []int64
}

// kinds groups the pids of name by kind, in kind order (so that the SQL
// text of a query is always the same, stmtCache).
func (p *paramSnapshot) kinds(types []string, name string) []kindPids {
	var out []kindPids
	for _, r := range p.byName[name] {
		if types != nil && !slices.Contains(types, r.typ) {
			continue
		}
		i := slices.IndexFunc(out, func(k kindPids) bool { return k.kind == r.kind })
		if i < 0 {
			i = len(out)
			out = append(out, kindPids{kind: r.kind})
		}
		out[i].pids = append(out[i].pids, r.pid)
	}
	slices.SortFunc(out, func(a, b kindPids) int { return strings.Compare(a.kind, b.kind) })
	return out
}

// paramSnapshot returns the params snapshot, reloaded when max(pid)
// moved. With the read cache on, that check is skipped while no write
// has been acknowledged since the snapshot was taken (readCache.writes):
// params rows are added only by the writer of this process, so none can
// have been added that a caller knows of. That saves a statement per
// search.
func (s *Store) paramSnapshot(ctx context.Context) (*paramSnapshot, error) {
	var gen uint64
	if s.cache != nil {
		gen = s.cache.writes.Load()
		if p := s.params.Load(); p != nil && p.cached && p.gen == gen {
			return p, nil
		}
	}
	var maxPid int64
	if err := s.maxPidStmt.QueryRowContext(ctx).Scan(&maxPid); err != nil {
		return nil, err
	}
	if p := s.params.Load(); p != nil && p.max == maxPid {
		if s.cache != nil && (!p.cached || p.gen != gen) {
			// Still true as of gen: a copy says so for the next search.
			q := *p
			q.gen, q.cached = gen, true
			s.params.Store(&q)
		}
		return p, nil
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT pid, type, name, kind FROM params`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	p := &paramSnapshot{byName: map[string][]paramRow{}, gen: gen, cached: s.cache != nil}
	seen := map[string]bool{}
	for rows.Next() {
		var r paramRow
		var name string
		if err := rows.Scan(&r.pid, &r.typ, &name, &r.kind); err != nil {
			return nil, err
		}
		p.byName[name] = append(p.byName[name], r)
		p.max = max(p.max, r.pid)
		if !seen[r.typ] {
			seen[r.typ] = true
			p.types = append(p.types, r.typ)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(p.types)
	p.addUnions() // index.go
	s.params.Store(p)
	return p, nil
}

// cursorPos is a keyset position: the sort values and rid of the last
// match shown, and the total an estimate carries (-1: none).
type cursorPos struct {
	keys  []any
	rid   int64
	total int64
	back  bool // the page before this position, not after (a previous link)
}

// A search cursor travels like a history cursor (history.go): base64url
// of a format byte, the rid, the total, each key value tagged with its
// type, and a CRC-32 over those bytes and the query's fingerprint, so a
// cursor garbled, cut or handed to another query is refused. Its values
// are bound as parameters like any other.
// A backward cursor (a previous link) has its own format byte.
const (
	searchCursorFormat = 2
	searchCursorBack   = 3
)

const (
	tagNull byte = iota
	tagInt
	tagFloat
	tagText
)

// searchFingerprint binds a cursor to the query: its types, filter and
// sort. Count and _total may change between pages.
func searchFingerprint(q *search.Query) []byte {
	b, err := json.Marshal(struct {
		Types  []string
		Filter []search.Clause
		Sort   []search.SortKey
	}{q.Types, q.Filter, q.Sort})
	if err != nil {
		// A NaN or infinite number (JSON has none). Such a query matches
		// no number anyway (SQLite binds NaN as NULL); its cursors are
		// only bound to the query's shape.
		return fmt.Appendf(nil, "%d %v %d", len(q.Types), q.Types, len(q.Filter))
	}
	return b
}

func encodeSearchCursor(c cursorPos, fp []byte) string {
	b := []byte{searchCursorFormat}
	if c.back {
		b[0] = searchCursorBack
	}
	b = binary.AppendUvarint(b, uint64(c.rid))
	b = binary.AppendVarint(b, c.total)
	for _, k := range c.keys {
		switch v := k.(type) {
		case int64:
			b = binary.AppendVarint(append(b, tagInt), v)
		case float64:
			b = binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(v))
		case string:
			b = binary.AppendUvarint(append(b, tagText), uint64(len(v)))
			b = append(b, v...)
		case []byte:
			b = binary.AppendUvarint(append(b, tagText), uint64(len(v)))
			b = append(b, v...)
		default:
			b = append(b, tagNull)
		}
	}
	b = binary.BigEndian.AppendUint32(b, checksum(b, fp))
	return cursorEncoding.EncodeToString(b)
}

func decodeSearchCursor(s string, fp []byte, nkeys int) (cursorPos, bool) {
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < 1+1+1+4 {
		return cursorPos{}, false
	}
	body := b[:len(b)-4]
	if binary.BigEndian.Uint32(b[len(b)-4:]) != checksum(body, fp) || (body[0] != searchCursorFormat && body[0] != searchCursorBack) {
		return cursorPos{}, false
	}
	r := body[1:]
	rid, n := binary.Uvarint(r)
	if n <= 0 || rid > math.MaxInt64 {
		return cursorPos{}, false
	}
	r = r[n:]
	total, n := binary.Varint(r)
	if n <= 0 {
		return cursorPos{}, false
	}
	r = r[n:]
	c := cursorPos{rid: int64(rid), total: total, back: body[0] == searchCursorBack}
	for range nkeys {
		if len(r) == 0 {
			return cursorPos{}, false
		}
		tag := r[0]
		r = r[1:]
		switch tag {
		case tagNull:
			c.keys = append(c.keys, nil)
		case tagInt:
			v, n := binary.Varint(r)
			if n <= 0 {
				return cursorPos{}, false
			}
			c.keys, r = append(c.keys, v), r[n:]
		case tagFloat:
			if len(r) < 8 {
				return cursorPos{}, false
			}
			c.keys, r = append(c.keys, math.Float64frombits(binary.BigEndian.Uint64(r))), r[8:]
		case tagText:
			l, n := binary.Uvarint(r)
			if n <= 0 || l > uint64(len(r)-n) {
				return cursorPos{}, false
			}
			c.keys, r = append(c.keys, string(r[n:n+int(l)])), r[n+int(l):]
		default:
			return cursorPos{}, false
		}
	}
	if len(r) != 0 {
		return cursorPos{}, false
	}
	return c, true
}
