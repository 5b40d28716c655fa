// Package deploy checks the files under deploy/ against the code: the
// Grafana dashboard and the Prometheus alert rules name only metrics that
// the processor, its Kafka client (kprom) and the process collectors
// export; docs/operations.md documents every processor metric; the Helm chart's
// rendered config file and TRIGGERD_ variables name only real settings.
//
// make test-deploy runs it after check.sh has built helm, rendered the
// chart, validated the manifests with kubeconform and the rules with
// promtool; check.sh passes the rendered manifests in DEPLOY_RENDERED.
// deploy/ itself holds no Go code.
package deploy
