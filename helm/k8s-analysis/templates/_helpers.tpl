{{/*
Chart name, cut to 63 characters: Kubernetes label values and DNS names allow no more.
*/}}
{{- define "k8s-analysis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name. It leaves room for the longest suffix ("-dagster-webserver").
*/}}
{{- define "k8s-analysis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "k8s-analysis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. Call with (dict "context" $ "component" "NAME").
*/}}
{{- define "k8s-analysis.labels" -}}
helm.sh/chart: {{ include "k8s-analysis.chart" .context }}
{{ include "k8s-analysis.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: k8s-analysis
{{- end }}

{{/*
Labels that select one component's pods. Call with (dict "context" $ "component" "NAME").
*/}}
{{- define "k8s-analysis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8s-analysis.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "k8s-analysis.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "k8s-analysis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "k8s-analysis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "k8s-analysis.instanceConfigMapName" -}}
{{- printf "%s-dagster-instance" (include "k8s-analysis.fullname" .) }}
{{- end }}

{{- define "k8s-analysis.envConfigMapName" -}}
{{- printf "%s-env" (include "k8s-analysis.fullname" .) }}
{{- end }}

{{- define "k8s-analysis.userCodeServiceName" -}}
{{- printf "%s-user-code" (include "k8s-analysis.fullname" .) }}
{{- end }}

{{- define "k8s-analysis.predictorName" -}}
{{- printf "%s-predictor" (include "k8s-analysis.fullname" .) }}
{{- end }}

{{- define "k8s-analysis.dataClaimName" -}}
{{- if .Values.data.existingClaim }}
{{- .Values.data.existingClaim }}
{{- else if .Values.data.persistentVolumeClaim.create }}
{{- printf "%s-data" (include "k8s-analysis.fullname" .) }}
{{- else }}
{{- fail "no data volume: set data.existingClaim to an existing PersistentVolumeClaim, or data.persistentVolumeClaim.create to true" }}
{{- end }}
{{- end }}

{{/*
Names of the Secrets loaded whole into the environment with envFrom: only the storage
credentials, when set. The GitHub and PostgreSQL Secrets are read key by key instead.
*/}}
{{- define "k8s-analysis.envSecretNames" -}}
{{- if .Values.storage.credentialsSecret }}
{{- list .Values.storage.credentialsSecret | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}

{{- define "k8s-analysis.dagsterHome" -}}
/opt/dagster/dagster_home
{{- end }}

{{/*
envFrom of the pipeline pods, the predictor and the bot.
*/}}
{{- define "k8s-analysis.envFrom" -}}
- configMapRef:
    name: {{ include "k8s-analysis.envConfigMapName" . }}
{{- range (include "k8s-analysis.envSecretNames" . | fromJsonArray) }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "k8s-analysis.pgPasswordEnv" -}}
- name: DAGSTER_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.passwordSecret.name }}
      key: {{ .Values.postgresql.passwordSecret.key }}
{{- end }}

{{/*
GITHUB_TOKEN for the pipeline: optional, so that a run without the Secret works from a
recorded export.
*/}}
{{- define "k8s-analysis.githubTokenEnv" -}}
- name: GITHUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.github.tokenSecret.name }}
      key: {{ .Values.github.tokenSecret.key }}
      optional: true
{{- end }}

{{/*
Environment of the webserver, daemon and user-code containers. Call with
(dict "context" $ "githubToken" BOOL).
*/}}
{{- define "k8s-analysis.dagsterEnv" -}}
- name: DAGSTER_HOME
  value: {{ include "k8s-analysis.dagsterHome" .context }}
{{ include "k8s-analysis.pgPasswordEnv" .context }}
{{- if .githubToken }}
{{ include "k8s-analysis.githubTokenEnv" .context }}
{{- end }}
{{- end }}

{{/*
Volumes of the Dagster pods: the data volume, the instance ConfigMap, and an emptyDir as
DAGSTER_HOME so that Dagster can write there whatever the image's file permissions.
*/}}
{{- define "k8s-analysis.dagsterVolumes" -}}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "k8s-analysis.dataClaimName" . }}
- name: dagster-instance
  configMap:
    name: {{ include "k8s-analysis.instanceConfigMapName" . }}
- name: dagster-home
  emptyDir: {}
{{- end }}

{{- define "k8s-analysis.dagsterVolumeMounts" -}}
- name: data
  mountPath: {{ .Values.data.mountPath }}
- name: dagster-home
  mountPath: {{ include "k8s-analysis.dagsterHome" . }}
- name: dagster-instance
  mountPath: {{ include "k8s-analysis.dagsterHome" . }}/dagster.yaml
  subPath: dagster.yaml
- name: dagster-instance
  mountPath: {{ include "k8s-analysis.dagsterHome" . }}/workspace.yaml
  subPath: workspace.yaml
{{- end }}

{{/*
Pod-level settings every pod shares: service account, image pull Secrets and security context.
Call with (dict "context" $ "serviceAccount" BOOL).
*/}}
{{- define "k8s-analysis.podSpecCommon" -}}
{{- if .serviceAccount -}}
serviceAccountName: {{ include "k8s-analysis.serviceAccountName" .context }}
{{- else -}}
automountServiceAccountToken: false
{{- end }}
{{- with .context.Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .context.Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Checksum of the ConfigMaps, so that pods restart when their configuration changes.
*/}}
{{- define "k8s-analysis.configChecksum" -}}
checksum/config: {{ print (include (print $.Template.BasePath "/configmap-env.yaml") .) (include (print $.Template.BasePath "/configmap-dagster-instance.yaml") .) | sha256sum }}
{{- end }}
