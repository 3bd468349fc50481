package daemon

import "testing"

// The checks run every N passes, and the pass before each takes the first
// cpu.stat read; 0 is off.
func TestDoctorDue(t *testing.T) {
	for _, tc := range []struct {
		every     int
		runs, rds string // passes 1..6: r = run, . = not
	}{
		{0, "......", "......"},
		{1, "rrrrrr", "rrrrrr"},
		{3, "..r..r", ".r..r."},
		{2, ".r.r.r", "r.r.r."},
	} {
		var runs, reads []byte
		for n := uint64(1); n <= 6; n++ {
			run, read := doctorDue(tc.every, n)
			runs, reads = append(runs, mark(run)), append(reads, mark(read))
		}
		if string(runs) != tc.runs || string(reads) != tc.rds {
			t.Errorf("every %d: runs %s reads %s, want %s %s", tc.every, runs, reads, tc.runs, tc.rds)
		}
	}
}

func mark(b bool) byte {
	if b {
		return 'r'
	}
	return '.'
}
