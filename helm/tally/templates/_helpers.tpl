{{/*
Chart name, truncated to the 63 characters a label value may hold.
*/}}
{{- define "tally.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, unless the release name already holds the chart name.
Truncated to leave room for the "-worker"/"-migrate" suffixes.
*/}}
{{- define "tally.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tally.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "tally.labels" -}}
helm.sh/chart: {{ include "tally.chart" . }}
{{ include "tally.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tally
{{- end }}

{{/*
Selector labels shared by every component; add app.kubernetes.io/component.
*/}}
{{- define "tally.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tally.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tally.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tally.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: a digest pins it, else the tag (default: appVersion).
*/}}
{{- define "tally.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The Secret holding DATABASE_URL and its key.
*/}}
{{- define "tally.databaseSecretName" -}}
{{- default (printf "%s-database" (include "tally.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "tally.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else -}}
DATABASE_URL
{{- end }}
{{- end }}

{{- define "tally.configMapName" -}}
{{- default (printf "%s-config" (include "tally.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/*
Environment shared by every Tally container (api, worker, migrate).
*/}}
{{- define "tally.commonEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tally.databaseSecretName" . }}
      key: {{ include "tally.databaseSecretKey" . }}
- name: TALLY_DB_POOL_SIZE
  value: {{ .Values.database.poolSize | quote }}
- name: TALLY_LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
{{- end }}

{{/*
Environment of the long-running processes (api and worker): listeners,
shutdown, configuration file, OpenTelemetry, extras. Call with
(dict "root" $ "component" "api").
*/}}
{{- define "tally.serverEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: TALLY_GRPC_ADDR
  value: {{ printf "0.0.0.0:%d" (int $v.grpc.port) | quote }}
{{- if $v.metrics.enabled }}
- name: TALLY_METRICS_ADDR
  value: {{ printf "0.0.0.0:%d" (int $v.metrics.port) | quote }}
{{- end }}
- name: TALLY_SHUTDOWN_GRACE_SECS
  value: {{ $v.shutdownGraceSeconds | quote }}
- name: TALLY_CONFIG
  value: {{ printf "%s/tally.toml" $v.config.mountPath | quote }}
{{- if and $v.config.alertCaPem (not $v.config.existingConfigMap) }}
- name: TALLY_ALERT_CA_FILE
  value: {{ printf "%s/alert-ca.pem" $v.config.mountPath | quote }}
{{- end }}
{{- if and $v.tls.existingSecret (eq .component "api") }}
- name: TALLY_TLS_CERT
  value: {{ printf "%s/tls.crt" $v.tls.mountPath | quote }}
- name: TALLY_TLS_KEY
  value: {{ printf "%s/tls.key" $v.tls.mountPath | quote }}
{{- if $v.tls.clientCa }}
- name: TALLY_TLS_CLIENT_CA
  value: {{ printf "%s/ca.crt" $v.tls.mountPath | quote }}
{{- end }}
- name: TALLY_HEALTH_ADDR
  value: {{ printf "0.0.0.0:%d" (int $v.tls.healthPort) | quote }}
{{- end }}
- name: TALLY_AUTH
  value: {{ $v.auth.mode | default "keys" | quote }}
{{- if $v.auth.insecureNoAuth }}
- name: TALLY_INSECURE_NO_AUTH
  value: "true"
{{- end }}
{{- with $v.config.alertAllowCidrs }}
- name: TALLY_ALERT_ALLOW_CIDR
  value: {{ join "," . | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ $v.otel.serviceName | default (printf "%s-%s" (include "tally.fullname" $root) .component) | quote }}
{{- with $v.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $v.otel.protocol }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ . | quote }}
{{- end }}
{{- with $v.otel.tracesSampler }}
- name: OTEL_TRACES_SAMPLER
  value: {{ . | quote }}
{{- end }}
{{- with $v.otel.tracesSamplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- /* The pod's identity joins whatever resource attributes were given. */}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=%s,service.version=%s%s" $root.Release.Namespace ($v.image.tag | default $root.Chart.AppVersion) (ternary (printf ",%s" $v.otel.resourceAttributes) "" (ne $v.otel.resourceAttributes "")) | quote }}
{{- if $v.otel.sdkDisabled }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every pod the chart makes.
*/}}
{{- define "tally.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Rolls the pods when the configuration or the chart-made Secret changes.
*/}}
{{- define "tally.checksums" -}}
{{- if not .Values.config.existingConfigMap }}
checksum/config: {{ printf "%s%s" .Values.config.toml .Values.config.alertCaPem | sha256sum }}
{{- end }}
{{- if not .Values.database.existingSecret }}
checksum/database: {{ .Values.database.url | sha256sum }}
{{- end }}
{{- end }}

{{/*
The three native gRPC probes of a component, each naming a service of
grpc.health.v1 when health.* sets one ("" is the server as a whole). Call
with (dict "root" $ "probes" .Values.api).
*/}}
{{- define "tally.probes" -}}
{{- $port := int .root.Values.grpc.port -}}
{{- /* The API over TLS: probes use its plaintext health port. */ -}}
{{- if and .root.Values.tls.existingSecret (eq .component "api") }}
{{- $port = int .root.Values.tls.healthPort -}}
{{- end }}
{{- $h := .root.Values.health -}}
{{- range $probe, $service := dict "startupProbe" $h.livenessService "livenessProbe" $h.livenessService "readinessProbe" $h.readinessService }}
{{ $probe }}:
  grpc:
    port: {{ $port }}
    {{- with $service }}
    service: {{ . | quote }}
    {{- end }}
  {{- toYaml (index $.probes $probe) | nindent 2 }}
{{- end }}
{{- end }}
