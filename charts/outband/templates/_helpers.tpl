{{/* Names and labels shared by every template. */}}

{{- define "outband.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outband.fullname" -}}
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

{{- define "outband.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "outband.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: outband
{{- end }}

{{- define "outband.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outband.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "outband.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outband.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The webhook's objects. */}}
{{- define "outband.webhookService" -}}{{ include "outband.fullname" . }}-webhook{{- end }}
{{- define "outband.webhookConfiguration" -}}{{ include "outband.fullname" . }}-sidecar-injector{{- end }}
{{- define "outband.webhookSecret" -}}{{ include "outband.fullname" . }}-webhook-tls{{- end }}
{{- define "outband.webhookCertificate" -}}{{ include "outband.fullname" . }}-webhook{{- end }}

{{- define "outband.operatorImage" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- define "outband.sidecarImage" -}}
{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag | default .Chart.AppVersion }}
{{- end }}
