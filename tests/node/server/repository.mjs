// In-memory FHIR repository for the loopback test EHR (tests/node/fhir_server.mjs).
//
// EhrRepository extends @medplum/fhir-router's MemoryRepository with what a test EHR needs and
// MemoryRepository 4.5.2 lacks:
//   - meta.versionId is "1", "2", ... per resource (MemoryRepository uses random UUIDs), and
//     meta.lastUpdated is always set by the server;
//   - POST (create) ignores a client-supplied id, as FHIR servers do (MemoryRepository keeps it);
//   - an undo journal (begin/commit/rollback) so that a failed transaction stores nothing
//     (MemoryRepository.withTransaction just runs the callback);
//   - an identifier index: `identifier=system|value` searches (every conditional create/update/delete
//     of the gateway) are O(1) instead of scanning every stored resource, and match exactly
//     (case-sensitive, like HAPI) rather than Medplum's case-insensitive token match;
//   - readHistory() does not reverse the stored history in place (MemoryRepository does);
//   - reading a deleted resource answers 410 Gone.
// The caller serializes all access (one request at a time), which the journal relies on.
import {
  OperationOutcomeError,
  Operator,
  badRequest,
  deepClone,
  gone,
  matchesSearchRequest,
  notFound,
  preconditionFailed,
} from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';

/** Splits a token search value on unescaped commas, then each part on its first unescaped '|'. */
function parseIdentifierTokens(value) {
  const parts = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      cur += c + value[++i];
    } else if (c === ',') {
      parts.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  const unescape = (s) => s.replace(/\\([\\,|$])/g, '$1');
  const tokens = [];
  for (const part of parts) {
    let bar = -1;
    for (let i = 0; i < part.length; i++) {
      if (part[i] === '\\') {
        i++;
      } else if (part[i] === '|') {
        bar = i;
        break;
      }
    }
    if (bar < 0) {
      return undefined; // [code] without system: leave to Medplum's matcher
    }
    const system = unescape(part.slice(0, bar));
    const val = unescape(part.slice(bar + 1));
    if (!val) {
      return undefined; // [system]| (any value): leave to Medplum's matcher
    }
    tokens.push(identifierKey(system, val));
  }
  return tokens;
}

function identifierKey(system, value) {
  return `${system ?? ''}|${value ?? ''}`;
}

function identifierKeys(resource) {
  const ids = resource.identifier;
  if (!ids) {
    return [];
  }
  const list = Array.isArray(ids) ? ids : [ids];
  const keys = [];
  for (const id of list) {
    if (id && typeof id.value === 'string') {
      keys.push(identifierKey(id.system, id.value));
    }
  }
  return keys;
}

export class EhrRepository extends MemoryRepository {
  constructor(options = {}) {
    super();
    /** Called with a resource about to be stored by PATCH; throws to reject it. */
    this.validatePatched = options.validatePatched;
    /** type -> Map(identifierKey -> Set(id)) over current (non-deleted) resources. */
    this.identifierIndex = new Map();
    this.journal = undefined;
    this.patching = false;
  }

  // --- journal -------------------------------------------------------------------------------

  begin() {
    this.journal = [];
  }

  commit() {
    this.journal = undefined;
  }

  rollback() {
    const journal = this.journal ?? [];
    this.journal = undefined;
    for (let i = journal.length - 1; i >= 0; i--) {
      const { type, id, prev, historyLength } = journal[i];
      const current = this.resources.get(type)?.get(id);
      if (current) {
        this.unindex(current);
      }
      if (prev) {
        this.typeMap(this.resources, type).set(id, prev);
        this.index(prev);
      } else {
        this.resources.get(type)?.delete(id);
      }
      const history = this.history.get(type)?.get(id);
      if (history) {
        history.length = historyLength;
        if (!historyLength) {
          this.history.get(type).delete(id);
        }
      }
    }
  }

  clear() {
    super.clear();
    this.identifierIndex.clear();
    this.journal = undefined;
  }

  // --- storage -------------------------------------------------------------------------------

  typeMap(maps, type) {
    let m = maps.get(type);
    if (!m) {
      m = new Map();
      maps.set(type, m);
    }
    return m;
  }

  index(resource) {
    const keys = identifierKeys(resource);
    if (!keys.length) {
      return;
    }
    const idx = this.typeMap(this.identifierIndex, resource.resourceType);
    for (const key of keys) {
      let ids = idx.get(key);
      if (!ids) {
        ids = new Set();
        idx.set(key, ids);
      }
      ids.add(resource.id);
    }
  }

  unindex(resource) {
    const idx = this.identifierIndex.get(resource.resourceType);
    if (!idx) {
      return;
    }
    for (const key of identifierKeys(resource)) {
      const ids = idx.get(key);
      if (ids) {
        ids.delete(resource.id);
        if (!ids.size) {
          idx.delete(key);
        }
      }
    }
  }

  /** Stores a new version of `resource` (which has resourceType and id); returns a copy. */
  store(resource) {
    const { resourceType: type, id } = resource;
    const prev = this.resources.get(type)?.get(id);
    const history = this.typeMap(this.history, type).get(id) ?? [];
    const last = history[history.length - 1];
    const version = last ? (parseInt(last.meta?.versionId, 10) || history.length) + 1 : 1;
    resource.meta = { ...resource.meta, versionId: String(version), lastUpdated: new Date().toISOString() };
    this.journal?.push({ type, id, prev, historyLength: history.length });
    if (prev) {
      this.unindex(prev);
    }
    this.typeMap(this.resources, type).set(id, resource);
    history.push(resource);
    this.history.get(type).set(id, history);
    this.index(resource);
    return deepClone(resource);
  }

  async createResource(resource, options) {
    const result = deepClone(resource);
    if (!options?.assignedId || !result.id) {
      // A plain create ignores any client id; batch/transaction processing pre-assigns ids.
      result.id = this.generateId();
    }
    if (this.resources.get(result.resourceType)?.has(result.id)) {
      throw new OperationOutcomeError(badRequest(`Resource ${result.resourceType}/${result.id} already exists`));
    }
    return this.store(result);
  }

  async updateResource(resource, options) {
    if (!resource.id) {
      throw new OperationOutcomeError(badRequest('Missing id'));
    }
    const existing = this.resources.get(resource.resourceType)?.get(resource.id);
    if (options?.ifMatch) {
      if (!existing) {
        throw new OperationOutcomeError(notFound);
      }
      if (existing.meta?.versionId !== options.ifMatch) {
        throw new OperationOutcomeError(preconditionFailed);
      }
    }
    const result = deepClone(resource);
    if (this.patching && this.validatePatched) {
      this.validatePatched(result);
    }
    return this.store(result);
  }

  async patchResource(resourceType, id, patch) {
    this.patching = true;
    try {
      return await super.patchResource(resourceType, id, patch);
    } finally {
      this.patching = false;
    }
  }

  async readResource(resourceType, id) {
    const resource = this.resources.get(resourceType)?.get(id);
    if (!resource) {
      throw new OperationOutcomeError(this.history.get(resourceType)?.has(id) ? gone : notFound);
    }
    return deepClone(resource);
  }

  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id);
    const entry = [...(this.history.get(resourceType)?.get(id) ?? [])]
      .reverse()
      .map((version) => ({ resource: deepClone(version) }));
    return { resourceType: 'Bundle', type: 'history', ...(entry.length ? { entry } : undefined) };
  }

  async deleteResource(resourceType, id) {
    const current = this.resources.get(resourceType)?.get(id);
    if (!current) {
      throw new OperationOutcomeError(notFound);
    }
    const history = this.history.get(resourceType)?.get(id) ?? [];
    this.journal?.push({ type: resourceType, id, prev: current, historyLength: history.length });
    this.unindex(current);
    this.resources.get(resourceType).delete(id);
  }

  async search(searchRequest) {
    const filters = searchRequest.filters ?? [];
    const idFilter = filters.findIndex((f) => f.code === 'identifier' && f.operator === Operator.EQUALS);
    const tokens = idFilter >= 0 ? parseIdentifierTokens(filters[idFilter].value) : undefined;
    if (!tokens || searchRequest.sortRules?.length) {
      return super.search(searchRequest);
    }
    const { resourceType } = searchRequest;
    const idx = this.identifierIndex.get(resourceType);
    const resources = this.resources.get(resourceType);
    const ids = new Set();
    for (const token of tokens) {
      for (const id of idx?.get(token) ?? []) {
        ids.add(id);
      }
    }
    const rest = { ...searchRequest, filters: filters.filter((_, i) => i !== idFilter) };
    const matches = [];
    for (const id of ids) {
      const resource = resources?.get(id);
      if (resource && (!rest.filters.length || matchesSearchRequest(resource, rest))) {
        matches.push(resource);
      }
    }
    let entry = matches;
    if (searchRequest.offset !== undefined) {
      entry = entry.slice(searchRequest.offset);
    }
    if (searchRequest.count !== undefined) {
      entry = entry.slice(0, searchRequest.count);
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: entry.length ? entry.map((resource) => ({ resource: deepClone(resource) })) : undefined,
      total: matches.length,
    };
  }

  /** Number of current resources of a type. */
  countType(resourceType) {
    return this.resources.get(resourceType)?.size ?? 0;
  }

  /** Map of resource type -> number of current resources. */
  countAll() {
    const out = {};
    for (const [type, m] of this.resources) {
      if (m.size) {
        out[type] = m.size;
      }
    }
    return out;
  }

  /** All current resources of a type (no copies; do not modify). */
  allOfType(resourceType) {
    return [...(this.resources.get(resourceType)?.values() ?? [])];
  }
}
