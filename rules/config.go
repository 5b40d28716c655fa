package rules

import (
	"errors"
	"fmt"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Config holds the rule settings. Parameters are settings, never constants
// in code: a marketer changes "1h" to "45m" here and nothing else.
type Config struct {
	CartAbandonment CartAbandonment `yaml:"cart_abandonment"`
}

// CartAbandonment configures the two-stage cart abandonment rule: stage 1
// fires Stage1Delay after the last cart change if nothing was bought, stage 2
// Stage2Delay after stage 1 was due.
type CartAbandonment struct {
	Enabled       bool            `yaml:"enabled"`
	Version       int32           `yaml:"version"`
	Stage1Delay   time.Duration   `yaml:"stage1_delay"`
	Stage2Delay   time.Duration   `yaml:"stage2_delay"`
	Stage1Channel schemas.Channel `yaml:"stage1_channel"`
	Stage2Channel schemas.Channel `yaml:"stage2_channel"`
	Priority      int32           `yaml:"priority"`
	// Expiry is how long after its due time a trigger is still worth
	// sending; senders drop it after that.
	Expiry time.Duration `yaml:"expiry"`
}

// DefaultConfig returns the settings of SCENARIOS.md: 1 h then 24 h, email
// then push.
func DefaultConfig() Config {
	return Config{CartAbandonment: CartAbandonment{
		Enabled:       true,
		Version:       1,
		Stage1Delay:   time.Hour,
		Stage2Delay:   24 * time.Hour,
		Stage1Channel: schemas.ChannelEmail,
		Stage2Channel: schemas.ChannelPush,
		Priority:      50,
		Expiry:        12 * time.Hour,
	}}
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	ca := c.CartAbandonment
	if ca.Enabled {
		if ca.Version < 1 {
			errs = append(errs, fmt.Errorf("rules: cart_abandonment.version must be >= 1, got %d", ca.Version))
		}
		if ca.Stage1Delay <= 0 {
			errs = append(errs, fmt.Errorf("rules: cart_abandonment.stage1_delay must be > 0, got %s", ca.Stage1Delay))
		}
		if ca.Stage2Delay <= 0 {
			errs = append(errs, fmt.Errorf("rules: cart_abandonment.stage2_delay must be > 0, got %s", ca.Stage2Delay))
		}
		if ca.Stage1Channel == "" {
			errs = append(errs, errors.New("rules: cart_abandonment.stage1_channel is empty"))
		}
		if ca.Stage2Channel == "" {
			errs = append(errs, errors.New("rules: cart_abandonment.stage2_channel is empty"))
		}
		if ca.Expiry <= 0 {
			errs = append(errs, fmt.Errorf("rules: cart_abandonment.expiry must be > 0, got %s", ca.Expiry))
		}
	}
	return errors.Join(errs...)
}
