// Generates hints.json: requests built to need each diagnostic hint of a
// refused signature (and one plain forgery that must get none), every
// signature computed with Node's crypto, independently of the gateway.
//
//   node testdata/vectors/hints/gen.js   (from the repository root)
//
// Each case: provider (the handler's JSON), secrets (strings or
// {"secret", "not_after"}), now (Unix seconds, the handler's clock),
// headers, body, want (the outcome of caddy_webhook_verify_requests_total)
// and hint: a phrase the log line's "hint" must contain, or "" for none;
// for a verified one, key (the secret that verified it) and form (the
// signed form, when not the raw body).
// Official inputs are reused where a sender published them (GitHub's docs
// example, Standard Webhooks' library vector, RFC 8032 TEST 1).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const mac = (hash, key, ...parts) => {
  const m = crypto.createHmac(hash, key);
  for (const p of parts) m.update(p);
  return m.digest();
};

// RFC 8032 §7.1 TEST 1
const ed = crypto.createPrivateKey({
  key: Buffer.from('302e020100300506032b657004220420' + '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'),
  format: 'der', type: 'pkcs8',
});
const edPublic = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';

const cases = [];
const add = (c) => cases.push(c);

// --- another encoding ------------------------------------------------------
{
  const secret = "It's a Secret to Everybody"; // GitHub's docs example
  const body = 'Hello, World!';
  const sig = mac('sha256', secret, body);
  if (sig.toString('hex') !== '757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17') throw new Error('github docs vector');
  add({ name: 'github-base64', source: 'GitHub docs example, signature sent as base64', provider: { name: 'github' }, secrets: [secret],
    headers: { 'X-Hub-Signature-256': ['sha256=' + sig.toString('base64')] }, body, want: 'malformed_signature', hint: 'the signature is base64 where this sender\'s are hex' });
  add({ name: 'github-base64-wrong-secret', source: 'base64, but under another secret: no hint', provider: { name: 'github' }, secrets: [secret],
    headers: { 'X-Hub-Signature-256': ['sha256=' + mac('sha256', 'another secret', body).toString('base64')] }, body, want: 'malformed_signature', hint: '' });
}
{
  const secret = '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';
  const body = '{"id":820982911946154508,"email":"jon@example.com"}';
  add({ name: 'shopify-hex', source: 'Shopify signature sent as hex', provider: { name: 'shopify' }, secrets: [secret],
    headers: { 'X-Shopify-Hmac-Sha256': [mac('sha256', secret, body).toString('hex')], 'X-Shopify-Topic': ['orders/create'] }, body,
    want: 'malformed_signature', hint: 'the signature is hex where this sender\'s are base64' });
}
{
  const secret = 'whsec_test_secret';
  const body = '{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}';
  const t = 1700000000;
  add({ name: 'stripe-v1-base64', source: 'Stripe v1 sent as base64', provider: { name: 'stripe' }, secrets: [secret], now: t,
    headers: { 'Stripe-Signature': [`t=${t},v1=${mac('sha256', secret, `${t}.`, body).toString('base64')}`] }, body,
    want: 'malformed_signature', hint: 'the signature is base64 where this sender\'s are hex' });
}
{
  // Standard Webhooks' library vector, with its signature sent as hex
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const key = Buffer.from(secret.slice(6), 'base64');
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek', t = 1614265330, body = '{"test": 2432232314}';
  const sig = mac('sha256', key, `${id}.${t}.`, body);
  if (sig.toString('base64') !== 'g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=') throw new Error('standard library vector');
  add({ name: 'standard-v1-hex', source: 'Standard Webhooks library vector, v1 sent as hex', provider: { name: 'standard' }, secrets: [secret], now: t,
    headers: { 'webhook-id': [id], 'webhook-timestamp': [String(t)], 'webhook-signature': ['v1,' + sig.toString('hex')] }, body,
    want: 'malformed_signature', hint: 'the signature is hex where this sender\'s are base64' });
  // --- the secret decoded another way -------------------------------------
  add({ name: 'standard-secret-as-text', source: 'Standard Webhooks headers signed with the whsec_ text as the key (as Stripe uses its secrets)', provider: { name: 'standard' }, secrets: [secret], now: t,
    headers: { 'webhook-id': [id], 'webhook-timestamp': [String(t)], 'webhook-signature': ['v1,' + mac('sha256', secret, `${id}.${t}.`, body).toString('base64')] }, body,
    want: 'bad_signature', hint: 'taken as its text' });
  const st = 1700000000, sbody = '{"id":"evt_2","type":"invoice.paid"}';
  add({ name: 'stripe-secret-base64-decoded', source: 'Stripe headers signed with the whsec_ secret base64-decoded (as Standard Webhooks does)', provider: { name: 'stripe' }, secrets: [secret], now: st,
    headers: { 'Stripe-Signature': [`t=${st},v1=${mac('sha256', key, `${st}.`, sbody).toString('hex')}`] }, body: sbody,
    want: 'bad_signature', hint: 'base64-decoded' });
}
{
  // Ed25519 (Discord) signature sent as base64
  const t = '1700000000', body = '{"type":1}';
  const sig = crypto.sign(null, Buffer.from(t + body), ed);
  if (sig.toString('hex') !== '1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f') throw new Error('discord V9 vector');
  add({ name: 'discord-base64', source: 'research/senders.md V9 (RFC 8032 TEST 1 key), signature sent as base64', provider: { name: 'discord' }, secrets: [edPublic], now: 1700000000,
    headers: { 'X-Signature-Ed25519': [sig.toString('base64')], 'X-Signature-Timestamp': [t] }, body,
    want: 'malformed_signature', hint: 'the signature is base64 where this sender\'s are hex' });
  // --- an expired public key (RFC 8032 TEST 2's key is the other one) ------
  const test2Public = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c';
  add({ name: 'discord-expired-key', source: 'the V9 request; its key (secret 1) expired a second before the clock', provider: { name: 'discord' },
    secrets: [{ secret: edPublic, not_after: '2023-11-14T22:13:19Z' }, test2Public], now: 1700000000,
    headers: { 'X-Signature-Ed25519': [sig.toString('hex')], 'X-Signature-Timestamp': [t] }, body,
    want: 'bad_signature', hint: 'matches secret 1, which expired at 2023-11-14T22:13:19Z' });
  add({ name: 'discord-key-before-expiry', source: 'the same a second earlier: verified by secret 1', provider: { name: 'discord' },
    secrets: [{ secret: edPublic, not_after: '2023-11-14T22:13:21Z' }, test2Public], now: 1700000000,
    headers: { 'X-Signature-Ed25519': [sig.toString('hex')], 'X-Signature-Timestamp': [t] }, body,
    want: 'verified', hint: '', key: '1' });
  // --- a trailing newline, over Ed25519 --------------------------------------
  add({ name: 'discord-newline', source: 'the V9 request with a newline added after signing', provider: { name: 'discord' }, secrets: [edPublic], now: 1700000000,
    headers: { 'X-Signature-Ed25519': [sig.toString('hex')], 'X-Signature-Timestamp': [t] }, body: body + '\n',
    want: 'bad_signature', hint: 'without its trailing newline' });
}
{
  // hmac configured for hex, the sender sends base64
  const secret = 'hmac-hint-secret-5c2e', body = '{"event":"ping"}';
  add({ name: 'hmac-hex-config-base64-sender', source: 'an hmac configuration with the wrong encoding', provider: { name: 'hmac', signatures: [{ header: 'X-Sig' }] }, secrets: [secret],
    headers: { 'X-Sig': [mac('sha256', secret, body).toString('base64')] }, body,
    want: 'malformed_signature', hint: 'the signature is base64 where this sender\'s are hex' });
}
{
  // ECDSA P-256 (SendGrid): sendgrid-go's published vector, its key expired;
  // the second key is the other one of senders/sendgrid.json
  const sg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'senders', 'sendgrid.json'), 'utf8'));
  const lib = sg.cases.find((c) => c.name === 'library-vector');
  const other = [...new Set(sg.cases.flatMap((c) => c.keys || []))].find((k) => k.startsWith('MFkw') && k !== lib.keys[0]);
  const pub = crypto.createPublicKey({ key: Buffer.from(lib.keys[0], 'base64'), format: 'der', type: 'spki' });
  const ok = crypto.verify('sha256', Buffer.from(lib.headers['X-Twilio-Email-Event-Webhook-Timestamp'][0] + lib.body),
    { key: pub, dsaEncoding: 'der' }, Buffer.from(lib.headers['X-Twilio-Email-Event-Webhook-Signature'][0], 'base64'));
  if (!ok || !other) throw new Error('sendgrid library vector');
  add({ name: 'sendgrid-expired-key', source: 'sendgrid-go\'s library vector (senders/sendgrid.json), its key (secret 2) expired a second before the clock', provider: { name: 'sendgrid' },
    secrets: [other, { secret: lib.keys[0], not_after: '2020-05-06T18:06:06Z' }], now: lib.now,
    headers: lib.headers, body: lib.body, want: 'bad_signature',
    hint: 'the signature matches secret 2, which expired at 2020-05-06T18:06:06Z (not_after): the sender still signs with it' });
  add({ name: 'sendgrid-key-before-expiry', source: 'the same, not_after a second after the clock: verified by secret 2', provider: { name: 'sendgrid' },
    secrets: [other, { secret: lib.keys[0], not_after: '2020-05-06T18:06:08Z' }], now: lib.now,
    headers: lib.headers, body: lib.body, want: 'verified', hint: '', key: '2' });
}
{
  // Vev's stringify_fallback with an expired first secret: a pretty-printed
  // body signed (over its JSON.stringify form) with the second secret
  const old = 'vev-old-secret-44e1', cur = 'vev-new-secret-9b3c';
  const body = JSON.stringify({ id: 'v_exp', hosting: 'h_1', event: 'PUBLISH', payload: { html: '<h1>Hi</h1>' } }, null, 2);
  const signed = JSON.stringify(JSON.parse(body));
  add({ name: 'vev-stringify-expired-first-key', source: 'a pretty-printed Vev PUBLISH signed over its stringify form with secret 2; secret 1 expired', provider: { name: 'vev', stringify_fallback: true },
    secrets: [{ secret: old, not_after: '2026-01-01T00:00:00Z' }, cur], now: 1790000000,
    headers: { 'Content-Type': ['application/json'], 'X-Vev-Signature': ['sha512=' + mac('sha512', cur, signed).toString('hex')] }, body,
    want: 'verified', hint: '', key: '2', form: 'stringify' });
  add({ name: 'vev-stringify-expired-key-used', source: 'the same signed with the expired secret 1: refused, no hint (the hints check the raw body)', provider: { name: 'vev', stringify_fallback: true },
    secrets: [{ secret: old, not_after: '2026-01-01T00:00:00Z' }, cur], now: 1790000000,
    headers: { 'Content-Type': ['application/json'], 'X-Vev-Signature': ['sha512=' + mac('sha512', old, signed).toString('hex')] }, body,
    want: 'bad_signature', hint: '' });
}
{
  // the hint names the right secret when several are configured
  const secret = "It's a Secret to Everybody", body = 'Hello, World!';
  add({ name: 'github-base64-second-secret', source: 'GitHub docs example as base64, the secret configured second', provider: { name: 'github' }, secrets: ['another-secret-0', secret],
    headers: { 'X-Hub-Signature-256': ['sha256=' + mac('sha256', secret, body).toString('base64')] }, body, want: 'malformed_signature',
    hint: 'the signature is base64 where this sender\'s are hex; read as hex it matches secret 2: the sender (or the hmac configuration\'s encoding) is wrong' });
  add({ name: 'github-newline-second-secret', source: 'GitHub docs example with a newline added, the secret configured second', provider: { name: 'github' }, secrets: ['another-secret-0', secret],
    headers: { 'X-Hub-Signature-256': ['sha256=' + mac('sha256', secret, body).toString('hex')] }, body: body + '\n', want: 'bad_signature',
    hint: 'the signature matches the body without its trailing newline (secret 2): something added a newline after the sender signed' });
}
// --- a trailing newline -------------------------------------------------------
{
  const secret = 'vivreal-hint-secret-71b0';
  const body = '{"id":"evt_nl","event":"collection.object.created"}';
  add({ name: 'vivreal-newline', source: 'signed without the newline a shell added to the body', provider: { name: 'vivreal' }, secrets: [secret],
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', secret, body).toString('hex')] }, body: body + '\n',
    want: 'bad_signature', hint: 'without its trailing newline' });
  add({ name: 'vivreal-bare-base64', source: 'a bare base64 signature (its padding reads as sha256=\'s "=")', provider: { name: 'vivreal' }, secrets: [secret],
    headers: { 'X-Vivreal-Signature': [mac('sha256', secret, body).toString('base64')] }, body,
    want: 'malformed_signature', hint: 'the signature is base64 where this sender\'s are hex' });
  add({ name: 'vivreal-crlf', source: 'the same with CRLF', provider: { name: 'vivreal' }, secrets: [secret],
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', secret, body).toString('hex')] }, body: body + '\r\n',
    want: 'bad_signature', hint: 'without its trailing newline' });
  // --- an expired secret ------------------------------------------------------
  const old = 'vivreal-old-secret-0d3a', now = 1790000000;
  const na = new Date((now - 60) * 1000).toISOString().replace('.000Z', 'Z');
  add({ name: 'vivreal-expired', source: 'signed with secret 1, expired a minute before the clock', provider: { name: 'vivreal' },
    secrets: [{ secret: old, not_after: na }, secret], now,
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', old, body).toString('hex')] }, body,
    want: 'bad_signature', hint: 'matches secret 1, which expired at ' + na });
  add({ name: 'vivreal-not-yet-expired', source: 'the same a minute before not_after: verified by secret 1', provider: { name: 'vivreal' },
    secrets: [{ secret: old, not_after: na }, secret], now: now - 120,
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', old, body).toString('hex')] }, body,
    want: 'verified', hint: '', key: '1' });
  add({ name: 'vivreal-second-key', source: 'signed with secret 2', provider: { name: 'vivreal' },
    secrets: [{ secret: old, not_after: na }, secret], now,
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', secret, body).toString('hex')] }, body,
    want: 'verified', hint: '', key: '2' });
  // --- a plain forgery: no hint ---------------------------------------------
  add({ name: 'vivreal-wrong-secret', source: 'signed with a secret the gateway does not have', provider: { name: 'vivreal' },
    secrets: [{ secret: old, not_after: na }, secret], now,
    headers: { 'X-Vivreal-Signature': ['sha256=' + mac('sha256', 'not-the-secret', body).toString('hex')] }, body: body + '\n',
    want: 'bad_signature', hint: '' });
}

const out = { sources: ['independent: node crypto (this file, gen.js)'], cases };
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
