package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF      tokenKind = iota
	tokIdent              // name, or `delimited name`
	tokString             // 'text', unescaped
	tokNumber             // 12, 1.5
	tokDate               // @2013-01-14, @T10:00 (text without the @)
	tokConstant           // %resource, %`vs-x`, %'x' (name without the %)
	tokVariable           // $this, $index, $total
	tokOp                 // . [ ] ( ) { } , | = != ~ !~ < > <= >= + - * / &
)

type token struct {
	kind tokenKind
	text string
	pos  int // byte offset in the source
	end  int // byte offset just after the token
	// quoted is set on identifiers written `like this`: they are never
	// keywords.
	quoted bool
}

// lex splits a FHIRPath expression into tokens (fhirpath.html#grammar).
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment at %d", i)
			}
			i += end + 4
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: src[i:j], pos: i, end: j})
			i = j
		case c == '`':
			s, j, err := quoted(src, i, '`')
			if err != nil {
				return nil, err
			}
			if s == "" {
				return nil, fmt.Errorf("empty name at %d", i)
			}
			toks = append(toks, token{kind: tokIdent, text: s, pos: i, end: j, quoted: true})
			i = j
		case c == '\'':
			s, j, err := quoted(src, i, '\'')
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tokString, text: s, pos: i, end: j})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{kind: tokNumber, text: src[i:j], pos: i, end: j})
			i = j
		case c == '@':
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || strings.IndexByte("-:.+Z", src[j]) >= 0) {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("empty date literal at %d", i)
			}
			toks = append(toks, token{kind: tokDate, text: src[i+1 : j], pos: i, end: j})
			i = j
		case c == '%':
			j := i + 1
			var name string
			switch {
			case j < len(src) && (src[j] == '`' || src[j] == '\''):
				s, k, err := quoted(src, j, src[j])
				if err != nil {
					return nil, err
				}
				name, j = s, k
			default:
				for j < len(src) && isIdentPart(src[j]) {
					j++
				}
				name = src[i+1 : j]
			}
			if name == "" {
				return nil, fmt.Errorf("empty constant name at %d", i)
			}
			toks = append(toks, token{kind: tokConstant, text: name, pos: i, end: j})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokVariable, text: src[i+1 : j], pos: i, end: j})
			i = j
		default:
			op := ""
			for _, o := range []string{"!=", "!~", "<=", ">=", ".", "[", "]", "(", ")", "{", "}", ",", "|", "=", "~", "<", ">", "+", "-", "*", "/", "&"} {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, fmt.Errorf("unexpected %q at %d", r, i)
			}
			toks = append(toks, token{kind: tokOp, text: op, pos: i, end: i + len(op)})
			i += len(op)
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(src), end: len(src)}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// quoted reads a string or delimited identifier starting at src[i] (the
// opening quote q) and returns its unescaped text and the offset after the
// closing quote (fhirpath.html#string).
func quoted(src string, i int, q byte) (string, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(src); j++ {
		c := src[j]
		switch {
		case c == q:
			return b.String(), j + 1, nil
		case c == '\\':
			j++
			if j == len(src) {
				return "", 0, fmt.Errorf("unterminated literal at %d", i)
			}
			switch e := src[j]; e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if j+4 >= len(src) {
					return "", 0, fmt.Errorf("bad \\u escape at %d", j)
				}
				n, err := strconv.ParseUint(src[j+1:j+5], 16, 16)
				if err != nil {
					return "", 0, fmt.Errorf("bad \\u escape at %d", j)
				}
				b.WriteRune(rune(n))
				j += 4
			default:
				return "", 0, fmt.Errorf("bad escape \\%c at %d", e, j)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated literal at %d", i)
}
