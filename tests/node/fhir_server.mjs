#!/usr/bin/env node
// Loopback FHIR R4 test server ("test EHR") for fhirgw's integration tests and benchmarks.
//
// USAGE
//   node tests/node/fhir_server.mjs [--port=0] [--host=127.0.0.1] [--verbose]
//     --port=N    TCP port; 0 (default) picks a free one.
//     --host=H    Address to listen on (default 127.0.0.1).
//     --verbose   Log every request to stderr.
//   When ready it prints exactly one line to stdout:   listening on 127.0.0.1:PORT
//   Everything else goes to stderr. SIGTERM/SIGINT exit with status 0. Startup takes ~1 s
//   (the R4 definitions are loaded once).
//
// FHIR BASE URL:  http://127.0.0.1:PORT/fhir
//   Served by @medplum/fhir-router's FhirRouter over an in-memory repository (a subclass of its
//   MemoryRepository, see server/repository.mjs): POST base (transaction/batch Bundles, with
//   request.ifNoneExist conditional create, `PUT Type?identifier=sys|val` conditional update,
//   `DELETE Type?identifier=...` conditional delete, urn:uuid references between entries),
//   POST /Type (If-None-Exist header honoured), PUT /Type/id, PUT /Type?search, PATCH (JSON Patch),
//   GET /Type/id, GET /Type/id/_history[/vid], GET /Type?search, DELETE /Type/id, DELETE /Type?search,
//   GET /metadata. Requests may be application/fhir+json or application/json; responses are
//   application/fhir+json. meta.versionId counts 1, 2, 3...; Location/ETag/Last-Modified are set.
//   Prefer: return=minimal | return=OperationOutcome are honoured.
//   Transactions are atomic: if any entry fails (invalid, 404, 412 multiple matches...) nothing is
//   stored and the answer is that entry's status with an OperationOutcome whose diagnostics start
//   with "Bundle.entry[i]".
//   Every incoming resource (each transaction/batch entry too, after urn:uuid references have been
//   resolved to Type/id) is validated against the R4 base definitions (Medplum validateResource plus
//   required code bindings, see server/validation.mjs); invalid -> 400 OperationOutcome whose issues
//   carry the validator's message (details.text and diagnostics) and path (expression).
//   identifier=system|value searches match exactly (case-sensitive); unknown search parameters
//   (in searches and in conditional URLs/ifNoneExist) -> 400, as EHRs do; a create ignores a client
//   id; reading a deleted resource -> 410.
//
// MEDPLUM 4.5.2 GAPS WORKED AROUND HERE (see server/repository.mjs and server/validation.mjs)
//   - Its transaction mode needs FhirRequest.config.transactions=true, refuses transactions that
//     have conditional entries and more than 8 entries (or > 50 updates), and MemoryRepository
//     cannot roll back. Transactions therefore run through processBatch() in batch mode inside an
//     undo journal, and are rolled back when any entry fails.
//   - MemoryRepository versionIds are random UUIDs; here they count 1, 2, 3.
//   - validateResource() ignores terminology: Observation.status "bogus" passes; required code
//     bindings are checked here.
//   - Searches scan every stored resource; identifier searches use an index here.
//
// FAULTS apply to every request that is not /$admin/ (in arrival order, after its body was read).
//
// TEST-CONTROL API (JSON in/out, not FHIR; never subject to faults; not counted in stats)
//   GET  /$admin/health    -> 200 {"status":"ok"}
//   POST /$admin/fault     body: one fault or an array of faults (run one after the other);
//                          replaces the current faults. Applies to the next FHIR requests:
//     {"mode":"status","status":503,"count":N}  answer with that status + OperationOutcome
//                          (429 gets "Retry-After: 1" unless "retryAfter" is given; "retryAfter"
//                          is sent with any status when given)
//     {"mode":"drop","count":N}       read the request, then reset the TCP connection (no answer);
//                          "reset":false closes it with FIN instead of RST
//     {"mode":"delay","ms":M,"count":N}  wait M ms, then process normally
//     {"mode":"reject","count":N}     400 OperationOutcome, issue code "invalid", diagnostics naming
//                          an element (optional "element", "diagnostics", "status")
//     {"mode":"none"}                 clear all faults (also DELETE /$admin/fault)
//     count defaults to 1; -1 means until cleared. "skip":K lets K requests through first.
//   GET  /$admin/fault     -> {"faults":[...remaining...]}
//   GET  /$admin/stats     -> {"requests":n,"byMethod":{"POST":n},"byStatus":{"200":n},"dropped":n,
//                              "transactions":n,"transactionsCommitted":n,"transactionsFailed":n,
//                              "batches":n,"bundleEntries":n,"validationFailures":n,
//                              "faultsInjected":n,"faultsByMode":{...},"resources":{"Patient":n},...}
//   GET  /$admin/count?type=Observation&identifier=system|value -> {"count":n}
//                          stored (current, not deleted) resources; any other FHIR search
//                          parameters may be added (except "type", which names the resource
//                          type); ?type=Patient alone counts all Patients.
//                          &details=true adds "resources":[{"id","versionId"}].
//   GET  /$admin/resources?type=Observation[&search params] -> {"count":n,"resources":[...]}
//   POST /$admin/reset     empties the repository, stats, request log and faults -> {"ok":true}
//   GET  /$admin/requests  -> {"requests":[{"method","url","status","time","ms","fault"?,
//                              "bundle"?:{"type","entries"},"headers"}...]}  last 200 FHIR requests,
//                              oldest first (?limit=N for the last N); status is "dropped" for
//                              dropped connections.
//   (The path may also be written /%24admin/...)
//
// Anything else: unknown paths -> 404 OperationOutcome; malformed JSON -> 400 OperationOutcome;
// bodies over 20 MB -> 413; keep-alive connections are kept for 120 s idle.
import http from 'node:http';
import { parseArgs } from 'node:util';
import {
  OperationOutcomeError,
  allOk,
  getSearchParameter,
  getStatus,
  isOk,
  normalizeOperationOutcome,
  parseSearchRequest,
} from '@medplum/core';
import { FhirRouter, processBatch } from '@medplum/fhir-router';
import { EhrRepository } from './server/repository.mjs';
import { loadDefinitions, resolvePlaceholders, resourceTypes, validate } from './server/validation.mjs';

// Keep stdout for the single "listening on" line.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const MAX_BODY_BYTES = 20 * 1024 * 1024;
const REQUEST_LOG_SIZE = 200;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const PLACEHOLDER = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// --- command line ------------------------------------------------------------------------------

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      verbose: { type: 'boolean', short: 'v', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  console.error(`fhir_server: ${err.message}`);
  process.exit(2);
}
if (args.help) {
  console.error('usage: node tests/node/fhir_server.mjs [--port=0] [--host=127.0.0.1] [--verbose]');
  process.exit(0);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`fhir_server: bad --port ${args.port}`);
  process.exit(2);
}
const verbose = args.verbose;

// --- state -------------------------------------------------------------------------------------

const definitionsMs = loadDefinitions();
const router = new FhirRouter();
const repo = new EhrRepository({
  validatePatched: (resource) => {
    const issues = validate(resource);
    if (issues.length) {
      stats.validationFailures++;
      throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: issues });
    }
  },
});

function newStats() {
  return {
    requests: 0,
    byMethod: {},
    byStatus: {},
    dropped: 0,
    transactions: 0,
    transactionsCommitted: 0,
    transactionsFailed: 0,
    batches: 0,
    bundleEntries: 0,
    validationFailures: 0,
    faultsInjected: 0,
    faultsByMode: {},
    since: new Date().toISOString(),
  };
}
let stats = newStats();
let requestLog = [];
/** Queue of active faults; the first one with count != 0 applies. */
let faults = [];

/** Runs fn after every previously queued fn has finished: one FHIR interaction at a time. */
let tail = Promise.resolve();
function serialized(fn) {
  const run = tail.then(fn);
  tail = run.then(
    () => undefined,
    () => undefined
  );
  return run;
}

// --- helpers -----------------------------------------------------------------------------------

function outcome(status, code, diagnostics, expression) {
  const issue = { severity: status >= 500 ? 'fatal' : 'error', code, diagnostics };
  if (expression) {
    issue.expression = [expression];
  }
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function bump(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

function sendJson(res, status, body, headers = {}, contentType = 'application/json') {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Returns a copy of an OperationOutcome with issue.diagnostics filled from details.text (Medplum
 * only sets details). Copies, because Medplum's outcomes (allOk, notFound...) are shared constants. */
function withDiagnostics(oo) {
  if (!oo?.issue?.some((i) => i.diagnostics === undefined && i.details?.text)) {
    return oo;
  }
  return { ...oo, issue: oo.issue.map((i) => (i.diagnostics === undefined && i.details?.text ? { ...i, diagnostics: i.details.text } : i)) };
}

/** Sends a FHIR response and records it in the stats/request log. */
function sendFhir(ctx, status, body, headers = {}) {
  if (body?.resourceType === 'OperationOutcome') {
    body = withDiagnostics(body);
  } else if (body?.resourceType === 'Bundle' && body.type?.endsWith('-response')) {
    for (const e of body.entry ?? []) {
      if (e?.response?.outcome) {
        e.response.outcome = withDiagnostics(e.response.outcome);
      }
    }
  }
  ctx.rec.status = status;
  bump(stats.byStatus, String(status));
  sendJson(ctx.res, status, body, headers, FHIR_JSON);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        if (!tooLarge) {
          tooLarge = true;
          reject(Object.assign(new Error('Request body too large'), { tooLarge: true }));
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function preferReturn(req) {
  const m = /return=(minimal|representation|OperationOutcome)/i.exec(req.headers.prefer ?? '');
  return m ? m[1].toLowerCase() : 'representation';
}

function versionHeaders(base, resource) {
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
  }
  if (resource?.meta?.lastUpdated) {
    headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (resource?.id && resource.meta?.versionId) {
    headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  return headers;
}

/**
 * Checks the search parameters of "Type?query" (a search, or the condition of a conditional
 * interaction): Medplum's in-memory matcher silently ignores unknown parameters (so a typo would
 * match everything or nothing), whereas EHRs answer 400.
 * @returns {string|undefined} An error message, or undefined when the search is acceptable.
 */
function searchError(url) {
  let sr;
  try {
    sr = parseSearchRequest(url);
  } catch (err) {
    const oo = normalizeOperationOutcome(err);
    return oo.issue?.[0]?.details?.text ?? oo.issue?.[0]?.diagnostics ?? 'Invalid search';
  }
  for (const f of sr.filters ?? []) {
    if (f.code.includes(':') || f.code.includes('.')) {
      continue; // chained/typed parameters: left to Medplum
    }
    if (!getSearchParameter(sr.resourceType, f.code)) {
      return `Unknown search parameter "${f.code}" for ${sr.resourceType}`;
    }
  }
  return undefined;
}

function prefixIssues(issues, prefix) {
  return issues.map((i) => ({
    ...i,
    diagnostics: `${prefix}: ${i.diagnostics ?? i.details?.text ?? ''}`,
  }));
}

// --- FHIR --------------------------------------------------------------------------------------

function capabilityStatement() {
  const interaction = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'fhirgw loopback test EHR (Medplum fhir-router 4.5.2)' },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        resource: resourceTypes().map((type) => ({
          type,
          interaction: interaction.map((code) => ({ code })),
          versioning: 'versioned',
          conditionalCreate: true,
          conditionalUpdate: true,
          conditionalDelete: 'single',
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

/**
 * Returns { status, outcome } for the first entry of a transaction that did not succeed, if any.
 */
function firstFailedEntry(entries, resultEntries) {
  for (let i = 0; i < entries.length; i++) {
    const status = parseInt(resultEntries[i]?.response?.status ?? '500', 10);
    if (status >= 200 && status < 300) {
      continue;
    }
    const oo = resultEntries[i]?.response?.outcome ?? outcome(500, 'exception', 'Entry was not processed');
    const issues = (oo.issue ?? []).map((x) => ({
      ...x,
      diagnostics: `Bundle.entry[${i}] (${entries[i]?.request?.method} ${entries[i]?.request?.url}): ${x.diagnostics ?? x.details?.text ?? ''}`,
    }));
    // Medplum answers 400 when a conditional URL matches several resources; FHIR says 412.
    const multiple = issues.some((x) => /matched multiple resources/.test(x.details?.text ?? ''));
    return {
      status: multiple ? 412 : status >= 400 ? status : 400,
      outcome: { resourceType: 'OperationOutcome', issue: issues },
    };
  }
  return undefined;
}

/**
 * Transaction or batch Bundle posted to the base. Each entry is validated first; transactions are
 * run by Medplum's batch processor in "batch" mode inside our undo journal (Medplum's own
 * transaction mode refuses transactions with conditional entries and more than 8 entries, and
 * MemoryRepository cannot roll back), and rolled back if any entry failed.
 */
async function postBundle(ctx, bundle) {
  const { base } = ctx;
  if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
    return sendFhir(ctx, 400, outcome(400, 'invalid', `POST to the base requires a transaction or batch Bundle, got type "${bundle.type}"`, 'Bundle.type'));
  }
  const isTransaction = bundle.type === 'transaction';
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  ctx.rec.bundle = { type: bundle.type, entries: entries.length };
  if (isTransaction) {
    stats.transactions++;
  } else {
    stats.batches++;
  }
  stats.bundleEntries += entries.length;
  const fail = (status, oo) => {
    if (isTransaction) {
      stats.transactionsFailed++;
    }
    return sendFhir(ctx, status, oo);
  };
  if (!entries.length) {
    if (isTransaction) {
      stats.transactionsCommitted++;
    }
    return sendFhir(ctx, 200, { resourceType: 'Bundle', type: `${bundle.type}-response`, entry: [] });
  }

  // Placeholder fullUrls (urn:uuid) -> Type/id, as the router will resolve them.
  const placeholders = new Map();
  for (const e of entries) {
    if (typeof e?.fullUrl === 'string' && PLACEHOLDER.test(e.fullUrl) && typeof e.resource?.resourceType === 'string') {
      placeholders.set(e.fullUrl, `${e.resource.resourceType}/${e.fullUrl.slice('urn:uuid:'.length)}`);
    }
  }
  const invalid = new Map(); // entry index -> issues
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (!e || typeof e !== 'object') {
      invalid.set(i, [outcome(400, 'structure', 'Bundle entry must be an object', `Bundle.entry[${i}]`).issue[0]]);
      continue;
    }
    const method = e.request?.method;
    const reqUrl = typeof e.request?.url === 'string' ? e.request.url.replace(/^\//, '') : '';
    const condition =
      method === 'POST' && e.request?.ifNoneExist
        ? `${reqUrl}?${e.request.ifNoneExist}`
        : reqUrl.includes('?')
          ? reqUrl
          : undefined;
    const problem = condition && searchError(condition);
    if (problem) {
      invalid.set(i, [outcome(400, 'invalid', `Bundle.entry[${i}].request: ${problem}`, `Bundle.entry[${i}].request`).issue[0]]);
      continue;
    }
    if ((method === 'POST' || method === 'PUT') && e.resource !== undefined) {
      const issues = validate(resolvePlaceholders(e.resource, placeholders));
      if (issues.length) {
        invalid.set(i, prefixIssues(issues, `Bundle.entry[${i}].resource`));
      }
    }
  }
  if (invalid.size) {
    stats.validationFailures += invalid.size;
    if (isTransaction) {
      return fail(400, { resourceType: 'OperationOutcome', issue: [...invalid.values()].flat() });
    }
  }

  const work = isTransaction
    ? bundle
    : { ...bundle, entry: entries.map((e, i) => (invalid.has(i) ? { fullUrl: e?.fullUrl } : e)) };
  const fhirReq = {
    method: 'POST',
    url: '',
    pathname: '',
    body: work,
    params: {},
    query: {},
    headers: ctx.req.headers,
    config: { transactions: false },
  };
  let result;
  if (isTransaction) {
    repo.begin();
  }
  try {
    result = await processBatch(fhirReq, repo, router, work);
  } catch (err) {
    if (isTransaction) {
      repo.rollback();
    }
    const oo = normalizeOperationOutcome(err);
    return fail(getStatus(oo), oo);
  }
  const resultEntries = result.entry ?? [];
  if (isTransaction) {
    let failed;
    try {
      failed = firstFailedEntry(entries, resultEntries);
    } finally {
      if (failed) {
        repo.rollback();
      } else {
        repo.commit(); // also when firstFailedEntry threw, so that the journal never leaks
      }
    }
    if (failed) {
      return fail(failed.status, failed.outcome);
    }
    stats.transactionsCommitted++;
  } else {
    for (const [i, issues] of invalid) {
      resultEntries[i] = {
        response: { status: '400', outcome: { resourceType: 'OperationOutcome', issue: issues } },
      };
    }
  }

  const prefer = preferReturn(ctx.req);
  for (const e of resultEntries) {
    const r = e?.resource;
    if (r?.id && r.meta?.versionId && e.response) {
      e.fullUrl = `${base}/${r.resourceType}/${r.id}`;
      e.response.location = `${r.resourceType}/${r.id}/_history/${r.meta.versionId}`;
      e.response.etag = `W/"${r.meta.versionId}"`;
      e.response.lastModified = r.meta.lastUpdated;
    }
    if (prefer !== 'representation' && e) {
      delete e.resource;
    }
  }
  return sendFhir(ctx, 200, { resourceType: 'Bundle', type: result.type, entry: resultEntries });
}

async function handleFhir(ctx, rel, body) {
  const { req, base } = ctx;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const segments = rel.split('/').filter(Boolean);

  if (segments.length === 0 && method === 'POST') {
    if (!body || body.resourceType !== 'Bundle') {
      return sendFhir(ctx, 400, outcome(400, 'invalid', 'POST to the base requires a Bundle', 'Bundle'));
    }
    return postBundle(ctx, body);
  }
  if (segments.length === 1 && segments[0] === 'metadata' && method === 'GET') {
    return sendFhir(ctx, 200, capabilityStatement());
  }
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    return sendFhir(ctx, 405, outcome(405, 'not-supported', `Method ${req.method} not supported`));
  }

  // Searches and conditions must use known search parameters.
  const isSearchPost = method === 'POST' && segments[1] === '_search';
  let condition;
  if (segments.length === 1 && ctx.search && method !== 'POST') {
    condition = `${segments[0]}${ctx.search}`;
  } else if (segments.length === 1 && method === 'POST' && req.headers['if-none-exist']) {
    condition = `${segments[0]}?${req.headers['if-none-exist']}`;
  }
  const problem = condition && searchError(condition);
  if (problem) {
    return sendFhir(ctx, 400, outcome(400, 'invalid', problem));
  }

  // Validate resources being created or updated; a create ignores any client id (FHIR R4 3.1.0.6).
  if (method === 'POST' && segments.length === 1 && body && typeof body === 'object' && 'id' in body) {
    delete body.id;
  }
  if ((method === 'POST' || method === 'PUT') && !isSearchPost) {
    if (body === undefined) {
      return sendFhir(ctx, 400, outcome(400, 'required', 'Missing request body'));
    }
    const issues = validate(body);
    if (issues.length) {
      stats.validationFailures++;
      return sendFhir(ctx, 400, { resourceType: 'OperationOutcome', issue: issues });
    }
  }

  const fhirReq = {
    method,
    url: rel + ctx.search,
    pathname: '',
    body,
    params: {},
    query: {},
    headers: req.headers,
    config: { transactions: false },
  };
  let response;
  try {
    response = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    response = [normalizeOperationOutcome(err)];
  }
  const [oo, resource] = response;
  let status = getStatus(oo);
  if (!isOk(oo)) {
    return sendFhir(ctx, status, oo);
  }
  if (!resource) {
    return sendFhir(ctx, status, oo);
  }
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    for (const e of resource.entry ?? []) {
      e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
      e.search = { mode: 'match' };
    }
    resource.link = [{ relation: 'self', url: `${base}${rel}${ctx.search}` }];
    return sendFhir(ctx, status, resource);
  }
  const headers = versionHeaders(base, resource);
  if (method === 'PUT' && status === 200 && resource.meta?.versionId === '1') {
    status = 201; // update as create
  }
  if (status !== 201) {
    delete headers.Location;
  }
  if (method === 'GET') {
    return sendFhir(ctx, status, resource, headers);
  }
  const prefer = preferReturn(req);
  if (prefer === 'minimal') {
    return sendFhir(ctx, status, undefined, headers);
  }
  if (prefer === 'operationoutcome') {
    return sendFhir(ctx, status, oo ?? allOk, headers);
  }
  return sendFhir(ctx, status, resource, headers);
}

// --- faults ------------------------------------------------------------------------------------

function parseFault(spec) {
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new Error('fault must be a JSON object');
  }
  const mode = spec.mode;
  const count = spec.count === undefined ? 1 : Number(spec.count);
  if (!Number.isInteger(count) || count < -1) {
    throw new Error('count must be an integer >= -1');
  }
  const skip = spec.skip === undefined ? 0 : Number(spec.skip);
  if (!Number.isInteger(skip) || skip < 0) {
    throw new Error('skip must be an integer >= 0');
  }
  const fault = { mode, count, skip, applied: 0 };
  switch (mode) {
    case 'status': {
      const status = spec.status === undefined ? 503 : Number(spec.status);
      if (!Number.isInteger(status) || status < 100 || status > 599) {
        throw new Error('status must be an HTTP status code');
      }
      fault.status = status;
      break;
    }
    case 'drop':
      fault.reset = spec.reset !== false;
      break;
    case 'delay': {
      const ms = spec.ms === undefined ? 1000 : Number(spec.ms);
      if (!Number.isFinite(ms) || ms < 0) {
        throw new Error('ms must be a number >= 0');
      }
      fault.ms = ms;
      break;
    }
    case 'reject':
      fault.status = spec.status === undefined ? 400 : Number(spec.status);
      fault.element = typeof spec.element === 'string' ? spec.element : 'Observation.status';
      fault.diagnostics =
        typeof spec.diagnostics === 'string'
          ? spec.diagnostics
          : `${fault.element}: value rejected by the receiving EHR (injected fault)`;
      break;
    default:
      throw new Error(`unknown fault mode "${mode}" (status, drop, delay, reject, none)`);
  }
  if (spec.retryAfter !== undefined) {
    fault.retryAfter = String(spec.retryAfter);
  } else if (fault.status === 429) {
    fault.retryAfter = '1';
  }
  if (typeof spec.diagnostics === 'string' && mode === 'status') {
    fault.diagnostics = spec.diagnostics;
  }
  return fault;
}

/** Returns the fault to apply to the request that just arrived, if any. */
function takeFault() {
  while (faults.length && faults[0].count === 0) {
    faults.shift();
  }
  const fault = faults[0];
  if (!fault) {
    return undefined;
  }
  if (fault.skip > 0) {
    fault.skip--;
    return undefined;
  }
  if (fault.count > 0) {
    fault.count--;
  }
  fault.applied++;
  if (fault.count === 0) {
    faults.shift();
  }
  return fault;
}

// --- admin -------------------------------------------------------------------------------------

async function handleAdmin(req, res, path, url) {
  const reply = (status, body) => sendJson(res, status, body);
  const action = path.slice('/$admin/'.length);
  const readJsonBody = async () => {
    const buf = await readBody(req);
    const text = buf.toString('utf8').trim();
    return text ? JSON.parse(text) : {};
  };
  const searchFromQuery = () => {
    const type = url.searchParams.get('type');
    if (!type) {
      throw new Error('missing ?type=ResourceType');
    }
    const query = {};
    for (const key of new Set(url.searchParams.keys())) {
      if (key !== 'type' && key !== 'details') {
        const values = url.searchParams.getAll(key);
        query[key] = values.length === 1 ? values[0] : values;
      }
    }
    return { type, query };
  };

  switch (`${req.method} ${action}`) {
    case 'GET health':
    case 'HEAD health':
    case 'POST health':
      return reply(200, { status: 'ok' });

    case 'POST fault': {
      let body;
      try {
        body = await readJsonBody();
      } catch (err) {
        return reply(400, { error: `bad JSON: ${err.message}` });
      }
      const specs = Array.isArray(body) ? body : [body];
      try {
        if (specs.length === 1 && specs[0]?.mode === 'none') {
          faults = [];
        } else {
          faults = specs.map(parseFault);
        }
      } catch (err) {
        return reply(400, { error: err.message });
      }
      return reply(200, { ok: true, faults });
    }
    case 'DELETE fault':
      faults = [];
      return reply(200, { ok: true, faults });
    case 'GET fault':
      return reply(200, { faults: faults.filter((f) => f.count !== 0) });

    case 'GET stats':
      return reply(200, {
        ...stats,
        resources: repo.countAll(),
        faultsActive: faults.filter((f) => f.count !== 0).length,
        uptimeMs: Math.round(process.uptime() * 1000),
      });

    case 'GET count':
    case 'GET resources': {
      let search;
      try {
        search = searchFromQuery();
      } catch (err) {
        return reply(400, { error: err.message });
      }
      return serialized(async () => {
        let list;
        try {
          if (Object.keys(search.query).length === 0) {
            list = repo.allOfType(search.type);
          } else {
            const qs = new URLSearchParams();
            for (const [k, v] of Object.entries(search.query)) {
              for (const x of [v].flat()) {
                qs.append(k, x);
              }
            }
            const problem = searchError(`${search.type}?${qs}`);
            if (problem) {
              return reply(400, { error: problem });
            }
            const bundle = await repo.search(parseSearchRequest(search.type, search.query));
            list = (bundle.entry ?? []).map((e) => e.resource);
          }
        } catch (err) {
          const oo = normalizeOperationOutcome(err);
          return reply(400, { error: oo.issue?.[0]?.details?.text ?? oo.issue?.[0]?.diagnostics ?? String(err) });
        }
        if (action === 'resources') {
          return reply(200, { count: list.length, resources: list });
        }
        const out = { count: list.length };
        if (/^(1|true|yes)$/i.test(url.searchParams.get('details') ?? '')) {
          out.resources = list.map((r) => ({ id: r.id, versionId: r.meta?.versionId }));
        }
        return reply(200, out);
      });
    }

    case 'POST reset':
      await readBody(req).catch(() => undefined);
      return serialized(async () => {
        repo.clear();
        stats = newStats();
        requestLog = [];
        faults = [];
        return reply(200, { ok: true });
      });

    case 'GET requests': {
      const limit = Number(url.searchParams.get('limit') ?? REQUEST_LOG_SIZE);
      return reply(200, { requests: requestLog.slice(-Math.max(0, limit) || requestLog.length) });
    }

    default:
      return reply(404, {
        error: `unknown admin endpoint ${req.method} ${path}`,
        endpoints: ['GET health', 'POST|GET|DELETE fault', 'GET stats', 'GET count', 'GET resources', 'POST reset', 'GET requests'],
      });
  }
}

// --- HTTP --------------------------------------------------------------------------------------

async function handle(req, res) {
  const started = performance.now();
  let url;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch {
    return sendJson(res, 400, outcome(400, 'invalid', 'Malformed request URL'), {}, FHIR_JSON);
  }
  let path = url.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {
    // keep the raw path
  }
  if (path === '/$admin' || path.startsWith('/$admin/')) {
    return handleAdmin(req, res, path, url);
  }

  // Everything else counts as a FHIR request.
  const rec = {
    method: req.method,
    url: req.url,
    status: 0,
    time: new Date().toISOString(),
    headers: req.headers,
  };
  requestLog.push(rec);
  if (requestLog.length > REQUEST_LOG_SIZE) {
    requestLog.splice(0, requestLog.length - REQUEST_LOG_SIZE);
  }
  stats.requests++;
  bump(stats.byMethod, req.method);
  const host = req.headers.host ?? `${args.host}:${port}`;
  const ctx = { req, res, rec, base: `http://${host}/fhir`, search: url.search };
  res.on('close', () => {
    rec.ms = Math.round((performance.now() - started) * 10) / 10;
    if (verbose) {
      console.error(`${rec.method} ${rec.url} -> ${rec.status}${rec.fault ? ` (fault ${rec.fault})` : ''} ${rec.ms} ms`);
    }
  });

  let raw;
  try {
    raw = await readBody(req);
  } catch (err) {
    if (err.tooLarge) {
      return sendFhir(ctx, 413, outcome(413, 'too-costly', `Request body exceeds ${MAX_BODY_BYTES} bytes`), {
        Connection: 'close',
      });
    }
    return undefined; // client went away
  }

  const fault = takeFault();
  if (fault) {
    stats.faultsInjected++;
    bump(stats.faultsByMode, fault.mode);
    rec.fault = fault.mode;
    const headers = fault.retryAfter ? { 'Retry-After': fault.retryAfter } : {};
    switch (fault.mode) {
      case 'drop':
        rec.status = 'dropped';
        stats.dropped++;
        if (fault.reset && typeof req.socket.resetAndDestroy === 'function') {
          req.socket.resetAndDestroy();
        } else {
          req.socket.destroy();
        }
        return undefined;
      case 'status': {
        const code = fault.status === 429 ? 'throttled' : fault.status >= 500 ? 'transient' : 'processing';
        return sendFhir(
          ctx,
          fault.status,
          outcome(fault.status, code, fault.diagnostics ?? `Injected fault: HTTP ${fault.status}`),
          headers
        );
      }
      case 'reject':
        return sendFhir(ctx, fault.status, outcome(fault.status, 'invalid', fault.diagnostics, fault.element), headers);
      case 'delay':
        await new Promise((resolve) => setTimeout(resolve, fault.ms));
        if (res.destroyed) {
          return undefined;
        }
        break;
      default:
        break;
    }
  }

  if (path !== '/fhir' && !path.startsWith('/fhir/')) {
    return sendFhir(ctx, 404, outcome(404, 'not-found', `Unknown path ${path}; the FHIR base is /fhir`));
  }
  const rel = path.slice('/fhir'.length);

  let body;
  if (raw.length) {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (contentType === 'application/x-www-form-urlencoded') {
      body = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
    } else if (
      contentType === '' ||
      contentType === 'application/fhir+json' ||
      contentType === 'application/json' ||
      contentType === 'application/json-patch+json' ||
      contentType === 'text/json'
    ) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        return sendFhir(ctx, 400, outcome(400, 'structure', `Malformed JSON request body: ${err.message}`));
      }
    } else {
      return sendFhir(ctx, 415, outcome(415, 'not-supported', `Unsupported Content-Type ${contentType}; use application/fhir+json`));
    }
  }

  return serialized(() => handleFhir(ctx, rel, body));
}

const server = http.createServer({ keepAlive: true }, (req, res) => {
  handle(req, res).catch((err) => {
    console.error(`fhir_server: internal error on ${req.method} ${req.url}:`, err);
    if (!res.headersSent && !res.destroyed) {
      sendJson(res, 500, outcome(500, 'exception', `Internal server error: ${err?.message ?? err}`), {}, FHIR_JSON);
    }
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
server.on('clientError', (err, socket) => {
  if (socket.writable && err.code !== 'ECONNRESET') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  } else {
    socket.destroy();
  }
});

function shutdown(signal) {
  if (verbose) {
    console.error(`fhir_server: ${signal}, exiting`);
  }
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.on('error', (err) => {
  console.error(`fhir_server: cannot listen on ${args.host}:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, args.host, () => {
  const addr = server.address();
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  console.error(`fhir_server: R4 definitions loaded in ${definitionsMs} ms; FHIR base http://${host}:${addr.port}/fhir`);
  process.stdout.write(`listening on ${host}:${addr.port}\n`);
});
