{{/*
Names. Every object is RELEASE-shardlet-<component> (or RELEASE-<component> when the
release name already contains "shardlet"), truncated to the 63 characters of a DNS label.
*/}}
{{- define "shardlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shardlet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shardlet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; "component" is meta, node, gateway, controller, … */}}
{{- define "shardlet.labels" -}}
helm.sh/chart: {{ include "shardlet.chart" .root }}
{{ include "shardlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: shardlet
{{- end }}

{{- define "shardlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardlet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Images. */}}
{{- define "shardlet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "shardlet.predictorImage" -}}
{{- $image := .Values.controller.predictor.image }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Service names and the addresses components dial. */}}
{{- define "shardlet.metaService" -}}{{ include "shardlet.fullname" . }}-meta{{- end }}
{{- define "shardlet.nodeService" -}}{{ include "shardlet.fullname" . }}-node{{- end }}
{{- define "shardlet.gatewayService" -}}{{ include "shardlet.fullname" . }}-gateway{{- end }}
{{- define "shardlet.controllerService" -}}{{ include "shardlet.fullname" . }}-controller{{- end }}
{{- define "shardlet.domain" -}}{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}{{- end }}

{{/* `host:port` of every metadata member, comma-separated (--meta). */}}
{{- define "shardlet.metaAddresses" -}}
{{- $service := include "shardlet.metaService" . }}
{{- $domain := include "shardlet.domain" . }}
{{- $addresses := list }}
{{- range $ordinal := until (int .Values.meta.replicas) }}
{{- $addresses = append $addresses (printf "%s-%d.%s.%s:%d" $service $ordinal $service $domain (int $.Values.meta.port)) }}
{{- end }}
{{- join "," $addresses }}
{{- end }}

{{/* `ID=host:port,…` (--initial-members): the member id is the ordinal + 1. */}}
{{- define "shardlet.initialMembers" -}}
{{- $service := include "shardlet.metaService" . }}
{{- $domain := include "shardlet.domain" . }}
{{- $members := list }}
{{- range $ordinal := until (int .Values.meta.replicas) }}
{{- $members = append $members (printf "%d=%s-%d.%s.%s:%d" (add1 $ordinal) $service $ordinal $service $domain (int $.Values.meta.port)) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{- define "shardlet.scheme" -}}{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}{{- end }}
{{- define "shardlet.probeScheme" -}}{{ if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}{{- end }}

{{- define "shardlet.controllerUrl" -}}
{{- printf "%s://%s.%s:%d" (include "shardlet.scheme" .) (include "shardlet.controllerService" .) (include "shardlet.domain" .) (int .Values.controller.port) }}
{{- end }}

{{/* Secrets. */}}
{{- define "shardlet.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "shardlet.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "shardlet.tlsSecret" -}}
{{- default (printf "%s-tls" (include "shardlet.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/* Where things are mounted in every Shardlet container. */}}
{{- define "shardlet.keysDir" -}}/var/run/shardlet/keys{{- end }}
{{- define "shardlet.secretDir" -}}/var/run/shardlet/cluster-secret{{- end }}
{{- define "shardlet.tlsDir" -}}/var/run/shardlet/tls{{- end }}

{{/* The connection flags of every Shardlet command: TLS files, or plaintext. */}}
{{- define "shardlet.transportArgs" -}}
{{- if .Values.tls.enabled }}
- --tls-cert={{ include "shardlet.tlsDir" . }}/tls.crt
- --tls-key={{ include "shardlet.tlsDir" . }}/tls.key
- --tls-ca={{ include "shardlet.tlsDir" . }}/ca.crt
{{- else }}
- --insecure-plaintext
{{- end }}
{{- end }}

{{/* The /metrics bearer token flag, when metrics.tokenSecret names a Secret. */}}
{{- define "shardlet.metricsTokenArgs" -}}
{{- if .Values.metrics.tokenSecret.name }}
- --metrics-token-file=/var/run/shardlet/metrics-token/token
{{- end }}
{{- end }}

{{/* Flags only TLS clients need (admin commands dial, serve nothing). */}}
{{- define "shardlet.clientTransportArgs" -}}
{{- if .Values.tls.enabled }}
- --tls-ca={{ include "shardlet.tlsDir" . }}/ca.crt
{{- else }}
- --insecure-plaintext
{{- end }}
{{- end }}

{{- define "shardlet.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/*
The initContainer that derives a role's key file from the cluster secret into the
memory-backed `keys` volume; the server itself never mounts the secret.
Arguments: root, role, node (optional: "$(POD_NAME)" for storage nodes).
*/}}
{{- define "shardlet.deriveKeysContainer" -}}
- name: derive-keys
  image: {{ include "shardlet.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["shardlet"]
  args:
    - admin
    - key
    - derive
    - --role={{ .role }}
    {{- if .node }}
    - --node={{ .node }}
    {{- end }}
    - --secret-file={{ include "shardlet.secretDir" .root }}/cluster-secret
    - --out={{ include "shardlet.keysDir" .root }}/{{ .role }}.keys
  env:
    {{- include "shardlet.commonEnv" .root | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
  volumeMounts:
    - name: cluster-secret
      mountPath: {{ include "shardlet.secretDir" .root }}
      readOnly: true
    - name: keys
      mountPath: {{ include "shardlet.keysDir" .root }}
{{- end }}

{{/* Volumes every server pod has: keys (memory), the secret (init only), TLS, /tmp. */}}
{{- define "shardlet.commonVolumes" -}}
- name: keys
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: cluster-secret
  secret:
    secretName: {{ include "shardlet.credentialsSecret" . }}
    defaultMode: 0400
    items:
      - key: {{ .Values.auth.clusterSecretKey }}
        path: cluster-secret
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "shardlet.tlsSecret" . }}
    defaultMode: 0400
{{- end }}
{{- if .Values.metrics.tokenSecret.name }}
- name: metrics-token
  secret:
    secretName: {{ .Values.metrics.tokenSecret.name }}
    defaultMode: 0400
    items:
      - key: {{ .Values.metrics.tokenSecret.key }}
        path: token
{{- end }}
{{- end }}

{{/* Mounts of a server container: its keys (read-only), TLS, /tmp. */}}
{{- define "shardlet.serverMounts" -}}
- name: keys
  mountPath: {{ include "shardlet.keysDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "shardlet.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.metrics.tokenSecret.name }}
- name: metrics-token
  mountPath: /var/run/shardlet/metrics-token
  readOnly: true
{{- end }}
{{- end }}

{{/* A probe on `path` at `port` (HTTPS when TLS is on). */}}
{{- define "shardlet.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
  scheme: {{ include "shardlet.probeScheme" .root }}
{{- end }}

{{/* Kubernetes quantity (100Gi, 500G) to a capacity `shardlet node` reads (100GiB, 500GB). */}}
{{- define "shardlet.capacity" -}}
{{- $size := toString . }}
{{- if hasSuffix "i" $size }}{{ $size }}B
{{- else if regexMatch "^[0-9.]+[kMGTPE]$" $size }}{{ upper $size }}B
{{- else }}{{ $size }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every Shardlet pod. */}}
{{- define "shardlet.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- end }}

{{/* NetworkPolicy peers: the pods of this release with the given components. */}}
{{- define "shardlet.peers" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .root.Release.Name | quote }}]
      - key: app.kubernetes.io/name
        operator: In
        values: [{{ include "shardlet.name" .root | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: {{ .components | toJson }}
{{- end }}
