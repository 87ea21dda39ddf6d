"""apps/v1 and batch/v1 kinds."""

from __future__ import annotations

from .meta import INT_OR_STRING, LABEL_SELECTOR, OBJECT_META, TIME
from .pod import POD_TEMPLATE_SPEC
from .schema import BOOL, INT32, INT64, PTR, REQ, STR, Message, rep

DEPLOYMENT_SPEC = Message("DeploymentSpec", {
    1: ("replicas", INT32, PTR),
    2: ("selector", LABEL_SELECTOR, PTR),
    3: ("template", POD_TEMPLATE_SPEC),
    4: ("strategy", Message("DeploymentStrategy", {
        1: ("type", STR),
        2: ("rollingUpdate", Message("RollingUpdateDeployment", {
            1: ("maxUnavailable", INT_OR_STRING, PTR),
            2: ("maxSurge", INT_OR_STRING, PTR),
        }), PTR),
    })),
    5: ("minReadySeconds", INT32),
    6: ("revisionHistoryLimit", INT32, PTR),
    7: ("paused", BOOL),
    9: ("progressDeadlineSeconds", INT32, PTR),
})

DEPLOYMENT_STATUS = Message("DeploymentStatus", {
    1: ("observedGeneration", INT64),
    2: ("replicas", INT32),
    3: ("updatedReplicas", INT32),
    7: ("readyReplicas", INT32),
    4: ("availableReplicas", INT32),
    5: ("unavailableReplicas", INT32),
    9: ("terminatingReplicas", INT32, PTR),
    8: ("collisionCount", INT32, PTR),
})

DEPLOYMENT = Message("Deployment", {
    1: ("metadata", OBJECT_META),
    2: ("spec", DEPLOYMENT_SPEC),
    3: ("status", DEPLOYMENT_STATUS),
})

POD_FAILURE_POLICY = Message("PodFailurePolicy", {
    1: ("rules", rep(Message("PodFailurePolicyRule", {
        1: ("action", STR, REQ),
        2: ("onExitCodes", Message("PodFailurePolicyOnExitCodesRequirement", {
            1: ("containerName", STR, PTR),
            2: ("operator", STR, REQ),
            3: ("values", rep(INT32), REQ),
        }), PTR),
        3: ("onPodConditions", rep(Message("PodFailurePolicyOnPodConditionsPattern", {
            1: ("type", STR, REQ),
            2: ("status", STR, REQ),
        }))),
    })), REQ),
})

SUCCESS_POLICY = Message("SuccessPolicy", {
    1: ("rules", rep(Message("SuccessPolicyRule", {
        1: ("succeededIndexes", STR, PTR),
        2: ("succeededCount", INT32, PTR),
    })), REQ),
})

JOB_SPEC = Message("JobSpec", {
    1: ("parallelism", INT32, PTR),
    2: ("completions", INT32, PTR),
    3: ("activeDeadlineSeconds", INT64, PTR),
    11: ("podFailurePolicy", POD_FAILURE_POLICY, PTR),
    16: ("successPolicy", SUCCESS_POLICY, PTR),
    7: ("backoffLimit", INT32, PTR),
    12: ("backoffLimitPerIndex", INT32, PTR),
    13: ("maxFailedIndexes", INT32, PTR),
    4: ("selector", LABEL_SELECTOR, PTR),
    5: ("manualSelector", BOOL, PTR),
    6: ("template", POD_TEMPLATE_SPEC),
    8: ("ttlSecondsAfterFinished", INT32, PTR),
    9: ("completionMode", STR, PTR),
    10: ("suspend", BOOL, PTR),
    14: ("podReplacementPolicy", STR, PTR),
    15: ("managedBy", STR, PTR),
})

JOB_STATUS = Message("JobStatus", {
    2: ("startTime", TIME, PTR),
    3: ("completionTime", TIME, PTR),
    4: ("active", INT32),
    5: ("succeeded", INT32),
    6: ("failed", INT32),
    11: ("terminating", INT32, PTR),
    7: ("completedIndexes", STR),
    10: ("failedIndexes", STR, PTR),
    9: ("ready", INT32, PTR),
})

JOB = Message("Job", {
    1: ("metadata", OBJECT_META),
    2: ("spec", JOB_SPEC),
    3: ("status", JOB_STATUS),
})

CRON_JOB = Message("CronJob", {
    1: ("metadata", OBJECT_META),
    2: ("spec", Message("CronJobSpec", {
        1: ("schedule", STR, REQ),
        8: ("timeZone", STR, PTR),
        2: ("startingDeadlineSeconds", INT64, PTR),
        3: ("concurrencyPolicy", STR),
        4: ("suspend", BOOL, PTR),
        5: ("jobTemplate", Message("JobTemplateSpec", {
            1: ("metadata", OBJECT_META),
            2: ("spec", JOB_SPEC),
        })),
        6: ("successfulJobsHistoryLimit", INT32, PTR),
        7: ("failedJobsHistoryLimit", INT32, PTR),
    })),
    3: ("status", Message("CronJobStatus", {
        4: ("lastScheduleTime", TIME, PTR),
        5: ("lastSuccessfulTime", TIME, PTR),
    })),
})
