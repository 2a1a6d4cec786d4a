package mongo

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Search compiles a search.Query to one MongoDB filter over the current
// documents (resources): each clause becomes an $elemMatch on the ix array
// (index entries, doc.go) — one subdocument must satisfy every condition of
// a value, as one SQL row would — negations a $nor, alternatives an $or.
// Values are placed in the filter as BSON values, never parsed as query
// text: a value shaped like an operator ({"$ne":1}) is a string, and
// regular expressions are built only from regexp.QuoteMeta of the value.
//
// The server's own shapes (search.Clause): Any is an $or, All an $and,
// _type a test of the document's type; a shape not known here is an error.
//
// Chains and _has are semi-joins run as their own indexed queries first:
// the ids of the matching targets (at most maxJoin) become an $in of the
// outer filter. (FerretDB, the test stand-in, has no $lookup.)
//
// Order: without _sort by _id ("Type/id"); with _sort on the sort keys
// precomputed at write time (sk.<param>.a, the lowest value, for
// ascending; .d, the highest, for descending; search.html#_sort), then
// _id. Resources without a value come last in both directions, which
// MongoDB's order (missing sorts first) cannot express in one sort: the
// matches are read in "null patterns" — first those that have every key,
// then those missing the last key, and so on — each pattern one indexed,
// sorted, limited query. The cursor is a keyset position: the pattern, the
// key values and _id of the last match.
//
// Total: accurate counts with the same filter (countDocuments); estimate
// counts on the first page and carries the number in the cursor; none
// counts nothing (-1), except Count 0 (a total only).

// maxJoin bounds the targets of one chain or _has.
const maxJoin = 10_000

// Search implements store.Searcher.
func (s *Store) Search(ctx context.Context, q *search.Query) (store.SearchPage, error) {
	if err := ctx.Err(); err != nil {
		return store.SearchPage{}, err
	}
	if q.Count < 0 {
		return store.SearchPage{}, fmt.Errorf("mongo: search: count %d is negative", q.Count)
	}
	c := &compiler{s: s, ctx: ctx, now: time.Now()}
	filter, err := c.query(q.Types, q.Filter)
	if err != nil {
		return store.SearchPage{}, fmt.Errorf("mongo: search: %w", err)
	}
	keys, err := sortKeys(q.Sort)
	if err != nil {
		return store.SearchPage{}, fmt.Errorf("mongo: search: %w", err)
	}
	fp := searchFingerprint(q)
	var pos *searchPos
	if q.Cursor != "" {
		var p searchPos
		if !openCursor(q.Cursor, fp, &p) || len(p.Keys) > len(keys) || p.Pattern < 0 || p.Pattern >= 1<<len(keys) {
			return store.SearchPage{}, fmt.Errorf("mongo: search: %w", store.ErrInvalidCursor)
		}
		pos = &p
	}
	page := store.SearchPage{Total: -1}
	var next, prev *searchPos
	if q.Count > 0 {
		if page.Matches, prev, next, err = s.fetch(ctx, filter, keys, pos, q.Count); err != nil {
			return store.SearchPage{}, err
		}
	}
	count := false
	switch {
	case q.Count == 0 || q.Total == search.TotalAccurate:
		count = true
	case q.Total != search.TotalEstimate:
	case pos != nil && pos.Total >= 0:
		page.Total = int(pos.Total)
	case pos == nil && next == nil:
		page.Total = len(page.Matches)
	default:
		count = true
	}
	if count {
		n, err := s.resources.CountDocuments(ctx, filter)
		if err != nil {
			return store.SearchPage{}, fmt.Errorf("mongo: search: count: %w", s.mapErr(ctx, err))
		}
		page.Total = int(n)
	}
	for _, c := range []struct {
		pos *searchPos
		out *string
	}{{next, &page.Next}, {prev, &page.Prev}} {
		if c.pos == nil {
			continue
		}
		c.pos.Total = -1
		if q.Total == search.TotalEstimate {
			c.pos.Total = int64(page.Total)
		}
		*c.out = sealCursor(c.pos, fp)
	}
	return page, nil
}

// Explain returns the server's explain output (queryPlanner verbosity) of
// the find that answers the first page of q, for operators and for the
// test that indexed searches use an index.
func (s *Store) Explain(ctx context.Context, q *search.Query) (bson.Raw, error) {
	c := &compiler{s: s, ctx: ctx, now: time.Now()}
	filter, err := c.query(q.Types, q.Filter)
	if err != nil {
		return nil, fmt.Errorf("mongo: explain: %w", err)
	}
	cmd := bson.D{
		{Key: "explain", Value: bson.D{{Key: "find", Value: resourcesName}, {Key: "filter", Value: filter},
			{Key: "sort", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "limit", Value: max(q.Count, 1) + 1}}},
		{Key: "verbosity", Value: "queryPlanner"},
	}
	raw, err := s.db.RunCommand(ctx, cmd).Raw()
	if err != nil {
		return nil, fmt.Errorf("mongo: explain: %w", s.mapErr(ctx, err))
	}
	return raw, nil
}

// sortKey is a compiled _sort key: the document field and its direction.
type sortKey struct {
	field    string
	desc     bool
	nullable bool
}

func sortKeys(sk []search.SortKey) ([]sortKey, error) {
	if len(sk) > 4 {
		return nil, fmt.Errorf("_sort: at most 4 keys: %w", store.ErrUnsupported)
	}
	var out []sortKey
	for _, k := range sk {
		switch {
		case k.Param == "_id":
			out = append(out, sortKey{field: "id", desc: k.Descending})
		case k.Param == "_lastUpdated":
			out = append(out, sortKey{field: "lu", desc: k.Descending})
		case k.Type == search.Composite || k.Type == search.Special:
			return nil, fmt.Errorf("_sort=%s: sorting on a %s parameter: %w", k.Param, k.Type, store.ErrUnsupported)
		default:
			f := "sk." + escapeKey(k.Param) + ".a"
			if k.Descending {
				f = "sk." + escapeKey(k.Param) + ".d"
			}
			out = append(out, sortKey{field: f, desc: k.Descending, nullable: true})
		}
	}
	return out, nil
}

// fetch reads up to count matches after pos (before it, for a backward
// position), pattern by pattern, with the positions of the pages before
// and after them (nil where there is none).
func (s *Store) fetch(ctx context.Context, filter bson.D, keys []sortKey, pos *searchPos, count int) (matches []store.Resource, prev, next *searchPos, err error) {
	type hit struct {
		r       store.Resource
		pattern int
		keys    bson.A
		id      string
	}
	var hits []hit
	n := len(keys)
	back := pos != nil && pos.Back
	// Forward the patterns are read from the cursor's up; backward from
	// it down, each in the reverse order, and the hits turned round at
	// the end.
	start, end, step := 0, 1<<n, 1
	switch {
	case back:
		start, end, step = pos.Pattern, -1, -1
	case pos != nil:
		start = pos.Pattern
	}
	proj := append(bson.D{}, readFields...)
	for _, k := range keys {
		proj = append(proj, bson.E{Key: k.field, Value: 1})
	}
	for pattern := start; pattern != end && len(hits) <= count; pattern += step {
		var present []sortKey
		f := append(bson.D{}, filter...)
		skip := false
		for i, k := range keys {
			null := pattern&(1<<(n-1-i)) != 0
			if null && !k.nullable {
				skip = true
				break
			}
			if k.nullable {
				f = append(f, bson.E{Key: k.field, Value: bson.D{{Key: "$exists", Value: !null}}})
			}
			if !null {
				present = append(present, k)
			}
		}
		if skip {
			continue
		}
		if pos != nil && pattern == pos.Pattern {
			if len(pos.Keys) != len(present) {
				return nil, nil, nil, fmt.Errorf("mongo: search: %w", store.ErrInvalidCursor)
			}
			f = append(f, bson.E{Key: "$or", Value: keysetAfter(present, pos.Keys, pos.Last, back)})
		}
		sort := bson.D{}
		for _, k := range present {
			dir := 1
			if k.desc != back {
				dir = -1
			}
			sort = append(sort, bson.E{Key: k.field, Value: dir})
		}
		idDir := 1
		if back {
			idDir = -1
		}
		sort = append(sort, bson.E{Key: "_id", Value: idDir})
		cur, err := s.resources.Find(ctx, f, options.Find().SetSort(sort).SetProjection(proj).
			SetLimit(int64(count+1-len(hits))))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mongo: search: %w", s.mapErr(ctx, err))
		}
		for cur.Next(ctx) {
			var d stored
			if err := cur.Decode(&d); err != nil {
				_ = cur.Close(ctx)
				return nil, nil, nil, fmt.Errorf("mongo: search: %w", err)
			}
			h := hit{r: d.resource(), pattern: pattern, id: currentKey(d.Type, d.ID)}
			for _, k := range present {
				rv, err := cur.Current.LookupErr(strings.Split(k.field, ".")...)
				if err != nil {
					_ = cur.Close(ctx)
					return nil, nil, nil, fmt.Errorf("mongo: search: sort key %s: %w", k.field, err)
				}
				var v any
				if err := rv.Unmarshal(&v); err != nil {
					_ = cur.Close(ctx)
					return nil, nil, nil, fmt.Errorf("mongo: search: sort key %s: %w", k.field, err)
				}
				h.keys = append(h.keys, v)
			}
			hits = append(hits, h)
		}
		err = cur.Err()
		_ = cur.Close(ctx)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("mongo: search: %w", s.mapErr(ctx, err))
		}
	}
	more := len(hits) > count
	if more {
		hits = hits[:count]
	}
	if back {
		slices.Reverse(hits)
	}
	if len(hits) == 0 {
		return nil, nil, nil, nil
	}
	for _, h := range hits {
		matches = append(matches, h.r)
	}
	first, last := hits[0], hits[len(hits)-1]
	// Going forward there is a page before unless this is the first;
	// going backward there is a page after (the one the client came
	// from).
	if (back && more) || (!back && pos != nil) {
		prev = &searchPos{Pattern: first.pattern, Keys: first.keys, Last: first.id, Back: true}
	}
	if back || more {
		next = &searchPos{Pattern: last.pattern, Keys: last.keys, Last: last.id}
	}
	return matches, prev, next, nil
}

// keysetAfter is the $or of "after (vals…, last)" in the keys' directions,
// or of "before" it when before is set.
func keysetAfter(keys []sortKey, vals bson.A, last string, before bool) bson.A {
	var ors bson.A
	for i := 0; i <= len(keys); i++ {
		d := bson.D{}
		for j := 0; j < i; j++ {
			d = append(d, bson.E{Key: keys[j].field, Value: vals[j]})
		}
		if i < len(keys) {
			op := "$gt"
			if keys[i].desc != before {
				op = "$lt"
			}
			d = append(d, bson.E{Key: keys[i].field, Value: bson.D{{Key: op, Value: vals[i]}}})
		} else {
			op := "$gt"
			if before {
				op = "$lt"
			}
			d = append(d, bson.E{Key: "_id", Value: bson.D{{Key: op, Value: last}}})
		}
		ors = append(ors, d)
	}
	return ors
}

// compiler compiles the clauses of one query.
type compiler struct {
	s   *Store
	ctx context.Context
	now time.Time
}

func unsupported(cl *search.Clause, why string) error {
	name := cl.Param
	if cl.Modifier != "" {
		name += ":" + cl.Modifier
	}
	return fmt.Errorf("%s: %s: %w", name, why, store.ErrUnsupported)
}

var (
	matchNone = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
	matchAll  = bson.D{}
)

// query is the filter of live resources of types matching every clause.
func (c *compiler) query(types []string, clauses []search.Clause) (bson.D, error) {
	f := bson.D{}
	switch len(types) {
	case 0:
	case 1:
		f = append(f, bson.E{Key: "type", Value: types[0]})
	default:
		f = append(f, bson.E{Key: "type", Value: bson.D{{Key: "$in", Value: types}}})
	}
	f = append(f, bson.E{Key: "del", Value: false})
	var and bson.A
	for i := range clauses {
		cf, err := c.clause(&clauses[i], types)
		if err != nil {
			return nil, err
		}
		if len(cf) > 0 {
			and = append(and, cf)
		}
	}
	if len(and) > 0 {
		f = append(f, bson.E{Key: "$and", Value: and})
	}
	return f, nil
}

func anyOf(fs []bson.D) bson.D {
	switch len(fs) {
	case 0:
		return matchNone
	case 1:
		return fs[0]
	}
	a := make(bson.A, len(fs))
	for i, f := range fs {
		a[i] = f
	}
	return bson.D{{Key: "$or", Value: a}}
}

func not(f bson.D) bson.D { return bson.D{{Key: "$nor", Value: bson.A{f}}} }

// elems matches resources of types with an index entry of parameter p
// that meets every condition of one of alts: an $or of $elemMatch.
//
// FerretDB's $elemMatch takes one condition only (FerretDB issue 730 and
// its neighbours), which cannot say "one entry with this parameter and
// this range". There the same conditions go to an aggregation that
// unwinds ix (so that each entry is a document of its own), matches them,
// and groups the _ids: a semi-join whose ids (at most maxJoin) become an
// $in, computed by the server, not by filtering in Go.
func (c *compiler) elems(types []string, p string, alts []bson.D) (bson.D, error) {
	if len(alts) == 0 {
		return matchNone, nil
	}
	if !c.s.FerretDB {
		fs := make([]bson.D, len(alts))
		for i, a := range alts {
			m := append(bson.D{{Key: "p", Value: p}}, a...)
			fs[i] = bson.D{{Key: "ix", Value: bson.D{{Key: "$elemMatch", Value: m}}}}
		}
		return anyOf(fs), nil
	}
	ors := bson.A{}
	for _, a := range alts {
		m := bson.D{{Key: "ix.p", Value: p}}
		for _, e := range a {
			m = append(m, bson.E{Key: "ix." + e.Key, Value: e.Value})
		}
		ors = append(ors, m)
	}
	base, err := c.query(types, nil)
	if err != nil {
		return nil, err
	}
	base = append(base, bson.E{Key: "ix.p", Value: p})
	pipe := bson.A{
		bson.D{{Key: "$match", Value: base}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "ix", Value: 1}}}},
		bson.D{{Key: "$unwind", Value: "$ix"}},
		bson.D{{Key: "$match", Value: bson.D{{Key: "$or", Value: ors}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$_id"}}}},
		bson.D{{Key: "$limit", Value: maxJoin + 1}},
	}
	ids, err := c.groupedIDs(pipe)
	if err != nil {
		return nil, err
	}
	if len(ids) > maxJoin {
		return nil, fmt.Errorf("%s: more than %d matches on FerretDB: %w", p, maxJoin, store.ErrUnsupported)
	}
	return bson.D{{Key: "_id", Value: cmp("$in", ids)}}, nil
}

// groupedIDs runs an aggregation whose documents are {_id: string}.
func (c *compiler) groupedIDs(pipe bson.A) (bson.A, error) {
	cur, err := c.s.resources.Aggregate(c.ctx, pipe)
	if err != nil {
		return nil, c.s.mapErr(c.ctx, err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(c.ctx, &docs); err != nil {
		return nil, c.s.mapErr(c.ctx, err)
	}
	ids := bson.A{}
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	return ids, nil
}

func cmp(op string, v any) bson.D { return bson.D{{Key: op, Value: v}} }

// clause compiles one clause to a filter of resources of types. Every
// shape of search.Clause is compiled here or refused: a shape this
// compiler does not know (two shapes at once, no parameter) is an error,
// never an empty filter, which would match everything (access control
// narrows searches with Any, All and _type: widening would leak).
func (c *compiler) clause(cl *search.Clause, types []string) (bson.D, error) {
	if err := checkShape(cl); err != nil {
		return nil, err
	}
	switch {
	case cl.All != nil:
		return c.all(cl, types)
	case cl.Any != nil:
		var fs []bson.D
		for i := range cl.Any {
			f, err := c.clause(&cl.Any[i], types)
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
		return anyOf(fs), nil
	case cl.Has != nil:
		return c.has(cl)
	case cl.Chain != nil:
		return c.chain(cl, types)
	case cl.Param == "_id":
		return c.id(cl)
	case cl.Param == "_type":
		return resourceType(cl)
	case cl.Param == "_lastUpdated":
		return c.lastUpdated(cl)
	case cl.Modifier == "missing":
		return c.missing(cl)
	case len(cl.Values) == 0:
		return nil, fmt.Errorf("%s: a clause without values", cl.Param)
	}
	var alts []bson.D
	p := cl.Param
	negated := false
	switch cl.Type {
	case search.String:
		for i := range cl.Values {
			a, err := stringConds(cl, &cl.Values[i], "")
			if err != nil {
				return nil, err
			}
			alts = append(alts, a...)
		}
	case search.Token:
		switch cl.Modifier {
		case "", "not":
			negated = cl.Modifier == "not"
			alts = tokenListConds(cl.Values, "")
		case "text":
			for i := range cl.Values {
				alts = append(alts, bson.D{{Key: "t", Value: prefixRegex(cl.Values[i].Text)}})
			}
		case "of-type":
			for i := range cl.Values {
				v := &cl.Values[i]
				var t search.Value
				if len(v.Components) > 0 {
					t = v.Components[0]
				}
				alts = append(alts, bson.D{{Key: "c", Value: v.Code}, {Key: "ot", Value: ofTypeKey(t.System, t.Code)}})
			}
		default:
			return nil, unsupported(cl, "token modifier not supported (no terminology server)")
		}
	case search.Date:
		if cl.Modifier != "" {
			return nil, unsupported(cl, "modifier not defined for dates")
		}
		for i := range cl.Values {
			alts = append(alts, c.dateConds(&cl.Values[i], "")...)
		}
	case search.Number, search.Quantity:
		if cl.Modifier != "" {
			return nil, unsupported(cl, "modifier not defined for numbers and quantities")
		}
		for i := range cl.Values {
			alts = append(alts, numberConds(&cl.Values[i], "", cl.Type == search.Quantity)...)
		}
	case search.Reference:
		switch cl.Modifier {
		case "", "type":
			for i := range cl.Values {
				alts = append(alts, refConds(cl, &cl.Values[i], "")...)
			}
		case "identifier":
			p = identifierName(cl.Param)
			for i := range cl.Values {
				alts = append(alts, tokenConds(&cl.Values[i], "")...)
			}
		default:
			return nil, unsupported(cl, "reference modifier not supported")
		}
	case search.URI:
		for i := range cl.Values {
			a, err := uriConds(cl, &cl.Values[i], "")
			if err != nil {
				return nil, err
			}
			alts = append(alts, a...)
		}
	case search.Composite:
		if cl.Modifier != "" {
			return nil, unsupported(cl, "composite parameters take no modifier (search.html#composite)")
		}
		for i := range cl.Values {
			a, err := c.compositeConds(cl, &cl.Values[i])
			if err != nil {
				return nil, err
			}
			alts = append(alts, a...)
		}
	case search.Special:
		if cl.Modifier != "" {
			return nil, unsupported(cl, "modifier not defined for special parameters")
		}
		for i := range cl.Values {
			a, err := nearConds(cl, &cl.Values[i])
			if err != nil {
				return nil, err
			}
			alts = append(alts, a...)
		}
	default:
		return nil, unsupported(cl, "parameter type "+string(cl.Type)+" is not searchable")
	}
	f, err := c.elems(types, p, alts)
	if err != nil {
		return nil, err
	}
	if negated {
		return not(f), nil
	}
	return f, nil
}

// checkShape refuses a clause that is not exactly one of the shapes
// search.Clause documents: a disjunction (Any), a conjunction (All), a
// reverse chain (Has), or a parameter with values, possibly chained.
func checkShape(cl *search.Clause) error {
	shapes := 0
	for _, set := range []bool{cl.Any != nil, cl.All != nil, cl.Has != nil, cl.Chain != nil} {
		if set {
			shapes++
		}
	}
	switch {
	case shapes > 1:
		return fmt.Errorf("%q: a clause of several shapes (any, all, _has, chain)", cl.Param)
	case shapes == 1 && cl.Chain == nil && (cl.Param != "" || len(cl.Values) > 0):
		return fmt.Errorf("%q: a parameter and values on an any, all or _has clause", cl.Param)
	case shapes == 0 && cl.Param == "":
		return fmt.Errorf("a clause without a parameter")
	}
	return nil
}

// all matches when every one of cl.All does (access control: a
// compartment and a granular scope restriction, search.Clause.All): an
// $and of the parts, evaluated by the server like the query's own clauses.
func (c *compiler) all(cl *search.Clause, types []string) (bson.D, error) {
	if len(cl.All) == 0 {
		return nil, fmt.Errorf("an empty conjunction")
	}
	var and bson.A
	for i := range cl.All {
		f, err := c.clause(&cl.All[i], types)
		if err != nil {
			return nil, err
		}
		if len(f) > 0 { // matchAll adds no condition
			and = append(and, f)
		}
	}
	switch len(and) {
	case 0:
		return matchAll, nil
	case 1:
		return and[0].(bson.D), nil
	}
	return bson.D{{Key: "$and", Value: and}}, nil
}

// resourceType answers the server's _type clause (search.Clause.Param):
// the resource's own type is one of the values' codes. Access control
// puts it inside Any and All to confine each type of a several-type
// search by that type's rule.
func resourceType(cl *search.Clause) (bson.D, error) {
	if cl.Modifier != "" {
		return nil, unsupported(cl, "_type takes no modifier")
	}
	names := bson.A{}
	for _, v := range cl.Values {
		if v.System != "" || v.Code == "" {
			continue // a resource type has no system
		}
		names = append(names, v.Code)
	}
	if len(names) == 0 {
		return matchNone, nil
	}
	return bson.D{{Key: "type", Value: cmp("$in", names)}}, nil
}

// prefixRegex is a case-sensitive, anchored starts-with: MongoDB answers
// it with an index range. The value is quoted: its characters are plain.
func prefixRegex(p string) bson.D {
	return cmp("$regex", "^"+regexp.QuoteMeta(p))
}

// stringConds: search.html#string. The default is starts-with on the
// folded text, :contains a substring of it, :exact the value as written.
// _text (the narrative) is matched as :contains.
func stringConds(cl *search.Clause, v *search.Value, x string) ([]bson.D, error) {
	switch {
	case cl.Modifier == "contains" || (cl.Modifier == "" && cl.Param == "_text"):
		return []bson.D{{{Key: x + "t", Value: cmp("$regex", regexp.QuoteMeta(v.Text))}}}, nil
	case cl.Modifier == "":
		return []bson.D{{{Key: x + "t", Value: prefixRegex(v.Text)}}}, nil
	case cl.Modifier == "exact":
		text := v.Text
		if text == "" {
			text = search.Fold(v.Raw)
		}
		return []bson.D{{{Key: x + "t", Value: text}, {Key: x + "v", Value: v.Raw}}}, nil
	}
	return nil, unsupported(cl, "string modifier not defined")
}

// tokenConds: search.html#token. Codes match exactly (case-sensitively).
func tokenConds(v *search.Value, x string) []bson.D {
	switch {
	case v.HasSystem && v.Code == "" && v.System == "": // "|"
		return nil
	case v.Code == "" && (v.HasSystem || v.System != ""): // system|
		return []bson.D{{{Key: x + "s", Value: v.System}}}
	case v.HasSystem || v.System != "": // system|code, |code
		return []bson.D{{{Key: x + "c", Value: v.Code}, {Key: x + "s", Value: v.System}}}
	case v.Code == "":
		return nil
	}
	return []bson.D{{{Key: x + "c", Value: v.Code}}}
}

// dateConds: search.html#prefix with date ranges. The entry covers
// [lo, hi), the value [S, E):
//
//	eq  S <= lo and hi <= E     ne  not eq
//	gt  hi > E                  lt  lo < S
//	ge  gt or eq                le  lt or eq
//	sa  lo >= E                 eb  hi <= S
//	ap  [lo, hi) overlaps [S-d, E+d), d a tenth of the time between now and S
func (c *compiler) dateConds(v *search.Value, x string) []bson.D {
	s, e := bson.DateTime(v.Start.UnixMilli()), bson.DateTime(ceilMilli(v.End))
	lo, hi := x+"lo", x+"hi"
	eq := bson.D{{Key: lo, Value: bson.D{{Key: "$gte", Value: s}, {Key: "$lt", Value: e}}}, {Key: hi, Value: cmp("$lte", e)}}
	switch v.Prefix {
	case search.Ne:
		return []bson.D{{{Key: lo, Value: cmp("$lt", s)}}, {{Key: hi, Value: cmp("$gt", e)}}}
	case search.Gt:
		return []bson.D{{{Key: hi, Value: cmp("$gt", e)}}}
	case search.Lt:
		return []bson.D{{{Key: lo, Value: cmp("$lt", s)}}}
	case search.Ge:
		return []bson.D{{{Key: hi, Value: cmp("$gt", e)}}, eq}
	case search.Le:
		return []bson.D{{{Key: lo, Value: cmp("$lt", s)}}, eq}
	case search.Sa:
		return []bson.D{{{Key: lo, Value: cmp("$gte", e)}}}
	case search.Eb:
		return []bson.D{{{Key: hi, Value: cmp("$lte", s)}}}
	case search.Ap:
		d := approx(c.now, v.Start).Milliseconds()
		return []bson.D{{{Key: hi, Value: cmp("$gt", s-bson.DateTime(d))}, {Key: lo, Value: cmp("$lt", e+bson.DateTime(d))}}}
	}
	return []bson.D{eq}
}

func approx(now, t time.Time) time.Duration {
	d := now.Sub(t)
	if d < 0 {
		d = -d
	}
	return d / 10
}

// numberConds: search.html#number and #quantity. The entry is [lo, hi]
// (the value, or a Range's bounds); eq and ne use the search value's
// implicit range [Lo, Hi), the other prefixes the value itself:
//
//	eq  Lo <= lo and hi < Hi     ne  not eq
//	gt  hi > v    lt  lo < v     ge  hi >= v    le  lo <= v
//	sa  lo > v    eb  hi < v     ap  [lo, hi] overlaps v ± 10%
//
// A quantity's unit: system|code matches both, ||code the code or the
// unit text. No UCUM conversion.
func numberConds(v *search.Value, x string, quantity bool) []bson.D {
	lo, hi := x+"lo", x+"hi"
	n := v.Num
	var parts []bson.D
	switch v.Prefix {
	case search.Ne:
		parts = []bson.D{{{Key: lo, Value: cmp("$lt", v.Lo)}}, {{Key: hi, Value: cmp("$gte", v.Hi)}}}
	case search.Gt:
		parts = []bson.D{{{Key: hi, Value: cmp("$gt", n)}}}
	case search.Lt:
		parts = []bson.D{{{Key: lo, Value: cmp("$lt", n)}}}
	case search.Ge:
		parts = []bson.D{{{Key: hi, Value: cmp("$gte", n)}}}
	case search.Le:
		parts = []bson.D{{{Key: lo, Value: cmp("$lte", n)}}}
	case search.Sa:
		parts = []bson.D{{{Key: lo, Value: cmp("$gt", n)}}}
	case search.Eb:
		parts = []bson.D{{{Key: hi, Value: cmp("$lt", n)}}}
	case search.Ap:
		d := math.Abs(n) / 10
		from, to := min(n-d, v.Lo), max(n+d, v.Hi)
		parts = []bson.D{{{Key: lo, Value: cmp("$lte", to)}, {Key: hi, Value: cmp("$gte", from)}}}
	default:
		if v.Lo < v.Hi {
			parts = []bson.D{{{Key: lo, Value: bson.D{{Key: "$gte", Value: v.Lo}, {Key: "$lt", Value: v.Hi}}}, {Key: hi, Value: cmp("$lt", v.Hi)}}}
		} else {
			parts = []bson.D{{{Key: lo, Value: n}, {Key: hi, Value: n}}}
		}
	}
	if !quantity {
		return parts
	}
	switch {
	case v.System != "":
		for i := range parts {
			parts[i] = append(parts[i], bson.E{Key: x + "s", Value: v.System}, bson.E{Key: x + "c", Value: v.Code})
		}
	case v.Code != "":
		var out []bson.D
		for _, p := range parts {
			out = append(out, append(append(bson.D{}, p...), bson.E{Key: x + "c", Value: v.Code}),
				append(append(bson.D{}, p...), bson.E{Key: x + "u", Value: v.Code}))
		}
		return out
	}
	return parts
}

// refConds: search.html#reference. "Type/id" matches that resource; a
// bare id any resource with that id (or of the :[type] modifier's type);
// an absolute URL or canonical the stored string; a version the stored one.
func refConds(cl *search.Clause, v *search.Value, x string) []bson.D {
	typ, id := splitRef(v.Ref)
	var d bson.D
	if typ == "" && id != "" && !strings.ContainsAny(id, "/:#|?") { // a bare id
		typ = v.RefType
		if cl.Modifier == "type" && cl.TargetType != "" {
			typ = cl.TargetType
		}
		if typ == "" {
			d = bson.D{{Key: x + "ri", Value: id}}
		}
	}
	if d == nil {
		if cl.Modifier == "type" && cl.TargetType != "" && typ != cl.TargetType {
			return nil // Patient/1 is not an Organization
		}
		r := id
		if typ != "" {
			r = typ + "/" + id
		}
		d = bson.D{{Key: x + "r", Value: r}}
	}
	if v.Value != "" {
		d = append(d, bson.E{Key: x + "v", Value: v.Value})
	}
	return []bson.D{d}
}

// uriConds: search.html#uri. Exact and case-sensitive; :below matches URIs
// that start with the value, :above URIs the value starts with.
func uriConds(cl *search.Clause, v *search.Value, x string) ([]bson.D, error) {
	switch cl.Modifier {
	case "":
		return []bson.D{{{Key: x + "v", Value: v.Value}}}, nil
	case "below":
		return []bson.D{{{Key: x + "v", Value: prefixRegex(v.Value)}}}, nil
	case "above":
		var prefixes bson.A
		for i := range v.Value {
			if i > 0 && utf8.RuneStart(v.Value[i]) {
				prefixes = append(prefixes, v.Value[:i])
			}
		}
		prefixes = append(prefixes, v.Value)
		return []bson.D{{{Key: x + "v", Value: cmp("$in", prefixes)}}}, nil
	}
	return nil, unsupported(cl, "uri modifier not defined")
}

// compositeConds: search.html#composite. Each component of one stored
// tuple (k0, k1, … of one entry) must match its part of the value. The
// part is compiled for each type its value can be (a token has a code, a
// number a range, …), tested against the component's stored type.
func (c *compiler) compositeConds(cl *search.Clause, v *search.Value) ([]bson.D, error) {
	if len(v.Components) == 0 {
		return nil, fmt.Errorf("%s: a composite value without components", cl.Param)
	}
	combos := []bson.D{{}}
	for i := range v.Components {
		cv := &v.Components[i]
		x := fmt.Sprintf("k%d.", i)
		var parts []bson.D
		add := func(types bson.A, ds []bson.D) {
			for _, d := range ds {
				parts = append(parts, append(bson.D{{Key: x + "ty", Value: cmp("$in", types)}}, d...))
			}
		}
		if cv.Code != "" || cv.System != "" || cv.HasSystem {
			add(bson.A{string(search.Token)}, tokenConds(cv, x))
		}
		if cv.Lo != 0 || cv.Hi != 0 || cv.Num != 0 {
			add(bson.A{string(search.Number), string(search.Quantity)}, numberConds(cv, x, cv.System != "" || cv.Code != ""))
		}
		if !cv.Start.IsZero() {
			add(bson.A{string(search.Date)}, c.dateConds(cv, x))
		}
		if cv.Text != "" {
			ds, err := stringConds(&search.Clause{Param: cl.Param}, cv, x)
			if err != nil {
				return nil, err
			}
			add(bson.A{string(search.String)}, ds)
		}
		if cv.Ref != "" {
			add(bson.A{string(search.Reference)}, refConds(&search.Clause{}, cv, x))
		}
		if cv.Value != "" && cv.Ref == "" {
			add(bson.A{string(search.URI)}, []bson.D{{{Key: x + "v", Value: cv.Value}}})
		}
		var next []bson.D
		for _, cb := range combos {
			for _, p := range parts {
				next = append(next, append(append(bson.D{}, cb...), p...))
			}
		}
		combos = next
		if len(combos) > 64 {
			return nil, unsupported(cl, "composite value too ambiguous")
		}
	}
	return combos, nil
}

// nearConds: search.html#near, latitude|longitude[|distance[|units]], on
// the tuple k0 (latitude), k1 (longitude): the box around the point that
// the distance spans (longitude scaled by the cosine of the latitude,
// across the antimeridian in two parts). A box, not a circle: its corners
// reach about 40% further than the distance.
func nearConds(cl *search.Clause, v *search.Value) ([]bson.D, error) {
	p, unit, err := search.Near(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.Param, err)
	}
	if unit != "" {
		return nil, unsupported(cl, "distance unit "+unit+" (km, m, mi)")
	}
	lat, long, km := p.Lat, p.Long, p.Km
	dLat := km / search.KmPerDegree
	latC := bson.E{Key: "k0.lo", Value: bson.D{{Key: "$gte", Value: lat - dLat}, {Key: "$lte", Value: lat + dLat}}}
	cos := math.Cos(lat * math.Pi / 180)
	if cos < 1e-9 || dLat/cos >= 180 {
		return []bson.D{{latC}}, nil
	}
	dLong := dLat / cos
	from, to := long-dLong, long+dLong
	longRange := func(a, b float64) bson.D {
		return bson.D{latC, {Key: "k1.lo", Value: bson.D{{Key: "$gte", Value: a}, {Key: "$lte", Value: b}}}}
	}
	switch {
	case from < -180:
		return []bson.D{longRange(-180, to), longRange(from+360, 180)}, nil
	case to > 180:
		return []bson.D{longRange(from, 180), longRange(-180, to-360)}, nil
	}
	return []bson.D{longRange(from, to)}, nil
}

// missing: search.html#missing. A reference's value may be an identifier
// alone, found under name:identifier.
func (c *compiler) missing(cl *search.Clause) (bson.D, error) {
	if len(cl.Values) != 1 {
		return nil, fmt.Errorf("%s:missing: one value, true or false", cl.Param)
	}
	fs := []bson.D{{{Key: "ix.p", Value: cl.Param}}}
	if cl.Type == search.Reference {
		fs = append(fs, bson.D{{Key: "ix.p", Value: identifierName(cl.Param)}})
	}
	f := anyOf(fs)
	if cl.Values[0].Missing {
		return not(f), nil
	}
	return f, nil
}

// id answers _id from the document's id: exact, case-sensitive.
func (c *compiler) id(cl *search.Clause) (bson.D, error) {
	switch cl.Modifier {
	case "missing":
		if len(cl.Values) == 1 && !cl.Values[0].Missing {
			return matchAll, nil
		}
		return matchNone, nil
	case "", "not":
	default:
		return nil, unsupported(cl, "modifier not supported on _id")
	}
	ids := bson.A{}
	for _, v := range cl.Values {
		if v.System != "" || v.Code == "" {
			continue // an id has no system
		}
		ids = append(ids, v.Code)
	}
	if cl.Modifier == "not" {
		return bson.D{{Key: "id", Value: cmp("$nin", ids)}}, nil
	}
	return bson.D{{Key: "id", Value: cmp("$in", ids)}}, nil
}

// lastUpdated answers _lastUpdated from lu, an instant in microseconds:
// its range is [t, t+1µs).
func (c *compiler) lastUpdated(cl *search.Clause) (bson.D, error) {
	switch cl.Modifier {
	case "missing":
		if len(cl.Values) == 1 && !cl.Values[0].Missing {
			return matchAll, nil
		}
		return matchNone, nil
	case "":
	default:
		return nil, unsupported(cl, "modifier not defined for dates")
	}
	if len(cl.Values) == 0 {
		return nil, fmt.Errorf("%s: a clause without values", cl.Param)
	}
	span := func(lo, hi *int64) bson.D {
		d := bson.D{}
		if lo != nil {
			d = append(d, bson.E{Key: "$gte", Value: *lo})
		}
		if hi != nil {
			d = append(d, bson.E{Key: "$lt", Value: *hi})
		}
		return bson.D{{Key: "lu", Value: d}}
	}
	var fs []bson.D
	for _, v := range cl.Values {
		s, e := ceilMicro(v.Start), ceilMicro(v.End)
		switch v.Prefix {
		case search.Ne:
			fs = append(fs, span(nil, &s), span(&e, nil))
		case search.Gt, search.Sa:
			fs = append(fs, span(&e, nil))
		case search.Lt, search.Eb:
			fs = append(fs, span(nil, &s))
		case search.Ge:
			fs = append(fs, span(&s, nil))
		case search.Le:
			fs = append(fs, span(nil, &e))
		case search.Ap:
			d := approx(c.now, v.Start).Microseconds()
			lo, hi := s-d, e+d
			fs = append(fs, span(&lo, &hi))
		default:
			fs = append(fs, span(&s, &e))
		}
	}
	return anyOf(fs), nil
}

// chain: search.html#chaining. The targets matching the chained filter are
// found first (an indexed query of their own); the clause then matches
// references to them.
func (c *compiler) chain(cl *search.Clause, types []string) (bson.D, error) {
	if len(cl.Chain.Types) == 0 {
		return nil, fmt.Errorf("%s: a chain without target types", cl.Param)
	}
	inner, err := c.query(cl.Chain.Types, []search.Clause{cl.Chain.Filter})
	if err != nil {
		return nil, err
	}
	cur, err := c.s.resources.Find(c.ctx, inner, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(maxJoin+1))
	if err != nil {
		return nil, c.s.mapErr(c.ctx, err)
	}
	var targets []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(c.ctx, &targets); err != nil {
		return nil, c.s.mapErr(c.ctx, err)
	}
	if len(targets) > maxJoin {
		return nil, unsupported(cl, fmt.Sprintf("the chain matches more than %d resources; narrow it", maxJoin))
	}
	refs := bson.A{}
	for _, t := range targets {
		refs = append(refs, t.ID)
	}
	if len(refs) == 0 {
		return matchNone, nil
	}
	return c.elems(types, cl.Param, []bson.D{{{Key: "r", Value: cmp("$in", refs)}}})
}

// has: search.html#has. The references of Has.Param held by the Has.Type
// resources matching Has.Filter are gathered by an aggregation ($match,
// $unwind, $match, $group); the clause matches the resources they name.
func (c *compiler) has(cl *search.Clause) (bson.D, error) {
	h := cl.Has
	inner, err := c.query([]string{h.Type}, []search.Clause{h.Filter})
	if err != nil {
		return nil, err
	}
	pipe := bson.A{
		bson.D{{Key: "$match", Value: inner}},
		bson.D{{Key: "$project", Value: bson.D{{Key: "ix", Value: 1}}}},
		bson.D{{Key: "$unwind", Value: "$ix"}},
		bson.D{{Key: "$match", Value: bson.D{{Key: "ix.p", Value: h.Param}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$ix.r"}}}},
		bson.D{{Key: "$limit", Value: maxJoin + 1}},
	}
	refs, err := c.groupedIDs(pipe)
	if err != nil {
		return nil, err
	}
	if len(refs) > maxJoin {
		return nil, unsupported(cl, fmt.Sprintf("_has matches more than %d resources; narrow it", maxJoin))
	}
	keys := bson.A{}
	for _, r := range refs {
		if typ, _ := splitRef(r.(string)); typ != "" {
			keys = append(keys, r)
		}
	}
	if len(keys) == 0 {
		return matchNone, nil
	}
	return bson.D{{Key: "_id", Value: cmp("$in", keys)}}, nil
}
