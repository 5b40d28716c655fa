package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/state"
)

// Config is the whole configuration file. Every leaf can be overridden by an
// environment variable named TRIGGERD_ plus its path in upper case, joined
// by underscores: kafka.sasl.password is TRIGGERD_KAFKA_SASL_PASSWORD.
// Lists are comma-separated.
type Config struct {
	Kafka processor.Config `yaml:"kafka"`
	State StateConfig      `yaml:"state"`
	Rules RulesConfig      `yaml:"rules"`
	Ops   OpsConfig        `yaml:"ops"`
	Admin AdminConfig      `yaml:"admin"`
	Log   LogConfig        `yaml:"log"`
	// Shadow runs a candidate rules file on the live traffic next to the
	// production rules (shadow.go).
	Shadow ShadowConfig `yaml:"shadow"`
}

// AdminConfig is the admin API (processor/admin): inspect, explain and
// erase customers. Off unless Addr is set.
type AdminConfig struct {
	Addr string `yaml:"addr"` // listen address, e.g. ":9465"; "" disables the API
	// Advertise is the URL other instances redirect clients to for the
	// customers this instance owns; default: http://<host name>:<port of
	// addr> (or addr's host when it names one).
	Advertise string `yaml:"advertise"`
	// Token is the bearer token every request must carry (required with
	// addr; set it with TRIGGERD_ADMIN_TOKEN from a secret).
	Token string `yaml:"token"`
	// AllowWrites enables erase; otherwise the API is read-only.
	AllowWrites bool `yaml:"allow_writes"`
}

func (a AdminConfig) check(ps *problems) {
	if a.Addr != "" {
		if a.Token == "" {
			ps.add("admin.token", "required when admin.addr is set (the admin API serves customer data)")
		}
		if err := processor.CheckHostPort(a.Addr, true); err != nil {
			ps.add("admin.addr", "%v", err)
		}
	}
	if a.Advertise != "" && !strings.HasPrefix(a.Advertise, "http://") && !strings.HasPrefix(a.Advertise, "https://") {
		ps.add("admin.advertise", "%q is not an http:// or https:// URL", a.Advertise)
	}
}

// StateConfig locates the local state.
type StateConfig struct {
	Dir        string `yaml:"dir"`
	CacheBytes int64  `yaml:"cache_bytes"`
	// CachedCustomers: decoded customer records kept per partition
	// between cycles (0: 1024; negative: off).
	CachedCustomers int `yaml:"cached_customers"`
	// WriteBackCommits: cycles a customer record may stay out of Pebble
	// (0: 16; 1: write every cycle's records). A crash costs a restore of
	// that many cycles of changelog.
	WriteBackCommits int  `yaml:"write_back_commits"`
	SyncWrites       bool `yaml:"sync_writes"` // fsync every batch (the changelog is the durable copy anyway)
}

// OpsConfig is the HTTP endpoint for /metrics, /healthz and /readyz.
type OpsConfig struct {
	Addr string `yaml:"addr"` // "" disables it
	// Pprof also serves Go's profiler under /debug/pprof/ (off by
	// default: a profile costs CPU and shows internals).
	Pprof bool `yaml:"pprof"`
}

// RulesConfig locates the rules file.
type RulesConfig struct {
	// File is the rules file (YAML); "" uses the example rules built into
	// the binary.
	File string `yaml:"file"`
	// Poll is how often the file's modification time is checked for a
	// reload (0: reload on SIGHUP only). A bad new file is logged with
	// every error and the running rules stay in force.
	Poll time.Duration `yaml:"poll"`
}

// load compiles the configured rules.
func (r RulesConfig) load() (*rules.Set, error) {
	if r.File == "" {
		return rules.ExampleSet()
	}
	return rules.Load(r.File)
}

func (r RulesConfig) check(ps *problems) {
	if r.Poll < 0 {
		ps.add("rules.poll", "must be >= 0, got %s", r.Poll)
	}
	if _, err := r.load(); err != nil {
		ps.addErr("rules.file", err)
	}
}

// LogConfig sets the log level: debug, info, warn, error.
type LogConfig struct {
	Level string `yaml:"level"`
}

func defaultConfig() Config {
	sc := state.DefaultConfig()
	return Config{
		Kafka: processor.DefaultConfig(),
		State: StateConfig{Dir: "./data", CacheBytes: sc.CacheBytes},
		Rules: RulesConfig{Poll: 5 * time.Second},
		Ops:   OpsConfig{Addr: "127.0.0.1:9464"},
		Log:   LogConfig{Level: "info"},
	}
}

// stateConfig maps the file's state section onto the state package.
func (c *Config) stateConfig() state.Config {
	sc := state.DefaultConfig()
	sc.Dir = c.State.Dir
	sc.CacheBytes = c.State.CacheBytes
	sc.CachedCustomers = c.State.CachedCustomers
	sc.WriteBackCommits = c.State.WriteBackCommits
	sc.SyncWrites = c.State.SyncWrites
	return sc
}

// loadAdminConfig reads only what the state CLI needs (the admin section)
// from path and the environment, without validating the rest.
func loadAdminConfig(path string, environ []string) (AdminConfig, error) {
	cfg := defaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg.Admin, fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			return cfg.Admin, fmt.Errorf("config %s: %w", path, err)
		}
	}
	applyEnv(&cfg, environ, new(problems)) // settings of other sections do not matter here
	return cfg.Admin, nil
}

// loadConfig reads path (if not empty) over the defaults, applies the
// environment, and validates. Every problem is reported at once, each
// named by its setting's YAML path (a *configError).
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	var ps problems
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		decodeSettings(data, &cfg, &ps)
	}
	applyEnv(&cfg, environ, &ps)
	if cfg.Kafka.InstanceID == "" {
		// One instance per host (or pod): the host name is stable
		// across restarts, as static membership needs.
		cfg.Kafka.InstanceID, _ = os.Hostname()
	}
	cfg.check(&ps)
	return cfg, ps.err()
}

// validate reports every problem of c, each named by its YAML path.
func (c *Config) validate() error {
	var ps problems
	c.check(&ps)
	return ps.err()
}

func (c *Config) check(ps *problems) {
	ps.addErr("kafka", c.Kafka.Validate())
	c.checkState(ps)
	c.Rules.check(ps)
	if c.Ops.Addr != "" {
		if err := processor.CheckHostPort(c.Ops.Addr, true); err != nil {
			ps.add("ops.addr", "%v", err)
		}
	}
	c.Admin.check(ps)
	c.Shadow.check(ps, c.State.Dir)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
}

// checkState checks the state section by its settings' paths; the state
// package's own check (which names its Go fields) runs only when these
// pass, for what the file cannot set.
func (c *Config) checkState(ps *problems) {
	before := len(*ps)
	if c.State.Dir == "" {
		ps.add("state.dir", "empty")
	}
	if c.State.CacheBytes < 0 {
		ps.add("state.cache_bytes", "%d: want >= 0 (0: the default)", c.State.CacheBytes)
	}
	if c.State.WriteBackCommits < 0 {
		ps.add("state.write_back_commits", "%d: want >= 0 (0: the default, 1: write every cycle)", c.State.WriteBackCommits)
	}
	if len(*ps) == before {
		ps.addErr("state", c.stateConfig().Validate())
	}
}
