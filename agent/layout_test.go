package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHouseLayout enforces the "never imports" lines of the house style, so
// the code keeps its shape: each heavy dependency lives in exactly one
// package, crdt stays pure, and no subpackage of agent imports agent.
func TestHouseLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "github.com/fieldsync/fieldsync/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/fieldsync/fieldsync/"
	owners := map[string]string{
		"github.com/dgraph-io/badger":     mod + "agent/store",
		"github.com/libp2p/go-libp2p":     mod + "agent/transport",
		"github.com/multiformats/":        mod + "agent/transport",
		"github.com/hashicorp/memberlist": mod + "agent/membership",
		"github.com/jackc/pgx":            mod + "agent/export",
		"github.com/chromedp/":            mod + "agent/web",
		"github.com/hanwen/go-fuse":       mod + "cmd/internal/lazyfs",
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		checked++
		for _, imp := range strings.Fields(imports) {
			for dep, owner := range owners {
				if strings.HasPrefix(imp, dep) && pkg != owner && !strings.HasPrefix(pkg, owner+"/") {
					t.Errorf("%s imports %s: only %s may", pkg, imp, owner)
				}
			}
			if strings.HasPrefix(pkg, mod+"agent/") && imp == mod+"agent" {
				t.Errorf("%s imports the agent package: subpackages never do", pkg)
			}
			if pkg == mod+"crdt" && !isStdlib(imp) && !strings.HasPrefix(imp, "github.com/fxamacker/cbor") {
				t.Errorf("crdt imports %s: crdt is pure (standard library and CBOR only)", imp)
			}
			if pkg == mod+"crdt" && (imp == "os" || imp == "net" || imp == "time" || imp == "math/rand" || imp == "math/rand/v2") {
				t.Errorf("crdt imports %s: no I/O, wall clock or randomness in crdt", imp)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list saw only %d packages", checked)
	}
}

func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
