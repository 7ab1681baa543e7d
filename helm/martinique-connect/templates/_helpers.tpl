{{/* Names, labels and the shared pieces of the pod specs. */}}

{{- define "martinique-connect.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "martinique-connect.fullname" -}}
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

{{- define "martinique-connect.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "martinique-connect.selectorLabels" -}}
app.kubernetes.io/name: {{ include "martinique-connect.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "martinique-connect.labels" -}}
helm.sh/chart: {{ include "martinique-connect.chart" . }}
{{ include "martinique-connect.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: martinique-connect
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>. Call with (list $ "idp"). */}}
{{- define "martinique-connect.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "martinique-connect.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "martinique-connect.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "martinique-connect.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "martinique-connect.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The non-secret settings: the ConfigMap's data, and the migration Job's env (the Job
     runs before the ConfigMap exists on a first install). */}}
{{- define "martinique-connect.config" -}}
MC_ISSUER: {{ .Values.issuer | quote }}
MC_ENVIRONMENT: {{ .Values.environment | quote }}
MC_LOG_FORMAT: {{ .Values.logFormat | quote }}
MC_TRUSTED_PROXIES: {{ .Values.trustedProxies | quote }}
MC_HOST: "0.0.0.0"
MC_PORT: {{ .Values.containerPort | quote }}
MC_DATA_DIR: {{ .Values.dataDir.path | quote }}
MC_BLOB_URL: {{ .Values.blob.url | quote }}
MC_S3_ENDPOINT: {{ .Values.blob.s3Endpoint | quote }}
MC_S3_REGION: {{ .Values.blob.s3Region | quote }}
{{- if or .Values.sedaSchemas.existingConfigMap .Values.sedaSchemas.existingClaim }}
MC_SEDA_SCHEMA_DIR: {{ .Values.sedaSchemas.mountPath | quote }}
{{- end }}
{{- range $key, $value := .Values.extraConfig }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The secret settings, each read from an existing Secret. */}}
{{- define "martinique-connect.secretEnv" -}}
- name: MC_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.secretKey.existingSecret }}
      key: {{ .Values.secrets.secretKey.key }}
- name: MC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.database.existingSecret }}
      key: {{ .Values.secrets.database.key }}
- name: MC_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.redis.existingSecret }}
      key: {{ .Values.secrets.redis.key }}
- name: MC_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.s3.existingSecret }}
      key: {{ .Values.secrets.s3.accessKeyIdKey }}
- name: MC_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.s3.existingSecret }}
      key: {{ .Values.secrets.s3.secretAccessKeyKey }}
{{- if .Values.secrets.metrics.existingSecret }}
- name: MC_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.metrics.existingSecret }}
      key: {{ .Values.secrets.metrics.key }}
{{- end }}
{{- if .Values.secrets.smtp.existingSecret }}
- name: MC_SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.smtp.existingSecret }}
      key: {{ .Values.secrets.smtp.key }}
{{- end }}
{{- end }}

{{/* Volumes every pod mounts: the scratch data dir, /tmp, and the SEDA schemas. */}}
{{- define "martinique-connect.volumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataDir.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.sedaSchemas.existingConfigMap }}
- name: seda
  configMap:
    name: {{ .Values.sedaSchemas.existingConfigMap }}
{{- else if .Values.sedaSchemas.existingClaim }}
- name: seda
  persistentVolumeClaim:
    claimName: {{ .Values.sedaSchemas.existingClaim }}
    readOnly: true
{{- end }}
{{- end }}

{{- define "martinique-connect.volumeMounts" -}}
- name: data
  mountPath: {{ .Values.dataDir.path }}
- name: tmp
  mountPath: /tmp
{{- if or .Values.sedaSchemas.existingConfigMap .Values.sedaSchemas.existingClaim }}
- name: seda
  mountPath: {{ .Values.sedaSchemas.mountPath }}
  readOnly: true
{{- end }}
{{- end }}
