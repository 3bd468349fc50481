package testbed

import (
	"fmt"
	"os"
)

// PauseBinEnv names a prebuilt static pause binary (internal/testbed/pause).
// Where there is no Go toolchain, as inside the node test's VM, the pause
// image is packed from it instead of being built with `go build`.
const PauseBinEnv = "CGROUPCLEAN_PAUSE_BIN"

func init() {
	bin := os.Getenv(PauseBinEnv)
	if bin == "" {
		return
	}
	pauseOnce.Do(func() {
		data, err := os.ReadFile(bin)
		if err != nil {
			pauseOnce.err = fmt.Errorf("%s: %w", PauseBinEnv, err)
			return
		}
		pauseOnce.tar, pauseOnce.err = ociImage(data, PauseImage)
	})
}

// PauseImageTar returns the OCI image tar of PauseImage, as StartContainerd
// imports it, for a containerd the test did not start (`ctr images import`).
func PauseImageTar() ([]byte, error) { return pauseImage() }
