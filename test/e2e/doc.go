// Package e2e holds the end-to-end tests: events go into Kafka, the
// processor runs, and the tests read the committed triggers back.
//
// The same tests run on franz-go's in-process kfake (the default) and on a
// real Apache Kafka broker when TRIGGERD_KAFKA_BROKERS names one (make
// test-e2e-kafka starts it with test/kafka/broker.sh). Expected triggers are
// computed by the tests themselves, never with rules/ or processor/.
package e2e
