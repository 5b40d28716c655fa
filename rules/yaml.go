package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// PosError is one problem in a rules file, with its position.
type PosError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *PosError) Error() string {
	return fmt.Sprintf("rules: %s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// LoadError lists every problem found in a rules file, in file order.
type LoadError struct {
	Errs []*PosError
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, pe := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pe.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find a single PosError.
func (e *LoadError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, pe := range e.Errs {
		out[i] = pe
	}
	return out
}

// parser walks the YAML node tree of a rules file and collects every error
// with its position, so one run of "triggerd rules check" shows them all.
type parser struct {
	file string
	errs []*PosError
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errAt(line, col, fmt.Sprintf(format, args...))
}

func (p *parser) errAt(line, col int, msg string) {
	p.errs = append(p.errs, &PosError{File: p.file, Line: line, Column: col, Msg: msg})
}

func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &LoadError{Errs: p.errs}
}

// fields returns the values of mapping n by key, reporting keys that are not
// allowed and keys given twice. A nil n (the key was absent) gives an empty
// map.
func (p *parser) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ok := false
		for _, a := range allowed {
			if k.Value == a {
				ok = true
				break
			}
		}
		switch {
		case !ok:
			p.errorf(k, "unknown field %q in %s (known: %s)", k.Value, what, strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			p.errorf(k, "field %q given twice in %s", k.Value, what)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// keyNode returns the key node of field name in mapping n, for positions.
func keyNode(n *yaml.Node, name string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i]
		}
	}
	return n
}

func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, what string) string {
	s, _ := p.scalar(n, what)
	return s
}

func (p *parser) integer(n *yaml.Node, what string, def int64) int64 {
	s, ok := p.scalar(n, what)
	if !ok {
		return def
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		p.errorf(n, "%s: %q is not an integer", what, s)
		return def
	}
	return v
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	s, ok := p.scalar(n, what)
	if !ok {
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		p.errorf(n, "%s: %q is not true or false", what, s)
	}
	return v
}

func (p *parser) duration(n *yaml.Node, what string, def time.Duration) time.Duration {
	s, ok := p.scalar(n, what)
	if !ok {
		return def
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.errorf(n, "%s: %s", what, strings.TrimPrefix(err.Error(), "rules: "))
		return def
	}
	return d
}

// list returns the items of a sequence node; a single scalar counts as a
// list of one.
func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Content
	case yaml.ScalarNode:
		return []*yaml.Node{n}
	}
	p.errorf(n, "%s must be a list", what)
	return nil
}

func (p *parser) strings(n *yaml.Node, what string) []string {
	var out []string
	for _, it := range p.list(n, what) {
		if s, ok := p.scalar(it, what); ok {
			out = append(out, s)
		}
	}
	return out
}
