#!/usr/bin/env node
// FHIR R4 validator for fhirgw's output.
//
//   node tests/node/validate.mjs FILE...
//
// FILE is a .json file holding one Bundle or one resource, or a .ndjson file
// holding one Bundle or resource per line. Every Bundle entry's resource (and
// every stand-alone resource) is validated with @medplum/core against the R4
// base definitions, vital-sign Observations additionally against the matching
// R4 vital-signs profile, plus checks Medplum does not make (required
// terminology bindings, empty JSON values, dateTime precision/zone, the
// transaction Bundle's own rules, blood-pressure components).
//
// Output: one line per error, `LOCATION ResourceType: <path>: <message>`, where
// LOCATION is FILE (FILE:LINE for NDJSON) followed by #entry[i] for Bundle
// entries; then `validated N resources in M files, K errors`.
// Exit: 0 no errors, 1 errors (or nothing validated), 2 usage error.

import { readFileSync } from 'node:fs';
import { crawlTypedValue, isResourceType, toTypedValue, validateResource } from '@medplum/core';
import { expandValueSet, getProfile, loadDefinitions } from './lib/definitions.mjs';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';

// LOINC code -> R4 vital-signs profile id (http://hl7.org/fhir/R4/observation-vitalsigns.html)
const VITAL_SIGN_CODES = {
  '85354-9': 'bp',
  '8867-4': 'heartrate',
  '59408-5': 'oxygensat',
  '2708-6': 'oxygensat',
  '9279-1': 'resprate',
  '29463-7': 'bodyweight',
  '8302-2': 'bodyheight',
  '8310-5': 'bodytemp',
  '9843-4': 'headcircum',
  '39156-5': 'bmi',
  '85353-1': 'vitalspanel',
};

const BP_COMPONENTS = [
  { code: '8480-6', name: 'systolic' },
  { code: '8462-4', name: 'diastolic' },
];

// A string that looks like a date with a time part, and what it must then look like.
const DATE_WITH_TIME = /^\d{4}-\d{2}-\d{2}T/;
const FULL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const UUID_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

function usage(message) {
  if (message) {
    console.error(`validate.mjs: ${message}`);
  }
  console.error('usage: node tests/node/validate.mjs FILE...   (FILE: .json Bundle/resource, or .ndjson)');
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Reading input: everything is read and parsed before definitions are loaded,
// so usage errors are reported fast and with exit code 2.

/** @returns {{ label: string, json: any }[]} */
function readUnits(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    usage(`cannot read ${file}: ${err.message}`);
  }
  if (file.toLowerCase().endsWith('.ndjson')) {
    const units = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) {
        continue;
      }
      units.push({ label: `${file}:${i + 1}`, json: parseJson(line, `${file}:${i + 1}`) });
    }
    return units;
  }
  return [{ label: file, json: parseJson(text, file) }];
}

function parseJson(text, label) {
  let json;
  try {
    json = JSON.parse(text);
  } catch (err) {
    usage(`invalid JSON in ${label}: ${err.message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    usage(`${label} does not hold a JSON object (a FHIR resource or Bundle)`);
  }
  return json;
}

// ---------------------------------------------------------------------------
// Reporting

let errorCount = 0;
let resourceCount = 0;

/**
 * Returns a reporter `report(path, message)` that prints
 * `LOCATION ResourceType: path: message`, each distinct (path, message) once;
 * `report.seen(path, message)` tells whether it was already printed.
 */
function reporter(location, resourceType) {
  const seen = new Set();
  const report = (path, message) => {
    const key = `${path}: ${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      errorCount++;
      console.log(`${location} ${resourceType || '(no resourceType)'}: ${key}`);
    }
  };
  report.seen = (path, message) => seen.has(`${path}: ${message}`);
  return report;
}

// ---------------------------------------------------------------------------
// JSON-level checks (FHIR JSON rules Medplum does not enforce everywhere)

/** No null, "", {} or [] anywhere; every date-with-time string has seconds and a zone. */
function checkJson(value, path, report) {
  if (value === null) {
    report(path, 'null value (FHIR JSON forbids null)');
  } else if (typeof value === 'string') {
    if (value === '') {
      report(path, 'empty string (FHIR JSON forbids empty values)');
    } else if (DATE_WITH_TIME.test(value) && !FULL_DATE_TIME.test(value)) {
      const time = value.slice(11);
      const lacks = [];
      if (!/^\d{2}:\d{2}:\d{2}/.test(time)) {
        lacks.push('seconds');
      }
      if (!/(Z|[+-]\d{2}:\d{2})$/.test(time)) {
        lacks.push('a time zone');
      }
      const why = lacks.length ? `lacks ${lacks.join(' and ')}` : 'is malformed';
      report(path, `dateTime "${value}" has a time but ${why} (expected YYYY-MM-DDThh:mm:ss[.fff]+zz:zz or Z)`);
    }
  } else if (Array.isArray(value)) {
    if (value.length === 0) {
      report(path, 'empty array (FHIR JSON forbids empty values)');
    }
    value.forEach((v, i) => checkJson(v, `${path}[${i}]`, report));
  } else if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) {
      report(path, 'empty object (FHIR JSON forbids empty values)');
    }
    for (const key of keys) {
      const v = value[key];
      if (Array.isArray(v)) {
        // Arrays of primitives with extensions: a null is allowed where the
        // partner array (name <-> _name) has a value at the same index.
        const partner = value[key.startsWith('_') ? key.slice(1) : `_${key}`];
        if (v.length === 0) {
          report(`${path}.${key}`, 'empty array (FHIR JSON forbids empty values)');
        }
        v.forEach((item, i) => {
          if (item === null && Array.isArray(partner) && partner[i] !== null && partner[i] !== undefined) {
            return;
          }
          checkJson(item, `${path}.${key}[${i}]`, report);
        });
      } else {
        checkJson(v, `${path}.${key}`, report);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Medplum validation

function issueMessage(issue) {
  let msg = issue.details?.text ?? issue.diagnostics ?? 'unknown error';
  if (issue.code === 'processing' && issue.diagnostics) {
    msg += ` (${issue.diagnostics})`;
  }
  return msg;
}

/**
 * Medplum compares a reference's type only with the last segment of each
 * target profile URL, so a profiled target such as .../vitalsigns (an
 * Observation profile) never matches "Observation". Accept the reference
 * when one of the target profiles is a loaded profile on that type (whether
 * the target conforms to the profile cannot be checked from here).
 */
function targetsAllowType(expectedList, gotType) {
  const urls = [...expectedList.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  return urls.some((url) => getProfile(url)?.type === gotType);
}

/**
 * Runs @medplum/core's validateResource and reports its issues. Medplum
 * reports some real violations only as warnings (conflicting choice-type
 * properties, reference to the wrong resource type); they are reported as
 * errors, except reference-type warnings for references it cannot type
 * (absolute URLs, unresolved urn:uuid), which are left alone.
 */
function runMedplum(resource, report, profile, prefix = '') {
  let issues;
  try {
    issues = validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    issues = err?.outcome?.issue;
    if (!issues) {
      report(resource.resourceType ?? '(root)', `${prefix}${err?.message ?? String(err)}`);
      return;
    }
  }
  for (const issue of issues) {
    if (issue.severity === 'information') {
      continue;
    }
    const msg = issueMessage(issue);
    if (msg === 'Invalid null value') {
      continue; // reported, with the same exception for primitive arrays, by checkJson()
    }
    const path = issue.expression?.[0] ?? '(root)';
    if (prefix && report.seen(path, msg)) {
      continue; // same issue as in the base validation
    }
    if (issue.severity === 'warning') {
      const m = /^Invalid reference: got "([^"]*)", expected (.*)$/.exec(msg);
      if (m && (!isResourceType(m[1]) || targetsAllowType(m[2], m[1]))) {
        continue;
      }
    }
    report(path, prefix + msg);
  }
}

// ---------------------------------------------------------------------------
// Required terminology bindings (Medplum's synchronous validator skips them)

function checkBindings(resource, report) {
  if (!isResourceType(resource?.resourceType)) {
    return; // already reported by Medplum
  }
  const visitor = {
    visitProperty(_parent, key, _path, propertyValues, schema) {
      const binding = schema.elements[key]?.binding;
      if (binding?.strength !== 'required' || !binding.valueSet) {
        return;
      }
      const vsUrl = binding.valueSet.split('|')[0];
      for (const pv of propertyValues) {
        for (const v of Array.isArray(pv) ? pv : [pv]) {
          if (v?.value !== undefined && v.value !== null) {
            checkBoundValue(v, vsUrl, report);
          }
        }
      }
    },
  };
  crawlTypedValue(toTypedValue(resource), visitor);
}

function checkBoundValue(tv, vsUrl, report) {
  const expansion = ['code', 'Coding', 'CodeableConcept'].includes(tv.type) ? expandValueSet(vsUrl) : null;
  if (!expansion) {
    return; // not expandable locally (external code system, filters...): no opinion
  }
  const value = tv.value;
  const codingOk = (c) => c && typeof c.code === 'string' && expansion.has(c.system, c.code);
  const show = (c) => `${c?.system ?? '(no system)'}|${c?.code ?? '(no code)'}`;
  if (tv.type === 'code') {
    const code = value.valueOf();
    if (typeof code === 'string' && !expansion.codes.has(code)) {
      report(tv.path, `code "${code}" is not in the required value set ${vsUrl}`);
    }
  } else if (tv.type === 'Coding') {
    if ((value.code !== undefined || value.system !== undefined) && !codingOk(value)) {
      report(tv.path, `coding ${show(value)} is not in the required value set ${vsUrl}`);
    }
  } else if (tv.type === 'CodeableConcept') {
    const codings = Array.isArray(value.coding) ? value.coding : [];
    if (!codings.some(codingOk)) {
      const got = codings.length ? codings.map(show).join(', ') : 'no coding';
      report(tv.path, `none of the codings (${got}) is in the required value set ${vsUrl}`);
    }
  }
}

// ---------------------------------------------------------------------------
// Vital signs

/** `value` if it is an array, else [] (input may be malformed; Medplum reports that). */
function arr(value) {
  return Array.isArray(value) ? value : [];
}

function loincCodes(concept) {
  return arr(concept?.coding).filter((c) => c?.system === LOINC && typeof c.code === 'string').map((c) => c.code);
}

/** The vital-signs profile id an Observation must conform to, or undefined. */
function vitalSignProfile(obs) {
  if (obs.resourceType !== 'Observation') {
    return undefined;
  }
  for (const code of loincCodes(obs.code)) {
    if (VITAL_SIGN_CODES[code]) {
      return VITAL_SIGN_CODES[code];
    }
  }
  const isVital = arr(obs.category).some((cat) =>
    arr(cat?.coding).some((c) => c?.system === OBS_CATEGORY && c.code === 'vital-signs')
  );
  return isVital ? 'vitalsigns' : undefined;
}

/** BP: exactly a systolic and a diastolic component, each a UCUM mm[Hg] quantity with a numeric value. */
function checkBloodPressure(obs, report) {
  const components = arr(obs.component);
  const matched = new Set();
  for (const { code, name } of BP_COMPONENTS) {
    const idx = [];
    components.forEach((comp, i) => {
      if (loincCodes(comp?.code).includes(code)) {
        idx.push(i);
      }
    });
    if (idx.length === 0) {
      report('Observation.component', `blood pressure lacks the ${name} component (LOINC ${code})`);
    } else if (idx.length > 1) {
      report('Observation.component', `blood pressure has ${idx.length} ${name} components (LOINC ${code}), expected 1`);
    }
    for (const i of idx) {
      matched.add(i);
      const path = `Observation.component[${i}]`;
      const q = components[i]?.valueQuantity;
      if (!q || typeof q !== 'object') {
        report(`${path}.valueQuantity`, `${name} component has no valueQuantity`);
        continue;
      }
      if (typeof q.value !== 'number' || !Number.isFinite(q.value)) {
        report(`${path}.valueQuantity.value`, `${name} value is not a number`);
      }
      if (q.system !== UCUM) {
        report(`${path}.valueQuantity.system`, `${name} unit system must be ${UCUM}, got ${JSON.stringify(q.system)}`);
      }
      if (q.code !== 'mm[Hg]') {
        report(`${path}.valueQuantity.code`, `${name} unit code must be mm[Hg], got ${JSON.stringify(q.code)}`);
      }
    }
  }
  components.forEach((comp, i) => {
    if (!matched.has(i)) {
      const codes = arr(comp?.code?.coding).map((c) => `${c?.system}|${c?.code}`).join(', ') || 'no coding';
      report(`Observation.component[${i}]`, `unexpected blood pressure component (${codes}); expected only 8480-6 and 8462-4`);
    }
  });
}

// ---------------------------------------------------------------------------
// Resources and Bundles

/** Full validation of one resource (already urn:uuid-resolved); `raw` is the resource as found in the file. */
function validateOne(raw, resolved, report) {
  resourceCount++;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    report('(root)', 'not a JSON object');
    return;
  }
  const root = typeof raw.resourceType === 'string' && raw.resourceType ? raw.resourceType : '(root)';
  checkJson(raw, root, report);
  if (raw.resourceType === undefined) {
    report(root, 'missing resourceType');
    return;
  }
  if (typeof raw.resourceType !== 'string' || !isResourceType(raw.resourceType)) {
    report(root, `unknown resourceType ${JSON.stringify(raw.resourceType)}`);
    return;
  }
  runMedplum(resolved, report);
  try {
    checkBindings(resolved, report);
  } catch (err) {
    report(root, `terminology check failed: ${err?.message ?? err}`);
  }
  const profileId = vitalSignProfile(resolved);
  if (profileId) {
    // The R4 bp profile's nested component slices are beyond Medplum's
    // validator (the official BP example fails it), so BP is validated
    // against the generic vitalsigns profile plus checkBloodPressure().
    const effective = profileId === 'bp' ? 'vitalsigns' : profileId;
    runMedplum(resolved, report, getProfile(effective), `[profile ${effective}] `);
    if (profileId === 'bp') {
      checkBloodPressure(resolved, report);
    }
  }
}

/** `urn:uuid:X` -> `Type/id` for every entry of the Bundle with such a fullUrl. */
function uuidTargets(entries) {
  const map = new Map();
  for (const entry of entries) {
    const fullUrl = entry?.fullUrl;
    const type = entry?.resource?.resourceType;
    if (typeof fullUrl === 'string' && fullUrl.startsWith('urn:uuid:') && typeof type === 'string' && !map.has(fullUrl)) {
      const uuid = fullUrl.slice('urn:uuid:'.length);
      map.set(fullUrl, `${type}/${FHIR_ID.test(uuid) ? uuid : stableId(uuid)}`);
    }
  }
  return map;
}

function stableId(text) {
  // FNV-1a, enough for a stable, valid FHIR id from an odd uuid string
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  return `u${h.toString(16)}-${text.length}`;
}

/** Deep copy of `value` with every Reference.reference `urn:uuid:` replaced as the server would. */
function resolveUuidRefs(value, targets, path, report) {
  if (Array.isArray(value)) {
    return value.map((v, i) => resolveUuidRefs(v, targets, `${path}[${i}]`, report));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'reference' && typeof v === 'string' && v.startsWith('urn:uuid:')) {
      if (targets.has(v)) {
        out[key] = targets.get(v);
      } else {
        report(`${path}.reference`, `urn:uuid reference ${v} does not match any entry's fullUrl in the Bundle`);
        out[key] = v;
      }
    } else {
      out[key] = resolveUuidRefs(v, targets, `${path}.${key}`, report);
    }
  }
  return out;
}

function validateBundle(bundle, label) {
  const report = reporter(label, 'Bundle');
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];

  // The Bundle's own elements: JSON rules, Medplum, bindings. Issues inside
  // entry resources are left to the per-entry validation below.
  for (const [key, value] of Object.entries(bundle)) {
    if (key !== 'entry' || !Array.isArray(value) || value.length === 0) {
      checkJson(value, `Bundle.${key}`, report);
      continue;
    }
    value.forEach((entry, i) => {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry) || Object.keys(entry).length === 0) {
        checkJson(entry, `Bundle.entry[${i}]`, report);
        return;
      }
      for (const [k, v] of Object.entries(entry)) {
        if (k !== 'resource') {
          checkJson(v, `Bundle.entry[${i}].${k}`, report); // the resource is checked as the entry
        }
      }
    });
  }
  const outsideResources = (path, message) => {
    if (!/^Bundle\.entry\[\d+\]\.resource([.[]|$)/.test(path)) {
      report(path, message);
    }
  };
  outsideResources.seen = report.seen;
  runMedplum(bundle, outsideResources);
  try {
    checkBindings(bundle, outsideResources);
  } catch (err) {
    report('Bundle', `terminology check failed: ${err?.message ?? err}`);
  }

  // Transaction rules.
  if (bundle.type !== 'transaction') {
    report('Bundle.type', `expected "transaction", got ${JSON.stringify(bundle.type)}`);
  }
  if (entries.length === 0) {
    report('Bundle.entry', 'Bundle has no entries');
  }
  const firstByFullUrl = new Map();
  entries.forEach((entry, i) => {
    const path = `Bundle.entry[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      report(path, 'entry is not a JSON object');
      return;
    }
    const method = entry.request?.method;
    if (typeof method !== 'string' || !method) {
      report(`${path}.request.method`, 'missing request.method');
    }
    if (typeof entry.request?.url !== 'string' || !entry.request.url) {
      report(`${path}.request.url`, 'missing request.url');
    }
    const hasResource = entry.resource !== undefined;
    if (!hasResource && ['POST', 'PUT'].includes(method)) {
      report(`${path}.resource`, `${method} entry has no resource`);
    }
    // POST Type / PUT Type/id or Type?query must name the entry's resource type (operations excepted).
    const url = entry.request?.url;
    const type = entry.resource?.resourceType;
    if (typeof url === 'string' && typeof type === 'string' && ['POST', 'PUT'].includes(method) && !url.includes('$')) {
      const urlType = url.split(/[/?]/)[0];
      if (urlType !== type) {
        report(`${path}.request.url`, `${method} ${url} does not match the entry's resource type ${type}`);
      }
    }
    // An entry that carries no resource (GET/HEAD/DELETE) has nothing to identify.
    const fullUrl = entry.fullUrl;
    if (typeof fullUrl !== 'string' || !fullUrl) {
      if (hasResource || ['POST', 'PUT', 'PATCH'].includes(method)) {
        report(`${path}.fullUrl`, 'missing fullUrl');
      }
    } else {
      if (fullUrl.startsWith('urn:uuid:') && !UUID_URN.test(fullUrl)) {
        report(`${path}.fullUrl`, `malformed urn:uuid fullUrl ${JSON.stringify(fullUrl)}`);
      } else if (!/^(urn:uuid:|urn:oid:|https?:\/\/)/.test(fullUrl)) {
        report(`${path}.fullUrl`, `fullUrl ${JSON.stringify(fullUrl)} is not an absolute URL or URN`);
      }
      if (firstByFullUrl.has(fullUrl)) {
        report(`${path}.fullUrl`, `duplicate fullUrl ${fullUrl} (also entry[${firstByFullUrl.get(fullUrl)}])`);
      } else {
        firstByFullUrl.set(fullUrl, i);
      }
    }
  });

  // Entries.
  const targets = uuidTargets(entries);
  entries.forEach((entry, i) => {
    if (entry?.resource === undefined || entry === null || typeof entry !== 'object') {
      return;
    }
    const res = entry.resource;
    const type = res && typeof res === 'object' ? res.resourceType : undefined;
    const entryReport = reporter(`${label}#entry[${i}]`, type);
    const root = typeof type === 'string' && type ? type : '(root)';
    const resolved = resolveUuidRefs(res, targets, root, entryReport);
    validateOne(res, resolved, entryReport);
  });
}

function validateUnit({ label, json }) {
  if (json.resourceType === 'Bundle') {
    validateBundle(json, label);
  } else {
    validateOne(json, json, reporter(label, json.resourceType));
  }
}

// ---------------------------------------------------------------------------

function main() {
  const files = process.argv.slice(2);
  if (files.length === 0 || files.some((f) => f === '-h' || f === '--help')) {
    usage(files.length === 0 ? 'no files given' : undefined);
  }
  const units = files.flatMap(readUnits);
  loadDefinitions();
  for (const unit of units) {
    try {
      validateUnit(unit);
    } catch (err) {
      // Never let a validator crash hide as success.
      reporter(unit.label, unit.json.resourceType)('(root)', `validator crashed: ${err?.stack ?? err}`);
    }
  }
  if (resourceCount === 0) {
    errorCount++;
    console.log('error: no resources were validated');
  }
  console.log(`validated ${resourceCount} resources in ${files.length} files, ${errorCount} errors`);
  process.exitCode = errorCount > 0 ? 1 : 0;
}

main();
