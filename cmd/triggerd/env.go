package main

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// applyEnv sets every setting that has a TRIGGERD_ variable in environ. A
// TRIGGERD_ variable that names no setting is a problem, and so stops the
// start: a misspelt override (TRIGGERD_KAFKA_BROKER) would otherwise be
// ignored without a word while the process runs on the default. The
// problem names the closest variable that does name one.
func applyEnv(cfg *Config, environ []string, ps *problems) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TRIGGERD_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return
	}
	known := []string{"TRIGGERD_CONFIG"}
	paths := map[string]string{}
	walkSettings(reflect.ValueOf(cfg).Elem(), "", func(path string, v reflect.Value) {
		name := envName(path)
		known = append(known, name)
		paths[name] = path
		s, ok := env[name]
		if !ok {
			return
		}
		if err := setFromString(v, s); err != nil {
			ps.add(path, "%s=%q is not %s", name, s, wanted(v.Type()))
		}
	})
	var unknown []string
	for k := range env {
		if _, ok := paths[k]; !ok && k != "TRIGGERD_CONFIG" && k != failpointsEnv && k != traceEnv {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		near, _ := closest(k, known)
		if p, ok := paths[near]; ok {
			near += " (" + p + ")"
		}
		ps.add(k, "this environment variable names no setting, and an unknown TRIGGERD_ variable stops the start; the closest is %s", near)
	}
}

// setFromString sets the setting v from its environment variable's value:
// lists are comma-separated, durations in Go syntax (250ms, 30s).
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
