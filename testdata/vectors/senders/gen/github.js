// Generates ../github.json: GitHub's documented example (official) and the
// cases around it, computed with Node's crypto.
'use strict';
const { hex256, hmac, assertEqual, write } = require('./common');

const secret = "It's a Secret to Everybody"; // docs example secret
const body = 'Hello, World!'; // docs example payload
const official = '757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
assertEqual(hex256(secret, body), official, 'GitHub docs example');

const delivery = '72d3162e-cc78-11e3-81ab-4c9367dc0958'; // docs example delivery id
const sig = `sha256=${official}`;
const sha1 = 'sha1=' + hmac('sha1', secret, body).toString('hex');
const hdr = (extra) => Object.assign({ 'X-GitHub-Delivery': [delivery], 'X-GitHub-Event': ['push'] }, extra);
const node = 'independent: node crypto (gen/github.js)';
const docs = 'official: docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries ("Testing the webhook payload validation")';

const cases = [
  { name: 'docs-example', source: docs, keys: [secret], headers: hdr({ 'X-Hub-Signature-256': [sig] }), body,
    want: 'verified', fields: { id: delivery, event: 'push' } },
  { name: 'docs-example-upper-case-hex', source: `${docs}; upper-cased`, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': ['sha256=' + official.toUpperCase()] }), body,
    want: 'verified', fields: { id: delivery, event: 'push' } },
  { name: 'rotation-second-secret', source: `${docs}; the old secret listed first`, keys: ['the old secret', secret],
    headers: hdr({ 'X-Hub-Signature-256': [sig] }), body, want: 'verified', fields: { id: delivery, event: 'push' } },
  { name: 'no-delivery-headers', source: docs, keys: [secret], headers: { 'X-Hub-Signature-256': [sig] }, body,
    want: 'verified', fields: { id: '', event: '' } },
  { name: 'sha1-header-only', source: `${node}: HMAC-SHA1 of the docs example, the legacy X-Hub-Signature`, keys: [secret],
    headers: hdr({ 'X-Hub-Signature': [sha1] }), body, want: 'missing_signature' },
  { name: 'sha1-value-in-sha256-header', source: node, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': [sha1] }), body, want: 'malformed_signature' },
  { name: 'bare-hex-without-prefix', source: docs, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': [official] }), body, want: 'malformed_signature' },
  { name: 'edited-body', source: docs, keys: [secret], headers: hdr({ 'X-Hub-Signature-256': [sig] }),
    body: 'Hello, World?', want: 'bad_signature' },
  { name: 'trailing-newline-added', source: docs, keys: [secret], headers: hdr({ 'X-Hub-Signature-256': [sig] }),
    body: body + '\n', want: 'bad_signature' },
  { name: 'wrong-secret', source: docs, keys: ["It's a Secret to Everybody!"],
    headers: hdr({ 'X-Hub-Signature-256': [sig] }), body, want: 'bad_signature' },
  { name: 'repeated-header', source: docs, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': [sig, sig] }), body, want: 'malformed_signature' },
  { name: 'truncated-hex', source: docs, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': [sig.slice(0, -2)] }), body, want: 'malformed_signature' },
  { name: 'signed-other-body', source: `${node}: a signature of "Hello, World?"`, keys: [secret],
    headers: hdr({ 'X-Hub-Signature-256': ['sha256=' + hex256(secret, 'Hello, World?')] }), body, want: 'bad_signature' },
];

write('github', {
  sender: 'github',
  provider: { name: 'github' },
  sources: [
    'GitHub docs, "Validating webhook deliveries", section "Testing the webhook payload validation": secret, payload and signature (github/docs content/webhooks/using-webhooks/validating-webhook-deliveries.md; docs CC-BY-4.0, code samples MIT). The delivery id is the docs example of X-GitHub-Delivery (webhook-events-and-payloads, "Delivery headers").',
    'Other cases: derived from the example, signatures computed with Node crypto by gen/github.js.',
  ],
  cases,
});
