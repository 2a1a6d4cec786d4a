package mongo

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// Documents. A resource is kept twice in its document: Body, the canonical
// JSON bytes exactly as written (reads serve them without re-encoding, so
// "1.50" is served as 1.50 and nothing is lost), and res, the same JSON as
// a native BSON document for analysts using ordinary MongoDB tools. In res
// a decimal is a Decimal128 (1.50 keeps its scale), an integer an int64 or
// int32, and object keys that MongoDB reserves are escaped (escapeKey).
// Body bytes that are not a JSON object (the store contract allows any
// bytes) are kept in body alone.

// nativeDoc converts a JSON object to a BSON document; ok is false when b
// is not one JSON object.
func nativeDoc(b []byte, decimal128 bool) (bson.D, bool) {
	if !utf8.Valid(b) {
		return nil, false // BSON strings are UTF-8; the body keeps the bytes
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, false
	}
	d, err := (&decoder{dec, decimal128}).object()
	if err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // trailing data
	}
	return d, true
}

// decoder reads JSON into BSON values. Without decimal128 (FerretDB has
// no Decimal128) decimals become doubles in the native copy; the body
// bytes keep them exactly either way.
type decoder struct {
	*json.Decoder
	decimal128 bool
}

func (dec *decoder) object() (bson.D, error) {
	d := bson.D{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key expected")
		}
		v, err := dec.value()
		if err != nil {
			return nil, err
		}
		d = append(d, bson.E{Key: escapeKey(k), Value: v})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return d, nil
}

func (dec *decoder) value() (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return dec.object()
		case '[':
			a := bson.A{}
			for dec.More() {
				v, err := dec.value()
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, errors.New("unexpected delimiter")
	case json.Number:
		return bsonNumber(string(t), dec.decimal128), nil
	case string:
		return t, nil
	default:
		return t, nil // bool, nil
	}
}

// bsonNumber keeps a JSON number exactly: integers as int32/int64, every
// other number as a Decimal128 with the digits and scale as written
// (FHIR decimals carry their precision: 1.50 is not 1.5).
func bsonNumber(s string, decimal128 bool) any {
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n >= math.MinInt32 && n <= math.MaxInt32 {
				return int32(n)
			}
			return n
		}
	}
	if decimal128 {
		if d, err := bson.ParseDecimal128(s); err == nil {
			return d
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// escapeKey makes a JSON object key safe as a BSON field name: '%' is
// escaped first so that the escaping is reversible, then '.', a leading
// '$' and NUL, URL-style. FHIR's own element names never contain these;
// extension-like keys from other JSON might.
func escapeKey(k string) string {
	if !strings.ContainsAny(k, "%.$\x00") {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '%':
			b.WriteString("%25")
		case c == '.':
			b.WriteString("%2E")
		case c == '$' && i == 0:
			b.WriteString("%24")
		case c == 0:
			b.WriteString("%00")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Index entries are kept in the array ix of the current document, one
// subdocument per search.Entry, with short field names:
//
//	p        parameter name (a reference's identifier is under "name:identifier")
//	t, v     string: folded text and value as written; uri: v
//	c, s, t  token: code, system, folded display/text; ot the codings of an
//	         identifier's type as system|code (for :of-type)
//	lo, hi   date: a BSON date range [lo, hi) at millisecond precision;
//	         number/quantity: doubles, the value or a Range's bounds
//	s, c, u  quantity: unit system, code and unit text (u only when it differs)
//	r, ri, v reference: "Type/id" or the URL as stored, the id part, the version
//	k0, k1…  composite and near: one subdocument per component, with ty its type
//
// The same values give each resource its sort keys (sk): for every
// parameter with a value, a the lowest and d the highest
// (search.html#_sort).

func entryDoc(e *search.Entry, name string) (bson.D, bool) {
	d := bson.D{}
	if name != "" {
		d = append(d, bson.E{Key: "p", Value: name})
	}
	switch e.Type {
	case search.String:
		if e.Text == "" && e.Value == "" {
			return nil, false
		}
		d = append(d, bson.E{Key: "t", Value: e.Text}, bson.E{Key: "v", Value: e.Value})
	case search.Token:
		if e.Code == "" && e.System == "" && e.Text == "" {
			return nil, false
		}
		d = append(d, bson.E{Key: "c", Value: e.Code}, bson.E{Key: "s", Value: e.System})
		if e.Text != "" {
			d = append(d, bson.E{Key: "t", Value: e.Text})
		}
	case search.Date:
		d = append(d, bson.E{Key: "lo", Value: bson.DateTime(e.Start.UnixMilli())},
			bson.E{Key: "hi", Value: bson.DateTime(ceilMilli(e.End))})
	case search.Number, search.Quantity:
		lo, hi := numberBounds(e)
		d = append(d, bson.E{Key: "lo", Value: lo}, bson.E{Key: "hi", Value: hi})
		if e.Type == search.Quantity || e.System != "" || e.Code != "" {
			d = append(d, bson.E{Key: "s", Value: e.System}, bson.E{Key: "c", Value: e.Code})
			if e.Unit != "" && e.Unit != e.Code {
				d = append(d, bson.E{Key: "u", Value: e.Unit})
			}
		}
	case search.Reference:
		if e.Ref == "" {
			return nil, false
		}
		_, id := splitRef(e.Ref)
		d = append(d, bson.E{Key: "r", Value: e.Ref}, bson.E{Key: "ri", Value: id}, bson.E{Key: "v", Value: e.Value})
	case search.URI:
		if e.Value == "" {
			return nil, false
		}
		d = append(d, bson.E{Key: "v", Value: e.Value})
	default:
		return nil, false
	}
	return d, true
}

// indexDocs turns a change's entries into the ix array and the sk document.
func indexDocs(entries []search.Entry) (bson.A, bson.D) {
	ix := bson.A{}
	type bounds struct{ a, d any }
	keys := map[string]*bounds{}
	var order []string
	note := func(param string, a, d any) {
		b, ok := keys[param]
		if !ok {
			keys[param] = &bounds{a, d}
			order = append(order, param)
			return
		}
		if less(a, b.a) {
			b.a = a
		}
		if less(b.d, d) {
			b.d = d
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			continue // answered from the document's own fields
		}
		if e.Type == search.Composite || e.Type == search.Special {
			d := bson.D{{Key: "p", Value: e.Param}}
			ok := len(e.Components) > 0
			for j := range e.Components {
				c := &e.Components[j]
				cd, has := entryDoc(c, "")
				if !has || (c.Type == search.Token && c.Code == "" && c.System == "") {
					ok = false
					break
				}
				cd = append(bson.D{{Key: "ty", Value: string(c.Type)}}, cd...)
				d = append(d, bson.E{Key: "k" + strconv.Itoa(j), Value: cd})
			}
			if ok {
				ix = append(ix, d)
			}
			continue
		}
		d, ok := entryDoc(e, e.Param)
		if ok {
			if e.Type == search.Token && len(e.Components) > 0 {
				var ot bson.A
				for j := range e.Components {
					c := &e.Components[j]
					ot = append(ot, ofTypeKey(c.System, c.Code))
				}
				d = append(d, bson.E{Key: "ot", Value: ot})
			}
			ix = append(ix, d)
			if a, dd, ok := sortValues(e); ok {
				note(e.Param, a, dd)
			}
		}
		if e.Type == search.Reference && (e.System != "" || e.Code != "") {
			ix = append(ix, bson.D{{Key: "p", Value: identifierName(e.Param)},
				{Key: "c", Value: e.Code}, {Key: "s", Value: e.System}})
		}
	}
	sk := bson.D{}
	for _, p := range order {
		b := keys[p]
		sk = append(sk, bson.E{Key: escapeKey(p), Value: bson.D{{Key: "a", Value: b.a}, {Key: "d", Value: b.d}}})
	}
	return ix, sk
}

// sortValues are an entry's ascending and descending sort values.
func sortValues(e *search.Entry) (a, d any, ok bool) {
	switch e.Type {
	case search.String:
		if e.Value == "" {
			return nil, nil, false // a word of a family name (search.Extract): found by, not sorted on
		}
		return e.Text, e.Text, true
	case search.Token:
		if e.Code == "" {
			return nil, nil, false
		}
		return e.Code, e.Code, true
	case search.Date:
		return bson.DateTime(e.Start.UnixMilli()), bson.DateTime(ceilMilli(e.End)), true
	case search.Number, search.Quantity:
		lo, hi := numberBounds(e)
		return lo, hi, true
	case search.Reference:
		return e.Ref, e.Ref, true
	case search.URI:
		return e.Value, e.Value, true
	}
	return nil, nil, false
}

func less(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return x < y
	case float64:
		y, _ := b.(float64)
		return x < y
	case bson.DateTime:
		y, _ := b.(bson.DateTime)
		return x < y
	}
	return false
}

// ofTypeKey is one coding of an identifier's type, as one string so that
// :of-type is an equality on one field.
func ofTypeKey(system, code string) string { return system + "|" + code }

func identifierName(param string) string { return param + ":identifier" }

// splitRef splits a relative literal reference "Type/id"; anything else
// (absolute URL, "#contained", urn:, canonical) comes back whole as id.
func splitRef(ref string) (typ, id string) {
	t, i, ok := strings.Cut(ref, "/")
	if !ok || t == "" || i == "" || strings.ContainsAny(i, "/?#") || strings.ContainsAny(t, ":?#") ||
		t[0] < 'A' || t[0] > 'Z' {
		return "", ref
	}
	return t, i
}

// numberBounds is the stored [lo, hi] of a number or quantity: the value,
// a Range's bounds, or an open side for a comparator ("<5").
func numberBounds(e *search.Entry) (lo, hi float64) {
	if e.Value == "" {
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

func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%1_000_000 != 0 {
		ms++
	}
	return ms
}

// ceilMicro rounds t up to a whole microsecond, the precision of stored
// instants.
func ceilMicro(t time.Time) int64 {
	u := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		u++
	}
	return u
}
