"""The deployment manifests: every kustomization under deploy/kubernetes renders (kustomize) and
its objects pass tests/deploy/validate_manifests.mjs (the Kubernetes API schemas from npm
`kubernetes-models`, prometheus-operator's ServiceMonitor schema, KServe's required fields, and
the checks that make the objects work together); every manifest file is reached by some
kustomization; a deliberately broken copy fails; deploy/docker/compose.yaml passes
`docker-compose config`.

Rendering needs `kustomize` or `kubectl` (whose `kubectl kustomize` embeds kustomize); without
either the render tests skip and say so. The validator needs Node.js and the packages that
scripts/setup.sh installs into tests/deploy/node_modules."""
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


def kustomize_command():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


needs_kustomize = pytest.mark.skipif(kustomize_command() is None,
                                     reason="neither kustomize nor kubectl is installed: manifests not rendered")


@pytest.fixture(scope="module")
def node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup.sh installs it)")
    if not (VALIDATOR.parent / "node_modules" / "kubernetes-models").is_dir():
        pytest.fail("tests/deploy/node_modules is missing: run scripts/setup.sh")
    return node


def render(directory: Path, out: Path) -> Path:
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kustomize failed on {directory}:\n{result.stderr}"
    out.write_text(result.stdout, encoding="utf-8")
    return out


def validate(node: str, *rendered: Path, rules: Path = KUBERNETES / "prometheus-adapter" / "config.yaml"):
    return subprocess.run([node, str(VALIDATOR), "--adapter-rules", str(rules), *map(str, rendered)],
                          capture_output=True, text=True, timeout=120, cwd=VALIDATOR.parent)


def kinds(rendered: Path) -> set:
    return {line.split(":", 1)[1].strip() for line in rendered.read_text().splitlines() if line.startswith("kind:")}


@needs_kustomize
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_and_validates(node, kustomization, tmp_path):
    rendered = render(KUBERNETES / kustomization, tmp_path / "rendered.yaml")
    assert kinds(rendered) == EXPECTED_KINDS[kustomization]
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


@needs_kustomize
@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_broken_copy_fails_validation(node, name, tmp_path):
    file, old, new, message = BREAKAGES[name]
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    target = copy / file
    text = target.read_text()
    assert old in text, f"the breakage '{name}' no longer applies to {file}"
    target.write_text(text.replace(old, new, 1))
    kustomization = file.split("/")[0]
    rendered = render(copy / kustomization, tmp_path / "rendered.yaml")
    result = validate(node, rendered, rules=copy / "prometheus-adapter" / "config.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout


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
