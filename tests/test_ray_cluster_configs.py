"""The configs in ray_cluster/ are valid for the tools that consume them, consistent with each
other, and sized so that Ray's object store fits in /dev/shm and /dev/shm in the machine.

What is checked how (no network, no cluster):
- cluster.yaml (``ray up``): Ray's own JSON schema (ray/autoscaler/ray-schema.json) on the file,
  then ``validate_config(prepare_config(...))`` as ``ray up`` runs it; every ``ray start`` line
  is parsed by the ``ray start`` CLI itself, so a misspelled flag fails.
- Kubernetes built-in objects (ServiceAccount, Role, RoleBinding, ConfigMap, CronJob) and every
  KubeRay pod template (a core/v1 PodTemplateSpec): the Kubernetes OpenAPI schemas shipped by
  ``kubernetes-validate``, strict (unknown fields fail).
- KubeRay RayCluster / RayJob: no KubeRay CRD schema is installable offline, so the fields the
  operator requires are checked here, unknown fields are rejected against the field lists of
  KubeRay's ray.io/v1 API types, and ``rayStartParams`` go through the ``ray start`` CLI parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

CONFIGS = REPO / "ray_cluster"
K8S_VERSION = "1.33"
IMAGE = "tokmix:0.1.0"

# Instance memory in GiB (AWS instance type specifications) for the types cluster.yaml uses.
INSTANCE_GIB = {"m7i.2xlarge": 32, "r7i.4xlarge": 128}

# Fields of KubeRay's ray.io/v1 API types (ray-operator/apis/ray/v1/*_types.go).
RAYCLUSTER_SPEC_FIELDS = {
    "headGroupSpec",
    "workerGroupSpecs",
    "rayVersion",
    "enableInTreeAutoscaling",
    "autoscalerOptions",
    "headServiceAnnotations",
    "suspend",
    "managedBy",
    "gcsFaultToleranceOptions",
}
HEAD_GROUP_FIELDS = {
    "serviceType",
    "headService",
    "enableIngress",
    "rayStartParams",
    "template",
    "suspend",
}
WORKER_GROUP_FIELDS = {
    "groupName",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "numOfHosts",
    "rayStartParams",
    "template",
    "scaleStrategy",
    "idleTimeoutSeconds",
    "suspend",
}
AUTOSCALER_OPTION_FIELDS = {
    "resources",
    "image",
    "imagePullPolicy",
    "env",
    "envFrom",
    "volumeMounts",
    "securityContext",
    "idleTimeoutSeconds",
    "upscalingMode",
    "version",
}
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "rayClusterSpec",
    "submitterPodTemplate",
    "metadata",
    "clusterSelector",
    "submitterConfig",
    "managedBy",
    "deletionStrategy",
    "entrypoint",
    "runtimeEnvYAML",
    "jobId",
    "submissionMode",
    "entrypointResources",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes",
    "suspend",
}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


def load_all(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((CONFIGS / name).read_text()) if doc]


def by_kind(name: str, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in load_all(name) if d["kind"] == kind]
    return doc


def nightly_rayjob() -> dict[str, Any]:
    """The RayJob template the CronJob creates each night."""
    template = by_kind("cronjob.yaml", "ConfigMap")["data"]["rayjob.yaml"]
    return yaml.safe_load(template)


def all_rayjobs() -> list[tuple[str, dict[str, Any]]]:
    return [("rayjob.yaml", by_kind("rayjob.yaml", "RayJob")), ("cronjob.yaml", nightly_rayjob())]


def all_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = [("raycluster.yaml", by_kind("raycluster.yaml", "RayCluster")["spec"])]
    return specs + [(name, job["spec"]["rayClusterSpec"]) for name, job in all_rayjobs()]


UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def k8s_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (``16Gi``, ``500M``, ``1024``) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([kMGT]i?|)", str(quantity)).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def docker_bytes(size: str) -> int:
    """A docker ``--shm-size`` value (``44g``: binary units) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([bkmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]


def parse_ray_start(args: list[str]) -> dict[str, Any]:
    """``ray start`` options as the ray CLI itself parses them (unknown flags raise)."""
    from ray.scripts.scripts import start

    with start.make_context("start", list(args)) as ctx:
        return dict(ctx.params)


def ray_start_lines(commands: list[str]) -> list[list[str]]:
    lines = []
    for command in commands:
        for part in command.split(";"):
            words = shlex.split(part)
            if words[:2] == ["ray", "start"]:
                lines.append(words[2:])
    return lines


def kubernetes_schema_errors(doc: dict[str, Any], schema_file: str | None = None) -> list[str]:
    """Errors of ``doc`` against the strict Kubernetes OpenAPI schema of its kind (or of the
    definition file ``schema_file``, e.g. ``podtemplatespec-v1.json``)."""
    import kubernetes_validate
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    if schema_file is None:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            return [f"{'.'.join(map(str, e.path))}: {e.message}"]
        return []
    folder = f"kubernetes-json-schema/v{K8S_VERSION}.0-local-strict"
    schema = schema_contents(f"{folder}/{schema_file}", K8S_VERSION)
    definitions = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


# --- ray up -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_up_config() -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / "cluster.yaml").read_text())


def test_ray_up_config_passes_rays_own_validation(ray_up_config: dict[str, Any]) -> None:
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(ray_up_config, schema)
    validate_config(prepare_config(ray_up_config))  # what `ray up` does after reading the file
    broken = dict(ray_up_config, docker={**ray_up_config["docker"], "shm_size": "1g"})
    with pytest.raises(jsonschema.ValidationError, match="shm_size"):
        jsonschema.validate(broken, schema)


def test_ray_up_start_commands_parse(ray_up_config: dict[str, Any]) -> None:
    head = ray_start_lines(ray_up_config["head_start_ray_commands"])
    workers = ray_start_lines(ray_up_config["worker_start_ray_commands"])
    assert len(head) == len(workers) == 1
    assert parse_ray_start(head[0])["head"] is True
    assert parse_ray_start(workers[0])["address"] == "$RAY_HEAD_IP:6379"
    with pytest.raises(Exception, match="object-store-memroy"):
        parse_ray_start(["--object-store-memroy=1"])


def test_ray_up_memory_nests(ray_up_config: dict[str, Any]) -> None:
    """object store < /dev/shm < instance RAM, for the head and the workers."""
    docker = ray_up_config["docker"]
    types = ray_up_config["available_node_types"]
    head_type = ray_up_config["head_node_type"]
    (worker_type,) = [t for t in types if t != head_type]
    for role, node_type in (("head", head_type), ("worker", worker_type)):
        commands = ray_up_config[f"{role}_start_ray_commands"]
        (line,) = ray_start_lines(commands)
        store = parse_ray_start(line)["object_store_memory"]
        options = docker["run_options"] + docker[f"{role}_run_options"]
        (shm,) = [docker_bytes(o.split("=", 1)[1]) for o in options if o.startswith("--shm-size")]
        ram = INSTANCE_GIB[types[node_type]["node_config"]["InstanceType"]] * 2**30
        assert 0 < store < shm < ram, (role, store, shm, ram)
        assert 0.2 < store / ram < 0.35, f"{role}: object store should be ~30% of RAM"
    assert types[head_type]["resources"] == {"CPU": 0}


def test_ray_up_installs_this_checkout(ray_up_config: dict[str, Any]) -> None:
    (remote, local), *_ = ray_up_config["file_mounts"].items()
    assert local == "."
    assert any(c.split()[-1] == remote for c in ray_up_config["setup_commands"] if "pip" in c)


# --- KubeRay ------------------------------------------------------------------------------


def check_group(where: str, group: dict[str, Any], fields: set[str]) -> list[str]:
    errors = [f"{where}: unknown field {k!r}" for k in sorted(set(group) - fields)]
    params = group.get("rayStartParams")
    if not isinstance(params, dict):
        return [*errors, f"{where}: rayStartParams is required"]
    errors += [
        f"{where}: rayStartParams[{k}] must be a string"
        for k, v in params.items()
        if not isinstance(v, str)
    ]
    try:
        parse_ray_start([f"--{k}={v}" for k, v in params.items()])
    except Exception as e:  # click's UsageError for an unknown flag or a bad value
        errors.append(f"{where}: rayStartParams: {e}")
    template = group.get("template") or {}
    containers = template.get("spec", {}).get("containers") or []
    if not containers or not containers[0].get("image"):
        errors.append(f"{where}: template.spec.containers[0].image is required")
    errors += [
        f"{where}.template.{e}"
        for e in kubernetes_schema_errors(template, "podtemplatespec-v1.json")
    ]
    return errors


def raycluster_errors(spec: dict[str, Any]) -> list[str]:
    """What KubeRay would reject (or silently ignore) in a RayCluster spec."""
    errors = [f"spec: unknown field {k!r}" for k in sorted(set(spec) - RAYCLUSTER_SPEC_FIELDS)]
    errors += [
        f"autoscalerOptions: unknown field {k!r}"
        for k in sorted(set(spec.get("autoscalerOptions", {})) - AUTOSCALER_OPTION_FIELDS)
    ]
    if "headGroupSpec" not in spec:
        return [*errors, "spec.headGroupSpec is required"]
    errors += check_group("headGroupSpec", spec["headGroupSpec"], HEAD_GROUP_FIELDS)
    names = [g.get("groupName") for g in spec.get("workerGroupSpecs", [])]
    if len(set(names)) != len(names) or not all(names):
        errors.append(f"workerGroupSpecs: group names must be present and unique: {names}")
    for group in spec.get("workerGroupSpecs", []):
        where = f"workerGroupSpecs[{group.get('groupName')}]"
        errors += check_group(where, group, WORKER_GROUP_FIELDS)
        counts = [group.get(k) for k in ("minReplicas", "replicas", "maxReplicas")]
        if not all(isinstance(c, int) for c in counts) or not counts[0] <= counts[1] <= counts[2]:
            errors.append(f"{where}: need minReplicas <= replicas <= maxReplicas: {counts}")
    return errors


def rayjob_errors(job: dict[str, Any]) -> list[str]:
    if job.get("apiVersion") != "ray.io/v1" or job.get("kind") != "RayJob":
        return ["apiVersion/kind must be ray.io/v1 RayJob"]
    spec = job["spec"]
    errors = [f"spec: unknown field {k!r}" for k in sorted(set(spec) - RAYJOB_SPEC_FIELDS)]
    if not spec.get("entrypoint"):
        errors.append("spec.entrypoint is required")
    if spec.get("submissionMode", "K8sJobMode") not in SUBMISSION_MODES:
        errors.append(f"spec.submissionMode {spec['submissionMode']!r} is not a KubeRay mode")
    if "rayClusterSpec" not in spec:
        errors.append("spec.rayClusterSpec is required (or clusterSelector)")
    if spec.get("shutdownAfterJobFinishes") is not True:
        errors.append("spec.shutdownAfterJobFinishes must be true: the cluster is per job")
    if not isinstance(spec.get("ttlSecondsAfterFinished"), int):
        errors.append("spec.ttlSecondsAfterFinished must be set")
    return errors + raycluster_errors(spec.get("rayClusterSpec", {}))


def test_raycluster_manifest() -> None:
    (doc,) = load_all("raycluster.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    assert raycluster_errors(doc["spec"]) == []


@pytest.mark.parametrize(
    ("name", "job"), all_rayjobs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_rayjob_manifests(name: str, job: dict[str, Any]) -> None:
    assert rayjob_errors(job) == []
    assert job["spec"]["entrypoint"] == "python -m tokmix run /specs/run.yaml"


def test_the_structural_checks_catch_mistakes() -> None:
    job = by_kind("rayjob.yaml", "RayJob")
    spec = job["spec"]["rayClusterSpec"]
    head = spec["headGroupSpec"]
    worker = spec["workerGroupSpecs"][0]
    container = head["template"]["spec"]["containers"][0]
    broken = {
        "workerGroupSpec": {**spec, "workerGroupSpec": []},
        "rayStartParams": {**spec, "headGroupSpec": {**head, "rayStartParams": {"num-cpu": "0"}}},
        "must be a string": {
            **spec,
            "headGroupSpec": {**head, "rayStartParams": {"num-cpus": 0}},
        },
        "maxReplicas": {**spec, "workerGroupSpecs": [{**worker, "maxReplicas": 1}]},
        "volumeMount": {
            **spec,
            "headGroupSpec": {
                **head,
                "template": {
                    "spec": {
                        **head["template"]["spec"],
                        "containers": [{**container, "volumeMount": []}],
                    }
                },
            },
        },
        "containers[0].image": {
            **spec,
            "headGroupSpec": {
                **head,
                "template": {"spec": {"containers": [{"name": "ray-head"}]}},
            },
        },
    }
    for needle, bad in broken.items():
        errors = raycluster_errors(bad)
        assert any(needle in e for e in errors), (needle, errors)
    assert any(
        "shutdownAfterJobFinishes" in e
        for e in rayjob_errors({**job, "spec": {**job["spec"], "shutdownAfterJobFinishes": False}})
    )
    assert any(
        "entrypont" in e for e in rayjob_errors({**job, "spec": {**job["spec"], "entrypont": "x"}})
    )


def test_the_three_cluster_specs_are_one() -> None:
    """raycluster.yaml, rayjob.yaml and the nightly template run the same cluster."""
    (_, first), *others = all_cluster_specs()
    for name, spec in others:
        assert spec == first, f"{name}'s rayClusterSpec differs from raycluster.yaml's"


def pod_groups(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("head", spec["headGroupSpec"])] + [
        (g["groupName"], g) for g in spec["workerGroupSpecs"]
    ]


@pytest.mark.parametrize("name_spec", all_cluster_specs(), ids=lambda x: x[0])
def test_kuberay_memory_nests(name_spec: tuple[str, dict[str, Any]]) -> None:
    """object-store-memory < /dev/shm sizeLimit < container memory limit, for every group."""
    _, spec = name_spec
    for group_name, group in pod_groups(spec):
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        store = int(group["rayStartParams"]["object-store-memory"])
        (shm_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == shm_mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory"
        shm = k8s_bytes(volume["emptyDir"]["sizeLimit"])
        limit = k8s_bytes(container["resources"]["limits"]["memory"])
        assert k8s_bytes(container["resources"]["requests"]["memory"]) == limit
        assert 0 < store < shm < limit, (group_name, store, shm, limit)
        assert 0.2 <= store / limit <= 0.35, f"{group_name}: object store should be ~30%"


def test_the_run_spec_reaches_the_head() -> None:
    """The entrypoint reads /specs/run.yaml; the head mounts the ConfigMap the README creates
    from example-spec.yaml there."""
    spec = by_kind("raycluster.yaml", "RayCluster")["spec"]
    pod = spec["headGroupSpec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/specs"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = volume["configMap"]["name"]
    command = (
        f"kubectl create configmap {configmap} --from-file=run.yaml=ray_cluster/example-spec.yaml"
    )
    readme = (REPO / "README.md").read_text()
    assert command in readme
    for name in ("raycluster.yaml", "rayjob.yaml", "cronjob.yaml"):
        assert command in (CONFIGS / name).read_text(), name


# --- Kubernetes built-in objects ------------------------------------------------------------


@pytest.mark.parametrize("doc", load_all("cronjob.yaml"), ids=lambda d: d["kind"])
def test_kubernetes_objects_match_the_openapi_schema(doc: dict[str, Any]) -> None:
    assert kubernetes_schema_errors(doc) == []


def test_the_openapi_check_catches_mistakes() -> None:
    cron = by_kind("cronjob.yaml", "CronJob")
    bad = {**cron, "spec": {**cron["spec"], "schedual": "0 2 * * *"}}
    assert kubernetes_schema_errors(bad)
    missing = {**cron, "spec": {k: v for k, v in cron["spec"].items() if k != "jobTemplate"}}
    assert kubernetes_schema_errors(missing)


def test_the_cronjob_may_create_the_rayjob_it_templates() -> None:
    cron = by_kind("cronjob.yaml", "CronJob")
    role = by_kind("cronjob.yaml", "Role")
    binding = by_kind("cronjob.yaml", "RoleBinding")
    account = by_kind("cronjob.yaml", "ServiceAccount")
    template = by_kind("cronjob.yaml", "ConfigMap")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert {"kind": "ServiceAccount", "name": account["metadata"]["name"]}.items() <= (
        binding["subjects"][0].items()
    )
    assert any(
        "ray.io" in rule["apiGroups"]
        and "rayjobs" in rule["resources"]
        and "create" in rule["verbs"]
        for rule in role["rules"]
    )
    (container,) = pod["containers"]
    command = container.get("command", []) + container.get("args", [])
    assert command[:3] == ["kubectl", "create", "-f"]
    path = Path(command[3])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == template["metadata"]["name"]
    assert path.name in template["data"]
    job = nightly_rayjob()
    assert job["metadata"]["generateName"] and "name" not in job["metadata"]
    day = 24 * 3600
    assert job["spec"]["activeDeadlineSeconds"] < day, "a night's run must end before the next"


# --- versions and the run spec --------------------------------------------------------------


def test_one_ray_version_everywhere(ray_up_config: dict[str, Any]) -> None:
    dockerfile = (CONFIGS / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM rayproject/ray:(\S+)", dockerfile, re.M)
    version = base.split("-")[0]
    assert ray_up_config["docker"]["image"] == f"rayproject/ray:{base}"
    for name, spec in all_cluster_specs():
        assert spec["rayVersion"] == version, name
        for _, group in pod_groups(spec):
            assert group["template"]["spec"]["containers"][0]["image"] == IMAGE, name


def test_example_spec_shape() -> None:
    spec = yaml.safe_load((CONFIGS / "example-spec.yaml").read_text())
    assert {"out", "tokenizers", "categories", "stages"} <= set(spec)
    assert all(c["paths"] for c in spec["categories"].values())
    assert set(spec["stages"]) <= {"count", "replay", "solve", "stats"}
    assert set(spec["resources"]) <= set(spec["stages"])
    assert os.path.basename(spec["tokenizers"][0]) == "tokenizer.json"


def spec_bytes(size: str | int) -> int:
    """A run-spec size (``4GB`` decimal, ``4GiB`` binary) in bytes."""
    number, unit = re.fullmatch(r"(\d+)\s*([KMGT]i?B|B?)", str(size)).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit.removesuffix("B")]


def test_a_worker_full_of_tasks_fits_beside_its_object_store(
    ray_up_config: dict[str, Any],
) -> None:
    """Every CPU of a worker running the example spec's most memory-hungry task, plus the
    object store, stays within the worker's memory; every stage's task fits on one worker."""
    spec = yaml.safe_load((CONFIGS / "example-spec.yaml").read_text())
    per_task = max(spec_bytes(r.get("memory", 0)) for r in spec["resources"].values())
    cpus_per_task = max(r.get("num_cpus", 1) for r in spec["resources"].values())
    assert per_task > 0
    workers = []
    types = ray_up_config["available_node_types"]
    (worker_type,) = [t for t in types if t != ray_up_config["head_node_type"]]
    (line,) = ray_start_lines(ray_up_config["worker_start_ray_commands"])
    workers.append(
        (
            "ray up",
            {"m7i.2xlarge": 8, "r7i.4xlarge": 16}[
                types[worker_type]["node_config"]["InstanceType"]
            ],
            INSTANCE_GIB[types[worker_type]["node_config"]["InstanceType"]] * 2**30,
            parse_ray_start(line)["object_store_memory"],
        )
    )
    for _, group in pod_groups(by_kind("raycluster.yaml", "RayCluster")["spec"])[1:]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        workers.append(
            (
                group["groupName"],
                int(limits["cpu"]),
                k8s_bytes(limits["memory"]),
                int(group["rayStartParams"]["object-store-memory"]),
            )
        )
    for name, cpus, memory, store in workers:
        assert cpus >= cpus_per_task, name
        assert cpus * per_task + store < memory, (name, cpus, per_task, store, memory)


def test_example_spec_is_a_valid_run_spec() -> None:
    run_spec = pytest.importorskip(
        "tokmix.schemas.run_spec", reason="the run spec model is not on this branch"
    )
    spec = run_spec.load_run_spec(CONFIGS / "example-spec.yaml")
    assert spec.effective_run_id == "nightly-mixture"
    assert spec.resources_for("replay").memory == spec_bytes("4GB")
