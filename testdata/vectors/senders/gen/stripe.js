// Generates ../stripe.json. Stripe publishes no fixed vector: its libraries
// sign at test time (stripe/stripe-go webhook/client_test.go, with the
// secret "whsec_test_secret" used as is). These cases follow those tests'
// rules, with signatures computed here by Node's crypto.
'use strict';
const { hex256, write } = require('./common');

const secret = 'whsec_test_secret'; // stripe-go's test secret, used raw (never base64-decoded)
const rolled = 'whsec_rolled_secret';
const t = 1700000000;
const body = '{\n  "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",\n  "object": "event",\n  "api_version": "2023-10-16",\n  "created": 1700000000,\n  "data": {\n    "object": {\n      "id": "pi_3NG8Dt2eZvKYlo2C0T2kVgyN",\n      "object": "payment_intent",\n      "amount": 2000\n    }\n  },\n  "type": "payment_intent.succeeded"\n}';
const fields = { id: 'evt_1NG8Du2eZvKYlo2CUI79vXWy', event: 'payment_intent.succeeded' };
const v1 = (s, ts, b = body) => hex256(s, `${ts}.`, b);
const sig = v1(secret, t);
const H = (v) => ({ 'Stripe-Signature': [v] });
const node = 'independent: node crypto (gen/stripe.js)';
const rule = (what) => `${node}; rule from stripe/stripe-go webhook/client_test.go: ${what}`;
const base = { now: t, keys: [secret], body };

const cases = [
  { name: 'signed', source: node, ...base, headers: H(`t=${t},v1=${sig}`), want: 'verified', fields },
  { name: 'signed-with-v0', source: rule('a v0 signature beside v1 is ignored'), ...base,
    headers: H(`t=${t},v1=${sig},v0=${hex256('other', `${t}.`, body)}`), want: 'verified', fields },
  { name: 'extra-unreadable-v1-ignored', source: rule('an extra v1=bad_signature is ignored'), ...base,
    headers: H(`t=${t},v1=bad_signature,v1=${sig}`), want: 'verified', fields },
  { name: 'unknown-keys-ignored', source: rule('unknown parts of the header are ignored'), ...base,
    headers: H(`t=${t},v1=${sig},v9=abc,foo=bar`), want: 'verified', fields },
  { name: 'v0-only', source: rule('a header with only v0 fails'), ...base,
    headers: H(`t=${t},v0=${sig}`), want: 'malformed_signature' },
  { name: 'rolled-secret-new', source: rule('two v1 (secret rolled): either secret verifies'), ...base, keys: [rolled],
    headers: H(`t=${t},v1=${sig},v1=${v1(rolled, t)}`), want: 'verified', fields },
  { name: 'rolled-secret-old', source: rule('two v1 (secret rolled): either secret verifies'), ...base,
    headers: H(`t=${t},v1=${v1(rolled, t)},v1=${sig}`), want: 'verified', fields },
  { name: 'rotation-two-secrets-configured', source: node, ...base, keys: [rolled, secret],
    headers: H(`t=${t},v1=${sig}`), want: 'verified', fields },
  { name: 'secret-not-base64-decoded', source: `${node}: signed with the base64-decoded secret, which Stripe never uses`, ...base,
    headers: H(`t=${t},v1=${hex256(Buffer.from('test_secret', 'base64'), `${t}.`, body)}`), want: 'bad_signature' },
  { name: '15s-old-tolerance-10s', source: rule('15 s old fails with a 10 s tolerance'), ...base, now: t + 15,
    provider: { name: 'stripe', tolerance: '10s' }, headers: H(`t=${t},v1=${sig}`), want: 'malformed_signature' },
  { name: '15s-old-tolerance-20s', source: rule('15 s old passes with a 20 s tolerance'), ...base, now: t + 15,
    provider: { name: 'stripe', tolerance: '20s' }, headers: H(`t=${t},v1=${sig}`), want: 'verified', fields },
  { name: 't-12345-tolerance-off', source: rule('t=12345 verifies only when the tolerance is ignored'), ...base,
    provider: { name: 'stripe', tolerance: 0 }, headers: H(`t=12345,v1=${v1(secret, 12345)}`), want: 'verified', fields },
  { name: 't-12345-default-tolerance', source: rule('t=12345 fails with the default tolerance'), ...base,
    headers: H(`t=12345,v1=${v1(secret, 12345)}`), want: 'malformed_signature' },
  { name: '300s-old-accepted', source: `${node}; Stripe's default tolerance is 300 s`, ...base, now: t + 300,
    headers: H(`t=${t},v1=${sig}`), want: 'verified', fields },
  { name: '301s-old', source: `${node}; Stripe's default tolerance is 300 s`, ...base, now: t + 301,
    headers: H(`t=${t},v1=${sig}`), want: 'malformed_signature' },
  { name: '301s-future', source: `${node}; the gateway checks both directions (Stripe's libraries only the past)`, ...base, now: t - 301,
    headers: H(`t=${t},v1=${sig}`), want: 'malformed_signature' },
  { name: 't-empty', source: rule('"t=" is a malformed header'), ...base, headers: H(`t=,v1=${sig}`), want: 'malformed_signature' },
  { name: 'v1-comma-t', source: rule('"v1,t=1" is a malformed header'), ...base, headers: H('v1,t=1'), want: 'malformed_signature' },
  { name: 'no-t', source: node, ...base, headers: H(`v1=${sig}`), want: 'malformed_signature' },
  { name: 'missing-header', source: node, ...base, headers: {}, want: 'missing_signature' },
  { name: 'repeated-header', source: node, ...base, headers: { 'Stripe-Signature': [`t=${t},v1=${sig}`, `t=${t},v1=${sig}`] }, want: 'malformed_signature' },
  { name: 'edited-body', source: node, ...base, body: body.replace('2000', '2001'), headers: H(`t=${t},v1=${sig}`), want: 'bad_signature' },
  { name: 'edited-t', source: node, ...base, headers: H(`t=${t + 1},v1=${sig}`), want: 'bad_signature' },
  { name: 'wrong-secret', source: node, ...base, keys: ['whsec_test_secreT'], headers: H(`t=${t},v1=${sig}`), want: 'bad_signature' },
];

write('stripe', {
  sender: 'stripe',
  provider: { name: 'stripe' },
  sources: [
    'Stripe publishes no fixed vector. Rules from stripe/stripe-go webhook/client.go and webhook/client_test.go (MIT) and docs.stripe.com/webhooks/signature: signed "<t>.<body>", HMAC-SHA256 hex in v1, whsec_ secret used raw, v0 and unknown keys ignored, default tolerance 300 s.',
    'All signatures computed with Node crypto by gen/stripe.js; the body is a Stripe-shaped event (pretty-printed, as Stripe sends).',
  ],
  cases,
});
