// Package fleet holds the fleet test (`make fleet-test`): Debian's
// Prometheus server on loopback scrapes a fleet of real cgroupcleand
// daemons, each a node with its own pod root, state and CRI endpoint,
// evaluates the shipped alerting rules (packaging/prometheus, their
// durations scaled to the test's pass interval) and is asked, through its
// HTTP API, which alerts fire for which node as faults are made and
// undone. The test is in fleet_test.go; this package has no other code.
package fleet
