// Validates rendered Kubernetes manifests offline:
//
//   node tests/deploy/validate_manifests.mjs RENDERED.yaml [...]
//
// Each file holds YAML documents (`kubectl kustomize DIR` output). Every object is checked
//  1. against its API schema: built-in kinds with npm `kubernetes-models` (the Kubernetes
//     OpenAPI schemas), ServiceMonitor with `@kubernetes-models/prometheus-operator`, KServe's
//     ClusterServingRuntime and InferenceService against the fields their published CRDs
//     (serving.kserve.io, config/crd/full) require, their containers with the core/v1
//     Container schema; an unknown apiVersion/kind is an error;
//  2. for what makes the objects work together: selectors that match the pods, Service and
//     probe ports that the container declares, a termination grace period longer than the
//     preStop hook plus the server's drain, non-root and read-only containers with a writable
//     emptyDir at /tmp (where AOTInductor bricks are unpacked and loaded from), an HPA that
//     targets the Deployment and asks for the metric that prometheus-adapter serves, a
//     ServiceMonitor that finds the metrics port.
// Prints one line per object; exits 1 if anything is wrong (every problem is listed), 2 on
// bad usage.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { validate as validateContainer } from "kubernetes-models/_schemas/IoK8sApiCoreV1Container";

const problems = [];
const objects = [];

function problem(object, message) {
  problems.push(`${describe(object)}: ${message}`);
}

function describe(object) {
  return `${object?.kind ?? "?"}/${object?.metadata?.name ?? "?"} (${object?.apiVersion ?? "?"})`;
}

// --- 1. schemas ----------------------------------------------------------------------------

// apiVersion -> module exporting one class per kind (kubernetes-models layout).
function modelModule(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  }
  return `kubernetes-models/${apiVersion}`;  // "v1" is the core group
}

function schemaErrors(error) {
  return String(error?.message ?? error).split("\n").filter((line) => line.trim()).slice(0, 8).join("; ");
}

// Required fields of KServe's CRDs (serving.kserve.io_clusterservingruntimes.yaml and
// serving.kserve.io_inferenceservices.yaml): spec.containers (each a core/v1 Container, name
// required); supportedModelFormats[].name; spec.predictor; predictor.model.modelFormat.name.
const KSERVE_PROTOCOLS = ["v1", "v2", "grpc-v1", "grpc-v2"];

function checkClusterServingRuntime(object) {
  const spec = object.spec;
  if (!spec || typeof spec !== "object") return problem(object, "spec is required");
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) {
    return problem(object, "spec.containers is required (a non-empty list)");
  }
  spec.containers.forEach((container, i) => {
    if (!validateContainer(container)) {
      problem(object, `spec.containers[${i}]: ` + validateContainer.errors
        .map((e) => `${e.instancePath || "/"} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`).join("; "));
    }
  });
  for (const [i, format] of (spec.supportedModelFormats ?? []).entries()) {
    if (typeof format?.name !== "string" || !format.name) {
      problem(object, `spec.supportedModelFormats[${i}].name is required`);
    }
  }
  for (const protocol of spec.protocolVersions ?? []) {
    if (!KSERVE_PROTOCOLS.includes(protocol)) problem(object, `unknown protocolVersion '${protocol}'`);
  }
}

function checkInferenceService(object) {
  const predictor = object.spec?.predictor;
  if (!predictor || typeof predictor !== "object") return problem(object, "spec.predictor is required");
  const model = predictor.model;
  if (model) {
    if (typeof model.modelFormat?.name !== "string" || !model.modelFormat.name) {
      problem(object, "spec.predictor.model.modelFormat.name is required");
    }
    if (model.protocolVersion !== undefined && !KSERVE_PROTOCOLS.includes(model.protocolVersion)) {
      problem(object, `unknown protocolVersion '${model.protocolVersion}'`);
    }
    if (model.storageUri !== undefined && !/^[a-z0-9+.-]+:\/\/\S+$/.test(model.storageUri)) {
      problem(object, `storageUri '${model.storageUri}' is not a URI`);
    }
  } else if (!Array.isArray(predictor.containers)) {
    problem(object, "spec.predictor needs model or containers");
  }
}

async function checkSchema(object) {
  if (!object || typeof object !== "object" || !object.apiVersion || !object.kind) {
    return problem(object, "not a Kubernetes object (apiVersion and kind are required)");
  }
  if (!object.metadata?.name) problem(object, "metadata.name is required");
  if (object.apiVersion === "serving.kserve.io/v1alpha1" && object.kind === "ClusterServingRuntime") {
    return checkClusterServingRuntime(object);
  }
  if (object.apiVersion === "serving.kserve.io/v1beta1" && object.kind === "InferenceService") {
    return checkInferenceService(object);
  }
  let module;
  try {
    module = await import(modelModule(object.apiVersion));
  } catch {
    return problem(object, `unknown apiVersion '${object.apiVersion}'`);
  }
  const Model = module[object.kind];
  if (typeof Model !== "function") return problem(object, `unknown kind '${object.kind}' in ${object.apiVersion}`);
  try {
    new Model(object).validate();
  } catch (error) {
    problem(object, `schema: ${schemaErrors(error)}`);
  }
}

// --- 2. consistency ----------------------------------------------------------------------------

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([key, value]) => labels?.[key] === value);

function flagValue(args, flag) {
  for (const [i, arg] of (args ?? []).entries()) {
    if (arg === flag) return args[i + 1];
    if (arg.startsWith(flag + "=")) return arg.slice(flag.length + 1);
  }
  return undefined;
}

function preStopSeconds(container) {
  const command = container.lifecycle?.preStop?.exec?.command ?? [];
  if (command[0] === "sleep") return Number(command[1]) || 0;
  return Number(container.lifecycle?.preStop?.sleep?.seconds ?? 0);
}

function probePorts(container) {
  return ["startupProbe", "readinessProbe", "livenessProbe"]
    .map((name) => [name, container[name]])
    .filter(([, probe]) => probe)
    .map(([name, probe]) => [name, probe.grpc?.port ?? probe.httpGet?.port ?? probe.tcpSocket?.port]);
}

function checkServerContainer(owner, container, podSecurity, volumes) {
  const ports = container.ports ?? [];
  const declared = (port) => ports.some((p) => p.containerPort === port || p.name === port);
  for (const [name, port] of probePorts(container)) {
    if (port === undefined) problem(owner, `${container.name}: ${name} has no port`);
    else if (!declared(port)) problem(owner, `${container.name}: ${name} probes port ${port}, which the container does not declare`);
  }
  for (const name of ["readinessProbe", "livenessProbe"]) {
    if (!container[name]?.grpc) problem(owner, `${container.name}: ${name} must be a gRPC probe (grpc.health.v1)`);
  }
  const grpcPort = Number(flagValue(container.args, "--grpc-port") ?? 8001);
  if (!declared(grpcPort)) problem(owner, `${container.name}: --grpc-port ${grpcPort} is not a declared containerPort`);
  const security = { ...podSecurity, ...container.securityContext };
  if (security.runAsNonRoot !== true) problem(owner, `${container.name}: runAsNonRoot must be true`);
  if (security.runAsUser === 0) problem(owner, `${container.name}: runAsUser must not be 0`);
  if (container.securityContext?.readOnlyRootFilesystem !== true) {
    problem(owner, `${container.name}: readOnlyRootFilesystem must be true`);
  }
  if (container.securityContext?.allowPrivilegeEscalation !== false) {
    problem(owner, `${container.name}: allowPrivilegeEscalation must be false`);
  }
  // libtorch's loader of AOTInductor packages (.pt2) unpacks them into /tmp (not $TMPDIR) and
  // dlopens their code from there; the root filesystem is read-only.
  const tmp = (container.volumeMounts ?? []).find((mount) => mount.mountPath === "/tmp");
  const tmpVolume = (volumes ?? []).find((volume) => volume.name === tmp?.name);
  if (!tmp || tmp.readOnly || !tmpVolume?.emptyDir) {
    problem(owner, `${container.name}: /tmp must be a writable emptyDir (AOTInductor bricks are unpacked there)`);
  }
}

function checkConsistency() {
  const byKind = (kind) => objects.filter((o) => o?.kind === kind);
  const deployments = byKind("Deployment");
  const podLabels = (d) => d.spec?.template?.metadata?.labels ?? {};
  for (const d of deployments) {
    if (!matches(d.spec?.selector?.matchLabels, podLabels(d))) {
      problem(d, "spec.selector.matchLabels does not match the pod template's labels");
    }
    const pod = d.spec?.template?.spec ?? {};
    for (const container of pod.containers ?? []) {
      checkServerContainer(d, container, pod.securityContext, pod.volumes);
      const drain = Number(flagValue(container.args, "--shutdown-timeout-secs") ?? 30);
      const needed = preStopSeconds(container) + drain;
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      if (!(grace > needed)) {
        problem(d, `terminationGracePeriodSeconds ${grace} is not above preStop + drain (${needed} s): ` +
          "in-flight requests would be killed");
      }
    }
  }
  for (const runtime of byKind("ClusterServingRuntime")) {
    for (const container of runtime.spec?.containers ?? []) {
      checkServerContainer(runtime, container, {}, runtime.spec?.volumes);
      if (flagValue(container.args, "--model-repository") !== "/mnt/models") {
        problem(runtime, `${container.name}: --model-repository must be /mnt/models (KServe's storage initializer)`);
      }
      const grpcPort = Number(flagValue(container.args, "--grpc-port") ?? 8001);
      if (!(container.ports ?? []).some((p) => p.name === "h2c" && p.containerPort === grpcPort)) {
        problem(runtime, `${container.name}: KServe routes gRPC to a port named h2c; none is ${grpcPort}`);
      }
    }
  }
  for (const service of byKind("InferenceService")) {
    const model = service.spec?.predictor?.model;
    if (!model?.runtime) continue;
    const runtime = byKind("ClusterServingRuntime").find((r) => r.metadata?.name === model.runtime);
    if (!runtime) continue;  // rendered apart from its runtime
    const formats = (runtime.spec?.supportedModelFormats ?? []).map((f) => f.name);
    if (!formats.includes(model.modelFormat?.name)) {
      problem(service, `runtime ${model.runtime} does not support model format '${model.modelFormat?.name}'`);
    }
    if (model.protocolVersion && !(runtime.spec?.protocolVersions ?? []).includes(model.protocolVersion)) {
      problem(service, `runtime ${model.runtime} does not speak ${model.protocolVersion}`);
    }
  }
  for (const service of byKind("Service")) {
    const pods = deployments.filter((d) => matches(service.spec?.selector, podLabels(d)));
    if (deployments.length && pods.length === 0) problem(service, "its selector matches no Deployment's pods");
    for (const port of service.spec?.ports ?? []) {
      const target = port.targetPort ?? port.port;
      const found = pods.some((d) => (d.spec.template.spec.containers ?? []).some((c) =>
        (c.ports ?? []).some((p) => p.name === target || p.containerPort === target)));
      if (pods.length && !found) problem(service, `port ${port.name}: targetPort ${target} is not a container port`);
      if (port.name === "grpc" && port.appProtocol !== "kubernetes.io/h2c") {
        problem(service, "port grpc needs appProtocol kubernetes.io/h2c (HTTP/2 without TLS)");
      }
    }
  }
  for (const pdb of byKind("PodDisruptionBudget")) {
    if (deployments.length && !deployments.some((d) => matches(pdb.spec?.selector?.matchLabels, podLabels(d)))) {
      problem(pdb, "its selector matches no Deployment's pods");
    }
  }
  for (const hpa of byKind("HorizontalPodAutoscaler")) {
    const target = hpa.spec?.scaleTargetRef;
    if (!deployments.some((d) => target?.kind === d.kind && target?.name === d.metadata?.name)) {
      problem(hpa, `scaleTargetRef ${target?.kind}/${target?.name} is not a Deployment rendered with it`);
    }
    if ((hpa.spec?.minReplicas ?? 1) > hpa.spec?.maxReplicas) problem(hpa, "minReplicas is above maxReplicas");
    for (const metric of hpa.spec?.metrics ?? []) {
      const name = metric.pods?.metric?.name ?? metric.object?.metric?.name ?? metric.external?.metric?.name;
      if (ADAPTER_METRICS.size && name && !ADAPTER_METRICS.has(name)) {
        problem(hpa, `metric '${name}' is not one that the prometheus-adapter rules serve (${[...ADAPTER_METRICS]})`);
      }
    }
  }
  for (const monitor of byKind("ServiceMonitor")) {
    const services = byKind("Service").filter((s) => matches(monitor.spec?.selector?.matchLabels, s.metadata?.labels));
    if (byKind("Service").length && services.length === 0) problem(monitor, "its selector matches no Service");
    for (const endpoint of monitor.spec?.endpoints ?? []) {
      if (services.length && !services.some((s) => (s.spec?.ports ?? []).some((p) => p.name === endpoint.port))) {
        problem(monitor, `endpoint port '${endpoint.port}' is not a port of the Services it selects`);
      }
    }
  }
}

// Metric names the prometheus-adapter rules serve (name.as), read from the ConfigMap when it
// is among the inputs, or from --adapter-rules FILE.
const ADAPTER_METRICS = new Set();

function readAdapterRules(text, origin) {
  const rules = parseAllDocuments(text)[0]?.toJS()?.rules;
  if (!Array.isArray(rules)) return problems.push(`${origin}: no 'rules' list`);
  for (const [i, rule] of rules.entries()) {
    for (const field of ["seriesQuery", "metricsQuery"]) {
      if (typeof rule?.[field] !== "string") problems.push(`${origin}: rules[${i}].${field} is required`);
    }
    if (rule?.name?.as) ADAPTER_METRICS.add(rule.name.as);
  }
}

// --- main --------------------------------------------------------------------------------------

async function main(argv) {
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--adapter-rules") readAdapterRules(readFileSync(argv[++i], "utf8"), argv[i]);
    else files.push(argv[i]);
  }
  if (files.length === 0) {
    console.error("usage: node validate_manifests.mjs [--adapter-rules CONFIG] RENDERED.yaml...");
    return 2;
  }
  for (const file of files) {
    for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (document.errors.length) {
        problems.push(`${file}: YAML: ${document.errors[0].message}`);
        continue;
      }
      const object = document.toJS();
      if (object === null || object === undefined) continue;
      objects.push(object);
      if (object.kind === "ConfigMap" && typeof object.data?.["config.yaml"] === "string") {
        readAdapterRules(object.data["config.yaml"], describe(object));
      }
    }
  }
  for (const object of objects) {
    const before = problems.length;
    await checkSchema(object);
    if (problems.length === before) console.log(`schema ok: ${describe(object)}`);
  }
  checkConsistency();
  for (const line of problems) console.log(`ERROR ${line}`);
  console.log(`${objects.length} objects, ${problems.length} problems`);
  return problems.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
