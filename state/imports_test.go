package state

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the layering of docs/style.md: state imports only schemas
// from this module (never processor, rules or cmd), plus Pebble, zap and the
// standard library.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{
		"github.com/triggerd/triggerd/schemas",
		"github.com/cockroachdb/pebble/v2",
		"go.uber.org/zap",
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
	imports:
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
				continue // standard library
			}
			for _, a := range allowed {
				if path == a || strings.HasPrefix(path, a+"/") {
					continue imports
				}
			}
			t.Errorf("%s imports %s: state may import only %v and the standard library", name, path, allowed)
		}
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}
