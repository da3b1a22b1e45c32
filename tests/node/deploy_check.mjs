// Checks deploy/ without Docker or Kubernetes: parses every manifest in deploy/k8s, the Envoy
// configuration, the Dockerfile, the ConfigMap's textproto and the descriptor set the build
// produces, and asserts that they agree with each other and with the gateway -- ports, probe
// paths, the config file path, Secret keys, labels and selectors, Envoy's clusters and transcoded
// services, the image's user, the runtime packages, and what docs/DEPLOYMENT.md says.
//
//   node tests/node/deploy_check.mjs [--descriptor=build/proto/fhirgw_descriptor.pb]
//
// Run by ctest (deploy_manifests). tests/gateway/config/deploy_config_test.cc checks that the gateway's
// own code accepts the ConfigMap's configuration.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parseDocument, isScalar } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const descriptorArg = process.argv.find((a) => a.startsWith('--descriptor='));
const DESCRIPTOR = descriptorArg
  ? path.resolve(descriptorArg.slice('--descriptor='.length))
  : path.join(ROOT, 'build/proto/fhirgw_descriptor.pb');

const read = (rel) => readFileSync(path.join(ROOT, rel), 'utf8');
const NAME_LABEL = 'app.kubernetes.io/name';
const APP = 'fhirgw';
const NAMESPACE = 'fhirgw';
const CONFIG_KEY = 'fhirgw.textproto';
// The gateway's RSS target under sustained load (issue 6): the memory request must cover it.
const RSS_TARGET_BYTES = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small parsers

// A textproto message as {field: [values]}; nested messages are objects, scalars strings.
export function parseTextproto(text) {
  const tokens = [];
  const re = /\s+|#[^\n]*|"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|([{}[\]<>:;,])|([A-Za-z0-9_.+-]+)/gy;
  let m;
  while (re.lastIndex < text.length) {
    const at = re.lastIndex;
    m = re.exec(text);
    if (!m || m.index !== at) throw new Error(`textproto: cannot read at offset ${at}: ${text.slice(at, at + 20)}`);
    if (m[1] !== undefined || m[2] !== undefined) {
      tokens.push({ kind: 'string', value: JSON.parse(`"${(m[1] ?? m[2]).replace(/\\'/g, "'")}"`) });
    } else if (m[3] !== undefined) tokens.push({ kind: 'punct', value: m[3] });
    else if (m[4] !== undefined) tokens.push({ kind: 'ident', value: m[4] });
  }
  let i = 0;
  const message = (close) => {
    const out = {};
    while (i < tokens.length && !(tokens[i].kind === 'punct' && tokens[i].value === close)) {
      const name = tokens[i++];
      if (name.kind !== 'ident') throw new Error(`textproto: expected a field name, got ${name.value}`);
      let value;
      if (tokens[i]?.value === ':') i++;
      if (tokens[i]?.value === '{' || tokens[i]?.value === '<') {
        const end = tokens[i++].value === '{' ? '}' : '>';
        value = message(end);
        i++;
      } else if (tokens[i]?.kind === 'string') {
        value = '';
        while (tokens[i]?.kind === 'string') value += tokens[i++].value;
      } else if (tokens[i]?.kind === 'ident') {
        value = tokens[i++].value;
      } else {
        throw new Error(`textproto: field ${name.value} has no value`);
      }
      (out[name.value] ??= []).push(value);
      if (tokens[i]?.value === ';' || tokens[i]?.value === ',') i++;
    }
    return out;
  };
  const result = message(undefined);
  if (i !== tokens.length) throw new Error('textproto: unbalanced braces');
  return result;
}

const first = (msg, dotted) => {
  let cur = msg;
  for (const part of dotted.split('.')) {
    if (cur === undefined || typeof cur !== 'object') return undefined;
    cur = cur[part]?.[0];
  }
  return cur;
};

// Every (field path, value) of string fields named *_env or *_file, anywhere in the message.
function fieldsEndingWith(msg, suffix, prefix = '') {
  const out = [];
  for (const [name, values] of Object.entries(msg)) {
    values.forEach((v, k) => {
      const p = `${prefix}${name}${values.length > 1 ? `[${k}]` : ''}`;
      if (typeof v === 'object') out.push(...fieldsEndingWith(v, suffix, `${p}.`));
      else if (name.endsWith(suffix)) out.push([p, v]);
    });
  }
  return out;
}

// protobuf wire format: the fields of one message as [fieldNumber, wireType, value] (value: a
// Buffer for length-delimited fields, a number for varints).
function wireFields(buf) {
  const out = [];
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      if (b === undefined) throw new Error('descriptor: truncated varint');
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const type = key & 7;
    if (type === 0) out.push([field, type, Number(varint())]);
    else if (type === 2) {
      const len = Number(varint());
      out.push([field, type, buf.subarray(pos, pos + len)]);
      pos += len;
    } else if (type === 1) pos += 8;
    else if (type === 5) pos += 4;
    else throw new Error(`descriptor: unsupported wire type ${type}`);
  }
  return out;
}
const strings = (fields, n) => fields.filter(([f, t]) => f === n && t === 2).map(([, , v]) => v.toString('utf8'));
const messages = (fields, n) => fields.filter(([f, t]) => f === n && t === 2).map(([, , v]) => wireFields(v));
const flag = (fields, n) => fields.some(([f, t, v]) => f === n && t === 0 && v !== 0);

// google.protobuf.FileDescriptorSet -> {files, dependencies, services: Map(full name -> methods), messageTypes}
export function decodeDescriptorSet(buf) {
  const files = [];
  const services = new Map();
  const messageTypes = new Set();
  const addMessages = (scope, protos) => {
    for (const m of protos) {
      const full = `${scope}.${strings(m, 1)[0]}`;
      messageTypes.add(full);
      addMessages(full, messages(m, 3));
    }
  };
  for (const file of messages(wireFields(buf), 1)) {
    const name = strings(file, 1)[0];
    const pkg = strings(file, 2)[0] ?? '';
    files.push({ name, package: pkg, dependencies: strings(file, 3) });
    addMessages(pkg ? `.${pkg}` : '', messages(file, 4));
    for (const s of messages(file, 6)) {
      const full = `${pkg}.${strings(s, 1)[0]}`;
      services.set(full, messages(s, 2).map((m) => ({
        name: strings(m, 1)[0],
        input: strings(m, 2)[0],
        output: strings(m, 3)[0],
        clientStreaming: flag(m, 5),
        serverStreaming: flag(m, 6),
      })));
    }
  }
  return { files, services, messageTypes };
}

// The services and rpcs declared in .proto source: Map(full name -> [{name, clientStreaming, serverStreaming}]).
export function servicesInProtoSource(text) {
  const stripped = text.replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
  const pkg = /\bpackage\s+([\w.]+)\s*;/.exec(stripped)?.[1] ?? '';
  const out = new Map();
  const serviceRe = /\bservice\s+(\w+)\s*\{/g;
  let s;
  while ((s = serviceRe.exec(stripped))) {
    let depth = 1;
    let j = serviceRe.lastIndex;
    while (depth > 0 && j < stripped.length) {
      if (stripped[j] === '{') depth++;
      else if (stripped[j] === '}') depth--;
      j++;
    }
    const body = stripped.slice(serviceRe.lastIndex, j - 1);
    const rpcs = [];
    const rpcRe = /\brpc\s+(\w+)\s*\(\s*(stream\s+)?[\w.]+\s*\)\s*returns\s*\(\s*(stream\s+)?[\w.]+\s*\)/g;
    let r;
    while ((r = rpcRe.exec(body))) rpcs.push({ name: r[1], clientStreaming: !!r[2], serverStreaming: !!r[3] });
    out.set(`${pkg}.${s[1]}`, rpcs);
  }
  return out;
}

// A Dockerfile as stages [{from, name, instructions: [{op, args}]}], continuation lines joined.
export function parseDockerfile(text) {
  const lines = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (!pending && /^\s*#/.test(raw)) continue;
    if (/^\s*#/.test(raw)) continue; // comment lines inside a continued instruction
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full) lines.push(full);
  }
  const stages = [];
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+([\s\S]*)$/.exec(line) ?? [];
    assert.ok(op, `Dockerfile: cannot read "${line}"`);
    if (op.toUpperCase() === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ from, name, instructions: [] });
    } else {
      assert.ok(stages.length, `Dockerfile: ${op} before FROM`);
      stages.at(-1).instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

// Kubernetes quantities: "500m" -> 0.5, "256Mi" -> 268435456.
export function quantity(q) {
  const m = /^([0-9.]+)(m|k|M|G|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  assert.ok(m, `not a quantity: ${q}`);
  const scale = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? scale[m[2]] : 1);
}

const hostPort = (address) => {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
};

// ---------------------------------------------------------------------------------------------
// What is checked

const K8S_DIR = 'deploy/k8s';
const objects = []; // {file, obj}
const yamlFiles = readdirSync(path.join(ROOT, K8S_DIR)).filter((f) => /\.ya?ml$/.test(f)).sort();
for (const file of yamlFiles) {
  for (const doc of parseAllDocuments(read(`${K8S_DIR}/${file}`))) {
    if (doc.errors.length) throw new Error(`${K8S_DIR}/${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const obj = doc.toJS();
    if (obj) objects.push({ file, obj });
  }
}
const all = (kind) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
const get = (kind, name) => {
  const found = all(kind).filter((o) => o.metadata?.name === name);
  assert.equal(found.length, 1, `exactly one ${kind} ${name} in ${K8S_DIR}`);
  return found[0];
};

const gatewayDeployment = get('Deployment', 'fhirgw');
const envoyDeployment = get('Deployment', 'fhirgw-envoy');
const gatewayPod = gatewayDeployment.spec.template.spec;
const gatewayContainer = gatewayPod.containers.find((c) => c.name === 'fhirgw');
const envoyPod = envoyDeployment.spec.template.spec;
const envoyContainer = envoyPod.containers.find((c) => c.name === 'envoy');
const configMap = get('ConfigMap', 'fhirgw-config');
const configText = configMap.data[CONFIG_KEY];
const config = parseTextproto(configText);

const dockerStages = parseDockerfile(read('deploy/Dockerfile'));
const buildStage = dockerStages[0];
const runtimeStage = dockerStages.at(-1);
const instr = (stage, op) => stage.instructions.filter((i) => i.op === op);
const entrypoint = JSON.parse(instr(runtimeStage, 'ENTRYPOINT').at(-1).args);
const configFlag = entrypoint.find((a) => a.startsWith('--config='));
const IMAGE_CONFIG_PATH = configFlag?.slice('--config='.length);

const envoy = parseDocument(read('deploy/envoy/envoy.yaml'));
if (envoy.errors.length) throw new Error(`deploy/envoy/envoy.yaml: ${envoy.errors.map((e) => e.message).join('; ')}`);
const envoyConfig = envoy.toJS();
const docs = existsSync(path.join(ROOT, 'docs/DEPLOYMENT.md')) ? read('docs/DEPLOYMENT.md') : '';

const containerPorts = (container) => new Map(container.ports.map((p) => [p.name, p.containerPort]));
const gatewayPorts = containerPorts(gatewayContainer);
const GRPC_PORT = hostPort(first(config, 'listen')).port;
const HTTP_PORT = hostPort(first(config, 'http_listen')).port;
const TLS = first(config, 'security.tls.cert_file') !== undefined;

const resolvePort = (container, port) =>
  typeof port === 'number' ? port : containerPorts(container).get(port);
const selects = (selector, labels) =>
  Object.entries(selector ?? {}).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// ConfigMaps created outside the manifests by a documented `kubectl create configmap NAME
// --from-file=KEY=PATH` (the Envoy configuration): {NAME: {KEY: PATH}}.
const documentedConfigMaps = {};
for (const m of docs.matchAll(/kubectl(?: -n \S+)? create configmap (\S+)((?: --from-file=\S+)+)/g)) {
  const files = {};
  for (const f of m[2].matchAll(/--from-file=(?:([^=\s]+)=)?(\S+)/g)) files[f[1] ?? path.basename(f[2])] = f[2];
  documentedConfigMaps[m[1]] = files;
}

const secretKeys = (name) => {
  const s = get('Secret', name);
  return new Set([...Object.keys(s.stringData ?? {}), ...Object.keys(s.data ?? {})]);
};
const configMapKeys = (name) => {
  const found = all('ConfigMap').find((c) => c.metadata.name === name);
  if (found) return new Set([...Object.keys(found.data ?? {}), ...Object.keys(found.binaryData ?? {})]);
  assert.ok(documentedConfigMaps[name], `ConfigMap ${name} is neither in ${K8S_DIR} nor created by a command in docs/DEPLOYMENT.md`);
  return new Set(Object.keys(documentedConfigMaps[name]));
};

// Where the file `file` seen by `container` of `pod` comes from: throws when nothing provides it.
function resolveFile(pod, container, file, what) {
  const mounts = (container.volumeMounts ?? [])
    .filter((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  assert.ok(mounts.length, `${what}: ${file} is on no volume of container ${container.name}`);
  const mount = mounts[0];
  assert.ok(!mount.subPath, `${what}: subPath mounts are not followed`);
  const rel = file.slice(mount.mountPath.replace(/\/$/, '').length + 1);
  const volume = pod.volumes.find((v) => v.name === mount.name);
  assert.ok(volume, `${what}: volume ${mount.name} is not declared`);
  const fromKeys = (source, keys, label) => {
    let key = rel;
    if (source.items) {
      const item = source.items.find((it) => it.path === rel);
      assert.ok(item, `${what}: ${file}: ${label} volume ${volume.name} projects no item at ${rel}`);
      key = item.key;
    }
    assert.ok(keys.has(key), `${what}: ${file}: ${label} has no key ${key}`);
    return { volume, key, label };
  };
  if (volume.configMap) return fromKeys(volume.configMap, configMapKeys(volume.configMap.name), `ConfigMap ${volume.configMap.name}`);
  if (volume.secret) return fromKeys(volume.secret, secretKeys(volume.secret.secretName), `Secret ${volume.secret.secretName}`);
  if (volume.emptyDir) {
    // Filled by an init container that copies the file there.
    const writer = (pod.initContainers ?? []).find((c) =>
      c.command?.[0] === 'cp' && c.command.at(-1) === file &&
      c.volumeMounts?.some((m) => m.name === volume.name));
    assert.ok(writer, `${what}: ${file} is on emptyDir ${volume.name}, which no init container fills`);
    return { volume, writer, label: `emptyDir ${volume.name}` };
  }
  assert.fail(`${what}: ${file}: volume ${volume.name} has an unsupported type`);
}

// ---------------------------------------------------------------------------------------------

test('every manifest parses, is in the fhirgw namespace and carries the app label', () => {
  assert.ok(objects.length >= 10, `${objects.length} objects in ${K8S_DIR}`);
  for (const { file, obj } of objects) {
    const id = `${file}: ${obj.kind} ${obj.metadata?.name ?? ''}`;
    assert.ok(obj.apiVersion && obj.kind, `${id}: apiVersion and kind`);
    if (obj.kind === 'Kustomization') {
      assert.equal(obj.namespace, NAMESPACE, id);
      continue;
    }
    assert.equal(obj.metadata.labels?.[NAME_LABEL], APP, `${id}: label ${NAME_LABEL}`);
    if (obj.kind !== 'Namespace') assert.equal(obj.metadata.namespace, NAMESPACE, `${id}: namespace`);
  }
  const expected = { Deployment: 2, Service: 3, ConfigMap: 1, Secret: 3, PodDisruptionBudget: 2, HorizontalPodAutoscaler: 1, Namespace: 1 };
  for (const [kind, n] of Object.entries(expected)) assert.equal(all(kind).length, n, `${kind} objects`);
  assert.equal(get('HorizontalPodAutoscaler', 'fhirgw').apiVersion, 'autoscaling/v2');
  assert.equal(get('PodDisruptionBudget', 'fhirgw').apiVersion, 'policy/v1');
});

test('the kustomization applies every manifest except the placeholder Secrets', () => {
  const kustomization = all('Kustomization')[0];
  assert.ok(kustomization, 'kustomization.yaml');
  const listed = new Set(kustomization.resources);
  for (const file of yamlFiles) {
    if (file === 'kustomization.yaml') continue;
    const hasSecret = objects.some((o) => o.file === file && o.obj.kind === 'Secret');
    if (hasSecret) assert.ok(!listed.has(file), `${file} holds placeholder Secrets: kubectl apply -k must not overwrite the real ones`);
    else assert.ok(listed.has(file), `kustomization.yaml does not list ${file}`);
  }
  for (const r of listed) assert.ok(yamlFiles.includes(r), `kustomization.yaml lists a missing ${r}`);
});

test('labels and selectors agree across Deployment, Services, PDB and HPA', () => {
  const gatewayLabels = gatewayDeployment.spec.template.metadata.labels;
  const envoyLabels = envoyDeployment.spec.template.metadata.labels;
  for (const d of [gatewayDeployment, envoyDeployment]) {
    assert.ok(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels), `${d.metadata.name}: selector matches its pods`);
  }
  assert.ok(!selects(gatewayDeployment.spec.selector.matchLabels, envoyLabels), 'the gateway selector must not select Envoy pods');
  assert.ok(!selects(envoyDeployment.spec.selector.matchLabels, gatewayLabels), 'the Envoy selector must not select gateway pods');
  for (const name of ['fhirgw', 'fhirgw-headless']) {
    const svc = get('Service', name);
    assert.ok(selects(svc.spec.selector, gatewayLabels), `Service ${name} selects the gateway pods`);
    assert.ok(!selects(svc.spec.selector, envoyLabels), `Service ${name} must not select Envoy pods`);
  }
  const envoySvc = get('Service', 'fhirgw-envoy');
  assert.ok(selects(envoySvc.spec.selector, envoyLabels) && !selects(envoySvc.spec.selector, gatewayLabels), 'Service fhirgw-envoy selects the Envoy pods only');
  const pdb = get('PodDisruptionBudget', 'fhirgw');
  assert.deepEqual(pdb.spec.selector.matchLabels, gatewayDeployment.spec.selector.matchLabels, 'PDB selector = Deployment selector');
  assert.ok(selects(get('PodDisruptionBudget', 'fhirgw-envoy').spec.selector.matchLabels, envoyLabels), 'Envoy PDB selects the Envoy pods');
  const hpa = get('HorizontalPodAutoscaler', 'fhirgw');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: gatewayDeployment.metadata.name });
});

test('replicas, disruption budget and autoscaler fit together', () => {
  const pdb = get('PodDisruptionBudget', 'fhirgw');
  const hpa = get('HorizontalPodAutoscaler', 'fhirgw');
  assert.equal(gatewayDeployment.spec.replicas, 3);
  assert.equal(pdb.spec.minAvailable, 2);
  assert.ok(hpa.spec.minReplicas > pdb.spec.minAvailable, 'minReplicas above minAvailable, or node drains block');
  assert.ok(hpa.spec.minReplicas <= gatewayDeployment.spec.replicas && gatewayDeployment.spec.replicas <= hpa.spec.maxReplicas);
  const cpu = hpa.spec.metrics.find((m) => m.type === 'Resource' && m.resource.name === 'cpu');
  assert.deepEqual(cpu?.resource.target, { type: 'Utilization', averageUtilization: 70 });
  assert.equal(gatewayDeployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  // Several replicas share nothing but the database: the store must be PostgreSQL.
  assert.ok(first(config, 'store.postgres'), 'replicas > 1 need store { postgres { ... } }');
  assert.ok(!first(config, 'store.sqlite'), 'no SQLite store with several replicas');
});

test('PostgreSQL connections at the autoscaler ceiling are what the docs tell the DBA', () => {
  // gateway/server.cc: a replica pools 8 + the destinations' concurrency (default 4) connections,
  // and the commit thread and the LISTEN connection have their own.
  const destinations = config.destinations ?? [];
  const perReplica = 8 + destinations.reduce((n, d) => n + Number(first(d, 'concurrency') ?? 4), 0) + 2;
  const hpa = get('HorizontalPodAutoscaler', 'fhirgw');
  const pods = hpa.spec.maxReplicas + Number(gatewayDeployment.spec.strategy.rollingUpdate.maxSurge);
  const total = pods * perReplica;
  assert.match(docs, new RegExp(`\\b${perReplica}\\b[^\\n]*per replica|per replica[^\\n]*\\b${perReplica}\\b`), `docs: ${perReplica} connections per replica`);
  assert.match(docs, new RegExp(`\\b${total}\\b`), `docs: ${total} connections at ${pods} pods`);
  assert.match(docs, /max_connections/);
});

test('container ports = Service targetPorts = the textproto listen addresses = Dockerfile EXPOSE', () => {
  assert.deepEqual(Object.fromEntries(gatewayPorts), { grpc: GRPC_PORT, http: HTTP_PORT });
  assert.equal(hostPort(first(config, 'listen')).host, '0.0.0.0', 'listen on every interface of the pod');
  assert.equal(hostPort(first(config, 'http_listen')).host, '0.0.0.0', 'http_listen on every interface of the pod');
  for (const name of ['fhirgw', 'fhirgw-headless']) {
    const svc = get('Service', name);
    const byName = new Map(svc.spec.ports.map((p) => [p.name, p]));
    assert.deepEqual([...byName.keys()].sort(), ['grpc', 'http'], `Service ${name} ports`);
    for (const [portName, p] of byName) {
      assert.equal(resolvePort(gatewayContainer, p.targetPort ?? p.port), gatewayPorts.get(portName), `Service ${name} ${portName} targetPort`);
      assert.equal(p.port, gatewayPorts.get(portName), `Service ${name} ${portName} port`);
    }
  }
  assert.equal(get('Service', 'fhirgw-headless').spec.clusterIP, 'None', 'Envoy resolves the pods through a headless Service');
  const exposed = instr(runtimeStage, 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
  assert.deepEqual(exposed.sort(), [...gatewayPorts.values()].sort(), 'Dockerfile EXPOSE');
});

test('probes: readiness /readyz and liveness /healthz on the HTTP port', () => {
  const scheme = TLS ? 'HTTPS' : 'HTTP';
  const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: '/healthz' };
  for (const [probe, wanted] of Object.entries(probes)) {
    const p = gatewayContainer[probe];
    if (probe === 'startupProbe' && !p) continue;
    assert.ok(p?.httpGet, `${probe} is an httpGet`);
    assert.equal(p.httpGet.path, wanted, `${probe} path`);
    assert.equal(resolvePort(gatewayContainer, p.httpGet.port), HTTP_PORT, `${probe} port`);
    assert.equal(p.httpGet.scheme ?? 'HTTP', scheme, `${probe} scheme (the HTTP listener ${TLS ? 'serves' : 'does not serve'} TLS)`);
  }
});

test('the ConfigMap key is the file the Deployment mounts and the ENTRYPOINT reads', () => {
  assert.ok(IMAGE_CONFIG_PATH, 'ENTRYPOINT passes --config=');
  assert.deepEqual(entrypoint.slice(0, 2), ['/usr/local/bin/fhirgw', 'serve']);
  assert.ok(!gatewayContainer.command, 'the container keeps the image ENTRYPOINT');
  for (const a of gatewayContainer.args ?? []) assert.ok(!a.startsWith('--config='), 'args must not move the config file');
  const source = resolveFile(gatewayPod, gatewayContainer, IMAGE_CONFIG_PATH, 'ENTRYPOINT --config');
  assert.equal(source.label, `ConfigMap ${configMap.metadata.name}`);
  assert.equal(source.key, CONFIG_KEY);
  assert.equal(path.basename(IMAGE_CONFIG_PATH), CONFIG_KEY);
  // tests/gateway/config/deploy_config_test.cc reads the value as a literal block scalar.
  const node = parseAllDocuments(read(`${K8S_DIR}/configmap.yaml`))[0].get('data', true).get(CONFIG_KEY, true);
  assert.ok(isScalar(node) && node.type === 'BLOCK_LITERAL', `${CONFIG_KEY} is written as a literal block (|)`);
});

test('every Secret key, variable and file the configuration refers to exists', () => {
  const env = new Map((gatewayContainer.env ?? []).map((e) => [e.name, e]));
  for (const e of env.values()) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) assert.ok(secretKeys(ref.name).has(ref.key), `env ${e.name}: Secret ${ref.name} has no key ${ref.key}`);
  }
  for (const pod of [gatewayPod, envoyPod]) {
    for (const v of pod.volumes) {
      if (v.secret) {
        const keys = secretKeys(v.secret.secretName);
        for (const it of v.secret.items ?? []) assert.ok(keys.has(it.key), `volume ${v.name}: Secret ${v.secret.secretName} has no key ${it.key}`);
      }
      if (v.configMap) {
        const keys = configMapKeys(v.configMap.name);
        for (const it of v.configMap.items ?? []) assert.ok(keys.has(it.key), `volume ${v.name}: ConfigMap ${v.configMap.name} has no key ${it.key}`);
      }
    }
  }
  const envFields = fieldsEndingWith(config, '_env');
  assert.ok(envFields.some(([p]) => p === 'store.postgres.dsn_env'), 'the DSN comes from the environment');
  for (const [field, name] of envFields) {
    assert.ok(env.has(name), `${field}: "${name}" is not set in the container's env`);
    assert.ok(env.get(name).valueFrom?.secretKeyRef, `${field}: ${name} must come from a Secret`);
  }
  for (const [field, file] of fieldsEndingWith(config, '_file')) {
    const { label } = resolveFile(gatewayPod, gatewayContainer, file, field);
    assert.match(label, /^Secret /, `${field}: ${file} is secret material and must come from a Secret`);
  }
  // Files named inside the DSN (sslrootcert=..., sslcert=..., sslkey=...).
  const dsnRef = env.get(first(config, 'store.postgres.dsn_env')).valueFrom.secretKeyRef;
  const dsn = get('Secret', dsnRef.name).stringData?.[dsnRef.key] ?? '';
  for (const m of dsn.matchAll(/\b(sslrootcert|sslcert|sslkey)=(\S+)/g)) resolveFile(gatewayPod, gatewayContainer, m[2], `DSN ${m[1]}`);
});

test('the pods run as non-root with a read-only root filesystem, as the image does', () => {
  const user = instr(runtimeStage, 'USER').at(-1)?.args;
  assert.ok(user, 'the runtime stage sets USER');
  const uid = Number(user.split(':')[0]);
  assert.ok(Number.isInteger(uid) && uid > 0, `USER ${user} must be a numeric non-root uid (runAsNonRoot checks it)`);
  assert.equal(uid, 10001);
  assert.match(instr(runtimeStage, 'RUN').map((i) => i.args).join('\n'), new RegExp(`useradd[^\\n]*--uid ${uid}\\b`), 'the image creates the user');
  assert.equal(gatewayPod.securityContext.runAsUser, uid, 'runAsUser = the image USER');
  for (const [pod, container] of [[gatewayPod, gatewayContainer], [envoyPod, envoyContainer]]) {
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.equal(pod.securityContext.seccompProfile?.type, 'RuntimeDefault');
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation`);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${c.name}: capabilities`);
    }
    assert.equal(pod.automountServiceAccountToken, false, `${container.name}: no API token in the pod`);
  }
  // With a read-only root, the gateway writes only to mounted volumes.
  const mountedAt = (dir) => gatewayContainer.volumeMounts.find((m) => m.mountPath === dir);
  const dataDir = first(config, 'data_dir');
  for (const dir of [dataDir, '/tmp']) {
    const m = mountedAt(dir);
    assert.ok(m && !m.readOnly, `${dir} is a writable volume`);
    const v = gatewayPod.volumes.find((x) => x.name === m.name);
    assert.ok(v.emptyDir || v.persistentVolumeClaim, `${dir}: emptyDir or PVC`);
  }
});

test('draining: the grace period covers preStop and the drain timeout', () => {
  const drainMs = Number(first(config, 'drain_timeout_ms') ?? 10000);
  const preStop = gatewayContainer.lifecycle?.preStop?.exec?.command;
  assert.deepEqual(preStop?.slice(0, 1), ['sleep'], 'preStop sleeps');
  const sleepS = Number(preStop[1]);
  assert.ok(sleepS >= 3, 'preStop gives Envoy and kube-proxy time to drop the pod');
  assert.ok(gatewayPod.terminationGracePeriodSeconds * 1000 > sleepS * 1000 + drainMs,
    `terminationGracePeriodSeconds ${gatewayPod.terminationGracePeriodSeconds}s <= preStop ${sleepS}s + drain ${drainMs}ms`);
});

test('resources: requests and limits cover the gateway\'s RSS target', () => {
  const { requests, limits } = gatewayContainer.resources;
  for (const r of ['cpu', 'memory']) assert.ok(requests?.[r], `requests.${r}`);
  assert.ok(limits?.memory, 'limits.memory');
  assert.ok(quantity(requests.memory) >= RSS_TARGET_BYTES, 'the memory request covers RSS under load (256 MB)');
  assert.ok(quantity(limits.memory) >= quantity(requests.memory));
  if (limits.cpu) assert.ok(quantity(limits.cpu) >= quantity(requests.cpu));
  for (const c of envoyPod.containers) assert.ok(c.resources?.requests && c.resources?.limits?.memory, `${c.name}: resources`);
});

// ---------------------------------------------------------------------------------------------
// Envoy

const hcm = envoyConfig.static_resources.listeners.flatMap((l) => l.filter_chains.flatMap((fc) => fc.filters))
  .find((f) => f.name === 'envoy.filters.network.http_connection_manager').typed_config;
const transcoder = hcm.http_filters.find((f) => f.name === 'envoy.filters.http.grpc_json_transcoder')?.typed_config;
const routes = hcm.route_config.virtual_hosts.flatMap((vh) => vh.routes);
const clusters = new Map(envoyConfig.static_resources.clusters.map((c) => [c.name, c]));

const routeFor = (p) => routes.find(({ match }) =>
  (match.path !== undefined && p === match.path) ||
  (match.prefix !== undefined && p.startsWith(match.prefix)) ||
  (match.path_separated_prefix !== undefined && (p === match.path_separated_prefix || p.startsWith(`${match.path_separated_prefix}/`))));

const clusterEndpoint = (cluster) => {
  const addresses = cluster.load_assignment.endpoints.flatMap((e) => e.lb_endpoints).map((e) => e.endpoint.address.socket_address);
  assert.equal(addresses.length, 1, `cluster ${cluster.name}: one address`);
  return addresses[0];
};

let descriptor;
const loadDescriptor = () => {
  assert.ok(existsSync(DESCRIPTOR), `${DESCRIPTOR} is missing: build the fhirgw_descriptor_set target`);
  descriptor ??= decodeDescriptorSet(readFileSync(DESCRIPTOR));
  return descriptor;
};

test('the descriptor set holds the services of proto/fhirgw/v1 with every import', () => {
  const d = loadDescriptor();
  const names = new Set(d.files.map((f) => f.name));
  for (const f of d.files) {
    for (const dep of f.dependencies) assert.ok(names.has(dep), `${f.name} imports ${dep}, which is not in the set (--include_imports)`);
  }
  const fromSource = new Map();
  const protoDir = 'proto/fhirgw/v1';
  for (const f of readdirSync(path.join(ROOT, protoDir)).filter((x) => x.endsWith('.proto'))) {
    for (const [s, rpcs] of servicesInProtoSource(read(`${protoDir}/${f}`))) fromSource.set(s, rpcs);
  }
  assert.ok(fromSource.has('fhirgw.v1.ClinicGateway') && fromSource.has('fhirgw.v1.AuditService'));
  for (const [s, rpcs] of fromSource) {
    const built = d.services.get(s);
    assert.ok(built, `${s} is not in the descriptor set (stale build?)`);
    assert.deepEqual(built.map(({ name, clientStreaming, serverStreaming }) => ({ name, clientStreaming, serverStreaming })), rpcs, `${s}: methods`);
    for (const m of built) {
      assert.ok(d.messageTypes.has(m.input) && d.messageTypes.has(m.output), `${s}.${m.name}: ${m.input} -> ${m.output} resolve`);
    }
  }
});

test('Envoy transcodes ClinicGateway and AuditService from the descriptor set', () => {
  assert.ok(transcoder, 'the grpc_json_transcoder filter');
  assert.equal(transcoder['@type'], 'type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder');
  assert.equal(transcoder.auto_mapping, true, 'auto_mapping: POST /<package>.<Service>/<Method> with JSON');
  assert.equal(typeof transcoder.print_options, 'object');
  const names = hcm.http_filters.map((f) => f.name);
  assert.equal(names.at(-1), 'envoy.filters.http.router', 'the router filter is last');
  const d = loadDescriptor();
  assert.deepEqual([...transcoder.services].sort(), ['fhirgw.v1.AuditService', 'fhirgw.v1.ClinicGateway']);
  for (const s of transcoder.services) assert.ok(d.services.has(s), `${s} is not in the descriptor set`);
  // The descriptor reaches Envoy: an init container copies it from the gateway image.
  const file = transcoder.proto_descriptor;
  assert.equal(path.basename(file), path.basename(DESCRIPTOR), 'Envoy loads the file the build produces');
  const { writer } = resolveFile(envoyPod, envoyContainer, file, 'proto_descriptor');
  assert.ok(writer, 'the descriptor is copied by an init container');
  assert.equal(writer.image, gatewayContainer.image, 'the descriptor comes from the gateway image Envoy fronts');
  const copied = instr(runtimeStage, 'COPY').map((i) => i.args.split(/\s+/)).find((a) => a.at(-1) === writer.command[1]);
  assert.ok(copied && copied.some((a) => a.endsWith(`/${path.basename(DESCRIPTOR)}`)) && copied[0] === '--from=build',
    `the image holds the descriptor at ${writer.command[1]}`);
  assert.match(instr(buildStage, 'RUN').map((i) => i.args).join('\n'), /--target[^\n]*fhirgw_descriptor_set/, 'the build stage builds the descriptor set');
});

test('Envoy routes gRPC methods to the gRPC port and /fhir, /healthz, /readyz to the HTTP port', () => {
  const d = loadDescriptor();
  const headless = get('Service', 'fhirgw-headless');
  const checkCluster = (name, port) => {
    const c = clusters.get(name);
    assert.ok(c, `cluster ${name}`);
    const { address, port_value: portValue } = clusterEndpoint(c);
    assert.equal(address, `${headless.metadata.name}.${headless.metadata.namespace}.svc.cluster.local`, `cluster ${name}: the headless Service`);
    assert.equal(c.type, 'STRICT_DNS', `cluster ${name}: every pod address`);
    const svcPort = headless.spec.ports.find((p) => p.port === portValue);
    assert.ok(svcPort, `cluster ${name}: port ${portValue} is a port of Service ${headless.metadata.name}`);
    assert.equal(portValue, resolvePort(gatewayContainer, svcPort.targetPort), `cluster ${name}: pod addresses need the targetPort`);
    assert.equal(portValue, port, `cluster ${name}: port`);
    if (TLS) {
      const ts = c.transport_socket?.typed_config;
      assert.equal(ts?.['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', `cluster ${name}: TLS to the gateway`);
      const sni = ts.sni;
      const [svcName, svcNs] = sni.split('.');
      assert.ok(get('Service', svcName) && svcNs === NAMESPACE, `cluster ${name}: SNI ${sni} names a Service`);
      const sans = ts.common_tls_context.validation_context.match_typed_subject_alt_names.map((m) => m.matcher.exact);
      assert.deepEqual(sans, [sni]);
      const ca = ts.common_tls_context.validation_context.trusted_ca.filename;
      const src = resolveFile(envoyPod, envoyContainer, ca, `cluster ${name} trusted_ca`);
      assert.equal(src.label, 'Secret fhirgw-tls', 'the CA of the gateway certificate');
      assert.equal(src.key, 'ca.crt');
    }
    return c;
  };
  const grpc = new Set();
  for (const [service, methods] of d.services) {
    if (!transcoder.services.includes(service)) continue;
    for (const m of methods) {
      const p = `/${service}/${m.name}`;
      const r = routeFor(p);
      assert.ok(r, `no route for ${p}`);
      grpc.add(r.route.cluster);
      const c = checkCluster(r.route.cluster, GRPC_PORT);
      assert.ok(c.typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']?.explicit_http_config?.http2_protocol_options,
        `cluster ${c.name}: HTTP/2 for gRPC`);
      if (m.serverStreaming || m.clientStreaming) assert.equal(r.route.timeout, '0s', `${p} streams: no route timeout`);
    }
  }
  assert.equal(grpc.size, 1, 'one gRPC cluster');
  for (const p of ['/fhir', '/fhir/MedicationRequest', '/healthz', '/readyz']) {
    const r = routeFor(p);
    assert.ok(r, `no route for ${p}`);
    checkCluster(r.route.cluster, HTTP_PORT);
  }
  assert.equal(routeFor('/metrics'), undefined, '/metrics stays inside the cluster');
  assert.equal(envoyConfig.admin.address.socket_address.address, '127.0.0.1', 'the admin interface only on loopback');
});

test('the Envoy pod mounts its configuration and certificates, and its Service reaches the listener', () => {
  const args = envoyContainer.args;
  const configPath = args[args.indexOf('-c') + 1];
  const src = resolveFile(envoyPod, envoyContainer, configPath, 'envoy -c');
  assert.equal(documentedConfigMaps[src.volume.configMap.name]?.[src.key], 'deploy/envoy/envoy.yaml', 'the ConfigMap is made from deploy/envoy/envoy.yaml');
  assert.ok(existsSync(path.join(ROOT, 'deploy/envoy/envoy.yaml')));
  const files = [];
  const walk = (x) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) {
        if (k === 'filename' && typeof v === 'string') files.push(v);
        else walk(v);
      }
    }
  };
  walk(envoyConfig);
  assert.ok(files.length >= 4);
  for (const f of files) resolveFile(envoyPod, envoyContainer, f, `envoy.yaml ${f}`);
  const listenerPorts = envoyConfig.static_resources.listeners.map((l) => l.address.socket_address.port_value);
  const envoyPorts = [...containerPorts(envoyContainer).values()];
  assert.deepEqual(listenerPorts, envoyPorts, 'Envoy listeners = container ports');
  const svc = get('Service', 'fhirgw-envoy');
  for (const p of svc.spec.ports) assert.ok(envoyPorts.includes(resolvePort(envoyContainer, p.targetPort)), `Service fhirgw-envoy ${p.name}`);
  for (const probe of ['readinessProbe', 'livenessProbe']) {
    assert.ok(envoyPorts.includes(resolvePort(envoyContainer, envoyContainer[probe].tcpSocket.port)), `envoy ${probe}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Dockerfile

// Debian 12 packages: a build dependency in scripts/deps.sh -> what the runtime image needs.
const RUNTIME_OF = {
  'libgrpc++-dev': ['libgrpc++1.51', 'libgrpc29'],
  'libprotobuf-dev': ['libprotobuf32'],
  'libabsl-dev': ['libabsl20220623'],
  'libsqlite3-dev': ['libsqlite3-0'],
  'libcurl4-openssl-dev': ['libcurl4'],
  'libssl-dev': ['libssl3'],
  'libcpp-httplib-dev': ['libcpp-httplib0.11'],
  'libpq-dev': ['libpq5'],
  'rapidjson-dev': [], // header-only
  cmake: [], 'ninja-build': [], 'g++': [], 'pkg-config': [], ccache: [],
  'protobuf-compiler': [], 'protobuf-compiler-grpc': [],
};
// CMake find_package / pkg_check_modules -> the Debian package of scripts/deps.sh that provides it.
const DEB_OF = {
  Threads: null, Protobuf: 'libprotobuf-dev', gRPC: 'libgrpc++-dev', absl: 'libabsl-dev',
  RapidJSON: 'rapidjson-dev', SQLite3: 'libsqlite3-dev', CURL: 'libcurl4-openssl-dev',
  OpenSSL: 'libssl-dev', PostgreSQL: 'libpq-dev', PkgConfig: 'pkg-config', 'cpp-httplib': 'libcpp-httplib-dev',
};

const depsPackages = () => {
  const m = /^packages=\(([\s\S]*?)\)/m.exec(read('scripts/deps.sh'));
  assert.ok(m, 'scripts/deps.sh: packages=(...)');
  return m[1].replace(/#[^\n]*/g, '').split(/\s+/).filter(Boolean);
};
// The source directories the top-level CMakeLists.txt adds outside its tests block.
const sourceDirs = () => read('CMakeLists.txt').replace(/if\(FHIRGW_BUILD_TESTS\)[\s\S]*?endif\(\)/g, '')
  .split('\n').filter((l) => !l.trim().startsWith('#'))
  .join('\n').match(/add_subdirectory\((\w+)\)/g).map((s) => s.slice('add_subdirectory('.length, -1));

test('Dockerfile: Debian 12 stages, the packages of scripts/deps.sh, a Release build of fhirgw', () => {
  assert.equal(buildStage.from, 'debian:12');
  assert.equal(runtimeStage.from, 'debian:12-slim');
  assert.notEqual(buildStage, runtimeStage);
  const buildRuns = instr(buildStage, 'RUN').map((i) => i.args).join('\n');
  assert.match(buildRuns, /(^|\s)scripts\/deps\.sh(\s|&|$)/, 'the build stage installs with scripts/deps.sh');
  assert.doesNotMatch(buildRuns, /deps\.sh\s+--test/, 'without the test packages');
  assert.match(buildRuns, /-G Ninja/);
  assert.match(buildRuns, /-DCMAKE_BUILD_TYPE=Release/);
  assert.match(buildRuns, /--target[^\n&]*\bfhirgw\b/);
  const binary = instr(runtimeStage, 'COPY').map((i) => i.args.split(/\s+/)).find((a) => a.at(-1) === entrypoint[0]);
  assert.ok(binary && binary[0] === '--from=build' && binary[1].endsWith('/gateway/fhirgw'), 'the runtime stage copies the built binary to the ENTRYPOINT path');
});

test('Dockerfile: the runtime stage installs the runtime package of every library deps.sh builds with', () => {
  const install = instr(runtimeStage, 'RUN').map((i) => i.args).join(' && ').split('&&')
    .filter((c) => /apt-get\s+install/.test(c))
    .flatMap((c) => c.replace(/^[\s\S]*?apt-get\s+install/, '').split(/\s+/).filter((w) => w && !w.startsWith('-')));
  const runtime = new Set(install);
  for (const pkg of depsPackages()) {
    assert.ok(pkg in RUNTIME_OF, `scripts/deps.sh installs ${pkg}: add its runtime package to deploy/Dockerfile and to RUNTIME_OF here`);
    for (const r of RUNTIME_OF[pkg]) assert.ok(runtime.has(r), `the runtime stage lacks ${r} (for ${pkg})`);
  }
  for (const r of ['libgrpc++1.51', 'libprotobuf32', 'libsqlite3-0', 'libcurl4', 'libssl3', 'libcpp-httplib0.11', 'libpq5', 'libabsl20220623', 'ca-certificates']) {
    assert.ok(runtime.has(r), `the runtime stage installs ${r}`);
  }
  for (const r of runtime) assert.doesNotMatch(r, /-dev$/, `no development package in the runtime image: ${r}`);
});

test('scripts/deps.sh installs every library the gateway\'s CMake files look for (the image builds with it)', () => {
  const deps = new Set(depsPackages());
  for (const dir of ['.', ...sourceDirs()]) {
    const text = read(path.join(dir, 'CMakeLists.txt'));
    const wanted = [...text.matchAll(/find_package\((\w+)/g)].map((m) => m[1])
      .concat([...text.matchAll(/pkg_check_modules\(\w+[^)]*?IMPORTED_TARGET\s+([\w.+-]+)/g)].map((m) => m[1]));
    for (const w of wanted) {
      if (w === 'GTest' || w === 'benchmark') continue;
      assert.ok(w in DEB_OF, `${dir}/CMakeLists.txt looks for ${w}: add its Debian package to DEB_OF here`);
      if (DEB_OF[w]) assert.ok(deps.has(DEB_OF[w]), `${dir}/CMakeLists.txt needs ${w}, but scripts/deps.sh does not install ${DEB_OF[w]}`);
    }
  }
});

test('Dockerfile.dockerignore lets in every source directory the build needs', () => {
  const ignore = read('deploy/Dockerfile.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*', 'an allowlist');
  const allowed = new Set(ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')));
  for (const f of ['CMakeLists.txt', 'scripts/deps.sh', ...sourceDirs()]) {
    assert.ok(allowed.has(f), `deploy/Dockerfile.dockerignore must let ${f} into the build context`);
    assert.ok(existsSync(path.join(ROOT, f)), f);
  }
});

// ---------------------------------------------------------------------------------------------
// The guide

test('docs/DEPLOYMENT.md describes these files', () => {
  assert.ok(docs, 'docs/DEPLOYMENT.md');
  const needles = [
    transcoder.proto_descriptor, // where Envoy reads the descriptor
    `build/proto/${path.basename(DESCRIPTOR)}`, // what scripts/build.sh produces
    '/usr/share/fhirgw/fhirgw_descriptor.pb',
    'docker build -f deploy/Dockerfile',
    '/fhirgw.v1.ClinicGateway/Push',
    IMAGE_CONFIG_PATH,
    '/readyz', '/healthz',
    'minAvailable',
    'FHIRGW_PG_DSN',
  ];
  for (const n of needles) assert.ok(docs.includes(n), `docs/DEPLOYMENT.md does not mention ${n}`);
  assert.match(docs, /```[\s\S]*(clinic|Clinic)[\s\S]*Envoy[\s\S]*PostgreSQL[\s\S]*```/, 'an architecture picture');
});
