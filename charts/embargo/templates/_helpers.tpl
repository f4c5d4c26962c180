{{/* Names. */}}
{{- define "embargo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embargo.fullname" -}}
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

{{- define "embargo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embargo.labels" -}}
helm.sh/chart: {{ include "embargo.chart" . }}
{{ include "embargo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: embargo
{{- end }}

{{- define "embargo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "embargo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "embargo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "embargo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ValidatingWebhookConfiguration (cluster-scoped): --webhook-configurations. */}}
{{- define "embargo.webhookConfigurationName" -}}
{{- include "embargo.fullname" . }}
{{- end }}

{{- define "embargo.webhookServiceName" -}}
{{- printf "%s-webhook" (include "embargo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The serving certificate's Secret: written by the manager (--cert-secret) or cert-manager. */}}
{{- define "embargo.certSecretName" -}}
{{- printf "%s-webhook-tls" (include "embargo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embargo.metricsServiceName" -}}
{{- printf "%s-metrics" (include "embargo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "embargo.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The webhook URL's host, when webhook.url is set. */}}
{{- define "embargo.urlHost" -}}
{{- with .Values.webhook.url }}{{ (urlParse .).hostname }}{{ end }}
{{- end }}

{{/*
Names the serving certificate is valid for, one per line: the Service's DNS names, plus the
webhook.url host.
*/}}
{{- define "embargo.certHosts" -}}
{{- $svc := include "embargo.webhookServiceName" . }}
{{- printf "%s.%s.svc" $svc .Release.Namespace }}
{{ printf "%s.%s.svc.cluster.local" $svc .Release.Namespace }}
{{- with include "embargo.urlHost" . }}
{{ . }}
{{- end }}
{{- end }}

{{/* Namespaces neither the API server nor the manager ever checks. */}}
{{- define "embargo.exemptNamespaces" -}}
{{- concat (list .Release.Namespace "kube-system") .Values.webhook.exemptNamespaces | uniq | toJson }}
{{- end }}

{{/* A Go duration ("1m30s", "500ms") in milliseconds. */}}
{{- define "embargo.durationMillis" -}}
{{- $units := dict "ns" 0.000001 "us" 0.001 "µs" 0.001 "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ns|us|µs|ms|s|m|h)" . -1 }}
{{- $n := regexFind "^[0-9.]+" . | float64 }}
{{- $total = addf $total (mulf $n (get $units (regexReplaceAll "^[0-9.]+" . ""))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Objects of one kind in a file that hack/sync-chart.sh copied from controller-gen's output, as a
JSON list. Args: dict "root" $ "file" path "kind" kind.
*/}}
{{- define "embargo.generated" -}}
{{- $out := list }}
{{- $content := .root.Files.Get .file }}
{{- if not $content }}
{{- fail (printf "%s is missing from the chart: run 'make manifests'" .file) }}
{{- end }}
{{- range regexSplit "(?m)^---\\s*$" $content -1 }}
{{- $obj := fromYaml . }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "%s: %s" $.file $obj.Error) }}
{{- end }}
{{- if eq ($obj.kind | default "") $.kind }}
{{- $out = append $out $obj }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
Rules of the generated ClusterRole or Roles (args: dict "root" $ "kind" "ClusterRole"|"Role"), as
JSON. Fails when a rule lets the manager list or watch Secrets: it reads pull secrets one by one.
*/}}
{{- define "embargo.rbacRules" -}}
{{- $rules := list }}
{{- range include "embargo.generated" (dict "root" .root "file" "generated/role.yaml" "kind" .kind) | fromJsonArray }}
{{- range .rules }}
{{- $rules = append $rules . }}
{{- end }}
{{- end }}
{{- range $rules }}
{{- if and (or (has "secrets" .resources) (has "*" .resources)) (or (has "list" .verbs) (has "watch" .verbs) (has "*" .verbs)) }}
{{- fail (printf "generated/role.yaml grants %v on %v: Embargo must never list or watch Secrets; fix the +kubebuilder:rbac markers" .verbs .resources) }}
{{- end }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "embargo.validate" -}}
{{- $budget := include "embargo.durationMillis" .Values.scan.budget | float64 }}
{{- $timeout := mulf .Values.webhook.timeoutSeconds 1000 }}
{{- if ge $budget $timeout }}
{{- fail (printf "scan.budget (%s) must be shorter than webhook.timeoutSeconds (%vs), or the API server gives up before Embargo answers; lower scan.budget or raise webhook.timeoutSeconds (max 30)" .Values.scan.budget .Values.webhook.timeoutSeconds) }}
{{- end }}
{{- if and .Values.layerCache.persistence.enabled (not .Values.scan.layerCacheDir) }}
{{- fail "layerCache.persistence.enabled=true needs scan.layerCacheDir: the claim is mounted there (e.g. /scratch/layers)" }}
{{- end }}
{{- if and .Values.layerCache.persistence.enabled (not (hasPrefix "/" .Values.scan.layerCacheDir)) }}
{{- fail (printf "scan.layerCacheDir (%q) must be an absolute path to mount layerCache.persistence at" .Values.scan.layerCacheDir) }}
{{- end }}
{{- if and .Values.certManager.enabled (not .Values.manager.enabled) }}
{{- fail "certManager.enabled=true needs manager.enabled=true: the certificate is mounted into the in-cluster manager" }}
{{- end }}
{{- end }}

{{/* The layer cache's PersistentVolumeClaim: the existing one, or the one the chart creates. */}}
{{- define "embargo.layerCacheClaimName" -}}
{{- .Values.layerCache.persistence.existingClaim | default (printf "%s-layer-cache" (include "embargo.fullname" .)) }}
{{- end }}
