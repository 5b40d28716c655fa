// Package layout checks that imports follow the architecture: each package
// imports only the layers below it, and nothing imports cmd or test.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/triggerd/triggerd"

// allowed lists, for each package of the module, the module packages it may
// import. A package not listed may import nothing of the module.
var allowed = map[string][]string{
	"schemas":               nil,
	"rules":                 {"schemas"},
	"rules/script":          {"rules", "schemas"},
	"state":                 {"schemas"},
	"processor":             {"rules", "state", "schemas"},
	"processor/admin":       {"processor", "state", "schemas"},
	"processor/rescale":     {"processor", "state", "schemas"},
	"cmd/triggerd/workload": {"schemas"},
	// The backtest runs the processor; its tests, and the command's,
	// run against the harness's cluster (kfake or the real broker).
	"cmd/triggerd/backtest": {"processor", "rules", "state", "schemas", "cmd/triggerd/workload", "test/harness"},
	"cmd/triggerd":          {"processor", "processor/admin", "processor/rescale", "rules", "rules/script", "state", "schemas", "cmd/triggerd/workload", "cmd/triggerd/backtest", "test/harness"},
	"test/harness":          {"processor", "rules", "state", "schemas"},
	"test/e2e":              {"processor", "processor/admin", "processor/rescale", "rules", "state", "schemas", "test/harness"},
	"test/system":           {"processor", "processor/rescale", "state", "schemas", "cmd/triggerd/workload", "test/harness"},
	"test/bench":            {"processor", "processor/rescale", "rules", "state", "schemas", "cmd/triggerd/workload", "cmd/triggerd/backtest", "test/harness"},
	// The Kafka floor measures what Kafka alone costs: nothing of triggerd.
	"test/bench/kafkafloor": nil,
	"test/layout":           nil,
	"test/deploy":           nil,
}

func TestImportLayout(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	seen := 0
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		ok, listed := allowed[name]
		if !listed {
			t.Errorf("package %s is not in the layout map: add it with the layers it may import", name)
			continue
		}
		for _, imp := range append(append(p.Imports, p.TestImports...), p.XTestImports...) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if dep == name {
				continue
			}
			if !contains(ok, dep) {
				t.Errorf("%s imports %s, which the layout does not allow", name, dep)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if seen < 6 {
		t.Fatalf("go list found only %d packages", seen)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
