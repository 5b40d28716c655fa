package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
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

func (a AdminConfig) validate() error {
	var errs []error
	if a.Addr != "" {
		if a.Token == "" {
			errs = append(errs, errors.New("config: admin.token is required when admin.addr is set (the admin API serves customer data)"))
		}
		if _, _, err := net.SplitHostPort(a.Addr); err != nil {
			errs = append(errs, fmt.Errorf("config: admin.addr %q is not host:port", a.Addr))
		}
	}
	if a.Advertise != "" && !strings.HasPrefix(a.Advertise, "http://") && !strings.HasPrefix(a.Advertise, "https://") {
		errs = append(errs, fmt.Errorf("config: admin.advertise %q is not an http:// or https:// URL", a.Advertise))
	}
	return errors.Join(errs...)
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

func (r RulesConfig) validate() error {
	var errs []error
	if r.Poll < 0 {
		errs = append(errs, fmt.Errorf("config: rules.poll must be >= 0, got %s", r.Poll))
	}
	if _, err := r.load(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
	_ = applyEnv(&cfg, environ) // settings of other sections do not matter here
	return cfg.Admin, nil
}

// loadConfig reads path (if not empty) over the defaults, applies the
// environment, and validates. Every problem is reported at once.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	var errs []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("config %s: %w", path, err))
		}
	}
	errs = append(errs, applyEnv(&cfg, environ)...)
	if cfg.Kafka.InstanceID == "" {
		// One instance per host (or pod): the host name is stable
		// across restarts, as static membership needs.
		cfg.Kafka.InstanceID, _ = os.Hostname()
	}
	errs = append(errs, cfg.validate())
	return cfg, errors.Join(errs...)
}

func (c *Config) validate() error {
	var errs []error
	errs = append(errs, c.Kafka.Validate(), c.stateConfig().Validate(), c.Rules.validate(), c.Admin.validate())
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("config: log.level %q is not debug, info, warn or error", c.Log.Level))
	}
	return errors.Join(errs...)
}

// applyEnv sets every field that has a TRIGGERD_ variable in environ.
func applyEnv(cfg *Config, environ []string) []error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TRIGGERD_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var errs []error
	used := map[string]bool{}
	walkEnv(reflect.ValueOf(cfg).Elem(), "TRIGGERD", func(name string, v reflect.Value) {
		s, ok := env[name]
		if !ok {
			return
		}
		used[name] = true
		if err := setFromString(v, s); err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%q: %w", name, s, err))
		}
	})
	for k := range env {
		if !used[k] && k != "TRIGGERD_CONFIG" && k != failpointsEnv && k != traceEnv {
			errs = append(errs, fmt.Errorf("config: environment variable %s names no setting", k))
		}
	}
	return errs
}

func walkEnv(v reflect.Value, prefix string, fn func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Time{}) {
			walkEnv(fv, name, fn)
			continue
		}
		fn(name, fv)
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

func setFromString(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), 0, len(parts))
		for _, p := range parts {
			if p = strings.TrimSpace(p); p != "" {
				out = reflect.Append(out, reflect.ValueOf(p).Convert(v.Type().Elem()))
			}
		}
		v.Set(out)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
