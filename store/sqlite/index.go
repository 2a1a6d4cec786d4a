package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// Index rows (schema.go). This file turns a Change's search.Entry values
// into rows of the ix_ tables; search.go compiles queries against them.

// Kinds name the ix_ table a parameter's rows live in; params.kind holds
// them. Number and quantity share ix_number but keep their own kind, so a
// parameter's pid says what its rows mean.
const (
	kindString    = "string"
	kindToken     = "token"
	kindDate      = "date"
	kindNumber    = "number"
	kindQuantity  = "quantity"
	kindReference = "reference"
	kindURI       = "uri"
	// kindComposite prefixes the kind of a composite held in ix_comp:
	// "composite-quantity" is token$quantity.
	kindComposite = "composite-"
)

// tableOf is the ix_ table of a kind ("" for none: a composite or special
// parameter stored as component rows has none of its own).
func tableOf(kind string) string {
	switch kind {
	case kindString:
		return "ix_string"
	case kindToken:
		return "ix_token"
	case kindDate:
		return "ix_date"
	case kindNumber, kindQuantity:
		return "ix_number"
	case kindReference:
		return "ix_ref"
	case kindURI:
		return "ix_uri"
	}
	if strings.HasPrefix(kind, kindComposite) {
		return "ix_comp"
	}
	return ""
}

// ixTables are the ix_ tables, in the order writer statements are kept.
var ixTables = [...]string{"ix_string", "ix_token", "ix_date", "ix_number", "ix_ref", "ix_uri", "ix_comp"}

// Derived parameter names (schema.go).
func componentName(param string, i int) string { return param + "$" + strconv.Itoa(i) }
func ofTypeName(param string) string           { return param + ":of-type" }
func identifierName(param string) string       { return param + ":identifier" }

// unions are parameters whose index rows would only repeat rows other
// parameters of the same resource already have, so they are not written
// and a search reads the rows of their parts instead
// (paramSnapshot.addUnions). R4 defines each combo-* parameter of
// Observation as the union of the parameter on Observation and its
// component- twin (search-parameters.json: combo-code is
// "Observation.code | Observation.component.code", code is
// "Observation.code", component-code "Observation.component.code"; the
// combo composites are based on "Observation | Observation.component" with
// the same components). They were a third of a Synthea Observation's index
// rows and of the pages a create dirties. TestUnionsRepeatParts checks the
// identity on real Observations with the extractor; it holds for every
// registry the server runs, as a custom SearchParameter never replaces a
// built-in code (fhir/reindex, check).
var unions = map[string]map[string][]string{
	"Observation": {
		"combo-code":                {"code", "component-code"},
		"combo-code-value-concept":  {"code-value-concept", "component-code-value-concept"},
		"combo-code-value-quantity": {"code-value-quantity", "component-code-value-quantity"},
		"combo-data-absent-reason":  {"data-absent-reason", "component-data-absent-reason"},
		"combo-value-concept":       {"value-concept", "component-value-concept"},
		"combo-value-quantity":      {"value-quantity", "component-value-quantity"},
	},
}

// isUnion reports whether param of typ is one of unions.
func isUnion(typ, param string) bool {
	_, ok := unions[typ][param]
	return ok
}

// answeredByCurrent are the parameters search answers from the current
// table (id, last_updated) rather than from index rows: their entries would
// repeat what current already holds, on every resource.
func answeredByCurrent(param string) bool { return param == "_id" || param == "_lastUpdated" }

// splitRef splits a relative literal reference "Type/id" into its parts;
// anything else (absolute URL, "#contained", urn:, canonical, a
// conditional reference) comes back whole as id with type "".
func splitRef(ref string) (typ, id string) {
	t, i, ok := strings.Cut(ref, "/")
	if !ok || t == "" || i == "" || strings.ContainsAny(i, "/?#") || strings.ContainsAny(t, ":?#") ||
		t[0] < 'A' || t[0] > 'Z' {
		return "", ref
	}
	return t, i
}

// numberBounds is the stored [lo, hi] of a number or quantity entry: the
// value itself (search.html#number: gt, lt, … compare the value, and eq
// asks whether it lies in the search value's implicit range), a Range's
// bounds, or an open side for a comparator ("<5" is [-MaxNumber, 5]).
func numberBounds(e *search.Entry) (lo, hi float64) {
	if e.Value == "" { // a Range: Lo, Hi only (search.Entry)
		return e.Lo, e.Hi
	}
	lo, hi = e.Num, e.Num
	if e.Lo == -search.MaxNumber {
		lo = -search.MaxNumber
	}
	if e.Hi == search.MaxNumber {
		hi = search.MaxNumber
	}
	return lo, hi
}

// pkey names one params row.
type pkey struct{ typ, name, kind string }

// ixColumns are the columns of each ix_ table, in ixTables order, as the
// writer inserts them: pid first.
var ixColumns = [len(ixTables)][]string{
	{"pid", "text", "value", "rid", "tup"},
	{"pid", "code", "system", "rid", "tup", "text"},
	{"pid", "lo", "hi", "rid", "tup"},
	{"pid", "lo", "hi", "rid", "tup", "system", "code", "unit"},
	{"pid", "ref_id", "ref_type", "rid", "tup", "ver"},
	{"pid", "value", "rid", "tup"},
	{"pid", "code", "system", "rid", "tup", "lo", "hi", "vcode", "vsystem", "unit", "text", "value"},
}

// tableIndex is the position of kind's table in ixTables, -1 for none.
func tableIndex(kind string) int { return slices.Index(ixTables[:], tableOf(kind)) }

// maxRowsPerInsert bounds the rows of one INSERT statement (ix_comp's 12
// columns make 768 parameters, well below SQLite's 32,766).
const maxRowsPerInsert = 64

// indexStmts writes index rows. It belongs to the writer goroutine: only
// it uses the statements (prepared on the writer's connection) and the
// buffers.
type indexStmts struct {
	conn *sql.Conn
	// inserts[t][n-1] inserts n rows into table t; prepared on first use.
	inserts     [len(ixTables)][maxRowsPerInsert]*sql.Stmt
	del         [len(ixTables)]*sql.Stmt
	insertParam *sql.Stmt
	selectParam *sql.Stmt

	// pids caches params rows. Rows inserted by the transaction in flight
	// are listed in pending too, and forgotten if it rolls back (to a
	// savepoint or entirely), since the pid then no longer exists.
	pids    map[pkey]int64
	pending []pkey

	// rows buffers the index rows of a whole batch per table, flattened,
	// until flush: a batch costs one INSERT per table (per
	// maxRowsPerInsert rows), not one per resource and table. Rows are
	// only buffered, never read back, so the buffer must not hold rows of
	// a resource the batch touches again; owners says which resources it
	// holds rows of, and the writer flushes before a call that touches
	// one of them (writer.applyCall).
	rows   [len(ixTables)][]any
	owners map[ownerKey]struct{}
}

// ownerKey names a resource whose index rows are buffered.
type ownerKey struct{ typ, id string }

// ixMark is the state of the buffers at the start of a call, to undo its
// rows and pids when its savepoint is rolled back.
type ixMark struct {
	rows    [len(ixTables)]int
	pending int
}

func (ix *indexStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	ix.conn = conn
	var err error
	for i, t := range ixTables {
		if ix.del[i], err = conn.PrepareContext(ctx, `DELETE FROM `+t+` WHERE rid = ?`); err != nil {
			return err
		}
	}
	if ix.insertParam, err = conn.PrepareContext(ctx,
		`INSERT INTO params (type, name, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`); err != nil {
		return err
	}
	ix.selectParam, err = conn.PrepareContext(ctx, `SELECT pid FROM params WHERE type = ? AND name = ? AND kind = ?`)
	ix.pids = map[pkey]int64{}
	ix.owners = map[ownerKey]struct{}{}
	return err
}

func (ix *indexStmts) all() []*sql.Stmt {
	all := append(ix.del[:], ix.insertParam, ix.selectParam)
	for t := range ix.inserts {
		for _, st := range ix.inserts[t] {
			if st != nil {
				all = append(all, st)
			}
		}
	}
	return all
}

// insert returns the statement that inserts n rows into table t.
func (ix *indexStmts) insert(ctx context.Context, t, n int) (*sql.Stmt, error) {
	if st := ix.inserts[t][n-1]; st != nil {
		return st, nil
	}
	cols := ixColumns[t]
	row := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	q := "INSERT OR IGNORE INTO " + ixTables[t] + " (" + strings.Join(cols, ", ") + ") VALUES " +
		strings.Repeat(row+", ", n-1) + row
	st, err := ix.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	ix.inserts[t][n-1] = st
	return st, nil
}

// pid returns the params row of k, creating it in the current transaction
// if needed.
func (ix *indexStmts) pid(ctx context.Context, k pkey) (int64, error) {
	if pid, ok := ix.pids[k]; ok {
		return pid, nil
	}
	if _, err := ix.insertParam.ExecContext(ctx, k.typ, k.name, k.kind); err != nil {
		return 0, err
	}
	var pid int64
	if err := ix.selectParam.QueryRowContext(ctx, k.typ, k.name, k.kind).Scan(&pid); err != nil {
		return 0, err
	}
	ix.pids[k] = pid
	ix.pending = append(ix.pending, k)
	return pid, nil
}

// forget drops the pids created since pending had length n: their rows
// were rolled back.
func (ix *indexStmts) forget(n int) {
	for _, k := range ix.pending[n:] {
		delete(ix.pids, k)
	}
	ix.pending = ix.pending[:n]
}

// mark records the buffers' state before a call.
func (ix *indexStmts) mark() ixMark {
	m := ixMark{pending: len(ix.pending)}
	for t := range ix.rows {
		m.rows[t] = len(ix.rows[t])
	}
	return m
}

// undo drops the rows buffered and the pids created since m: the call's
// savepoint was rolled back. owners may keep the call's resources, which
// costs at most an early flush.
func (ix *indexStmts) undo(m ixMark) {
	for t := range ix.rows {
		clear(ix.rows[t][m.rows[t]:])
		ix.rows[t] = ix.rows[t][:m.rows[t]]
	}
	ix.forget(m.pending)
}

// reset empties the buffers and forgets the transaction's new pids: the
// whole transaction rolled back.
func (ix *indexStmts) reset() {
	ix.undo(ixMark{})
	clear(ix.owners)
}

// buffers reports whether rows of typ/id are buffered.
func (ix *indexStmts) buffers(typ, id string) bool {
	_, ok := ix.owners[ownerKey{typ, id}]
	return ok
}

// remove deletes every index row of resource typ/id, whose rid is rid,
// stored or buffered. Buffered rows of it can only be the current call's
// (the writer flushes before a call that touches a resource with buffered
// rows), as when one call writes two versions of a resource; only then is
// the buffer walked.
func (ix *indexStmts) remove(ctx context.Context, rid int64, typ, id string) error {
	for _, st := range ix.del {
		if _, err := st.ExecContext(ctx, rid); err != nil {
			return err
		}
	}
	if !ix.buffers(typ, id) {
		return nil
	}
	for t := range ix.rows {
		width, at := len(ixColumns[t]), ridColumn[t]
		kept := ix.rows[t][:0]
		for row := range slices.Chunk(ix.rows[t], width) {
			if row[at] != any(rid) {
				kept = append(kept, row...)
			}
		}
		clear(ix.rows[t][len(kept):])
		ix.rows[t] = kept
	}
	return nil
}

// ridColumn is the position of rid in each table's ixColumns.
var ridColumn = func() (pos [len(ixTables)]int) {
	for t, cols := range ixColumns {
		pos[t] = slices.Index(cols, "rid")
	}
	return pos
}()

// write buffers the index rows of entries for resource typ/id, whose rid
// is rid, until flush. Entries with components get a tuple number, unique
// within the resource.
func (ix *indexStmts) write(ctx context.Context, rid int64, typ, id string, entries []search.Entry) error {
	ix.owners[ownerKey{typ, id}] = struct{}{}
	// Registering _id makes every type ever written known to params, which
	// system-level searches on _id and _lastUpdated enumerate.
	if _, err := ix.pid(ctx, pkey{typ, "_id", kindToken}); err != nil {
		return err
	}
	var tup int64
	for i := range entries {
		e := &entries[i]
		switch {
		case answeredByCurrent(e.Param), isUnion(typ, e.Param):
			continue
		case e.Type == search.Composite || e.Type == search.Special:
			// A tuple with a component that has no row of its own (a code
			// given as text only) can never match: it is not written.
			if slices.ContainsFunc(e.Components, func(c search.Entry) bool { return !hasRow(&c) || !hasCode(&c) }) {
				continue
			}
			tup++
			if compact(e) {
				if err := ix.composite(ctx, rid, typ, e, tup); err != nil {
					return err
				}
				continue
			}
			for j := range e.Components {
				if err := ix.row(ctx, rid, typ, componentName(e.Param, j), &e.Components[j], tup); err != nil {
					return err
				}
			}
			continue
		}
		var t int64
		if e.Type == search.Token && len(e.Components) > 0 { // an Identifier with a type
			tup++
			t = tup
			for j := range e.Components {
				if err := ix.row(ctx, rid, typ, ofTypeName(e.Param), &e.Components[j], t); err != nil {
					return err
				}
			}
		}
		if err := ix.row(ctx, rid, typ, e.Param, e, t); err != nil {
			return err
		}
		if e.Type == search.Reference && (e.System != "" || e.Code != "") {
			if err := ix.add(ctx, pkey{typ, identifierName(e.Param), kindToken}, e.Code, e.System, rid, int64(0), ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasCode: a token component of a tuple matches on its code or system, not
// on its text.
func hasCode(e *search.Entry) bool {
	return e.Type != search.Token || e.Code != "" || e.System != ""
}

// compact reports whether a composite's tuple fits one ix_comp row: two
// components, a token and then a value of a kind ix_comp has columns for.
func compact(e *search.Entry) bool {
	if e.Type != search.Composite || len(e.Components) != 2 || e.Components[0].Type != search.Token {
		return false
	}
	switch e.Components[1].Type {
	case search.Token, search.Quantity, search.Number, search.Date, search.String, search.URI:
		return true
	}
	return false
}

// composite buffers the ix_comp row of a compact tuple.
func (ix *indexStmts) composite(ctx context.Context, rid int64, typ string, e *search.Entry, tup int64) error {
	c0, c1 := &e.Components[0], &e.Components[1]
	var lo, hi any
	var vcode, vsystem, unit, text, value string
	switch c1.Type {
	case search.Token:
		vcode, vsystem = c1.Code, c1.System
	case search.Quantity, search.Number:
		lo, hi = numberBounds(c1)
		vcode, vsystem, unit = c1.Code, c1.System, c1.Unit
		if unit == vcode {
			unit = ""
		}
	case search.Date:
		lo, hi = c1.Start.UnixMilli(), ceilMilli(c1.End)
	case search.String:
		text, value = c1.Text, c1.Value
	case search.URI:
		value = c1.Value
	}
	return ix.add(ctx, pkey{typ, e.Param, kindComposite + string(c1.Type)},
		c0.Code, c0.System, rid, tup, lo, hi, vcode, vsystem, unit, text, value)
}

// hasRow reports whether row would write a row for e.
func hasRow(e *search.Entry) bool {
	switch e.Type {
	case search.String:
		return e.Text != "" || e.Value != ""
	case search.Token:
		return e.Code != "" || e.System != "" || e.Text != ""
	case search.Date, search.Number, search.Quantity:
		return true
	case search.Reference:
		return e.Ref != ""
	case search.URI:
		return e.Value != ""
	}
	return false
}

// row buffers the row of one entry under the parameter name.
func (ix *indexStmts) row(ctx context.Context, rid int64, typ, name string, e *search.Entry, tup int64) error {
	if !hasRow(e) {
		return nil // a reference's identifier alone: its name:identifier row
	}
	k := pkey{typ, name, string(e.Type)}
	switch e.Type {
	case search.String:
		return ix.add(ctx, k, e.Text, e.Value, rid, tup)
	case search.Token:
		return ix.add(ctx, k, e.Code, e.System, rid, tup, e.Text)
	case search.Date:
		return ix.add(ctx, k, e.Start.UnixMilli(), ceilMilli(e.End), rid, tup)
	case search.Number, search.Quantity:
		lo, hi := numberBounds(e)
		unit := e.Unit
		if unit == e.Code {
			unit = ""
		}
		return ix.add(ctx, k, lo, hi, rid, tup, e.System, e.Code, unit)
	case search.Reference:
		rt, id := splitRef(e.Ref)
		return ix.add(ctx, k, id, rt, rid, tup, e.Value)
	case search.URI:
		return ix.add(ctx, k, e.Value, rid, tup)
	}
	return nil
}

// add buffers one row of the table of k.kind: pid followed by cols, in
// ixColumns order.
func (ix *indexStmts) add(ctx context.Context, k pkey, cols ...any) error {
	t := tableIndex(k.kind)
	if t < 0 {
		return errors.New("no index table for kind " + k.kind)
	}
	pid, err := ix.pid(ctx, k)
	if err != nil {
		return fmt.Errorf("index %s: %w", k.name, err)
	}
	ix.rows[t] = append(append(ix.rows[t], pid), cols...)
	return nil
}

// flush inserts the buffered rows, up to maxRowsPerInsert per statement,
// and empties the buffers. It runs outside any call's savepoint: its
// failure fails the whole transaction.
func (ix *indexStmts) flush(ctx context.Context) error {
	defer func() {
		for t := range ix.rows {
			clear(ix.rows[t]) // drop the strings the rows point to
			ix.rows[t] = ix.rows[t][:0]
		}
		clear(ix.owners)
	}()
	for t, args := range ix.rows {
		width := len(ixColumns[t])
		for len(args) > 0 {
			n := min(len(args)/width, maxRowsPerInsert)
			st, err := ix.insert(ctx, t, n)
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(ctx, args[:n*width]...); err != nil {
				return fmt.Errorf("index %s: %w", ixTables[t], err)
			}
			args = args[n*width:]
		}
	}
	return nil
}

// addUnions lets each of unions search the rows of its parts: the pids of
// a part, and of the names derived from it (component$i, :of-type,
// :identifier), join the union's own, which a file written before unions
// existed still holds rows under.
func (p *paramSnapshot) addUnions() {
	type added struct {
		name string
		row  paramRow
	}
	var adds []added
	for typ, params := range unions {
		for name, parts := range params {
			for _, part := range parts {
				for pn, rows := range p.byName {
					suffix, ok := strings.CutPrefix(pn, part)
					if !ok || suffix != "" && suffix[0] != '$' && suffix[0] != ':' {
						continue
					}
					for _, r := range rows {
						if r.typ == typ {
							adds = append(adds, added{name + suffix, r})
						}
					}
				}
			}
		}
	}
	for _, a := range adds {
		p.byName[a.name] = append(p.byName[a.name], a.row)
	}
}
