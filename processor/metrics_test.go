package processor

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The reason label's values exported at 0 at start are every reason a
// record can be dead-lettered with: the decoders' (schemas/errors.go) and
// the worker's literal ones. A new reason missing from deadLetterReasons
// would be invisible to the dead-letter alert's first increase.
func TestDeadLetterReasonsComplete(t *testing.T) {
	src, err := os.ReadFile("../schemas/errors.go")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, m := range regexp.MustCompile(`\bReason[A-Z]\w*\s*=\s*"([a-z_]+)"`).FindAllSubmatch(src, -1) {
		found = append(found, string(m[1]))
	}
	if len(found) < 5 {
		t.Fatalf("found %d reasons in schemas/errors.go (%v): has the declaration style changed?", len(found), found)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`\.deadLetter\([^,]+,[^,]+,\s*"([a-z_]+)"`)
	worker := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllSubmatch(src, -1) {
			found = append(found, string(m[1]))
			worker++
		}
	}
	if worker < 3 {
		t.Fatalf("found %d literal dead-letter reasons in the processor: has the call changed?", worker)
	}
	for _, r := range found {
		if !slices.Contains(deadLetterReasons, r) {
			t.Errorf("dead-letter reason %q is not in deadLetterReasons", r)
		}
	}
	for _, r := range deadLetterReasons {
		if !slices.Contains(found, r) {
			t.Errorf("deadLetterReasons has %q, which nothing dead-letters with", r)
		}
	}
}

// forgetPartition deletes the partition's series of every vector with a
// partition label (found by reflection, so a new one cannot be forgotten),
// and only that partition's.
func TestForgetPartition(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	v := reflect.ValueOf(m).Elem()
	var names []string
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer {
			continue
		}
		f = reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem() // unexported: readable this way
		c, ok := f.Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		with := f.MethodByName("WithLabelValues")
		if !with.IsValid() {
			continue // no labels
		}
		labels := variableLabels(t, c)
		if !slices.Contains(labels, "partition") {
			continue
		}
		names = append(names, v.Type().Field(i).Name)
		for _, part := range []string{"7", "8"} {
			var args []reflect.Value
			for _, l := range labels {
				val := "x"
				if l == "partition" {
					val = part
				}
				args = append(args, reflect.ValueOf(val))
			}
			with.Call(args)
		}
	}
	if len(names) < 5 {
		t.Fatalf("found %d vectors with a partition label (%v)", len(names), names)
	}
	m.forgetPartition(7)
	left := map[string]int{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "partition" {
					left[f.GetName()+"/"+l.GetValue()]++
				}
			}
		}
	}
	for k := range left {
		if strings.HasSuffix(k, "/7") {
			t.Errorf("%s: a series of the forgotten partition is left", k)
		}
	}
	if n := len(left); n != len(names) {
		t.Errorf("%d series of partition 8 left, want one for each of %v: %v", n, names, left)
	}
	m.forgetPartitions()
	if fams, _ := reg.Gather(); len(fams) > 0 {
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "partition" {
						t.Errorf("%s{partition=%s} left after forgetPartitions", f.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// variableLabels returns the label names of a vector's one Desc.
func variableLabels(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	close(ch)
	d := <-ch
	m := regexp.MustCompile(`variableLabels: \{([^}]*)\}`).FindStringSubmatch(d.String())
	if m == nil {
		t.Fatalf("cannot read the labels of %s", d)
	}
	if m[1] == "" {
		return nil
	}
	return strings.Split(m[1], ",")
}
