{{/*
One Deployment of the Tally image; api and worker differ only in their
subcommand, a few variables and their scaling. Call with
(dict "root" $ "component" "api" "values" .Values.api "args" (list "serve") "env" (list ...)).
*/}}
{{- define "tally.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := .values -}}
{{- if le (int $c.terminationGracePeriodSeconds) (int $v.shutdownGraceSeconds) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed shutdownGraceSeconds (%d), or Kubernetes kills calls Tally is still draining" .component (int $c.terminationGracePeriodSeconds) (int $v.shutdownGraceSeconds)) }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "tally.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "tally.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not $c.autoscaling.enabled }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "tally.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ .component }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      annotations:
        {{- include "tally.checksums" $root | trim | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "tally.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "tally.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $v.serviceAccount.automount }}
      {{- include "tally.podSpecCommon" $root | trim | nindent 6 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "tally.image" $root | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- toYaml (concat .args $c.extraArgs) | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ $v.grpc.port }}
              protocol: TCP
            {{- if and $v.tls.existingSecret (eq .component "api") }}
            - name: health
              containerPort: {{ $v.tls.healthPort }}
              protocol: TCP
            {{- end }}
            {{- if $v.metrics.enabled }}
            - name: metrics
              containerPort: {{ $v.metrics.port }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "tally.commonEnv" $root | nindent 12 }}
            {{- include "tally.serverEnv" (dict "root" $root "component" .component) | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $v.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "tally.probes" (dict "root" $root "probes" $c "component" .component) | nindent 10 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: {{ $v.config.mountPath }}
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if and $v.tls.existingSecret (eq .component "api") }}
            - name: tls
              mountPath: {{ $v.tls.mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "tally.configMapName" $root }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if and $v.tls.existingSecret (eq .component "api") }}
        - name: tls
          secret:
            secretName: {{ $v.tls.existingSecret }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml $c.topologySpreadConstraints | nindent 8 }}
      {{- else }}
      # Spread replicas over nodes where possible (never blocks scheduling).
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "tally.selectorLabels" $root | nindent 14 }}
              app.kubernetes.io/component: {{ .component }}
      {{- end }}
{{- end }}
