// Generates ../shopify.json. Shopify publishes no fixed vector; the
// signatures are computed here with Node's crypto and, for the main case,
// checked against openssl (a second independent implementation):
//   printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
'use strict';
const { execFileSync } = require('child_process');
const { hmac, b64256, assertEqual, write } = require('./common');

const secret = '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'; // an app client secret (made up), used as is
const body = '{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@example.com","total_price":"598.94","currency":"USD","line_items":[{"id":466157049,"title":"IPod Nano - 8gb","quantity":1}]}';
const sig = b64256(secret, body);
const viaOpenssl = execFileSync('sh', ['-c', 'printf "%s" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64'],
  { env: { ...process.env, BODY: body, SECRET: secret } }).toString().trim();
assertEqual(sig, viaOpenssl, 'Shopify signature (openssl)');

const whId = 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043';
const H = (over) => {
  const h = { 'X-Shopify-Hmac-Sha256': [sig], 'X-Shopify-Topic': ['orders/create'], 'X-Shopify-Webhook-Id': [whId],
    'X-Shopify-Shop-Domain': ['example.myshopify.com'] };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete h[k]; else h[k] = v;
  }
  return h;
};
const src = 'independent: node crypto and openssl (gen/shopify.js)';
const node = 'independent: node crypto (gen/shopify.js)';
const base = { keys: [secret], body };
const fields = { id: whId, event: 'orders/create' };
const hexSig = hmac('sha256', secret, body).toString('hex');
const urlSafe = sig.replace(/\+/g, '-').replace(/\//g, '_');

const cases = [
  { name: 'signed', source: src, ...base, headers: H(), want: 'verified', fields },
  { name: 'rotation-second-secret', source: src, ...base, keys: ['shpss_old', secret], headers: H(), want: 'verified', fields },
  { name: 'no-id-or-topic', source: src, ...base, headers: H({ 'X-Shopify-Topic': null, 'X-Shopify-Webhook-Id': null }), want: 'verified', fields: { id: '', event: '' } },
  { name: 'hex-instead-of-base64', source: `${node}: the same MAC in hex, as Shopify's OAuth callbacks use`, ...base,
    headers: H({ 'X-Shopify-Hmac-Sha256': [hexSig] }), want: 'malformed_signature' },
  { name: 'unpadded-base64', source: src, ...base, headers: H({ 'X-Shopify-Hmac-Sha256': [sig.replace(/=+$/, '')] }), want: 'malformed_signature' },
  { name: 'missing-header', source: src, ...base, headers: H({ 'X-Shopify-Hmac-Sha256': null }), want: 'missing_signature' },
  { name: 'repeated-header', source: src, ...base, headers: H({ 'X-Shopify-Hmac-Sha256': [sig, sig] }), want: 'malformed_signature' },
  { name: 'truncated', source: src, ...base, headers: H({ 'X-Shopify-Hmac-Sha256': [sig.slice(0, 40)] }), want: 'malformed_signature' },
  { name: 'edited-body', source: src, ...base, body: body.replace('598.94', '0.01'), headers: H(), want: 'bad_signature' },
  { name: 'wrong-secret', source: src, ...base, keys: ['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'], headers: H(), want: 'bad_signature' },
  { name: 'other-body-signature', source: `${node}: the signature of an empty body`, ...base,
    headers: H({ 'X-Shopify-Hmac-Sha256': [b64256(secret, '')] }), want: 'bad_signature' },
];
if (urlSafe !== sig) {
  cases.push({ name: 'url-safe-base64', source: `${node}: base64url of the same MAC`, ...base,
    headers: H({ 'X-Shopify-Hmac-Sha256': [urlSafe] }), want: 'malformed_signature' });
}

write('shopify', {
  sender: 'shopify',
  provider: { name: 'shopify' },
  sources: [
    'Shopify publishes no fixed vector. Scheme from shopify.dev/docs/apps/build/webhooks/subscribe/https ("Verify the webhook"): standard base64 of HMAC-SHA256 of the raw body under the app client secret, in X-Shopify-Hmac-Sha256; X-Shopify-Webhook-Id and X-Shopify-Topic headers. The order body is shaped like the docs\' orders/create example; the secret is made up.',
    'Signatures computed with Node crypto and checked against openssl by gen/shopify.js.',
  ],
  cases,
});
