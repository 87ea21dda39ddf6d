import yaml

from sampan.api.defaults import apply_defaults

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {port: 80}}
        env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        volumeMounts: [{name: cfg, mountPath: /cfg}]
      - {name: side, image: "busybox:1.36"}
      volumes:
      - {name: cfg, configMap: {name: cfg}}
      - {name: scratch}
      - {name: host, hostPath: {path: /tmp}}
"""


def load(text: str) -> dict:
    return yaml.safe_load(text)


def test_deployment_defaults_match_upstream():
    d = load(DEPLOYMENT)
    apply_defaults(d, "apps", "v1", "Deployment")
    spec = d["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["schedulerName"] == "default-scheduler" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {}
    assert "enableServiceLinks" not in pod  # only Pods get it
    nginx, side = pod["containers"]
    assert nginx["imagePullPolicy"] == "Always" and side["imagePullPolicy"] == "IfNotPresent"
    assert nginx["terminationMessagePath"] == "/dev/termination-log"
    assert nginx["terminationMessagePolicy"] == "File"
    assert nginx["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert nginx["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                       "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert nginx["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    cfg, scratch, host = pod["volumes"]
    assert cfg["configMap"]["defaultMode"] == 420
    assert scratch == {"name": "scratch", "emptyDir": {}}
    assert host["hostPath"] == {"path": "/tmp", "type": ""}


def test_defaults_are_idempotent_and_keep_user_values():
    d = load(DEPLOYMENT)
    d["spec"]["strategy"] = {"type": "Recreate"}
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    apply_defaults(d, "apps", "v1", "Deployment")
    once = yaml.safe_dump(d)
    apply_defaults(d, "apps", "v1", "Deployment")
    assert yaml.safe_dump(d) == once
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    assert d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_image_pull_policy_by_tag():
    cases = {"nginx": "Always", "nginx:latest": "Always", "nginx:1.27": "IfNotPresent",
             "localhost:5000/app": "Always", "localhost:5000/app:v1": "IfNotPresent",
             "nginx@sha256:" + "a" * 64: "IfNotPresent"}
    for image, policy in cases.items():
        pod = {"spec": {"containers": [{"name": "c", "image": image}]}}
        apply_defaults(pod, "", "v1", "Pod")
        assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy, image


def test_pod_only_defaults():
    pod = load("""
spec:
  serviceAccount: builder
  containers:
  - name: c
    image: x:1
    resources: {limits: {cpu: "1", memory: 1Gi}, requests: {cpu: 500m}}
""")
    apply_defaults(pod, "", "v1", "Pod")
    spec = pod["spec"]
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == "builder"
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_service_defaults():
    svc = load("""
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}, {port: 443, targetPort: https, protocol: TCP}]
""")
    apply_defaults(svc, "", "v1", "Service")
    spec = svc["spec"]
    assert spec["sessionAffinity"] == "None" and spec["externalTrafficPolicy"] == "Cluster"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["ports"][1]["targetPort"] == "https"
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["ipFamilies"] == ["IPv4"]
    ext = {"spec": {"type": "ExternalName", "externalName": "example.com"}}
    apply_defaults(ext, "", "v1", "Service")
    assert "internalTrafficPolicy" not in ext["spec"] and "ipFamilyPolicy" not in ext["spec"]


def test_other_core_kinds():
    secret: dict = {"data": {}}
    apply_defaults(secret, "", "v1", "Secret")
    assert secret["type"] == "Opaque"
    ns = {"metadata": {"name": "team"}}
    apply_defaults(ns, "", "v1", "Namespace")
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"]["phase"] == "Active"
    pvc = {"spec": {"accessModes": ["ReadWriteOnce"]}}
    apply_defaults(pvc, "", "v1", "PersistentVolumeClaim")
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"]["phase"] == "Pending"


def test_workload_defaults():
    sts = load("""
spec:
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: "pg:16"}]}}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce]}}]
""")
    apply_defaults(sts, "apps", "v1", "StatefulSet")
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    ds: dict = {"spec": {"template": {"spec": {"containers": []}}}}
    apply_defaults(ds, "apps", "v1", "DaemonSet")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    job = {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}
    apply_defaults(job, "batch", "v1", "Job")
    s = job["spec"]
    assert (s["completions"], s["parallelism"], s["backoffLimit"]) == (1, 1, 6)
    assert s["completionMode"] == "NonIndexed" and s["suspend"] is False and s["manualSelector"] is False
    assert s["podReplacementPolicy"] == "TerminatingOrFailed"
    wide = {"spec": {"parallelism": 5, "template": {}}}
    apply_defaults(wide, "batch", "v1", "Job")
    assert "completions" not in wide["spec"]
    cron = {"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}
    apply_defaults(cron, "batch", "v1", "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Allow" and cron["spec"]["successfulJobsHistoryLimit"] == 3
    assert cron["spec"]["failedJobsHistoryLimit"] == 1 and cron["spec"]["suspend"] is False
    assert "backoffLimit" not in cron["spec"]["jobTemplate"]["spec"]
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_small_groups():
    np_ = {"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}
    apply_defaults(np_, "networking.k8s.io", "v1", "NetworkPolicy")
    assert np_["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np_["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    sc: dict = {"provisioner": "x"}
    apply_defaults(sc, "storage.k8s.io", "v1", "StorageClass")
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"
    pc: dict = {"value": 10}
    apply_defaults(pc, "scheduling.k8s.io", "v1", "PriorityClass")
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"
    rb = {"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"},
                                                               {"kind": "ServiceAccount", "name": "s"}]}
    apply_defaults(rb, "rbac.authorization.k8s.io", "v1", "RoleBinding")
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io" and "apiGroup" not in rb["subjects"][1]
    unknown = {"spec": {}}
    apply_defaults(unknown, "example.com", "v1", "Thing")
    assert unknown == {"spec": {}}
