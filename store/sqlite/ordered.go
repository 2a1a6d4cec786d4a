package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// A driving clause that is one seek fixing every key column before rid
// (a token with system and code, a typed reference, a uri) meets its
// index rows in rid order: the primary keys are (…, rid, …) with only
// equalities before rid. The page statement can then walk those rows
// and join current to each, and stop at the page's end, where the usual
// `c.rid IN (set)` builds the whole set first. At a million resources a
// common code (say a body height, 20,000 Observations) took tens of
// milliseconds to gather for a page of 50; walking it takes a page's
// worth of seeks.
//
// A resource can have several rows for the one value (the same code in
// two codings): only the first row of each resource in key order joins,
// so the walk yields each resource once without a DISTINCT, which would
// make SQLite gather the whole set again.
type orderedSeek struct {
	table string
	eq    []string // the key columns before rid, all fixed by the seek
	after []string // the key columns after rid
}

// orderedSeeks are the seeks that stream in rid order, by the exact text
// of their alt's condition (the compiler's own output: any other shape
// takes the general path).
var orderedSeeks = map[string]orderedSeek{
	"x.pid IN (?) AND x.code = ? AND x.system = ?":     {"ix_token", []string{"pid", "code", "system"}, []string{"tup", "text"}},
	"x.pid IN (?) AND x.ref_id = ? AND x.ref_type = ?": {"ix_ref", []string{"ref_id", "ref_type", "pid"}, []string{"tup", "ver"}},
	"x.pid IN (?) AND x.value = ?":                     {"ix_uri", []string{"pid", "value"}, []string{"tup"}},
}

// ordered returns the alt of a clause that drives in rid order, or nil.
func ordered(as []alt) *alt {
	if len(as) != 1 || len(as[0].tables) != 1 {
		return nil
	}
	o, ok := orderedSeeks[as[0].where.sql]
	if !ok || as[0].tables[0].table != o.table {
		return nil
	}
	return &as[0]
}

// walk is the FROM and WHERE of a page driven by a (from ordered): the
// index rows, the first of each resource, each joined to its current
// row c.
func (a *alt) walk() (from string, where frag) {
	o := orderedSeeks[a.where.sql]
	var first strings.Builder
	first.WriteString("NOT EXISTS (SELECT 1 FROM " + o.table + " AS y WHERE y.rid = x.rid")
	for _, col := range o.eq {
		first.WriteString(" AND y." + col + " = x." + col)
	}
	first.WriteString(" AND (y." + strings.Join(o.after, ", y.") + ") < (x." + strings.Join(o.after, ", x.") + "))")
	return o.table + " AS x CROSS JOIN current AS c ON c.rid = x.rid", a.where.append(frag{sql: " AND " + first.String()})
}

// hasWalk decides how a query whose only drivable clause is a _has finds
// its page: by gathering the set (every referrer matching the inner
// clause, mapped to its target: a cost in the referrers) or by walking
// the type's resources in rid order with the correlated probe, which
// stops after the page (a cost in the resources walked until count+1
// match). Patient?_has:Observation:patient:code=<a common code> has tens
// of thousands of referrers at a million resources and matches most
// patients: the walk answers in a page's worth of probes.
//
// The walk is chosen when the set would be large (driveProbe referrers or
// more) and the first driveProbe referrers already name more targets than
// the page needs, a sign that matches are spread over the targets rather
// than concentrated on a few (one patient's thousand glucose readings),
// where the walk would probe every target for nothing. Without
// statistics this is a guess: a code spread thinly over many targets
// walks farther than it needs to.
func (s *Store) hasWalk(ctx context.Context, cd cond, count int) (bool, error) {
	if cd.set == nil || cd.probe == nil || count == 0 {
		return false, nil
	}
	// Through the count cache (Store.counts): the sample costs a thousand
	// referrers' lookups, most of a page's time, and the same _has comes
	// back between writes.
	sample := cd.set.wrap("SELECT count(*), count(DISTINCT rid) FROM (", fmt.Sprintf(" LIMIT %d)", driveProbe))
	n, err := s.counts(ctx, sample, 2)
	if err != nil {
		return false, s.mapErr(ctx, err)
	}
	return n[0] >= driveProbe && n[1] > count, nil
}

// hasProbe is a _has test of the resource aliased res as a correlated
// probe: its referrers (ix_ref rows of pids pointing at it), each tested
// for the inner clause pred, compiled against the referrer's current row
// aliased ra. When pred reads nothing of that row but its rid, the
// ix_ref row itself is aliased ra (its rid is the referrer's, and index
// rows exist only for live resources of the pids' type), which saves a
// lookup of current per referrer: the walk probes every referrer of
// every target it passes.
func hasProbe(pids []any, pred frag, typ, ra, res string) *frag {
	var f frag
	if strings.Count(pred.sql, ra+".") == strings.Count(pred.sql, ra+".rid") {
		f = frag{"EXISTS (SELECT 1 FROM ix_ref AS " + ra + " WHERE " + ra + ".pid IN (" + placeholders(len(pids)) + ") AND " +
			ra + ".ref_id = " + res + ".id AND " + ra + ".ref_type = " + res + ".type AND ", pids}
	} else {
		f = frag{"EXISTS (SELECT 1 FROM ix_ref AS x CROSS JOIN current AS " + ra + " ON " + ra + ".rid = x.rid WHERE x.pid IN (" +
			placeholders(len(pids)) + ") AND x.ref_id = " + res + ".id AND x.ref_type = " + res + ".type AND +" + ra + ".type = ? AND +" +
			ra + ".deleted = 0 AND ", append(slices.Clone(pids), typ)}
	}
	f = f.append(pred).append(frag{sql: ")"})
	return &f
}
