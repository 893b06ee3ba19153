{{/* Names, labels and the rendered exporter configuration. */}}

{{- define "bacula-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bacula-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bacula-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bacula-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bacula-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bacula-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bacula-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bacula-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where things are mounted in the container. */}}
{{- define "bacula-exporter.configDir" -}}/etc/bacula-exporter{{- end }}
{{- define "bacula-exporter.secretsDir" -}}/etc/bacula-exporter/secrets{{- end }}
{{- define "bacula-exporter.tlsDir" -}}/etc/bacula-exporter/tls{{- end }}
{{- define "bacula-exporter.webDir" -}}/etc/bacula-exporter/web{{- end }}

{{/* HTTPS when the server has a certificate, from tls or from the web config. */}}
{{- define "bacula-exporter.https" -}}
{{- if or .Values.tls.existingSecret .Values.webConfig.https }}true{{ end }}
{{- end }}
{{- define "bacula-exporter.stateDir" -}}/var/lib/bacula-exporter{{- end }}

{{/* The path of the password file a passwordSecret ({name, key}) is mounted as. */}}
{{- define "bacula-exporter.passwordFile" -}}
{{- printf "%s/%s/%s" (include "bacula-exporter.secretsDir" .root) .secret.name (.secret.key | default "password") }}
{{- end }}

{{/* Replicas need a shared outbox and leadership: without a state database there is one. */}}
{{- define "bacula-exporter.replicas" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.stateDatabase.url) }}
{{- fail (printf "replicaCount %d needs stateDatabase.url: without it the outbox is a SQLite file on one PVC, for one replica only" $replicas) }}
{{- end }}
{{- $replicas }}
{{- end }}

{{/* The names of every Secret to mount: the passwordSecret of catalogs, of Directors and of
the state database, and existingSecrets, once each. */}}
{{- define "bacula-exporter.secretNames" -}}
{{- $names := dict }}
{{- range concat .Values.catalogs (.Values.directors | default list) }}
{{- if and .passwordSecret .passwordSecret.name }}
{{- $_ := set $names .passwordSecret.name true }}
{{- end }}
{{- end }}
{{- with .Values.stateDatabase }}
{{- if and .url .passwordSecret .passwordSecret.name }}
{{- $_ := set $names .passwordSecret.name true }}
{{- end }}
{{- end }}
{{- range .Values.existingSecrets }}
{{- $_ := set $names . true }}
{{- end }}
{{- keys $names | sortAlpha | toJson }}
{{- end }}

{{/* The configuration file, from values; the chart owns listen, catalogs, directors, tls,
state_dir and state_database. */}}
{{- define "bacula-exporter.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $listenHost := .Values.listenHost }}
{{- if contains ":" $listenHost }}
{{- $listenHost = printf "[%s]" $listenHost }}
{{- end }}
{{- $_ := set $cfg "listen" (printf "%s:%d" $listenHost (int .Values.port)) }}
{{- $catalogs := list }}
{{- range .Values.catalogs }}
{{- $catalog := omit (deepCopy .) "passwordSecret" }}
{{- if and .passwordSecret .passwordSecret.name }}
{{- $file := include "bacula-exporter.passwordFile" (dict "root" $ "secret" .passwordSecret) }}
{{- $_ := set $catalog "password_file" $file }}
{{- end }}
{{- $catalogs = append $catalogs $catalog }}
{{- end }}
{{- $_ := set $cfg "catalogs" $catalogs }}
{{- /* A Director's console password comes from a Secret the same way as a catalog's. */}}
{{- $directors := list }}
{{- range .Values.directors }}
{{- $director := omit (deepCopy .) "passwordSecret" }}
{{- if and .passwordSecret .passwordSecret.name }}
{{- $file := include "bacula-exporter.passwordFile" (dict "root" $ "secret" .passwordSecret) }}
{{- $_ := set $director "password_file" $file }}
{{- end }}
{{- $directors = append $directors $director }}
{{- end }}
{{- if $directors }}
{{- $_ := set $cfg "directors" $directors }}
{{- end }}
{{- if .Values.tls.existingSecret }}
{{- $dir := include "bacula-exporter.tlsDir" . }}
{{- $_ := set $cfg "tls" (dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir)) }}
{{- end }}
{{- with .Values.webConfig }}
{{- if .existingSecret }}
{{- $_ := set $cfg "web_config_file" (printf "%s/%s" (include "bacula-exporter.webDir" $) .key) }}
{{- $_ := set $cfg "web_public" (ternary (list "healthz" "readyz") (list "healthz") .publicReadyz) }}
{{- end }}
{{- end }}
{{- $sdb := .Values.stateDatabase }}
{{- if $sdb.url }}
{{- /* Always with a url, sinks or not: leadership lives in the state database too. */}}
{{- $db := dict "url" $sdb.url }}
{{- if and $sdb.passwordSecret $sdb.passwordSecret.name }}
{{- $_ := set $db "password_file" (include "bacula-exporter.passwordFile" (dict "root" . "secret" $sdb.passwordSecret)) }}
{{- end }}
{{- with $sdb.statementTimeout }}
{{- $_ := set $db "statement_timeout" . }}
{{- end }}
{{- with $sdb.connectTimeout }}
{{- $_ := set $db "connect_timeout" . }}
{{- end }}
{{- $_ := set $cfg "state_database" $db }}
{{- else if or $cfg.sinks $cfg.alertmanager }}
{{- $_ := set $cfg "state_dir" (include "bacula-exporter.stateDir" .) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* A probe from values: its httpGet gets the server's scheme; with client certificates
required (the kubelet has none) it becomes a TCP check of the same port, timings kept. */}}
{{- define "bacula-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .tcp $probe.httpGet }}
{{- $port := $probe.httpGet.port }}
{{- $probe = omit $probe "httpGet" }}
{{- $_ := set $probe "tcpSocket" (dict "port" $port) }}
{{- else if $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" .scheme }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
