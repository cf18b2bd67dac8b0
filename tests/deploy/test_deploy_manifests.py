"""The deployment manifests: every kustomization under deploy/kubernetes renders (kustomize) and
its objects pass two validators: PyPI `kubernetes-validate` (the Kubernetes JSON schemas it
bundles, strict: unknown fields fail) and tests/deploy/validate_manifests.mjs (the Kubernetes API
schemas from npm `kubernetes-models`, prometheus-operator's ServiceMonitor schema, KServe's
required fields, and the checks that make the objects work together); every manifest file is
reached by some kustomization; a deliberately broken copy fails; deploy/docker/compose.yaml passes
`docker-compose config`.

Rendering uses the kustomize that scripts/setup.sh builds from the Go module proxy
(.tools/bin/kustomize, pinned there), else a `kustomize` or `kubectl` (`kubectl kustomize`) on
PATH; without any of them the render tests fail and say to run the setup. The validator needs
Node.js and the packages that scripts/setup.sh installs into tests/deploy/node_modules;
kubernetes-validate is pinned in requirements/python.txt."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
VALIDATOR = REPO / "tests" / "deploy" / "validate_manifests.mjs"
COMPOSE = REPO / "deploy" / "docker" / "compose.yaml"
KUSTOMIZATIONS = ["base", "overlays/cpu", "overlays/gpu", "prometheus-adapter", "kserve"]
EXPECTED_KINDS = {
    "base": {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"},
    "overlays/cpu": {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"},
    "overlays/gpu": {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"},
    "prometheus-adapter": {"ConfigMap"},
    "kserve": {"ClusterServingRuntime", "InferenceService"},
}


KUSTOMIZE = REPO / ".tools" / "bin" / "kustomize"  # built by scripts/setup.sh


def kustomize_command():
    if KUSTOMIZE.is_file():
        return [str(KUSTOMIZE), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="module")
def kustomize():
    command = kustomize_command()
    if command is None:
        pytest.fail("no kustomize: scripts/setup.sh builds it into .tools/bin (or install kubectl)")
    return command


# kubernetes-validate checks every object against the oldest and the newest Kubernetes schemas
# it bundles (the manifests need >= 1.24 for gRPC probes; 1.25 is its oldest), strictly. The
# custom resources have no schema there; validate_manifests.mjs checks them instead.
SCHEMA_VERSIONS = ("1.25.0", "1.37.0")
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
                ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
                ("serving.kserve.io/v1beta1", "InferenceService")}


def schema_problems(rendered: Path) -> list:
    """kubernetes-validate's complaints about the objects in `rendered`, one line each; an
    object of a kind it has no schema for is a problem unless it is one of CUSTOM_KINDS."""
    import kubernetes_validate
    import yaml

    problems = []
    for document in yaml.safe_load_all(rendered.read_text(encoding="utf-8")):
        if document is None:
            continue
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError as error:
                if (document.get("apiVersion"), document.get("kind")) not in CUSTOM_KINDS:
                    problems.append(f"{name}: {error.message}")
            except kubernetes_validate.ValidationError as error:
                path = ".".join(map(str, error.absolute_path))
                problems.append(f"{name} (Kubernetes {version}): {path}: {error.message}")
    return problems


@pytest.fixture(scope="module")
def node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup.sh installs it)")
    if not (VALIDATOR.parent / "node_modules" / "kubernetes-models").is_dir():
        pytest.fail("tests/deploy/node_modules is missing: run scripts/setup.sh")
    return node


def render(kustomize: list, directory: Path, out: Path) -> Path:
    result = subprocess.run([*kustomize, str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kustomize failed on {directory}:\n{result.stderr}"
    out.write_text(result.stdout, encoding="utf-8")
    return out


def validate(node: str, *rendered: Path, rules: Path = KUBERNETES / "prometheus-adapter" / "config.yaml"):
    return subprocess.run([node, str(VALIDATOR), "--adapter-rules", str(rules), *map(str, rendered)],
                          capture_output=True, text=True, timeout=120, cwd=VALIDATOR.parent)


def kinds(rendered: Path) -> set:
    return {line.split(":", 1)[1].strip() for line in rendered.read_text().splitlines() if line.startswith("kind:")}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_and_validates(kustomize, node, kustomization, tmp_path):
    rendered = render(kustomize, KUBERNETES / kustomization, tmp_path / "rendered.yaml")
    assert kinds(rendered) == EXPECTED_KINDS[kustomization]
    assert schema_problems(rendered) == []
    result = validate(node, rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 problems" in result.stdout


def test_every_manifest_is_reached_by_a_kustomization():
    """No YAML file under deploy/kubernetes escapes rendering and validation."""
    import yaml

    reached = set()
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        reached.add(kustomization)
        spec = yaml.safe_load(kustomization.read_text())
        names = list(spec.get("resources", []))
        names += [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
        names += [file for generator in spec.get("configMapGenerator", []) for file in generator.get("files", [])]
        reached.update((kustomization.parent / name).resolve() for name in names)
    files = {path.resolve() for path in KUBERNETES.rglob("*.yaml")}
    assert files - reached == set()


# Each breakage: (file, text to replace, replacement, what the validator must say).
BREAKAGES = {
    "container port not an integer": ("base/deployment.yaml", "containerPort: 8001,", 'containerPort: "grpc",',
                                      "containerPort must be integer"),
    "deployment without selector": ("base/deployment.yaml", "  selector:\n    matchLabels:\n"
                                    "      app.kubernetes.io/name: torchbricks-serve\n  strategy:",
                                    "  strategy:", "must have required property selector"),
    "grace period shorter than the drain": ("base/deployment.yaml", "terminationGracePeriodSeconds: 45",
                                            "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30"),
    "root filesystem writable": ("base/deployment.yaml", "readOnlyRootFilesystem: true",
                                 "readOnlyRootFilesystem: false", "readOnlyRootFilesystem must be true"),
    "no /tmp": ("base/deployment.yaml", "            - {name: tmp, mountPath: /tmp}\n", "",
                "/tmp must be a writable emptyDir"),
    "kserve runtime without /tmp": ("kserve/cluster-serving-runtime.yaml",
                                    "      volumeMounts:\n        - {name: tmp, mountPath: /tmp}\n", "",
                                    "/tmp must be a writable emptyDir"),
    "hpa replicas not a number": ("base/hpa.yaml", "maxReplicas: 10", "maxReplicas: ten", "maxReplicas must be integer"),
    "hpa metric the adapter does not serve": ("base/hpa.yaml", "name: torchbricks_queue_seconds_per_request",
                                              "name: torchbricks_queue_seconds", "is not one that the prometheus-adapter"),
    "service port without h2c": ("base/service.yaml", "      appProtocol: kubernetes.io/h2c\n", "",
                                 "appProtocol kubernetes.io/h2c"),
    "servicemonitor interval": ("base/servicemonitor.yaml", "interval: 5s", "interval: 5 seconds",
                                "interval must match pattern"),
    "servicemonitor port missing": ("base/servicemonitor.yaml", "- port: metrics", "- port: prometheus",
                                    "endpoint port 'prometheus'"),
    "pdb on no pods": ("base/pdb.yaml", "    matchLabels:\n      app.kubernetes.io/name: torchbricks-serve",
                       "    matchLabels:\n      app.kubernetes.io/name: other",
                       "its selector matches no Deployment's pods"),
    "kserve runtime without containers": ("kserve/cluster-serving-runtime.yaml", "  containers:\n", "  sidecars:\n",
                                          "spec.containers is required"),
    "kserve protocol": ("kserve/inference-service.yaml", "protocolVersion: grpc-v2", "protocolVersion: grpc-v3",
                        "unknown protocolVersion 'grpc-v3'"),
    "kserve runtime off /mnt/models": ("kserve/cluster-serving-runtime.yaml", "--model-repository=/mnt/models",
                                       "--model-repository=/models", "must be /mnt/models"),
    "unknown kind": ("base/pdb.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets",
                     "unknown kind 'PodDisruptionBudgets'"),
}


# The breakages of BREAKAGES that are schema errors, which kubernetes-validate must report too
# (with this text), and two that only its strict schemas catch: a misspelt field, which the
# API server drops silently, so the probe runs with its default threshold.
SCHEMA_BREAKAGES = {
    "container port not an integer": "'grpc' is not of type 'integer'",
    "deployment without selector": "'selector' is a required property",
    "hpa replicas not a number": "'ten' is not of type 'integer'",
    "unknown kind": "Couldn't find schema for kind PodDisruptionBudgets",
}
STRICT_BREAKAGES = {
    "misspelt probe field": ("base/deployment.yaml", "timeoutSeconds: 2\n            failureThreshold: 1",
                             "timeoutSeconds: 2\n            failureTreshold: 1",
                             "'failureTreshold' was unexpected"),
    "misspelt service field": ("base/service.yaml", "selector:", "selectors:", "'selectors' was unexpected"),
}


def break_copy(kustomize: list, breakage: tuple, tmp_path: Path) -> Path:
    """Renders the kustomization of a copy of deploy/kubernetes with `breakage` applied."""
    file, old, new = breakage[:3]
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    target = copy / file
    text = target.read_text()
    assert old in text, f"the breakage no longer applies to {file}: {old!r}"
    target.write_text(text.replace(old, new, 1))
    return render(kustomize, copy / file.split("/")[0], tmp_path / "rendered.yaml")


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_broken_copy_fails_validation(kustomize, node, name, tmp_path):
    message = BREAKAGES[name][3]
    rendered = break_copy(kustomize, BREAKAGES[name], tmp_path)
    result = validate(node, rendered, rules=tmp_path / "kubernetes" / "prometheus-adapter" / "config.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout
    problems = schema_problems(rendered)
    if name in SCHEMA_BREAKAGES:
        assert any(SCHEMA_BREAKAGES[name] in problem for problem in problems), problems
    else:
        assert problems == [], problems  # a consistency rule, which only validate_manifests.mjs knows


@pytest.mark.parametrize("name", sorted(STRICT_BREAKAGES))
def test_misspelt_field_fails_strict_schema(kustomize, name, tmp_path):
    rendered = break_copy(kustomize, STRICT_BREAKAGES[name], tmp_path)
    problems = schema_problems(rendered)
    assert len(problems) == len(SCHEMA_VERSIONS), problems  # once per schema version
    assert all(STRICT_BREAKAGES[name][3] in problem for problem in problems), problems


def test_validator_rejects_bad_yaml_and_usage(node, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    result = validate(node, bad)
    assert result.returncode == 1 and "YAML" in result.stdout
    assert subprocess.run([node, str(VALIDATOR)], capture_output=True, text=True, timeout=60).returncode == 2


docker_compose = shutil.which("docker-compose")


@pytest.mark.skipif(docker_compose is None, reason="docker-compose is not installed")
def test_compose_file_is_valid(tmp_path):
    result = subprocess.run([docker_compose, "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            timeout=60, cwd=COMPOSE.parent)
    assert result.returncode == 0, result.stderr
    assert "torchbricks-serve" in result.stdout and "prometheus" in result.stdout
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:", 1))
    result = subprocess.run([docker_compose, "-f", str(broken), "config"], capture_output=True, text=True,
                            timeout=60, cwd=COMPOSE.parent)
    assert result.returncode != 0
