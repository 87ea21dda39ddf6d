"""core/v1 kinds that `kubectl create` sends, other than pods."""

from __future__ import annotations

from .meta import INT_OR_STRING, OBJECT_META
from .pod import LOCAL_OBJECT_REFERENCE, RESOURCE_LIST
from .schema import BOOL, BYTES, INT32, MAP_STR, PTR, REQ, STR, Message, map_of, rep

OBJECT_REFERENCE = Message("ObjectReference", {
    1: ("kind", STR),
    2: ("namespace", STR),
    3: ("name", STR),
    4: ("uid", STR),
    5: ("apiVersion", STR),
    6: ("resourceVersion", STR),
    7: ("fieldPath", STR),
})

NAMESPACE = Message("Namespace", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("NamespaceSpec", {1: ("finalizers", rep(STR))})),
    3: ("status", Message("NamespaceStatus", {1: ("phase", STR)})),
})

CONFIG_MAP = Message("ConfigMap", {
    1: ("metadata", OBJECT_META),
    4: ("immutable", BOOL, PTR),
    2: ("data", MAP_STR),
    3: ("binaryData", map_of(BYTES)),
})

SECRET = Message("Secret", {
    1: ("metadata", OBJECT_META),
    5: ("immutable", BOOL, PTR),
    2: ("data", map_of(BYTES)),
    4: ("stringData", MAP_STR),
    3: ("type", STR),
})

SERVICE_ACCOUNT = Message("ServiceAccount", {
    1: ("metadata", OBJECT_META),
    2: ("secrets", rep(OBJECT_REFERENCE)),
    3: ("imagePullSecrets", rep(LOCAL_OBJECT_REFERENCE)),
    4: ("automountServiceAccountToken", BOOL, PTR),
})

SERVICE_PORT = Message("ServicePort", {
    1: ("name", STR),
    2: ("protocol", STR),
    6: ("appProtocol", STR, PTR),
    3: ("port", INT32, REQ),
    4: ("targetPort", INT_OR_STRING),
    5: ("nodePort", INT32),
})

SERVICE_SPEC = Message("ServiceSpec", {
    1: ("ports", rep(SERVICE_PORT)),
    2: ("selector", MAP_STR),
    3: ("clusterIP", STR),
    18: ("clusterIPs", rep(STR)),
    4: ("type", STR),
    5: ("externalIPs", rep(STR)),
    7: ("sessionAffinity", STR),
    8: ("loadBalancerIP", STR),
    9: ("loadBalancerSourceRanges", rep(STR)),
    10: ("externalName", STR),
    11: ("externalTrafficPolicy", STR),
    12: ("healthCheckNodePort", INT32),
    13: ("publishNotReadyAddresses", BOOL),
    14: ("sessionAffinityConfig", Message("SessionAffinityConfig", {
        1: ("clientIP", Message("ClientIPConfig", {1: ("timeoutSeconds", INT32, PTR)}), PTR),
    }), PTR),
    19: ("ipFamilies", rep(STR)),
    17: ("ipFamilyPolicy", STR, PTR),
    20: ("allocateLoadBalancerNodePorts", BOOL, PTR),
    21: ("loadBalancerClass", STR, PTR),
    22: ("internalTrafficPolicy", STR, PTR),
    23: ("trafficDistribution", STR, PTR),
})

PORT_STATUS = Message("PortStatus", {1: ("port", INT32, REQ), 2: ("protocol", STR, REQ), 3: ("error", STR, PTR)})

LOAD_BALANCER_STATUS = Message("LoadBalancerStatus", {
    1: ("ingress", rep(Message("LoadBalancerIngress", {
        1: ("ip", STR),
        2: ("hostname", STR),
        3: ("ipMode", STR, PTR),
        4: ("ports", rep(PORT_STATUS)),
    }))),
})

SERVICE = Message("Service", {
    1: ("metadata", OBJECT_META),
    2: ("spec", SERVICE_SPEC),
    3: ("status", Message("ServiceStatus", {1: ("loadBalancer", LOAD_BALANCER_STATUS)})),
})

RESOURCE_QUOTA = Message("ResourceQuota", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("ResourceQuotaSpec", {
        1: ("hard", RESOURCE_LIST),
        2: ("scopes", rep(STR)),
        3: ("scopeSelector", Message("ScopeSelector", {
            1: ("matchExpressions", rep(Message("ScopedResourceSelectorRequirement", {
                1: ("scopeName", STR, REQ),
                2: ("operator", STR, REQ),
                3: ("values", rep(STR)),
            }))),
        }), PTR),
    })),
    3: ("status", Message("ResourceQuotaStatus", {1: ("hard", RESOURCE_LIST), 2: ("used", RESOURCE_LIST)})),
})
