package main

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeSettings decodes a configuration file over cfg setting by setting,
// so that each problem names the setting's YAML path and line
// ("kafka.tick: line 12: 5 is not a duration with a unit ..."), where the
// YAML library names Go types ("field clikstream not found in type
// processor.Topics"). A setting that cannot be decoded keeps its default;
// every problem is added to ps.
func decodeSettings(data []byte, cfg *Config, ps *problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		ps.add("", "%v", err)
		return
	}
	if len(doc.Content) == 0 {
		return // an empty file: every default
	}
	decodeNode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "", ps)
}

// decodeNode decodes n into v, the section or setting at path.
func decodeNode(n *yaml.Node, v reflect.Value, path string, ps *problems) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if !isSection(v.Type()) {
		// A copy of the current value, so that an empty value
		// (null) keeps the default as the YAML library does.
		nv := reflect.New(v.Type())
		nv.Elem().Set(v)
		if err := n.Decode(nv.Interface()); err != nil {
			ps.add(path, "line %d: %s is not %s", n.Line, shown(n), wanted(v.Type()))
			return
		}
		v.Set(nv.Elem())
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "kafka:" with nothing under it
	}
	where := path
	if where == "" {
		where = "the file"
	}
	if n.Kind != yaml.MappingNode {
		ps.add(path, "line %d: %s is not a section of settings (%s)", n.Line, shown(n), strings.Join(sectionKeys(v.Type()), ", "))
		return
	}
	fields := map[string]int{}
	for i := 0; i < v.NumField(); i++ {
		if k := yamlName(v.Type().Field(i)); k != "" {
			fields[k] = i
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, key.Value)
		if first, ok := seen[key.Value]; ok {
			ps.add(p, "line %d: set again (first at line %d)", key.Line, first)
			continue
		}
		seen[key.Value] = key.Line
		idx, ok := fields[key.Value]
		if !ok {
			keys := sectionKeys(v.Type())
			if near, d := closest(key.Value, keys); d <= max(2, len(key.Value)/3) {
				ps.add(p, "line %d: unknown setting; did you mean %s?", key.Line, joinPath(path, near))
			} else {
				ps.add(p, "line %d: unknown setting; %s has %s", key.Line, where, strings.Join(keys, ", "))
			}
			continue
		}
		decodeNode(val, v.Field(idx), p, ps)
	}
}

// shown is n as a message quotes it: a scalar's text, else what it is.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return fmt.Sprintf("%q", n.Value)
		}
		return n.Value
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a section"
	}
	return "this value"
}
