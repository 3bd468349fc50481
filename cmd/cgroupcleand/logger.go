package main

import (
	"errors"
	"io"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/daemon/logging"
	"github.com/sirupsen/logrus"
)

// newAuditLogger is the logger of commands that change the node (clean).
// Run by hand from a terminal, "auto" still sends the audit trail to
// journald when it is there (every removal must be auditable) and keeps
// the terminal for the table, with only warnings and errors on stderr.
func newAuditLogger(cfg config.Config, stderr io.Writer) (*logrus.Logger, error) {
	if cfg.Log.Format != logging.FormatAuto {
		return logging.New(cfg.Log.Format, cfg.Log.Level, stderr)
	}
	l, err := logging.New(logging.FormatJournal, cfg.Log.Level, stderr)
	if errors.Is(err, logging.ErrNoJournal) {
		return logging.New(logging.FormatText, "warning", stderr)
	}
	return l, err
}
