package relief

import (
	"os"
	"testing"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

func TestMain(m *testing.M) {
	testbed.ChargeMain()
	if _, ok := os.LookupEnv(cadvisorRootsEnv); ok {
		os.Exit(cadvisorChild())
	}
	os.Exit(m.Run())
}
