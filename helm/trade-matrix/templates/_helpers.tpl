{{/* The service name: names every object of the release. */}}
{{- define "tm.name" -}}
{{- required "service.name is required (use helm/values/<service>.yaml)" .Values.service.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tm.module" -}}
{{- .Values.service.module | default (printf "tm_%s" (include "tm.name" . | replace "-" "_")) -}}
{{- end -}}

{{- define "tm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tm.labels" -}}
{{ include "tm.selectorLabels" . }}
app.kubernetes.io/part-of: trade-matrix
app.kubernetes.io/component: {{ .Values.service.kind }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image: repository@digest when image.digest is set (the digest pins the exact image,
variant included), else repository:tag[-variant] (tag default: the chart's appVersion). */}}
{{- define "tm.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.variant -}}{{- $tag = printf "%s-%s" $tag .Values.image.variant -}}{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Labels the Prometheus Operator selects monitoring objects by (monitoring.selectorLabels). */}}
{{- define "tm.monitoringSelectorLabels" -}}
{{- with .Values.monitoring.selectorLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ .Values.serviceAccount.name | default (include "tm.name" .) }}{{- else -}}{{ .Values.serviceAccount.name | default "default" }}{{- end -}}
{{- end -}}

{{/* TM_REDIS_URL without a password (ConfigMap) or with $(TM_REDIS_PASSWORD) (env). */}}
{{- define "tm.redisUser" -}}
{{- .Values.redis.user | default .Values.service.name -}}
{{- end -}}

{{- define "tm.redisUrl" -}}
{{- $scheme := ternary "rediss" "redis" .Values.redis.tls -}}
{{- $auth := ternary (printf "%s:$(TM_REDIS_PASSWORD)@" (include "tm.redisUser" .)) "" (ne .Values.redis.existingSecret "") -}}
{{- printf "%s://%s%s:%v/%v" $scheme $auth .Values.redis.host .Values.redis.port .Values.redis.db -}}
{{- end -}}

{{/* The pod spec shared by the Deployment and the CronJob; .probes = true for servers. */}}
{{- define "tm.podSpec" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
serviceAccountName: {{ include "tm.serviceAccountName" $ }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ $v.runAsUser }}
  runAsGroup: {{ $v.runAsGroup }}
  fsGroup: {{ $v.runAsGroup }}
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: {{ include "tm.name" $ }}
    image: {{ include "tm.image" $ | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    command:
      {{- if $v.command }}
      {{- toYaml $v.command | nindent 6 }}
      {{- else }}
      - python
      - -m
      - {{ include "tm.module" $ }}
      {{- end }}
    {{- with $v.args }}
    args:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    envFrom:
      - configMapRef:
          name: {{ include "tm.name" $ }}
    env:
      - name: TM_CONSUMER_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      {{- if $v.redis.existingSecret }}
      - name: TM_REDIS_PASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ $v.redis.existingSecret }}
            key: {{ $v.redis.passwordKey | default (include "tm.redisUser" $) }}
      - name: TM_REDIS_URL
        value: {{ include "tm.redisUrl" $ | quote }}
      {{- end }}
      {{- if $v.redis.tlsSecret }}
      {{- if not $v.redis.tls }}
      {{- fail "redis.tlsSecret is set but redis.tls is false (the CA is only used with rediss://)" }}
      {{- end }}
      - name: TM_REDIS_TLS_CA_FILE
        value: /etc/tm/redis-tls/ca.crt
      {{- if $v.redis.clientCert }}
      - name: TM_REDIS_TLS_CERT_FILE
        value: /etc/tm/redis-tls/tls.crt
      - name: TM_REDIS_TLS_KEY_FILE
        value: /etc/tm/redis-tls/tls.key
      {{- end }}
      {{- end }}
      {{- if $v.database.existingSecret }}
      - name: TM_DATABASE_URL
        valueFrom:
          secretKeyRef:
            name: {{ $v.database.existingSecret }}
            key: {{ $v.database.urlKey }}
      {{- end }}
      {{- if $v.signing.existingSecret }}
      {{- range $name, $stream := $v.signing.keys }}
      - name: {{ $name }}
        valueFrom:
          secretKeyRef:
            name: {{ $v.signing.existingSecret }}
            key: {{ $stream }}
      {{- end }}
      {{- end }}
      {{- range $name, $ref := $v.secretEnv }}
      - name: {{ $name }}
        valueFrom:
          secretKeyRef:
            name: {{ required (printf "secretEnv.%s.secret is required" $name) $ref.secret }}
            key: {{ required (printf "secretEnv.%s.key is required" $name) $ref.key }}
      {{- end }}
      {{- with $v.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- if .probes }}
    ports:
      - name: http
        containerPort: {{ $v.service.port }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: {{ $v.probes.startup.path }}
        port: http
      periodSeconds: {{ $v.probes.startup.periodSeconds }}
      failureThreshold: {{ $v.probes.startup.failureThreshold }}
    livenessProbe:
      httpGet:
        path: {{ $v.probes.liveness.path }}
        port: http
      periodSeconds: {{ $v.probes.liveness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.liveness.failureThreshold }}
    readinessProbe:
      httpGet:
        path: {{ $v.probes.readiness.path }}
        port: http
      periodSeconds: {{ $v.probes.readiness.periodSeconds }}
      timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
      failureThreshold: {{ $v.probes.readiness.failureThreshold }}
    {{- end }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      runAsNonRoot: true
      runAsUser: {{ $v.runAsUser }}
      runAsGroup: {{ $v.runAsGroup }}
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      privileged: false
      capabilities:
        drop: ["ALL"]
      seccompProfile:
        type: RuntimeDefault
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: data
        mountPath: {{ $v.dataDir }}
      {{- if $v.redis.tlsSecret }}
      - name: redis-tls
        mountPath: /etc/tm/redis-tls
        readOnly: true
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $v.tmpSizeLimit }}
  - name: data
    emptyDir:
      sizeLimit: {{ $v.dataSizeLimit }}
  {{- if $v.redis.tlsSecret }}
  - name: redis-tls
    secret:
      secretName: {{ $v.redis.tlsSecret }}
      defaultMode: 0400
      items:
        - {key: {{ $v.redis.caKey }}, path: ca.crt}
        {{- if $v.redis.clientCert }}
        - {key: {{ $v.redis.certKey }}, path: tls.crt}
        - {key: {{ $v.redis.keyKey }}, path: tls.key}
        {{- end }}
  {{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template metadata (labels, scrape annotations, config checksum). */}}
{{- define "tm.podMetadata" -}}
labels:
  {{- include "tm.labels" . | nindent 2 }}
  # For Prometheus' labelmap of pod labels (the alert rules select system="trade-matrix").
  system: trade-matrix
  service: {{ include "tm.name" . }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
  {{- if and .Values.prometheusAnnotations (eq .Values.service.kind "deployment") }}
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .Values.service.port | quote }}
  prometheus.io/path: /metrics
  {{- end }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
TM_LIVE_TRADING from .Values.liveTrading, checked against the executor's venue URLs in
.Values.config: a Bybit host that names testnet or demo needs "testnet" or "armed"; any other
Bybit or Bytick host (mainnet) needs "armed". Mirrors tm_executor.domain.arming.
*/}}
{{- define "tm.liveTrading" -}}
{{- $mode := .Values.liveTrading | default "" -}}
{{- if hasKey .Values.config "TM_LIVE_TRADING" }}
{{- fail "config.TM_LIVE_TRADING: set liveTrading (off, testnet or armed) instead" }}
{{- end }}
{{- range $k := list "TM_EXECUTOR_BYBIT_REST_URL" "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL" }}
{{- $url := get $.Values.config $k | default "" | toString | lower }}
{{- $host := regexReplaceAll "^[a-z]+://([^/:]+).*$" $url "${1}" }}
{{- if regexMatch `(^|\.)(bybit|bytick)[^.]*\.` $host }}
{{- if or (contains "testnet" $host) (regexMatch `^([a-z]+-)?demo\.` $host) }}
{{- if not (has $mode (list "testnet" "armed")) }}
{{- fail (printf "config.%s points at Bybit testnet (%s): set liveTrading: testnet (or armed)" $k $host) }}
{{- end }}
{{- else if ne $mode "armed" }}
{{- fail (printf "config.%s points at Bybit mainnet (%s), real money: set liveTrading: armed to deploy it" $k $host) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $mode }}
  TM_LIVE_TRADING: {{ $mode | quote }}
{{- end }}
{{- end -}}

{{/* DNS (kube-dns, port 53 UDP and TCP): kept for every pod, the default-deny policy included. */}}
{{- define "tm.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.egress.dnsPeer.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.egress.dnsPeer.podSelector | nindent 8 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{/* The peers of one egress rule from values: a pod selector (optionally ANDed with a namespace
selector) and/or CIDRs. None of them is refused: an empty `to` would allow any destination. */}}
{{- define "tm.egressPeers" -}}
{{- $r := .rule }}
{{- if and (not $r.podSelector) (not $r.cidrs) }}
{{- fail (printf "%s: name the destination with podSelector (and namespaceSelector) or cidrs; an empty rule would allow any address" .what) }}
{{- end }}
{{- if $r.podSelector }}
- podSelector:
    {{- toYaml $r.podSelector | nindent 4 }}
  {{- with $r.namespaceSelector }}
  namespaceSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- range $r.cidrs }}
- ipBlock: {cidr: {{ . | quote }}}
{{- end }}
{{- end }}
