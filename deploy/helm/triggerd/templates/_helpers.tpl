{{/* Name of the release's objects: the release name, plus the chart name unless it contains it. */}}
{{- define "triggerd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the pods; never change them on an installed release. */}}
{{- define "triggerd.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "triggerd.labels" -}}
{{ include "triggerd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the SASL credentials. */}}
{{- define "triggerd.saslSecret" -}}
{{- default (printf "%s-sasl" (include "triggerd.fullname" .)) .Values.sasl.existingSecret -}}
{{- end -}}

{{/*
triggerd.seconds turns a Go duration of whole seconds or minutes ("30s",
"2m") into seconds; anything else gives "" (not checked).
*/}}
{{- define "triggerd.seconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+s$" $d -}}{{ trimSuffix "s" $d }}
{{- else if regexMatch "^[0-9]+m$" $d -}}{{ mul (trimSuffix "m" $d | atoi) 60 }}
{{- end -}}
{{- end -}}

{{/* Render-time checks of values that would otherwise fail in the cluster. */}}
{{- define "triggerd.validate" -}}
{{- $kafka := .Values.config.kafka | default dict -}}
{{- $tx := include "triggerd.seconds" (get $kafka "transaction_timeout" | default "30s") -}}
{{- if and $tx (le (int .Values.terminationGracePeriodSeconds) (atoi $tx)) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than kafka.transaction_timeout (%ss): a pod killed mid-commit leaves a transaction open" (int .Values.terminationGracePeriodSeconds) $tx) -}}
{{- end -}}
{{- $m := .Values.sasl.mechanism -}}
{{- if and $m (not (has $m (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512"))) -}}
{{- fail (printf "sasl.mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" $m) -}}
{{- end -}}
{{- if and $m (not .Values.sasl.existingSecret) (or (not .Values.sasl.user) (not .Values.sasl.password)) -}}
{{- fail "sasl.mechanism is set: give sasl.existingSecret, or sasl.user and sasl.password for a Secret the chart creates" -}}
{{- end -}}
{{- if and .Values.tls.secret (ne (empty .Values.tls.certKey) (empty .Values.tls.keyKey)) -}}
{{- fail "tls.certKey and tls.keyKey go together (mutual TLS)" -}}
{{- end -}}
{{- if hasKey (.Values.config | default dict) "ops" -}}
{{- fail "config.ops is set by the chart (opsPort)" -}}
{{- end -}}
{{- end -}}
