package fhirpath

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Operator precedence, loosest first (fhirpath.html#operator-precedence).
const (
	precImplies = 1 + iota
	precOr      // or xor
	precAnd     // and
	precMember  // in contains
	precEqual   // = ~ != !~
	precCompare // < > <= >=
	precUnion   // |
	precType    // is as
	precAdd     // + - &
	precMul     // * / div mod
)

type parser struct {
	src  string
	toks []token
	i    int
	// depth bounds nesting so that hostile input cannot exhaust the stack.
	depth int
}

const maxDepth = 64

// maxSource bounds an expression's length: the longest official one is
// 1,485 bytes.
const maxSource = 64 << 10

func newParser(src string) (*parser, error) {
	if len(src) > maxSource {
		return nil, fmt.Errorf("expression longer than %d bytes", maxSource)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{src: src, toks: toks}, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tokOp && t.text == op
}

func (p *parser) expect(op string) (token, error) {
	t := p.next()
	if t.kind != tokOp || t.text != op {
		return t, p.errorf(t, "expected %q", op)
	}
	return t, nil
}

func (p *parser) errorf(t token, format string, args ...any) error {
	what := t.text
	if t.kind == tokEOF {
		what = "end of expression"
	}
	return fmt.Errorf("at %d (%s): %s", t.pos, what, fmt.Sprintf(format, args...))
}

func (p *parser) parseAll() (expr, error) {
	if p.peek().kind == tokEOF {
		return nil, fmt.Errorf("empty expression")
	}
	x, err := p.parseExpr(precImplies)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "unexpected token")
	}
	return x, nil
}

// binaryOp returns the precedence of the binary operator t, or 0.
func binaryOp(t token) int {
	switch t.kind {
	case tokOp:
		switch t.text {
		case "|":
			return precUnion
		case "=", "~", "!=", "!~":
			return precEqual
		case "<", ">", "<=", ">=":
			return precCompare
		case "+", "-", "&":
			return precAdd
		case "*", "/":
			return precMul
		}
	case tokIdent:
		if t.quoted {
			return 0
		}
		switch t.text {
		case "implies":
			return precImplies
		case "or", "xor":
			return precOr
		case "and":
			return precAnd
		case "in", "contains":
			return precMember
		case "is", "as":
			return precType
		case "div", "mod":
			return precMul
		}
	}
	return 0
}

func (p *parser) parseExpr(minPrec int) (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, fmt.Errorf("expression nests deeper than %d", maxDepth)
	}
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := binaryOp(t)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		p.next()
		start, _ := left.span()
		if prec == precType {
			typ, end, err := p.parseTypeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeOp{pos: pos{start, end}, as: t.text == "as", left: left, typ: typ}
			continue
		}
		if prec == precAdd || prec == precMul {
			return nil, p.errorf(t, "arithmetic is not supported")
		}
		right, err := p.parseExpr(prec + 1) // all binary operators are left-associative
		if err != nil {
			return nil, err
		}
		_, end := right.span()
		ps := pos{start, end}
		switch t.text {
		case "|":
			left = &union{pos: ps, l: left, r: right}
		default:
			left = &binary{pos: ps, op: t.text, l: left, r: right}
		}
	}
}

func (p *parser) parseUnary() (expr, error) {
	if p.isOp("-") || p.isOp("+") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, fmt.Errorf("expression nests deeper than %d", maxDepth)
		}
		t := p.next()
		operand, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		lit, ok := operand.(*literal)
		if !ok || len(lit.vals) != 1 {
			return nil, p.errorf(t, "unary %s is supported on number literals only", t.text)
		}
		n, ok := lit.vals[0].Value.(json.Number)
		if !ok {
			return nil, p.errorf(t, "unary %s is supported on number literals only", t.text)
		}
		if t.text == "-" {
			n = json.Number("-" + string(n))
		}
		_, end := operand.span()
		return &literal{pos: pos{t.pos, end}, vals: []Node{{Value: n, Type: lit.vals[0].Type}}}, nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (expr, error) {
	x, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isOp("."):
			p.next()
			right, err := p.parseInvocation(false)
			if err != nil {
				return nil, err
			}
			start, _ := x.span()
			_, end := right.span()
			x = &invoke{pos: pos{start, end}, left: x, right: right}
		case p.isOp("["):
			p.next()
			idx, err := p.parseExpr(precImplies)
			if err != nil {
				return nil, err
			}
			closing, err := p.expect("]")
			if err != nil {
				return nil, err
			}
			start, _ := x.span()
			x = &indexer{pos: pos{start, closing.end}, left: x, index: idx}
		default:
			return x, nil
		}
	}
}

func (p *parser) parseTerm() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tokString:
		p.next()
		return &literal{pos: pos{t.pos, t.end}, vals: []Node{{Value: t.text, Type: "string"}}}, nil
	case tokNumber:
		p.next()
		if n := p.peek(); n.kind == tokString || (n.kind == tokIdent && !n.quoted && calendarUnits[n.text]) {
			return nil, p.errorf(n, "quantity literals are not supported")
		}
		typ := "integer"
		if strings.Contains(t.text, ".") {
			typ = "decimal"
		}
		return &literal{pos: pos{t.pos, t.end}, vals: []Node{{Value: json.Number(t.text), Type: typ}}}, nil
	case tokDate:
		p.next()
		s, typ := t.text, "dateTime"
		switch {
		case strings.HasPrefix(s, "T"):
			s, typ = s[1:], "time"
		case !strings.Contains(s, "T"):
			typ = "date"
		default:
			s = strings.TrimSuffix(s, "T") // @2015T is a dateTime of year precision
		}
		return &literal{pos: pos{t.pos, t.end}, vals: []Node{{Value: s, Type: typ}}}, nil
	case tokConstant:
		p.next()
		c := &constant{pos: pos{t.pos, t.end}, name: t.text}
		switch t.text {
		case "resource", "context", "rootResource":
		case "ucum":
			c.value = &Node{Value: "http://unitsofmeasure.org", Type: "string"}
		case "sct":
			c.value = &Node{Value: "http://snomed.info/sct", Type: "string"}
		case "loinc":
			c.value = &Node{Value: "http://loinc.org", Type: "string"}
		default:
			return nil, p.errorf(t, "unsupported environment variable %%%s", t.text)
		}
		return c, nil
	case tokVariable:
		p.next()
		switch t.text {
		case "this":
			return &this{pos: pos{t.pos, t.end}}, nil
		case "index":
			return &indexVar{pos: pos{t.pos, t.end}}, nil
		}
		return nil, p.errorf(t, "unsupported variable $%s", t.text)
	case tokOp:
		switch t.text {
		case "(":
			p.next()
			inner, err := p.parseExpr(precImplies)
			if err != nil {
				return nil, err
			}
			closing, err := p.expect(")")
			if err != nil {
				return nil, err
			}
			return &paren{pos: pos{t.pos, closing.end}, inner: inner}, nil
		case "{":
			p.next()
			closing, err := p.expect("}")
			if err != nil {
				return nil, err
			}
			return &literal{pos: pos{t.pos, closing.end}}, nil
		}
	case tokIdent:
		if !t.quoted && (t.text == "true" || t.text == "false") {
			p.next()
			return &literal{pos: pos{t.pos, t.end}, vals: []Node{{Value: t.text == "true", Type: "boolean"}}}, nil
		}
		return p.parseInvocation(true)
	}
	return nil, p.errorf(t, "unexpected token")
}

// parseInvocation reads an element name or a function call; first says
// whether it starts a path, where an upper-case name is a type
// (Observation.code evaluated on an Observation).
func (p *parser) parseInvocation(first bool) (expr, error) {
	t := p.next()
	if t.kind != tokIdent {
		return nil, p.errorf(t, "expected a name")
	}
	if p.isOp("(") {
		return p.parseCall(t)
	}
	ps := pos{t.pos, t.end}
	if first && t.text[0] >= 'A' && t.text[0] <= 'Z' {
		return &typeRoot{pos: ps, name: t.text}, nil
	}
	return &member{pos: ps, name: t.text, ext: "_" + t.text}, nil
}

func (p *parser) parseCall(name token) (expr, error) {
	fn, ok := functions[name.text]
	if !ok {
		return nil, p.errorf(name, "unsupported function %s()", name.text)
	}
	p.next() // (
	c := &call{fn: fn}
	if fn.typeArg {
		typ, _, err := p.parseTypeSpecifier()
		if err != nil {
			return nil, err
		}
		c.typ = typ
	} else if !p.isOp(")") {
		for {
			arg, err := p.parseExpr(precImplies)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, arg)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
	}
	closing, err := p.expect(")")
	if err != nil {
		return nil, err
	}
	if n := len(c.args); !fn.typeArg && (n < fn.minArgs || n > fn.maxArgs) {
		return nil, p.errorf(name, "%s() takes %s", name.text, arity(fn))
	}
	c.pos = pos{name.pos, closing.end}
	return c, nil
}

func arity(fn *function) string {
	switch {
	case fn.minArgs == fn.maxArgs && fn.maxArgs == 0:
		return "no arguments"
	case fn.minArgs == fn.maxArgs:
		return fmt.Sprintf("%d argument(s)", fn.minArgs)
	}
	return fmt.Sprintf("%d to %d arguments", fn.minArgs, fn.maxArgs)
}

// parseTypeSpecifier reads a (possibly qualified) type name: Quantity,
// FHIR.Patient, System.String.
func (p *parser) parseTypeSpecifier() (string, int, error) {
	t := p.next()
	if t.kind != tokIdent {
		return "", 0, p.errorf(t, "expected a type name")
	}
	name, end := t.text, t.end
	for p.isOp(".") && p.toks[p.i+1].kind == tokIdent {
		p.next()
		q := p.next()
		name, end = name+"."+q.text, q.end
	}
	return typeName(name), end, nil
}

// calendarUnits are the keywords of quantity literals (4 days).
var calendarUnits = map[string]bool{
	"year": true, "month": true, "week": true, "day": true, "hour": true, "minute": true,
	"second": true, "millisecond": true, "years": true, "months": true, "weeks": true,
	"days": true, "hours": true, "minutes": true, "seconds": true, "milliseconds": true,
}
