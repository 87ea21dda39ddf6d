"""authentication.k8s.io and authorization.k8s.io kinds (tokens and access reviews)."""

from __future__ import annotations

from .meta import EXTRA_VALUE, LABEL_SELECTOR_REQUIREMENT, OBJECT_META, TIME
from .schema import BOOL, INT64, PTR, REQ, STR, Message, map_of, rep

USER_INFO = Message("UserInfo", {
    1: ("username", STR),
    2: ("uid", STR),
    3: ("groups", rep(STR)),
    4: ("extra", map_of(EXTRA_VALUE)),
})

TOKEN_REQUEST = Message("TokenRequest", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("TokenRequestSpec", {
        1: ("audiences", rep(STR), REQ),
        4: ("expirationSeconds", INT64, PTR),
        3: ("boundObjectRef", Message("BoundObjectReference", {
            1: ("kind", STR),
            2: ("apiVersion", STR),
            3: ("name", STR),
            4: ("uid", STR),
        }), PTR),
    })),
    3: ("status", Message("TokenRequestStatus", {
        1: ("token", STR, REQ),
        2: ("expirationTimestamp", TIME, REQ),
    })),
})

SELF_SUBJECT_REVIEW = Message("SelfSubjectReview", {
    1: ("metadata", OBJECT_META),
    2: ("status", Message("SelfSubjectReviewStatus", {1: ("userInfo", USER_INFO)})),
})

RESOURCE_ATTRIBUTES = Message("ResourceAttributes", {
    1: ("namespace", STR),
    2: ("verb", STR),
    3: ("group", STR),
    4: ("version", STR),
    5: ("resource", STR),
    6: ("subresource", STR),
    7: ("name", STR),
    8: ("fieldSelector", Message("FieldSelectorAttributes", {
        1: ("rawSelector", STR),
        2: ("requirements", rep(LABEL_SELECTOR_REQUIREMENT)),  # same shape as FieldSelectorRequirement
    }), PTR),
    9: ("labelSelector", Message("LabelSelectorAttributes", {
        1: ("rawSelector", STR),
        2: ("requirements", rep(LABEL_SELECTOR_REQUIREMENT)),
    }), PTR),
})

NON_RESOURCE_ATTRIBUTES = Message("NonResourceAttributes", {1: ("path", STR), 2: ("verb", STR)})

ACCESS_REVIEW_STATUS = Message("SubjectAccessReviewStatus", {
    1: ("allowed", BOOL, REQ),
    4: ("denied", BOOL),
    2: ("reason", STR),
    3: ("evaluationError", STR),
})

SELF_SUBJECT_ACCESS_REVIEW = Message("SelfSubjectAccessReview", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("SelfSubjectAccessReviewSpec", {
        1: ("resourceAttributes", RESOURCE_ATTRIBUTES, PTR),
        2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES, PTR),
    })),
    3: ("status", ACCESS_REVIEW_STATUS),
})

SUBJECT_ACCESS_REVIEW = Message("SubjectAccessReview", {  # also LocalSubjectAccessReview
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("SubjectAccessReviewSpec", {
        1: ("resourceAttributes", RESOURCE_ATTRIBUTES, PTR),
        2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES, PTR),
        3: ("user", STR),
        4: ("groups", rep(STR)),
        5: ("extra", map_of(EXTRA_VALUE)),
        6: ("uid", STR),
    })),
    3: ("status", ACCESS_REVIEW_STATUS),
})

TOKEN_REVIEW = Message("TokenReview", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("TokenReviewSpec", {1: ("token", STR), 2: ("audiences", rep(STR))})),
    3: ("status", Message("TokenReviewStatus", {
        1: ("authenticated", BOOL),
        2: ("user", USER_INFO),
        4: ("audiences", rep(STR)),
        3: ("error", STR),
    })),
})

SELF_SUBJECT_RULES_REVIEW = Message("SelfSubjectRulesReview", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("SelfSubjectRulesReviewSpec", {1: ("namespace", STR)})),
    3: ("status", Message("SubjectRulesReviewStatus", {
        1: ("resourceRules", rep(Message("ResourceRule", {
            1: ("verbs", rep(STR), REQ),
            2: ("apiGroups", rep(STR)),
            3: ("resources", rep(STR)),
            4: ("resourceNames", rep(STR)),
        })), REQ),
        2: ("nonResourceRules", rep(Message("NonResourceRule", {
            1: ("verbs", rep(STR), REQ),
            2: ("nonResourceURLs", rep(STR)),
        })), REQ),
        3: ("incomplete", BOOL, REQ),
        4: ("evaluationError", STR),
    })),
})
