package processor

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// ClientOptions are the options of a Kafka client that reaches the
// cluster as the processor does (brokers, TLS, SASL), for tools that read
// the same cluster without running the processor (a backtest reads the
// retained inputs with them, and writes nothing).
func ClientOptions(cfg Config, log *zap.Logger) ([]kgo.Opt, error) {
	return baseOpts(&cfg, log)
}
