#!/usr/bin/env bash
# check.sh: validates deploy/ for make test-deploy.
#
#   1. helm lint, and helm template of the chart with the default values and
#      with every option on (values-full.yaml); values that must be refused
#      (a grace period shorter than the transaction timeout, SASL without
#      credentials) must fail the render.
#   2. kubeconform -strict on the rendered manifests, against the Kubernetes
#      JSON schemas of the oldest and newest Kubernetes versions the chart is
#      checked for; a manifest with an unknown field must fail (so the
#      schemas really are in use).
#   3. promtool check rules on deploy/prometheus/alerts.yaml.
#   4. go test ./test/deploy: dashboard and alert metric names against the
#      code, the rendered config against the settings, and the alerts' unit
#      tests (test/deploy/alerts_test.yaml) with promtool test rules, on a
#      copy of the rules without annotations; every alert must have a case
#      where it fires and one where it must not.
#
# Tools are built or fetched once into test/deploy/.cache (git-ignored):
# helm and kubeconform with "go install" through the Go module proxy; the
# schemas from the PyPI package kubernetes-validate (pip download, no
# install), whose "-local-strict" schemas are rewritten to resolve their
# $refs to the local _definitions.json. Nothing is fetched from GitHub.
# promtool comes from Debian's prometheus package (.ci/run installs it).
# A tool that cannot be had is reported as SKIPPED with the reason; under
# CI=true any skip fails the run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=$here/.cache
chart=$root/deploy/helm/triggerd
helm_version=v3.22.0
kubeconform_version=v0.8.0
schemas_pkg=kubernetes-validate
schemas_version=1.37.0
kube_versions=(1.27.0 1.37.0) # the chart's kubeVersion floor, and the newest schemas
go=${GO:-go}

skipped=()
skip() {
	echo "test-deploy: SKIPPED $1: $2" >&2
	skipped+=("$1")
}
die() {
	echo "test-deploy: FAIL: $*" >&2
	exit 1
}
step() { echo "test-deploy: $*"; }

# gotool NAME MODULE/cmd/NAME VERSION: the path of a cached binary, built
# with go install on the first use.
gotool() {
	local name=$1 pkg=$2 version=$3 dir=$cache/$1-$3
	if [[ ! -x $dir/$name ]]; then
		step "building $name $version with go install (once)" >&2
		mkdir -p "$dir"
		GOBIN=$dir CGO_ENABLED=0 "$go" install "$pkg@$version" >&2 || return 1
	fi
	echo "$dir/$name"
}

# schemas: the directory of the rewritten schemas, fetched on first use.
schemas() {
	local dir=$cache/schemas-$schemas_pkg-$schemas_version
	if [[ ! -f $dir/complete ]]; then
		local py
		py=$(command -v python3 || command -v python) || {
			echo "python3 with pip is needed to fetch $schemas_pkg from PyPI" >&2
			return 1
		}
		step "fetching the Kubernetes JSON schemas ($schemas_pkg $schemas_version from PyPI, once)" >&2
		rm -rf "$dir" && mkdir -p "$dir/whl"
		"$py" -m pip download -q --no-deps --disable-pip-version-check "$schemas_pkg==$schemas_version" -d "$dir/whl" >&2 || return 1
		local whl v src dst f
		whl=$(ls "$dir"/whl/*.whl)
		# Only the schema directories of the versions checked (the wheel has
		# a dozen Kubernetes versions).
		"$py" - "$whl" "$dir/unpacked" "${kube_versions[@]}" <<'PY' >&2 || return 1
import sys, zipfile
whl, dest, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
z = zipfile.ZipFile(whl)
want = tuple(f"kubernetes_validate/kubernetes-json-schema/v{v}-local-strict/" for v in versions)
z.extractall(dest, [n for n in z.namelist() if n.startswith(want)])
PY
		for v in "${kube_versions[@]}"; do
			src=$dir/unpacked/kubernetes_validate/kubernetes-json-schema/v$v-local-strict
			[[ -d $src ]] || {
				echo "$schemas_pkg $schemas_version has no schemas for Kubernetes $v" >&2
				return 1
			}
			dst=$dir/v$v-standalone-strict
			mkdir -p "$dst"
			# The schemas carry an https $id and refer to "/api/_definitions.json":
			# point the references at the local copy so nothing is fetched.
			for f in "$src"/*.json; do
				sed "s#\"/api/_definitions.json\\##\"file://$dst/_definitions.json\\##g" "$f" >"$dst/${f##*/}"
			done
		done
		rm -rf "$dir/unpacked" "$dir/whl"
		touch "$dir/complete"
	fi
	echo "$dir"
}

t0=$SECONDS
mkdir -p "$cache"
out=$cache/rendered
rm -rf "$out" && mkdir -p "$out"

# 1. helm
if helm=$(gotool helm helm.sh/helm/v3/cmd/helm "$helm_version"); then
	step "helm lint and template (helm $helm_version)"
	"$helm" lint --strict "$chart" --set image.tag=test >"$out/lint.txt" 2>&1 || {
		cat "$out/lint.txt"
		die "helm lint"
	}
	render() { "$helm" template triggerd "$chart" --namespace streaming --kube-version "${kube_versions[-1]}" "$@"; }
	r0=$SECONDS
	render >"$out/default.yaml" || die "helm template with the default values"
	render -f "$here/values-full.yaml" >"$out/full.yaml" || die "helm template with values-full.yaml"
	step "rendered the chart twice in $((SECONDS - r0))s"
	refuse() {
		local why=$1
		shift
		if render "$@" >"$out/refused.yaml" 2>"$out/refused.txt"; then
			die "the chart rendered with $why; it must refuse it"
		fi
		step "refused as it should: $why ($(grep -o 'execution error.*' "$out/refused.txt" | cut -c1-120))"
	}
	refuse "terminationGracePeriodSeconds shorter than the transaction timeout" --set terminationGracePeriodSeconds=30
	refuse "sasl.mechanism without credentials" --set sasl.mechanism=SCRAM-SHA-512
	refuse "an unknown SASL mechanism" --set sasl.mechanism=GSSAPI --set sasl.existingSecret=x
	refuse "the admin API without a token" --set admin.enabled=true
else
	skip "chart render" "helm $helm_version could not be built through the Go module proxy"
fi

# 2. kubeconform
if [[ -s $out/default.yaml ]]; then
	if kubeconform=$(gotool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$kubeconform_version") && sdir=$(schemas); then
		loc="$sdir/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
		for v in "${kube_versions[@]}"; do
			step "kubeconform -strict, Kubernetes $v schemas"
			# ServiceMonitor is a Prometheus Operator CRD: no schema ships
			# with the Kubernetes ones; it is checked by helm's YAML parse only.
			"$kubeconform" -strict -summary -kubernetes-version "$v" -schema-location "$loc" \
				-skip ServiceMonitor "$out/default.yaml" "$out/full.yaml" || die "kubeconform (Kubernetes $v)"
		done
		echo "test-deploy: note: ServiceMonitor (a CRD) is not schema-checked: no schema for it in $schemas_pkg"
		# The control: an unknown field must be caught, or the schemas are
		# not in use and the check above proves nothing.
		sed 's/^  serviceName:/  serviceNme:/' "$out/default.yaml" >"$out/broken.yaml"
		if "$kubeconform" -strict -kubernetes-version "${kube_versions[-1]}" -schema-location "$loc" "$out/broken.yaml" >"$out/broken.txt" 2>&1; then
			die "kubeconform accepted a StatefulSet with an unknown field: the schemas are not applied"
		fi
		grep -q 'serviceNme' "$out/broken.txt" || die "kubeconform rejected the broken manifest for another reason: $(cat "$out/broken.txt")"
		step "kubeconform rejects an unknown field (control)"
	else
		skip "kubeconform" "kubeconform $kubeconform_version or the $schemas_pkg schemas could not be had (see above)"
	fi
fi

# 3. promtool
if command -v promtool >/dev/null 2>&1; then
	step "promtool check rules ($(promtool --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p'))"
	promtool check rules "$root/deploy/prometheus/alerts.yaml" || die "promtool check rules"
else
	skip "alert rules and their unit tests" "promtool not on PATH (Debian: apt-get install prometheus; .ci/run installs it)"
fi

# 4. Go checks of the dashboard, the alerts and the rendered chart.
rendered=""
[[ -s $out/default.yaml ]] && rendered="$out/default.yaml $out/full.yaml"
step "go test ./test/deploy (metric names, rendered config, the alerts' promtool unit tests)"
(cd "$root" && DEPLOY_RENDERED=$rendered "$go" test -count=1 ./test/deploy/) || die "go test ./test/deploy"

step "done in $((SECONDS - t0))s"
if ((${#skipped[@]})); then
	echo "test-deploy: SKIPPED: ${skipped[*]}" >&2
	if [[ ${CI:-} == true ]]; then
		die "a CI run must not skip deploy checks"
	fi
fi
