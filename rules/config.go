package rules

import (
	_ "embed" // the example rules file
	"fmt"
	"time"
)

//go:embed example/rules.yaml
var exampleRules []byte

// ExampleName is the name the embedded example rules are known by (in
// errors and in the configuration's default).
const ExampleName = "example/rules.yaml"

// Example returns the example rules file shipped in the binary: every
// behaviour of the behaviour catalogue with its example parameters. The
// caller may keep the slice; it is a copy.
func Example() []byte { return append([]byte(nil), exampleRules...) }

// ExampleSet compiles the example rules.
func ExampleSet() (*Set, error) { return Parse(ExampleName, exampleRules) }

// ExampleSetWithoutPolicy compiles the example rules without their contact
// policy: the rules alone, every trigger they fire goes out. The scripts of
// the rule behaviours use it, so that each shows its rule and nothing else;
// the policy's own scripts use ExampleSet.
func ExampleSetWithoutPolicy() (*Set, error) {
	c := &compiler{parser: parser{file: ExampleName}, noPolicy: true}
	s := c.compile(exampleRules)
	if err := c.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// CartOnlyYAML returns a rules file holding only the cart abandonment rule
// (version 1, stage 1 after stage1, stage 2 stage2 after stage 1 was due,
// email then push, no event catalogue, no dedupe): the behaviour the system
// tests' reference model knows. With stage2 <= 0 the rule has stage 1 only
// (the benchmark's peers' cart workload).
func CartOnlyYAML(stage1, stage2 time.Duration) []byte {
	stages := fmt.Sprintf("        - {delay: %s, channel: email}\n", stage1)
	if stage2 > 0 {
		stages += fmt.Sprintf("        - {delay: %s, channel: push}\n", stage2)
	}
	return fmt.Appendf(nil, `# Cart abandonment only (the system tests' reference model).
rules:
  - id: cart_abandoned
    version: 1
    family: transactional
    expiry: 12h
    attach: cart
    sequence:
      start:
        on: [add_to_cart, remove_from_cart]
        when: customer.cart.last_event == event.id && customer.cart.size > 0
        restart: true
      exit:
        on: [purchase, remove_from_cart]
        when: event.type == "purchase" || customer.cart.size == 0
      stages:
%s    payload:
      cart_items: customer.cart.size
      cart_value: money(customer.cart.value, customer.cart.currency)
`, stages)
}

// CartOnly compiles CartOnlyYAML.
func CartOnly(stage1, stage2 time.Duration) (*Set, error) {
	return Parse("cart-only.yaml", CartOnlyYAML(stage1, stage2))
}
