"""core/v1 pod types: PodTemplateSpec, PodSpec, Container, volumes and their parts."""

from __future__ import annotations

from .meta import INT_OR_STRING, LABEL_SELECTOR, OBJECT_META, QUANTITY
from .schema import BOOL, INLINE, INT32, INT64, MAP_STR, PTR, REQ, STR, Message, map_of, rep

RESOURCE_LIST = map_of(QUANTITY)

LOCAL_OBJECT_REFERENCE = Message("LocalObjectReference", {1: ("name", STR)})

OBJECT_FIELD_SELECTOR = Message("ObjectFieldSelector", {
    1: ("apiVersion", STR),
    2: ("fieldPath", STR, REQ),
})

RESOURCE_FIELD_SELECTOR = Message("ResourceFieldSelector", {
    1: ("containerName", STR),
    2: ("resource", STR, REQ),
    3: ("divisor", QUANTITY),
})

KEY_SELECTOR = Message("KeySelector", {  # ConfigMapKeySelector and SecretKeySelector
    1: ("", LOCAL_OBJECT_REFERENCE, INLINE),
    2: ("key", STR, REQ),
    3: ("optional", BOOL, PTR),
})

ENV_VAR_SOURCE = Message("EnvVarSource", {
    1: ("fieldRef", OBJECT_FIELD_SELECTOR, PTR),
    2: ("resourceFieldRef", RESOURCE_FIELD_SELECTOR, PTR),
    3: ("configMapKeyRef", KEY_SELECTOR, PTR),
    4: ("secretKeyRef", KEY_SELECTOR, PTR),
})

ENV_VAR = Message("EnvVar", {
    1: ("name", STR, REQ),
    2: ("value", STR),
    3: ("valueFrom", ENV_VAR_SOURCE, PTR),
})

ENV_SOURCE_REF = Message("EnvSourceRef", {  # ConfigMapEnvSource and SecretEnvSource
    1: ("", LOCAL_OBJECT_REFERENCE, INLINE),
    2: ("optional", BOOL, PTR),
})

ENV_FROM_SOURCE = Message("EnvFromSource", {
    1: ("prefix", STR),
    2: ("configMapRef", ENV_SOURCE_REF, PTR),
    3: ("secretRef", ENV_SOURCE_REF, PTR),
})

CONTAINER_PORT = Message("ContainerPort", {
    1: ("name", STR),
    2: ("hostPort", INT32),
    3: ("containerPort", INT32, REQ),
    4: ("protocol", STR),
    5: ("hostIP", STR),
})

RESOURCE_CLAIM = Message("ResourceClaim", {1: ("name", STR, REQ), 2: ("request", STR)})

RESOURCE_REQUIREMENTS = Message("ResourceRequirements", {
    1: ("limits", RESOURCE_LIST),
    2: ("requests", RESOURCE_LIST),
    3: ("claims", rep(RESOURCE_CLAIM)),
})

VOLUME_MOUNT = Message("VolumeMount", {
    1: ("name", STR, REQ),
    2: ("readOnly", BOOL),
    7: ("recursiveReadOnly", STR, PTR),
    3: ("mountPath", STR, REQ),
    4: ("subPath", STR),
    5: ("mountPropagation", STR, PTR),
    6: ("subPathExpr", STR),
})

VOLUME_DEVICE = Message("VolumeDevice", {1: ("name", STR, REQ), 2: ("devicePath", STR, REQ)})

EXEC_ACTION = Message("ExecAction", {1: ("command", rep(STR))})

HTTP_GET_ACTION = Message("HTTPGetAction", {
    1: ("path", STR),
    2: ("port", INT_OR_STRING, REQ),
    3: ("host", STR),
    4: ("scheme", STR),
    5: ("httpHeaders", rep(Message("HTTPHeader", {1: ("name", STR, REQ), 2: ("value", STR, REQ)}))),
})

TCP_SOCKET_ACTION = Message("TCPSocketAction", {
    1: ("port", INT_OR_STRING, REQ),
    2: ("host", STR),
})

GRPC_ACTION = Message("GRPCAction", {1: ("port", INT32, REQ), 2: ("service", STR, PTR)})

PROBE_HANDLER = Message("ProbeHandler", {
    1: ("exec", EXEC_ACTION, PTR),
    2: ("httpGet", HTTP_GET_ACTION, PTR),
    3: ("tcpSocket", TCP_SOCKET_ACTION, PTR),
    4: ("grpc", GRPC_ACTION, PTR),
})

PROBE = Message("Probe", {
    1: ("", PROBE_HANDLER, INLINE),
    2: ("initialDelaySeconds", INT32),
    3: ("timeoutSeconds", INT32),
    4: ("periodSeconds", INT32),
    5: ("successThreshold", INT32),
    6: ("failureThreshold", INT32),
    7: ("terminationGracePeriodSeconds", INT64, PTR),
})

LIFECYCLE_HANDLER = Message("LifecycleHandler", {
    1: ("exec", EXEC_ACTION, PTR),
    2: ("httpGet", HTTP_GET_ACTION, PTR),
    3: ("tcpSocket", TCP_SOCKET_ACTION, PTR),
    4: ("sleep", Message("SleepAction", {1: ("seconds", INT64, REQ)}), PTR),
})

LIFECYCLE = Message("Lifecycle", {
    1: ("postStart", LIFECYCLE_HANDLER, PTR),
    2: ("preStop", LIFECYCLE_HANDLER, PTR),
})

SE_LINUX_OPTIONS = Message("SELinuxOptions", {
    1: ("user", STR), 2: ("role", STR), 3: ("type", STR), 4: ("level", STR),
})

WINDOWS_OPTIONS = Message("WindowsSecurityContextOptions", {
    1: ("gmsaCredentialSpecName", STR, PTR),
    2: ("gmsaCredentialSpec", STR, PTR),
    3: ("runAsUserName", STR, PTR),
    4: ("hostProcess", BOOL, PTR),
})

PROFILE = Message("Profile", {  # SeccompProfile and AppArmorProfile
    1: ("type", STR, REQ),
    2: ("localhostProfile", STR, PTR),
})

SECURITY_CONTEXT = Message("SecurityContext", {
    1: ("capabilities", Message("Capabilities", {1: ("add", rep(STR)), 2: ("drop", rep(STR))}), PTR),
    2: ("privileged", BOOL, PTR),
    3: ("seLinuxOptions", SE_LINUX_OPTIONS, PTR),
    10: ("windowsOptions", WINDOWS_OPTIONS, PTR),
    4: ("runAsUser", INT64, PTR),
    8: ("runAsGroup", INT64, PTR),
    5: ("runAsNonRoot", BOOL, PTR),
    6: ("readOnlyRootFilesystem", BOOL, PTR),
    7: ("allowPrivilegeEscalation", BOOL, PTR),
    9: ("procMount", STR, PTR),
    11: ("seccompProfile", PROFILE, PTR),
    12: ("appArmorProfile", PROFILE, PTR),
})

CONTAINER_RESIZE_POLICY = Message("ContainerResizePolicy", {
    1: ("resourceName", STR, REQ),
    2: ("restartPolicy", STR, REQ),
})

CONTAINER = Message("Container", {
    1: ("name", STR, REQ),
    2: ("image", STR),
    3: ("command", rep(STR)),
    4: ("args", rep(STR)),
    5: ("workingDir", STR),
    6: ("ports", rep(CONTAINER_PORT)),
    19: ("envFrom", rep(ENV_FROM_SOURCE)),
    7: ("env", rep(ENV_VAR)),
    8: ("resources", RESOURCE_REQUIREMENTS),
    23: ("resizePolicy", rep(CONTAINER_RESIZE_POLICY)),
    24: ("restartPolicy", STR, PTR),
    9: ("volumeMounts", rep(VOLUME_MOUNT)),
    21: ("volumeDevices", rep(VOLUME_DEVICE)),
    10: ("livenessProbe", PROBE, PTR),
    11: ("readinessProbe", PROBE, PTR),
    22: ("startupProbe", PROBE, PTR),
    12: ("lifecycle", LIFECYCLE, PTR),
    13: ("terminationMessagePath", STR),
    20: ("terminationMessagePolicy", STR),
    14: ("imagePullPolicy", STR),
    15: ("securityContext", SECURITY_CONTEXT, PTR),
    16: ("stdin", BOOL),
    17: ("stdinOnce", BOOL),
    18: ("tty", BOOL),
})

# The Container fields travel embedded under field 1.
EPHEMERAL_CONTAINER = Message("EphemeralContainer", {
    1: ("", CONTAINER, INLINE),
    2: ("targetContainerName", STR),
})

KEY_TO_PATH = Message("KeyToPath", {1: ("key", STR, REQ), 2: ("path", STR, REQ), 3: ("mode", INT32, PTR)})

DOWNWARD_API_FILE = Message("DownwardAPIVolumeFile", {
    1: ("path", STR, REQ),
    2: ("fieldRef", OBJECT_FIELD_SELECTOR, PTR),
    3: ("resourceFieldRef", RESOURCE_FIELD_SELECTOR, PTR),
    4: ("mode", INT32, PTR),
})

PROJECTION_REF = Message("ProjectionRef", {  # SecretProjection and ConfigMapProjection
    1: ("", LOCAL_OBJECT_REFERENCE, INLINE),
    2: ("items", rep(KEY_TO_PATH)),
    4: ("optional", BOOL, PTR),
})

VOLUME_PROJECTION = Message("VolumeProjection", {
    1: ("secret", PROJECTION_REF, PTR),
    2: ("downwardAPI", Message("DownwardAPIProjection", {1: ("items", rep(DOWNWARD_API_FILE))}), PTR),
    3: ("configMap", PROJECTION_REF, PTR),
    4: ("serviceAccountToken", Message("ServiceAccountTokenProjection", {
        1: ("audience", STR),
        2: ("expirationSeconds", INT64, PTR),
        3: ("path", STR, REQ),
    }), PTR),
    5: ("clusterTrustBundle", Message("ClusterTrustBundleProjection", {
        1: ("name", STR, PTR),
        2: ("signerName", STR, PTR),
        3: ("labelSelector", LABEL_SELECTOR, PTR),
        5: ("optional", BOOL, PTR),
        4: ("path", STR, REQ),
    }), PTR),
})

VOLUME_SOURCE = Message("VolumeSource", {
    1: ("hostPath", Message("HostPathVolumeSource", {1: ("path", STR, REQ), 2: ("type", STR, PTR)}), PTR),
    2: ("emptyDir", Message("EmptyDirVolumeSource", {1: ("medium", STR), 2: ("sizeLimit", QUANTITY, PTR)}), PTR),
    6: ("secret", Message("SecretVolumeSource", {
        1: ("secretName", STR),
        2: ("items", rep(KEY_TO_PATH)),
        3: ("defaultMode", INT32, PTR),
        4: ("optional", BOOL, PTR),
    }), PTR),
    7: ("nfs", Message("NFSVolumeSource", {
        1: ("server", STR, REQ), 2: ("path", STR, REQ), 3: ("readOnly", BOOL),
    }), PTR),
    10: ("persistentVolumeClaim", Message("PersistentVolumeClaimVolumeSource", {
        1: ("claimName", STR, REQ), 2: ("readOnly", BOOL),
    }), PTR),
    16: ("downwardAPI", Message("DownwardAPIVolumeSource", {
        1: ("items", rep(DOWNWARD_API_FILE)),
        2: ("defaultMode", INT32, PTR),
    }), PTR),
    19: ("configMap", Message("ConfigMapVolumeSource", {
        1: ("", LOCAL_OBJECT_REFERENCE, INLINE),
        2: ("items", rep(KEY_TO_PATH)),
        3: ("defaultMode", INT32, PTR),
        4: ("optional", BOOL, PTR),
    }), PTR),
    26: ("projected", Message("ProjectedVolumeSource", {
        1: ("sources", rep(VOLUME_PROJECTION)),
        2: ("defaultMode", INT32, PTR),
    }), PTR),
    28: ("csi", Message("CSIVolumeSource", {
        1: ("driver", STR, REQ),
        2: ("readOnly", BOOL, PTR),
        3: ("fsType", STR, PTR),
        4: ("volumeAttributes", MAP_STR),
        5: ("nodePublishSecretRef", LOCAL_OBJECT_REFERENCE, PTR),
    }), PTR),
    30: ("image", Message("ImageVolumeSource", {1: ("reference", STR), 2: ("pullPolicy", STR)}), PTR),
})

VOLUME = Message("Volume", {
    1: ("name", STR, REQ),
    2: ("", VOLUME_SOURCE, INLINE),
})

NODE_SELECTOR_REQUIREMENT = Message("NodeSelectorRequirement", {
    1: ("key", STR, REQ),
    2: ("operator", STR, REQ),
    3: ("values", rep(STR)),
})

NODE_SELECTOR_TERM = Message("NodeSelectorTerm", {
    1: ("matchExpressions", rep(NODE_SELECTOR_REQUIREMENT)),
    2: ("matchFields", rep(NODE_SELECTOR_REQUIREMENT)),
})

NODE_AFFINITY = Message("NodeAffinity", {
    1: ("requiredDuringSchedulingIgnoredDuringExecution",
        Message("NodeSelector", {1: ("nodeSelectorTerms", rep(NODE_SELECTOR_TERM), REQ)}), PTR),
    2: ("preferredDuringSchedulingIgnoredDuringExecution", rep(Message("PreferredSchedulingTerm", {
        1: ("weight", INT32, REQ),
        2: ("preference", NODE_SELECTOR_TERM, REQ),
    }))),
})

POD_AFFINITY_TERM = Message("PodAffinityTerm", {
    1: ("labelSelector", LABEL_SELECTOR, PTR),
    2: ("namespaces", rep(STR)),
    3: ("topologyKey", STR, REQ),
    4: ("namespaceSelector", LABEL_SELECTOR, PTR),
    5: ("matchLabelKeys", rep(STR)),
    6: ("mismatchLabelKeys", rep(STR)),
})

POD_AFFINITY = Message("PodAffinity", {  # also PodAntiAffinity
    1: ("requiredDuringSchedulingIgnoredDuringExecution", rep(POD_AFFINITY_TERM)),
    2: ("preferredDuringSchedulingIgnoredDuringExecution", rep(Message("WeightedPodAffinityTerm", {
        1: ("weight", INT32, REQ),
        2: ("podAffinityTerm", POD_AFFINITY_TERM, REQ),
    }))),
})

AFFINITY = Message("Affinity", {
    1: ("nodeAffinity", NODE_AFFINITY, PTR),
    2: ("podAffinity", POD_AFFINITY, PTR),
    3: ("podAntiAffinity", POD_AFFINITY, PTR),
})

POD_SECURITY_CONTEXT = Message("PodSecurityContext", {
    1: ("seLinuxOptions", SE_LINUX_OPTIONS, PTR),
    8: ("windowsOptions", WINDOWS_OPTIONS, PTR),
    2: ("runAsUser", INT64, PTR),
    6: ("runAsGroup", INT64, PTR),
    3: ("runAsNonRoot", BOOL, PTR),
    4: ("supplementalGroups", rep(INT64)),
    12: ("supplementalGroupsPolicy", STR, PTR),
    5: ("fsGroup", INT64, PTR),
    7: ("sysctls", rep(Message("Sysctl", {1: ("name", STR, REQ), 2: ("value", STR, REQ)}))),
    9: ("fsGroupChangePolicy", STR, PTR),
    10: ("seccompProfile", PROFILE, PTR),
    11: ("appArmorProfile", PROFILE, PTR),
    13: ("seLinuxChangePolicy", STR, PTR),
})

TOLERATION = Message("Toleration", {
    1: ("key", STR),
    2: ("operator", STR),
    3: ("value", STR),
    4: ("effect", STR),
    5: ("tolerationSeconds", INT64, PTR),
})

TOPOLOGY_SPREAD_CONSTRAINT = Message("TopologySpreadConstraint", {
    1: ("maxSkew", INT32, REQ),
    2: ("topologyKey", STR, REQ),
    3: ("whenUnsatisfiable", STR, REQ),
    4: ("labelSelector", LABEL_SELECTOR, PTR),
    5: ("minDomains", INT32, PTR),
    6: ("nodeAffinityPolicy", STR, PTR),
    7: ("nodeTaintsPolicy", STR, PTR),
    8: ("matchLabelKeys", rep(STR)),
})

POD_DNS_CONFIG = Message("PodDNSConfig", {
    1: ("nameservers", rep(STR)),
    2: ("searches", rep(STR)),
    3: ("options", rep(Message("PodDNSConfigOption", {1: ("name", STR), 2: ("value", STR, PTR)}))),
})

NAME_ONLY = Message("Named", {1: ("name", STR, REQ)})  # PodOS, PodSchedulingGate

POD_SPEC = Message("PodSpec", {
    1: ("volumes", rep(VOLUME)),
    20: ("initContainers", rep(CONTAINER)),
    2: ("containers", rep(CONTAINER), REQ),
    34: ("ephemeralContainers", rep(EPHEMERAL_CONTAINER)),
    3: ("restartPolicy", STR),
    4: ("terminationGracePeriodSeconds", INT64, PTR),
    5: ("activeDeadlineSeconds", INT64, PTR),
    6: ("dnsPolicy", STR),
    7: ("nodeSelector", MAP_STR),
    8: ("serviceAccountName", STR),
    9: ("serviceAccount", STR),
    21: ("automountServiceAccountToken", BOOL, PTR),
    10: ("nodeName", STR),
    11: ("hostNetwork", BOOL),
    12: ("hostPID", BOOL),
    13: ("hostIPC", BOOL),
    27: ("shareProcessNamespace", BOOL, PTR),
    14: ("securityContext", POD_SECURITY_CONTEXT, PTR),
    15: ("imagePullSecrets", rep(LOCAL_OBJECT_REFERENCE)),
    16: ("hostname", STR),
    17: ("subdomain", STR),
    18: ("affinity", AFFINITY, PTR),
    19: ("schedulerName", STR),
    22: ("tolerations", rep(TOLERATION)),
    23: ("hostAliases", rep(Message("HostAlias", {1: ("ip", STR), 2: ("hostnames", rep(STR))}))),
    24: ("priorityClassName", STR),
    25: ("priority", INT32, PTR),
    26: ("dnsConfig", POD_DNS_CONFIG, PTR),
    28: ("readinessGates", rep(Message("PodReadinessGate", {1: ("conditionType", STR, REQ)}))),
    29: ("runtimeClassName", STR, PTR),
    30: ("enableServiceLinks", BOOL, PTR),
    31: ("preemptionPolicy", STR, PTR),
    32: ("overhead", RESOURCE_LIST),
    33: ("topologySpreadConstraints", rep(TOPOLOGY_SPREAD_CONSTRAINT)),
    35: ("setHostnameAsFQDN", BOOL, PTR),
    36: ("os", NAME_ONLY, PTR),
    37: ("hostUsers", BOOL, PTR),
    38: ("schedulingGates", rep(NAME_ONLY)),
    39: ("resourceClaims", rep(Message("PodResourceClaim", {
        1: ("name", STR, REQ),
        3: ("resourceClaimName", STR, PTR),
        4: ("resourceClaimTemplateName", STR, PTR),
    }))),
    40: ("resources", RESOURCE_REQUIREMENTS, PTR),
})

POD_TEMPLATE_SPEC = Message("PodTemplateSpec", {
    1: ("metadata", OBJECT_META),
    2: ("spec", POD_SPEC),
})

# Clients never send pod status; only its shape matters so that "status": {} survives.
POD = Message("Pod", {
    1: ("metadata", OBJECT_META),
    2: ("spec", POD_SPEC),
    3: ("status", Message("PodStatus", {
        1: ("phase", STR), 3: ("message", STR), 4: ("reason", STR), 5: ("hostIP", STR),
        6: ("podIP", STR), 9: ("qosClass", STR),
    })),
})
