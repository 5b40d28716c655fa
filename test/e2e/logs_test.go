package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/test/harness"
)

// TestLogsCarryNoAttributes makes a rule expression fail on a customer's
// attribute value (CEL's timestamp() error quotes the string it could not
// parse) and checks that nothing the processor logs at info level or above
// holds the value or the customer ID, while the warning still names the
// rule.
func TestLogsCarryNoAttributes(t *testing.T) {
	const secret = "secret-value-7731"
	c := harness.NewCluster(t)
	const parts = 1
	cfg := c.Topics(t, parts)
	rs, err := rules.Parse("codes.yaml", []byte(`rules:
  - {id: code_rule, version: 1, family: behavioral, channel: email, on: [page_view], when: 'timestamp(event.properties["code"]) > now'}
`))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	proc, _ := harness.StartProcessor(t, cfg, rs, nil, processor.Options{Logger: zap.New(core)})
	p := harness.NewProducer(t, c, cfg, nil)
	at := time.Now().UTC().Add(-time.Hour)
	p.Send(parts, schemas.Event{Source: schemas.SourceClickstream, ID: "e1", Customer: "cust-private-1", Type: schemas.PageView,
		Time: at, Properties: map[string]string{"code": secret}})
	p.Tick(parts, at.Add(time.Minute))
	harness.WaitEvents(t, proc, 1+3*parts)

	warned := false
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		if strings.Contains(line, secret) || strings.Contains(line, "cust-private-1") {
			t.Errorf("logged at %s: %s", e.Level, line)
		}
		if strings.Contains(e.Message, "rule expression failed") && e.ContextMap()["rule_id"] == "code_rule" {
			warned = true
		}
	}
	if !warned {
		t.Error("no warning naming the failed rule")
	}
}
