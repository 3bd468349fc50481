package config

// Memcg holds the settings of the memcg health watchdog. Owned by the memcg
// work: keys, defaults and validation live together in this file.
type Memcg struct {
	Mode string `toml:"mode"`
}

// DefaultMemcg returns the watchdog defaults.
func DefaultMemcg() Memcg { return Memcg{Mode: "observe"} }

func (m Memcg) validate() []FieldError {
	switch m.Mode {
	case "off", "observe", "act":
		return nil
	}
	return []FieldError{{Key: "memcg.mode", Msg: "must be off, observe or act, got " + quote(m.Mode)}}
}

func quote(s string) string { return "\"" + s + "\"" }
