// Generates ../standard.json: the Standard Webhooks libraries' signing
// vector (official), their negative cases replayed against that vector, and
// a few more computed with Node's crypto.
'use strict';
const { hmac, assertEqual, write } = require('./common');

// The libraries' TestWebhookSign / "sign function works" vector.
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const ts = 1614265330;
const body = '{"test": 2432232314}';
const official = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

const key = (s) => Buffer.from(s.replace(/^whsec_/, ''), 'base64');
const sign = (s, i, t, b) => 'v1,' + hmac('sha256', key(s), `${i}.${t}.`, b).toString('base64');
assertEqual(sign(secret, id, ts, body), official, 'Standard Webhooks library vector');

// A second secret for rotation cases: whsec_ and the base64 of bytes 1..32.
const secret2 = 'whsec_' + Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1)).toString('base64');
const other = 'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc='; // the libraries' "invalid signature"

const lib = 'official: standard-webhooks/standard-webhooks libraries (go/webhook_test.go TestWebhookSign, javascript/src/webhook.test.ts "sign function works")';
const libNeg = (what) => `official behaviour: standard-webhooks libraries' test "${what}" (go/webhook_test.go, javascript/src/webhook.test.ts), on the signing vector`;
const node = 'independent: node crypto (gen/standard.js)';
const H = (over) => {
  const h = { 'webhook-id': [id], 'webhook-timestamp': [String(ts)], 'webhook-signature': [official] };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete h[k]; else h[k] = v;
  }
  return h;
};
const ok = { id, event: '' };
const base = { now: ts, keys: [secret], body };

const cases = [
  { name: 'library-vector', source: lib, ...base, headers: H(), want: 'verified', fields: ok },
  { name: 'secret-without-prefix', source: `${lib}; "verification works with and without signature prefix"`,
    ...base, keys: ['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], headers: H(), want: 'verified', fields: ok },
  { name: 'svix-headers', source: `${lib}; the same values under Svix's header names`, ...base,
    headers: { 'svix-id': [id], 'svix-timestamp': [String(ts)], 'svix-signature': [official] }, want: 'verified', fields: ok },
  { name: 'missing-id', source: libNeg('missing id returns error'), ...base, headers: H({ 'webhook-id': null }), want: 'missing_signature' },
  { name: 'missing-timestamp', source: libNeg('missing timestamp returns error'), ...base, headers: H({ 'webhook-timestamp': null }), want: 'missing_signature' },
  { name: 'missing-signature', source: libNeg('missing signature returns error'), ...base, headers: H({ 'webhook-signature': null }), want: 'missing_signature' },
  { name: 'invalid-timestamp', source: libNeg('invalid timestamp throws error'), ...base, headers: H({ 'webhook-timestamp': ['hello'] }), want: 'malformed_signature' },
  { name: 'invalid-signature', source: libNeg('invalid signature is invalid'), ...base, headers: H({ 'webhook-signature': [other] }), want: 'bad_signature' },
  { name: 'invalid-signature-not-base64', source: libNeg('invalid signature throws error'), ...base,
    headers: H({ 'webhook-signature': ['v1,dawfeoifkpqwoekfpqoekf'] }), want: 'malformed_signature' },
  { name: 'partial-signature', source: libNeg('partial signature throws error'), ...base,
    headers: H({ 'webhook-signature': [official.slice(0, 8)] }), want: 'malformed_signature' },
  { name: 'partial-signature-v1-comma', source: libNeg('partial signature throws error'), ...base,
    headers: H({ 'webhook-signature': ['v1,'] }), want: 'malformed_signature' },
  { name: 'timestamp-5min-old-accepted', source: `${lib}; clock 300 s after the timestamp, the edge of the libraries' window`,
    ...base, now: ts + 300, headers: H(), want: 'verified', fields: ok },
  { name: 'timestamp-too-old', source: libNeg('old timestamp fails') + '; clock 301 s after the timestamp', ...base, now: ts + 301,
    headers: H(), want: 'malformed_signature' },
  { name: 'timestamp-5min-new-accepted', source: `${lib}; clock 300 s before the timestamp`, ...base, now: ts - 300,
    headers: H(), want: 'verified', fields: ok },
  { name: 'timestamp-too-new', source: libNeg('new timestamp fails') + '; clock 301 s before the timestamp', ...base, now: ts - 301,
    headers: H(), want: 'malformed_signature' },
  { name: 'timestamp-old-tolerance-off', source: libNeg('old timestamp passes when ignoring tolerance') + '; tolerance 0',
    ...base, now: ts + 86400, provider: { name: 'standard', tolerance: 0 }, headers: H(), want: 'verified', fields: ok },
  { name: 'timestamp-old-wider-tolerance', source: `${lib}; tolerance 10m, clock 9 min after`, ...base, now: ts + 540,
    provider: { name: 'standard', tolerance: '10m' }, headers: H(), want: 'verified', fields: ok },
  { name: 'multi-signature', source: libNeg('valid multi sig is valid'), ...base,
    headers: H({ 'webhook-signature': [[other, other.replace('v1,', 'v2,'), official, other].join(' ')] }), want: 'verified', fields: ok },
  { name: 'v2-prefix-refused', source: `${lib}; the valid signature labelled v2, which the libraries skip (only v1 is compared)`, ...base,
    headers: H({ 'webhook-signature': [official.replace('v1,', 'v2,')] }), want: 'malformed_signature' },
  { name: 'v1a-only-refused', source: `${lib}; the valid signature labelled v1a (Ed25519), not supported`, ...base,
    headers: H({ 'webhook-signature': [official.replace('v1,', 'v1a,')] }), want: 'malformed_signature' },
  { name: 'edited-body', source: lib, ...base, body: '{"test": 2432232315}', headers: H(), want: 'bad_signature' },
  { name: 'edited-id', source: lib, ...base, headers: H({ 'webhook-id': ['msg_p5jXN8AQM9LWM0D4loKWxJeK'] }), want: 'bad_signature' },
  { name: 'edited-timestamp', source: lib, ...base, headers: H({ 'webhook-timestamp': [String(ts + 1)] }), want: 'bad_signature' },
  { name: 'timestamp-leading-zero', source: `${lib}; the libraries parse the timestamp as an integer and sign its decimal form`, ...base,
    headers: H({ 'webhook-timestamp': ['0' + ts] }), want: 'verified', fields: ok },
  { name: 'wrong-secret', source: lib, ...base, keys: [secret2], headers: H(), want: 'bad_signature' },
  { name: 'repeated-signature-header', source: lib, ...base, headers: H({ 'webhook-signature': [official, official] }), want: 'malformed_signature' },
  { name: 'rotation-two-signatures-new-secret', source: `${node}: the vector signed under a second secret, both signatures sent`, ...base,
    keys: [secret2], headers: H({ 'webhook-signature': [`${official} ${sign(secret2, id, ts, body)}`] }), want: 'verified', fields: ok },
  { name: 'rotation-two-secrets-configured', source: `${node}: signed under the second secret only; both secrets configured`, ...base,
    keys: [secret, secret2], headers: H({ 'webhook-signature': [sign(secret2, id, ts, body)] }), want: 'verified', fields: ok },
  { name: 'event-type-from-body', source: `${node}: a Clerk-style event signed under the library secret`, now: ts, keys: [secret],
    body: '{"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC","type":"nested"},"object":"event","type":"user.created"}',
    headers: H({ 'webhook-signature': [sign(secret, id, ts, '{"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC","type":"nested"},"object":"event","type":"user.created"}')] }),
    want: 'verified', fields: { id, event: 'user.created' } },
];

write('standard', {
  sender: 'standard',
  provider: { name: 'standard' },
  sources: [
    'standard-webhooks/standard-webhooks, libraries/go/webhook_test.go (TestWebhookSign, TestWebhook, TestWebhookPrefix) and libraries/javascript/src/webhook.test.ts: the signing vector (key, id, timestamp, body with its space, signature) and the negative cases; libraries MIT (libraries/LICENSE), spec Apache-2.0.',
    'Other cases: derived from the vector, signatures computed with Node crypto by gen/standard.js. Empty and whsec_-only secrets are refused at provision (TestSendersStandardSecretsAtProvision), as the JavaScript library refuses them ("empty key raises error").',
  ],
  cases,
});
