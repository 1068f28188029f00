"""Renders helm/tally with Helm itself (the Helm v4 Go SDK through
helm-python-sdk, no helm binary) and checks the objects Kubernetes would get.

Run: python -m pytest tests/helm (after `pip install -r tests/requirements.txt`).
"""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tally"
PRODUCTION = CHART / "ci" / "production-values.yaml"
CITUS = CHART / "ci" / "citus-values.yaml"
RELEASE, NAMESPACE = "tally", "finance"


def render(values: dict | None = None, *, upgrade: bool = False) -> list[dict]:
    """Every object the chart renders, NOTES.txt aside."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            values or {},
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def production_values() -> dict:
    return yaml.safe_load(PRODUCTION.read_text())


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def container(objects: list[dict], kind: str, name: str) -> dict:
    pod = by_kind(objects, kind)[name]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return only


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return render()


@pytest.fixture(scope="module")
def production_objects() -> list[dict]:
    return render(production_values())


@pytest.mark.parametrize("values_file", [None, PRODUCTION, CITUS])
def test_lint_is_clean(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; 1 (info, e.g. "icon is recommended") is fine.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_default_kinds(default_objects: list[dict]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in default_objects)
    assert kinds == [
        ("ConfigMap", "tally-config"),
        ("Deployment", "tally-api"),
        ("Deployment", "tally-worker"),
        ("Job", "tally-migrate"),
        ("PodDisruptionBudget", "tally-api"),
        ("PodDisruptionBudget", "tally-worker"),
        ("Secret", "tally-database"),
        ("Service", "tally"),
        ("Service", "tally-worker"),
        ("ServiceAccount", "tally"),
    ]
    # Every object is labelled the way well-kept charts label them.
    for o in default_objects:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "tally"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert o["metadata"]["namespace"] == NAMESPACE


def test_production_kinds(production_objects: list[dict]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in production_objects)
    assert kinds == [
        ("ConfigMap", "tally-config"),
        ("Deployment", "tally-api"),
        ("Deployment", "tally-worker"),
        ("HorizontalPodAutoscaler", "tally-api"),
        ("HorizontalPodAutoscaler", "tally-worker"),
        ("Job", "tally-migrate"),
        ("PodDisruptionBudget", "tally-api"),
        ("PodDisruptionBudget", "tally-worker"),
        ("Service", "tally"),
        ("Service", "tally-worker"),
        ("ServiceAccount", "tally"),
        ("ServiceMonitor", "tally"),
    ]


@pytest.mark.parametrize("profile", ["default", "production"])
def test_every_pod_is_locked_down(profile: str, request: pytest.FixtureRequest) -> None:
    objects = request.getfixturevalue(f"{profile}_objects")
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 3
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] != 0
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert sc.get("privileged", False) is False
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"
            assert c["resources"]["requests"]


@pytest.mark.parametrize("profile", ["default", "production"])
def test_deployments_get_native_grpc_probes(profile: str, request: pytest.FixtureRequest) -> None:
    objects = request.getfixturevalue(f"{profile}_objects")
    for name in ("tally-api", "tally-worker"):
        c = container(objects, "Deployment", name)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"grpc": 50051, "metrics": 9464}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            # The kubelet calls grpc.health.v1.Health/Check itself: no exec, no sidecar.
            # Liveness asks the process-only service, so a database outage makes
            # pods unready without restarting them; readiness asks the whole server.
            want = {"port": 50051}
            if probe != "readinessProbe":
                want["service"] = "tally.liveness"
            assert c[probe]["grpc"] == want, (name, probe)
            assert "exec" not in c[probe] and "httpGet" not in c[probe]
        assert env_of(c)["TALLY_GRPC_ADDR"]["value"] == "0.0.0.0:50051"


def test_api_and_worker_commands_and_env(production_objects: list[dict]) -> None:
    api = container(production_objects, "Deployment", "tally-api")
    worker = container(production_objects, "Deployment", "tally-worker")
    # The image's ENTRYPOINT is the binary; the chart only picks the subcommand.
    assert "command" not in api and "command" not in worker
    assert api["args"] == ["serve"]
    assert worker["args"] == ["worker"]
    assert api["image"] == worker["image"] == "registry.example.com/finance/tally:0.1.0"

    api_env, worker_env = env_of(api), env_of(worker)
    # The servers leave cash application to the worker Deployment.
    assert api_env["TALLY_IN_PROCESS_WORKER"]["value"] == "false"
    assert "TALLY_WORKER_CONCURRENCY" not in api_env
    assert worker_env["TALLY_WORKER_CONCURRENCY"]["value"] == "8"
    assert "TALLY_IN_PROCESS_WORKER" not in worker_env

    for env in (api_env, worker_env):
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "tally-database", "key": "url"}
        assert "value" not in env["DATABASE_URL"]
        assert env["TALLY_DB_POOL_SIZE"]["value"] == "10"
        assert env["TALLY_METRICS_ADDR"]["value"] == "0.0.0.0:9464"
        assert env["TALLY_LOG_FORMAT"]["value"] == "json"
        assert env["TALLY_SHUTDOWN_GRACE_SECS"]["value"] == "25"
        assert env["TALLY_CONFIG"]["value"] == "/etc/tally/tally.toml"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
        assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.2"
        assert "deployment.environment=production" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        assert env["TZ"]["value"] == "UTC"  # extraEnv
    assert api_env["OTEL_SERVICE_NAME"]["value"] == "tally-api"
    assert worker_env["OTEL_SERVICE_NAME"]["value"] == "tally-worker"


def test_worker_disabled_turns_the_in_process_worker_on() -> None:
    objects = render({"worker": {"enabled": False}})
    assert "tally-worker" not in by_kind(objects, "Deployment")
    assert "tally-worker" not in by_kind(objects, "PodDisruptionBudget")
    api = container(objects, "Deployment", "tally-api")
    assert env_of(api)["TALLY_IN_PROCESS_WORKER"]["value"] == "true"


def test_scaled_independently(production_objects: list[dict]) -> None:
    deployments = by_kind(production_objects, "Deployment")
    # With an HPA the Deployment leaves replicas to it (else every upgrade resets them).
    assert all("replicas" not in d["spec"] for d in deployments.values())
    hpas = by_kind(production_objects, "HorizontalPodAutoscaler")
    assert hpas["tally-api"]["apiVersion"] == "autoscaling/v2"
    assert hpas["tally-api"]["spec"]["scaleTargetRef"]["name"] == "tally-api"
    assert hpas["tally-worker"]["spec"]["scaleTargetRef"]["name"] == "tally-worker"
    assert (hpas["tally-api"]["spec"]["minReplicas"], hpas["tally-api"]["spec"]["maxReplicas"]) == (3, 12)
    assert (hpas["tally-worker"]["spec"]["minReplicas"], hpas["tally-worker"]["spec"]["maxReplicas"]) == (2, 6)
    # Selectors of the two never overlap, or one would scale the other's pods.
    api_sel = deployments["tally-api"]["spec"]["selector"]["matchLabels"]
    worker_sel = deployments["tally-worker"]["spec"]["selector"]["matchLabels"]
    assert api_sel["app.kubernetes.io/component"] == "api"
    assert worker_sel["app.kubernetes.io/component"] == "worker"
    pdbs = by_kind(production_objects, "PodDisruptionBudget")
    assert pdbs["tally-api"]["spec"] == {"minAvailable": 2, "selector": {"matchLabels": api_sel}}
    assert pdbs["tally-worker"]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": worker_sel}}


def test_default_replicas_without_hpa(default_objects: list[dict]) -> None:
    deployments = by_kind(default_objects, "Deployment")
    assert deployments["tally-api"]["spec"]["replicas"] == 2
    assert deployments["tally-worker"]["spec"]["replicas"] == 2


@pytest.mark.parametrize("upgrade", [False, True])
def test_migrations_run_once_as_a_hook(upgrade: bool) -> None:
    objects = render(upgrade=upgrade)
    job = by_kind(objects, "Job")["tally-migrate"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["args"] == ["migrate"]
    assert "DATABASE_URL" in env_of(c)
    # The Secret it reads must exist before it: a hook of a lower weight.
    secret = by_kind(objects, "Secret")["tally-database"]
    assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    # The chart-made ServiceAccount does not exist yet at pre-install: not used.
    assert "serviceAccountName" not in pod


def test_database_url_from_chart_made_secret(default_objects: list[dict]) -> None:
    secret = by_kind(default_objects, "Secret")["tally-database"]
    assert secret["stringData"] == {"DATABASE_URL": "postgres://tally@postgresql:5432/tally"}
    env = env_of(container(default_objects, "Deployment", "tally-api"))
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "tally-database", "key": "DATABASE_URL"}


def test_citus_values_point_every_process_at_the_coordinator() -> None:
    """docs/citus.md's values: the coordinator from an existing Secret for
    the API, the worker and the migration Job alike, the pool size passed,
    and a migration deadline long enough for Citus's per-shard DDL."""
    objects = render(yaml.safe_load(CITUS.read_text()))
    assert "tally-database" not in by_kind(objects, "Secret")
    migrate = by_kind(objects, "Job")["tally-migrate"]
    assert migrate["spec"]["activeDeadlineSeconds"] == 1800
    (job,) = migrate["spec"]["template"]["spec"]["containers"]
    ref = {"name": "tally-citus-database", "key": "DATABASE_URL"}
    assert env_of(job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == ref
    for name in ("tally-api", "tally-worker"):
        deployment = by_kind(objects, "Deployment")[name]
        assert deployment["spec"]["replicas"] == 4
        env = env_of(container(objects, "Deployment", name))
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == ref
        assert env["TALLY_DB_POOL_SIZE"]["value"] == "10"


def test_config_map_mounted_as_tally_config(production_objects: list[dict]) -> None:
    cm = by_kind(production_objects, "ConfigMap")["tally-config"]
    toml = cm["data"]["tally.toml"]
    assert "[handoffs.fulfillment-to-invoice]" in toml and "[accounts]" in toml
    for name in ("tally-api", "tally-worker"):
        deployment = by_kind(production_objects, "Deployment")[name]
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "tally-config"
        (c,) = pod["containers"]
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["config"]["mountPath"] == "/etc/tally" and mounts["config"]["readOnly"] is True
        # A changed config rolls the pods.
        assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_config_change_rolls_pods() -> None:
    def checksum(toml: str) -> str:
        objects = render({"config": {"toml": toml}})
        return by_kind(objects, "Deployment")["tally-api"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum("# a\n") != checksum("# b\n")


def test_api_keys_are_required_by_default_and_the_allow_list_is_passed(default_objects: list[dict]) -> None:
    # The pods listen on 0.0.0.0: without keys Tally would refuse to start.
    for name in ("tally-api", "tally-worker"):
        env = env_of(container(default_objects, "Deployment", name))
        assert env["TALLY_AUTH"]["value"] == "keys"
        assert "TALLY_INSECURE_NO_AUTH" not in env
        assert "TALLY_ALERT_ALLOW_CIDR" not in env
    objects = render({"auth": {"mode": "none", "insecureNoAuth": True}, "config": {"alertAllowCidrs": ["10.0.0.0/8", "fd00::/8"]}})
    env = env_of(container(objects, "Deployment", "tally-api"))
    assert env["TALLY_AUTH"]["value"] == "none"
    assert env["TALLY_INSECURE_NO_AUTH"]["value"] == "true"
    assert env["TALLY_ALERT_ALLOW_CIDR"]["value"] == "10.0.0.0/8,fd00::/8"


def test_tls_is_mounted_for_the_api_and_probes_use_the_plaintext_health_port(default_objects: list[dict]) -> None:
    api = container(default_objects, "Deployment", "tally-api")
    assert "TALLY_TLS_CERT" not in env_of(api)
    objects = render({"tls": {"existingSecret": "tally-tls", "clientCa": True}})
    api = container(objects, "Deployment", "tally-api")
    env = env_of(api)
    assert env["TALLY_TLS_CERT"]["value"] == "/etc/tally/tls/tls.crt"
    assert env["TALLY_TLS_KEY"]["value"] == "/etc/tally/tls/tls.key"
    assert env["TALLY_TLS_CLIENT_CA"]["value"] == "/etc/tally/tls/ca.crt"
    assert env["TALLY_HEALTH_ADDR"]["value"] == "0.0.0.0:50052"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["grpc"]["port"] == 50052
    assert {"name": "tls", "mountPath": "/etc/tally/tls", "readOnly": True} in api["volumeMounts"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "tally-api"]
    assert {"name": "tls", "secret": {"secretName": "tally-tls"}} in deployment["spec"]["template"]["spec"]["volumes"]
    # The worker serves health only, in plaintext, on its gRPC port.
    worker = container(objects, "Deployment", "tally-worker")
    assert "TALLY_TLS_CERT" not in env_of(worker)
    assert worker["livenessProbe"]["grpc"]["port"] == 50051


def test_alert_ca_pem_is_mounted_and_named(default_objects: list[dict]) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    objects = render({"config": {"alertCaPem": pem}})
    assert by_kind(objects, "ConfigMap")["tally-config"]["data"]["alert-ca.pem"] == pem
    for name in ("tally-api", "tally-worker"):
        env = env_of(container(objects, "Deployment", name))
        assert env["TALLY_ALERT_CA_FILE"]["value"] == "/etc/tally/alert-ca.pem"
        # None given: Mozilla's roots only, nothing set.
        assert "TALLY_ALERT_CA_FILE" not in env_of(container(default_objects, "Deployment", name))
    assert "alert-ca.pem" not in by_kind(default_objects, "ConfigMap")["tally-config"]["data"]

    def checksum(values: dict) -> str:
        return by_kind(render(values), "Deployment")["tally-api"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    # A new CA rolls the pods; no CA leaves the checksum as it was.
    assert checksum({"config": {"alertCaPem": pem}}) != checksum({})
    assert checksum({"config": {"toml": "# a\n", "alertCaPem": ""}}) == checksum({"config": {"toml": "# a\n"}})


def test_services_and_service_monitor(production_objects: list[dict]) -> None:
    services = by_kind(production_objects, "Service")
    api_ports = {p["name"]: (p["port"], p["targetPort"]) for p in services["tally"]["spec"]["ports"]}
    assert api_ports == {"grpc": (50051, "grpc"), "metrics": (9464, "metrics")}
    assert services["tally"]["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    assert services["tally-worker"]["spec"]["selector"]["app.kubernetes.io/component"] == "worker"
    monitor = by_kind(production_objects, "ServiceMonitor")["tally"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]
    # Its selector matches both Services (api and worker metrics).
    selector = monitor["spec"]["selector"]["matchLabels"]
    for svc in services.values():
        assert selector.items() <= svc["metadata"]["labels"].items()


def test_image_tag_defaults_to_app_version_and_digest_pins() -> None:
    with helm.Chart.load(CHART) as chart:
        app_version = chart.metadata["appVersion"]
    c = container(render(), "Deployment", "tally-api")
    assert c["image"] == f"tally:{app_version}"
    digest = "sha256:" + "a" * 64
    c = container(render({"image": {"digest": digest}}), "Deployment", "tally-api")
    assert c["image"] == f"tally@{digest}"


def test_metrics_off_means_no_listener() -> None:
    objects = render({"metrics": {"enabled": False}})
    c = container(objects, "Deployment", "tally-api")
    assert "TALLY_METRICS_ADDR" not in env_of(c)
    assert [p["name"] for p in c["ports"]] == ["grpc"]
    assert "tally-worker" not in by_kind(objects, "Service")


def test_otel_unset_passes_nothing_but_identity(default_objects: list[dict]) -> None:
    env = env_of(container(default_objects, "Deployment", "tally-api"))
    assert not {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"} & env.keys()
    assert env["OTEL_SERVICE_NAME"]["value"] == "tally-api"


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"grpc": {"port": 0}}, "/grpc/port"),
        ({"grpc": {"port": "50051"}}, "/grpc/port"),
        ({"worker": {"concurrency": 0}}, "/worker/concurrency"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"api": {"replicas": 3}}, "/api"),  # a typo of replicaCount
        ({"logging": {"format": "xml"}}, "/logging/format"),
        ({"database": {"url": "mysql://x"}}, "/database/url"),
        ({"otel": {"protocol": "thrift"}}, "/otel/protocol"),
        ({"replicaCount": 3}, "replicaCount"),  # top-level keys are closed too
    ],
)
def test_schema_rejects_bad_values(bad: dict, where: str) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(bad)
    assert where in str(err.value)
    # And an install would be refused, not rendered.
    with pytest.raises(helm.HelmError):
        render(bad)


def test_schema_accepts_shipped_values() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})
        chart.validate_schema(production_values())


def test_missing_database_is_refused_with_a_clear_message() -> None:
    with pytest.raises(helm.HelmError, match="database.existingSecret"):
        render({"database": {"url": ""}})


def test_notes_tell_how_to_connect() -> None:
    with helm.Chart.load(CHART) as chart:
        notes = chart.render({}, name=RELEASE, namespace=NAMESPACE)["tally/templates/NOTES.txt"]
    assert "port-forward svc/tally 50051:50051" in notes
    assert "grpc.health.v1.Health/Check" in notes
    assert "tally keys create" in notes


def test_grace_period_must_outlast_the_drain() -> None:
    with pytest.raises(helm.HelmError, match="worker.terminationGracePeriodSeconds"):
        render({"shutdownGraceSeconds": 30, "api": {"terminationGracePeriodSeconds": 40}, "worker": {"terminationGracePeriodSeconds": 30}})


def test_autoscaling_needs_a_target() -> None:
    with pytest.raises(helm.HelmError, match="api.autoscaling needs"):
        render({"api": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}})


def test_probes_can_name_a_health_service() -> None:
    objects = render({"health": {"livenessService": "tally.liveness", "readinessService": "tally.v1.IngestService"}})
    for name in ("tally-api", "tally-worker"):
        c = container(objects, "Deployment", name)
        assert c["livenessProbe"]["grpc"] == {"port": 50051, "service": "tally.liveness"}
        assert c["startupProbe"]["grpc"] == {"port": 50051, "service": "tally.liveness"}
        assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": "tally.v1.IngestService"}
