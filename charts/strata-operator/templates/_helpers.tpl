{{- define "strata-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strata-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "strata-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strata-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strata-operator.labels" -}}
{{ include "strata-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "strata-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "strata-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules for the namespaced objects the operator manages (ClusterRole or Role). */}}
{{- define "strata-operator.namespacedRules" -}}
- apiGroups: ["strata.io"]
  resources: ["logclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["strata.io"]
  resources: ["logclusters/status"]
  verbs: ["patch"]
- apiGroups: ["strata.io"]
  resources: ["logtopics"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["strata.io"]
  resources: ["logtopics/status"]
  verbs: ["patch"]
- apiGroups: ["strata.io"]
  resources: ["logusers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["strata.io"]
  resources: ["logusers/status"]
  verbs: ["patch"]
# For clusters that enforce owner-reference permissions on the finalizers the operator sets.
- apiGroups: ["strata.io"]
  resources: ["logtopics/finalizers", "logusers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "patch", "delete"]
# The cluster CA and certificates of secured clusters, by name: the operator never lists Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Rules for cluster-scoped objects, always in a ClusterRole: reading StorageClasses (whether a
claim may grow), and creating local-storage classes and volumes only with localVolumes.enabled. */}}
{{- define "strata-operator.clusterRules" -}}
{{- if .Values.localVolumes.enabled -}}
- apiGroups: ["storage.k8s.io"]
  resources: ["storageclasses"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["list", "create", "patch", "delete"]
{{- else -}}
- apiGroups: ["storage.k8s.io"]
  resources: ["storageclasses"]
  verbs: ["get"]
{{- end }}
{{- end -}}
