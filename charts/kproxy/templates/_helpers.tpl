{{/* Names and labels shared by every object. */}}
{{- define "kproxy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kproxy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kproxy.labels" -}}
{{ include "kproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: service-proxy
app.kubernetes.io/part-of: kproxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kproxy.serviceAccountName" -}}
{{- default (include "kproxy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kproxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The port of an "IP:port" / "[IPv6]:port" bind address. */}}
{{- define "kproxy.port" -}}
{{- regexReplaceAll "^.*:" . "" -}}
{{- end -}}

{{/* Where kproxy reads its KubeProxyConfiguration (the ConfigMap's config.conf). */}}
{{- define "kproxy.configDir" -}}/var/lib/kproxy{{- end -}}

{{/* Kernel modes take the host's xtables lock (iptables, and ipvs for its iptables rules) and /lib/modules. */}}
{{- define "kproxy.usesXtablesLock" -}}
{{- if has .Values.proxyMode (list "iptables" "ipvs") }}true{{ end -}}
{{- end -}}
{{/* Modes whose traffic goes through netfilter's connection tracking (kproxy tunes it at start). */}}
{{- define "kproxy.usesConntrack" -}}
{{- if ne .Values.proxyMode "userspace" }}true{{ end -}}
{{- end -}}
{{- define "kproxy.usesKernelModules" -}}
{{- if ne .Values.proxyMode "userspace" }}true{{ end -}}
{{- end -}}

{{/*
The kproxy container's security context: only the capabilities the mode needs (the start-up settings are the
init container's). iptables: NET_ADMIN (netfilter, conntrack)
and NET_RAW (iptables-legacy's raw socket); nftables: NET_ADMIN; userspace: NET_ADMIN (its interface and addresses)
and NET_BIND_SERVICE (Service ports below 1024); ipvs: privileged, because it loads the ip_vs modules and sets
net.ipv4.vs.* sysctls, which a container can only write when privileged. values.securityContext replaces it.
*/}}
{{- define "kproxy.securityContext" -}}
{{- if .Values.securityContext -}}
{{ toYaml .Values.securityContext }}
{{- else if eq .Values.proxyMode "ipvs" -}}
privileged: true
{{- else -}}
{{- $caps := dict "iptables" (list "NET_ADMIN" "NET_RAW") "nftables" (list "NET_ADMIN") "userspace" (list "NET_ADMIN" "NET_BIND_SERVICE") -}}
privileged: false
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
  add: {{ toJson (get $caps .Values.proxyMode) }}
{{- end -}}
{{- end -}}

{{/* The KubeProxyConfiguration: values.config with the mode, the API version and kind set by the chart. */}}
{{- define "kproxy.config" -}}
{{- $fixed := dict "apiVersion" "kubeproxy.config.k8s.io/v1alpha1" "kind" "KubeProxyConfiguration" "mode" .Values.proxyMode -}}
{{- toYaml (merge $fixed (deepCopy .Values.config)) -}}
{{- end -}}
