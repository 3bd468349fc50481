package apply

import (
	"context"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// Cgroupfs is the node's cgroups and processes as the engine acts on
// them: the functions of this package, on the mounted hierarchies.
type Cgroupfs struct{}

// ReadTrees is ReadTreesKnown.
func (Cgroupfs) ReadTrees(hs []hierarchy.Hierarchy, path string, known []string) (Trees, error) {
	return ReadTreesKnown(hs, path, known)
}

// KillAll is KillAllConfirmed.
func (Cgroupfs) KillAll(ctx context.Context, hs []hierarchy.Hierarchy, path string, confirm func() error) (KillResult, error) {
	return KillAllConfirmed(ctx, hs, path, confirm)
}

// Remove is Remove.
func (Cgroupfs) Remove(t Trees, before BeforeRemove) ([]HierarchyResult, error) {
	return Remove(t, before)
}
