module github.com/cgroupclean/cgroupclean

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/moby/sys/mountinfo v0.7.2
)

require golang.org/x/sys v0.49.0 // indirect
