package sdunit

import (
	"context"
	"fmt"
)

// List returns the loaded units whose names match any of the shell-style
// patterns, with their states (ControlGroup is not filled in: Lookup each
// unit that needs it). Read-only; for `doctor`.
func (m *Manager) List(ctx context.Context, patterns ...string) ([]Unit, error) {
	st, err := m.conn.ListUnitsByPatternsContext(ctx, nil, patterns)
	if err != nil {
		return nil, fmt.Errorf("list units %v: %w", patterns, mapErr(err))
	}
	out := make([]Unit, 0, len(st))
	for _, u := range st {
		out = append(out, Unit{Name: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState})
	}
	return out, nil
}
