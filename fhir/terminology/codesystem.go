package terminology

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// codeSystem is a stored CodeSystem's concepts and their hierarchy
// (codesystem.html#hierarchy): nested concepts are children of the
// concept they are nested in, and a "parent" property (codesystem.html#
// defined-props) adds a parent, so a concept may have several.
type codeSystem struct {
	content  string
	order    []string // every code, in document order
	codes    map[string]bool
	children map[string][]string
	parents  map[string][]string
}

type concept struct {
	Code     string    `json:"code"`
	Concept  []concept `json:"concept"`
	Property []struct {
		Code      string `json:"code"`
		ValueCode string `json:"valueCode"`
	} `json:"property"`
}

// codeSystem reads the CodeSystem with the canonical url, once per search;
// nil when none is stored.
func (e *expander) codeSystem(ctx context.Context, param, url string) (*codeSystem, error) {
	if cs, ok := e.systems[url]; ok {
		return cs, nil
	}
	body, err := e.find(ctx, param, "CodeSystem", url)
	if err != nil {
		return nil, err
	}
	var cs *codeSystem
	if body != nil {
		var doc struct {
			Content string    `json:"content"`
			Concept []concept `json:"concept"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("terminology: CodeSystem %s: %w", url, err)
		}
		cs = &codeSystem{content: doc.Content, codes: map[string]bool{}, children: map[string][]string{}, parents: map[string][]string{}}
		cs.walk(doc.Concept, "")
	}
	e.systems[url] = cs
	return cs, nil
}

func (cs *codeSystem) walk(concepts []concept, parent string) {
	for _, c := range concepts {
		if c.Code == "" {
			continue
		}
		if !cs.codes[c.Code] {
			cs.codes[c.Code] = true
			cs.order = append(cs.order, c.Code)
		}
		if parent != "" {
			cs.link(parent, c.Code)
		}
		for _, p := range c.Property {
			switch p.Code {
			case "parent":
				cs.link(p.ValueCode, c.Code)
			case "child":
				cs.link(c.Code, p.ValueCode)
			}
		}
		cs.walk(c.Concept, c.Code)
	}
}

func (cs *codeSystem) link(parent, child string) {
	if parent == "" || child == "" || slices.Contains(cs.children[parent], child) {
		return
	}
	cs.children[parent] = append(cs.children[parent], child)
	cs.parents[child] = append(cs.parents[child], parent)
}

func (cs *codeSystem) has(code string) bool { return cs.codes[code] }

// below lists the descendants of code (and code itself when self),
// each once, even when the hierarchy has a cycle.
func (cs *codeSystem) below(code string, self bool) []string {
	return cs.reach(code, self, cs.children)
}

// above lists the ancestors of code (and code itself when self).
func (cs *codeSystem) above(code string, self bool) []string {
	return cs.reach(code, self, cs.parents)
}

func (cs *codeSystem) reach(code string, self bool, next map[string][]string) []string {
	if !cs.has(code) {
		return nil
	}
	seen := map[string]bool{code: true}
	var out []string
	if self {
		out = append(out, code)
	}
	queue := []string{code}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, n := range next[c] {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
				queue = append(queue, n)
			}
		}
	}
	return out
}
