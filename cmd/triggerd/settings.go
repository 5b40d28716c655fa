package main

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// A setting is a leaf of Config: a field that is not a section (a struct).
// Its path is the YAML keys from the top joined by dots (kafka.sasl.user);
// its environment variable is TRIGGERD_ and the path in upper case joined
// by underscores (TRIGGERD_KAFKA_SASL_USER). Both are taken from the yaml
// tags, so a new field is a setting of the file and of the environment at
// once.

// walkSettings calls fn with the path and value of every setting under v
// (a section), in the order of the fields.
func walkSettings(v reflect.Value, prefix string, fn func(path string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := yamlName(t.Field(i))
		if tag == "" {
			continue
		}
		path := joinPath(prefix, tag)
		if isSection(t.Field(i).Type) {
			walkSettings(v.Field(i), path, fn)
			continue
		}
		fn(path, v.Field(i))
	}
}

// isSection reports whether values of t are a section of settings (a
// mapping in the file) rather than one setting.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{})
}

// yamlName is the field's key in the file; "" for a field that is none.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// sectionKeys lists the keys of section type t, sorted.
func sectionKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k := yamlName(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// envName is the environment variable of the setting at path.
func envName(path string) string {
	return "TRIGGERD_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(path))
}

var durationType = reflect.TypeOf(time.Duration(0))

// wanted says what a setting of type t takes, for a message about a value
// it cannot take.
func wanted(t reflect.Type) string {
	if t == durationType {
		return "a duration with a unit, e.g. 250ms, 30s, 5m or 24h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int8, reflect.Int16, reflect.Int32:
		bits := t.Bits()
		return fmt.Sprintf("an integer from %d to %d", -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1)
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list, e.g. [a, b]"
	}
	return t.String()
}

// closest returns the candidate nearest to name by edit distance, and the
// distance.
func closest(name string, candidates []string) (string, int) {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(name, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
