package jsonvalue

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// std is what this package must match: encoding/json with UseNumber, and
// nothing but white space after the value.
func std(data []byte) (any, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil, false
	}
	return v, true
}

// check compares Decode, Valid, Members and Elements with encoding/json on
// data.
func check(t *testing.T, data []byte) {
	t.Helper()
	want, ok := std(data)
	got, err := Decode(data)
	if ok != (err == nil) {
		t.Fatalf("Decode(%q): error %v, encoding/json accepts it: %v", data, err, ok)
	}
	if ok && !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q) = %#v, encoding/json gives %#v", data, got, want)
	}
	if Valid(data) != ok {
		t.Fatalf("Valid(%q) = %v, json.Valid %v", data, !ok, ok)
	}
	// Members and Elements give each value's bytes as they go, and an
	// error at the end for malformed input.
	m, isObj := want.(map[string]any)
	members := map[string]any{}
	err = Members(data, func(k string, v []byte) error {
		members[k], _ = std(v)
		return nil
	})
	if (err == nil) != (ok && isObj) {
		t.Fatalf("Members(%q): error %v, want one: %v", data, err, !(ok && isObj))
	}
	if err == nil && !reflect.DeepEqual(members, m) {
		t.Fatalf("Members(%q) gave %#v", data, members)
	}
	a, isArr := want.([]any)
	elems := []any{}
	err = Elements(data, func(i int, v []byte) error {
		if i != len(elems) {
			t.Fatalf("Elements(%q): element %d after %d", data, i, len(elems))
		}
		x, _ := std(v)
		elems = append(elems, x)
		return nil
	})
	if (err == nil) != (ok && isArr) {
		t.Fatalf("Elements(%q): error %v, want one: %v", data, err, !(ok && isArr))
	}
	if err == nil && !reflect.DeepEqual(elems, a) {
		t.Fatalf("Elements(%q) gave %#v", data, elems)
	}
}

// TestEdgeCases: the cases where a hand-written decoder could part from
// encoding/json (json.org's grammar; RFC 8259 §8.2 on invalid UTF-8,
// which encoding/json replaces with U+FFFD).
func TestEdgeCases(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, ` { } `, "\t[\n]\r\n", `{"a":1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`,
		`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":null}]}}`, `[[[[]]]]`, `[[[[]]]`, `{"a":[}`,
		`0`, `-0`, `-`, `01`, `1.`, `.5`, `1.5e`, `1e+`, `1E-7`, `-0.50e1`, `12345678901234567890123`, `1.0`, `+1`, `0x10`,
		`true`, `false`, `null`, `tru`, `nul`, `truex`, `nulll`, `True`, `[true,false,null]`,
		`""`, `"a"`, `"a`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u12"`, `"\x"`, `"\ud83d\ude00"`,
		`"\ud83d"`, `"\ude00x"`, "\"é\"", "\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"\u2028\"", "\"\x01\"", "\"\t\"",
		`{"\u0061":1}`, "{\"\xff\":1}", `{"a":1}x`, `{"a":1} {}`, `{"a":1}   `, ``, ` `, `{`, `}`, `[`, `"`, `{"a":1`,
		`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`,
	} {
		check(t, []byte(s))
	}
}

// TestExamples: every official example and Synthea resource decodes as
// with encoding/json.
func TestExamples(t *testing.T) {
	var files []string
	for _, glob := range []string{"../../testdata/examples/*.json", "../../testdata/synthea/*.json"} {
		f, err := filepath.Glob(glob)
		if err != nil || len(f) == 0 {
			t.Fatalf("%s: %d files, %v", glob, len(f), err)
		}
		files = append(files, f...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(t, data)
	}
}

// TestDepth: encoding/json refuses nesting beyond 10000 levels; so does
// Decode, without exhausting the stack.
func TestDepth(t *testing.T) {
	for _, n := range []int{maxDepth, maxDepth + 1} {
		data := append(bytes.Repeat([]byte("["), n), bytes.Repeat([]byte("]"), n)...)
		check(t, data)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e3,"x\u00e9",true,null]}`, `[{"b":{}},[]]`, "\"\xff\\n\"", `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, data) })
}

func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile("../../testdata/synthea/Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jsonvalue", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, ok := std(data); !ok {
				b.Fatal("invalid")
			}
		}
	})
}
