#!/usr/bin/env node
// Copies the Istio files the tests read (test/unit/config/validate-corpus.test.ts, test/integration/proxy/cli.test.ts)
// from a corpus folder into test/fixtures/istio/, with Istio's LICENSE and the upstream commit they come from.
//
//   node scripts/refresh-istio-fixtures.mjs [corpus]      (default: ../shared/corpus, beside the repository)
//
// The corpus folder has the layout of ../shared/corpus: istio-validation/ and istio-samples/{bookinfo,testdata}/,
// each top folder with Istio's LICENSE and a README.md naming the istio/istio commit. Only the files listed
// below are copied; a YAML file of the corpus that is not listed is reported, not copied (add it to FILES if a test
// should read it). Plain Node, no dependencies.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..');
const OUT = join(REPO, 'test/fixtures/istio');

/** Folder of the corpus (and of the fixtures) → the YAML files the tests read there. */
const FILES = {
  // istio/istio pkg/config/validation/testdata/crds/
  'istio-validation': [
    'destinationrule-invalid.yaml',
    'destinationrule-valid.yaml',
    'serviceentry-invalid.yaml',
    'serviceentry-valid.yaml',
    'workloadentry-invalid.yaml',
    'workloadentry-valid.yaml',
  ],
  // istio/istio samples/bookinfo/networking/
  'istio-samples/bookinfo': [
    'bookinfo-gateway.yaml',
    'certmanager-gateway.yaml',
    'destination-rule-all-mtls.yaml',
    'destination-rule-all.yaml',
    'destination-rule-reviews.yaml',
    'egress-rule-google-apis.yaml',
    'fault-injection-details-v1.yaml',
    'virtual-service-all-v1.yaml',
    'virtual-service-details-v2.yaml',
    'virtual-service-ratings-db.yaml',
    'virtual-service-ratings-mysql-vm.yaml',
    'virtual-service-ratings-mysql.yaml',
    'virtual-service-ratings-test-abort.yaml',
    'virtual-service-ratings-test-delay.yaml',
    'virtual-service-reviews-50-v3.yaml',
    'virtual-service-reviews-80-20.yaml',
    'virtual-service-reviews-90-10.yaml',
    'virtual-service-reviews-jason-v2-v3.yaml',
    'virtual-service-reviews-test-v2.yaml',
    'virtual-service-reviews-v2-v3.yaml',
    'virtual-service-reviews-v3.yaml',
  ],
  // istio/istio tests/testdata/config/
  'istio-samples/testdata': [
    'authn.yaml',
    'byon.yaml',
    'destination-rule-all.yaml',
    'destination-rule-fqdn.yaml',
    'destination-rule-locality.yaml',
    'destination-rule-passthrough.yaml',
    'destination-rule-ssl.yaml',
    'egressgateway.yaml',
    'external_services.yaml',
    'gateway-all.yaml',
    'gateway-tcp-a.yaml',
    'ingress.yaml',
    'ingressgateway.yaml',
    'none.yaml',
    'peer-authn-strict.yaml',
    'rule-content-route.yaml',
    'rule-default-route-append-headers.yaml',
    'rule-default-route-cors-policy.yaml',
    'rule-default-route.yaml',
    'rule-fault-injection.yaml',
    'rule-ingressgateway.yaml',
    'rule-redirect-injection.yaml',
    'rule-regex-route.yaml',
    'rule-route-via-egressgateway.yaml',
    'rule-websocket-route.yaml',
    'rule-weighted-route.yaml',
    'se-example-gw.yaml',
    'se-example.yaml',
    'static-weighted-se.yaml',
    'virtual-service-all.yaml',
  ],
};

/** The corpus top folders that carry Istio's LICENSE and a README naming the commit. */
const TOPS = ['istio-validation', 'istio-samples'];

function fail(message) {
  console.error(`refresh-istio-fixtures: ${message}`);
  process.exit(1);
}

const corpus = resolve(process.argv[2] ?? join(REPO, '../shared/corpus'));
if (!existsSync(corpus)) fail(`no corpus folder at ${corpus} (give its path as the argument)`);

// Check everything before writing anything: a partial refresh would mix two commits.
const missing = Object.entries(FILES).flatMap(([dir, names]) => names.map((n) => join(dir, n))).filter((f) => !existsSync(join(corpus, f)));
for (const top of TOPS) for (const f of ['LICENSE', 'README.md']) if (!existsSync(join(corpus, top, f))) missing.push(join(top, f));
if (missing.length > 0) fail(`missing from ${corpus}:\n  ${missing.join('\n  ')}`);

const commits = new Set(TOPS.map((top) => /\bcommit ([0-9a-f]{40})\b/.exec(readFileSync(join(corpus, top, 'README.md'), 'utf8'))?.[1]));
if (commits.has(undefined)) fail(`a README.md of ${TOPS.join(', ')} names no istio/istio commit`);
if (commits.size !== 1) fail(`the corpus folders come from different istio/istio commits: ${[...commits].join(', ')}`);
const [commit] = commits;
const licenses = new Set(TOPS.map((top) => readFileSync(join(corpus, top, 'LICENSE'), 'utf8')));
if (licenses.size !== 1) fail(`the LICENSE files of ${TOPS.join(', ')} differ`);

let copied = 0;
for (const [dir, names] of Object.entries(FILES)) {
  mkdirSync(join(OUT, dir), { recursive: true });
  for (const n of names) {
    copyFileSync(join(corpus, dir, n), join(OUT, dir, n));
    copied++;
  }
  const listed = new Set(names);
  const unlisted = readdirSync(join(corpus, dir)).filter((n) => /\.ya?ml$/.test(n) && !listed.has(n));
  if (unlisted.length > 0) console.log(`not copied (not in FILES): ${unlisted.map((n) => join(dir, n)).join(', ')}`);
  const stale = readdirSync(join(OUT, dir)).filter((n) => /\.ya?ml$/.test(n) && !listed.has(n));
  if (stale.length > 0) console.log(`in the fixtures but not in FILES (left as is): ${stale.map((n) => join(dir, n)).join(', ')}`);
}
copyFileSync(join(corpus, TOPS[0], 'LICENSE'), join(OUT, 'LICENSE'));

// The README's "Upstream commit" line names the commit the files come from.
const readme = join(OUT, 'README.md');
if (existsSync(readme)) {
  const text = readFileSync(readme, 'utf8');
  const line = /^(Upstream commit: istio\/istio@)[0-9a-f]{40}/m;
  if (!line.test(text)) fail(`${relative(REPO, readme)} has no "Upstream commit: istio/istio@<sha>" line to update`);
  writeFileSync(readme, text.replace(line, `$1${commit}`));
} else {
  console.log(`no ${relative(REPO, readme)}: write it (see git history) with the line "Upstream commit: istio/istio@${commit}"`);
}
console.log(`copied ${copied} files and LICENSE from ${corpus} (istio/istio@${commit}) to ${relative(REPO, OUT)}/`);
