"""RBAC, scheduling, policy and networking kinds."""

from __future__ import annotations

from .core import PORT_STATUS
from .meta import DELETE_OPTIONS, INT_OR_STRING, LABEL_SELECTOR, OBJECT_META, TIME
from .schema import BOOL, INLINE, INT32, INT64, PTR, REQ, STR, Message, map_of, rep

POLICY_RULE = Message("PolicyRule", {
    1: ("verbs", rep(STR), REQ),
    2: ("apiGroups", rep(STR)),
    3: ("resources", rep(STR)),
    4: ("resourceNames", rep(STR)),
    5: ("nonResourceURLs", rep(STR)),
})

ROLE = Message("Role", {
    1: ("metadata", OBJECT_META),
    2: ("rules", rep(POLICY_RULE), REQ),
})

CLUSTER_ROLE = Message("ClusterRole", {
    1: ("metadata", OBJECT_META),
    2: ("rules", rep(POLICY_RULE), REQ),
    3: ("aggregationRule", Message("AggregationRule", {
        1: ("clusterRoleSelectors", rep(LABEL_SELECTOR)),
    }), PTR),
})

SUBJECT = Message("Subject", {
    1: ("kind", STR, REQ),
    2: ("apiGroup", STR),
    3: ("name", STR, REQ),
    4: ("namespace", STR),
})

ROLE_BINDING = Message("RoleBinding", {  # also ClusterRoleBinding
    1: ("metadata", OBJECT_META),
    2: ("subjects", rep(SUBJECT)),
    3: ("roleRef", Message("RoleRef", {
        1: ("apiGroup", STR, REQ),
        2: ("kind", STR, REQ),
        3: ("name", STR, REQ),
    })),
})

PRIORITY_CLASS = Message("PriorityClass", {
    1: ("metadata", OBJECT_META),
    2: ("value", INT32, REQ),
    3: ("globalDefault", BOOL),
    4: ("description", STR),
    5: ("preemptionPolicy", STR, PTR),
})

POD_DISRUPTION_BUDGET = Message("PodDisruptionBudget", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("PodDisruptionBudgetSpec", {
        1: ("minAvailable", INT_OR_STRING, PTR),
        2: ("selector", LABEL_SELECTOR, PTR),
        3: ("maxUnavailable", INT_OR_STRING, PTR),
        4: ("unhealthyPodEvictionPolicy", STR, PTR),
    })),
    3: ("status", Message("PodDisruptionBudgetStatus", {
        1: ("observedGeneration", INT64),
        2: ("disruptedPods", map_of(TIME)),
        3: ("disruptionsAllowed", INT32, REQ),
        4: ("currentHealthy", INT32, REQ),
        5: ("desiredHealthy", INT32, REQ),
        6: ("expectedPods", INT32, REQ),
    })),
})

EVICTION = Message("Eviction", {
    1: ("metadata", OBJECT_META),
    2: ("deleteOptions", DELETE_OPTIONS, PTR),
})

INGRESS_BACKEND = Message("IngressBackend", {
    4: ("service", Message("IngressServiceBackend", {
        1: ("name", STR, REQ),
        2: ("port", Message("ServiceBackendPort", {1: ("name", STR), 2: ("number", INT32)})),
    }), PTR),
    3: ("resource", Message("TypedLocalObjectReference", {
        1: ("apiGroup", STR, PTR),
        2: ("kind", STR, REQ),
        3: ("name", STR, REQ),
    }), PTR),
})

HTTP_INGRESS_RULE_VALUE = Message("HTTPIngressRuleValue", {
    1: ("paths", rep(Message("HTTPIngressPath", {
        1: ("path", STR),
        3: ("pathType", STR, PTR),
        2: ("backend", INGRESS_BACKEND, REQ),
    })), REQ),
})

INGRESS = Message("Ingress", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("IngressSpec", {
        4: ("ingressClassName", STR, PTR),
        1: ("defaultBackend", INGRESS_BACKEND, PTR),
        2: ("tls", rep(Message("IngressTLS", {1: ("hosts", rep(STR)), 2: ("secretName", STR)}))),
        3: ("rules", rep(Message("IngressRule", {
            1: ("host", STR),
            2: ("", Message("IngressRuleValue", {1: ("http", HTTP_INGRESS_RULE_VALUE, PTR)}), INLINE),
        }))),
    })),
    3: ("status", Message("IngressStatus", {
        1: ("loadBalancer", Message("IngressLoadBalancerStatus", {
            1: ("ingress", rep(Message("IngressLoadBalancerIngress", {
                1: ("ip", STR),
                2: ("hostname", STR),
                4: ("ports", rep(PORT_STATUS)),
            }))),
        })),
    })),
})
