// Generates (--write) or checks (default) ../sendgrid.json: the signed
// Event Webhook vectors of the sendgrid preset.
//
// The official vector is SendGrid's own library test (sendgrid/sendgrid-go
// helpers/eventwebhook/eventwebhook_test.go, MIT; the same values are in
// sendgrid-nodejs packages/eventwebhook): public key, timestamp, body and
// signature, with its negative cases. The other cases are signed here with
// Node's crypto (an implementation independent of the gateway's Go code)
// under that test's published private key, or under RFC 6979 A.2.5's P-256
// private key. ECDSA signatures are randomised, so --write gives new
// signatures each time; the default mode only checks the committed file:
// every signature verifies (or not) as its case says, with Node's crypto
// and with openssl.
//
// SendGrid signs SHA-256("<X-Twilio-Email-Event-Webhook-Timestamp><body>")
// with ECDSA P-256 and sends the ASN.1 DER signature in base64.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { assertEqual, write } = require('./common');

// sendgrid-go helpers/eventwebhook/eventwebhook_test.go
const libPublic = 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==';
const libPrivate = 'MHcCAQEEIEQmZgBEh9DcU9zMl34czK3xov4AYvm9P3r7rNB2dNXtoAoGCCqGSM49AwEHoUQDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==';
const libTimestamp = '1588788367';
const libSignature = 'MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=';
// generateTestPayload(): Go's json.Marshal of a map sorts the keys; no newline
const libPayload = '{"category":"example_payload","event":"test_event","message_id":"message_id"}';

const pubKey = (b64) => crypto.createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
const libKey = crypto.createPrivateKey({ key: Buffer.from(libPrivate, 'base64'), format: 'der', type: 'sec1' });
assertEqual(crypto.createPublicKey(libKey).export({ format: 'der', type: 'spki' }).toString('base64'), libPublic, 'the library\'s key pair');

// a second key pair: the P-256 private key of RFC 6979 A.2.5 (any would do)
const ecdh = crypto.createECDH('prime256v1');
ecdh.setPrivateKey(Buffer.from('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721', 'hex'));
const pt = ecdh.getPublicKey();
const b64u = (b) => b.toString('base64url');
const otherKey = crypto.createPrivateKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256', d: b64u(ecdh.getPrivateKey()), x: b64u(pt.subarray(1, 33)), y: b64u(pt.subarray(33)) } });
const otherPublic = crypto.createPublicKey(otherKey).export({ format: 'der', type: 'spki' }).toString('base64');
const libPEM = pubKey(libPublic).export({ format: 'pem', type: 'spki' });

const msg = (ts, body) => Buffer.concat([Buffer.from(ts), Buffer.from(body)]);
const verifies = (pub, ts, body, sigB64) => {
  const sig = Buffer.from(sigB64, 'base64');
  return sig.toString('base64') === sigB64 && crypto.verify('sha256', msg(ts, body), pubKey(pub), sig);
};
// openssl, a second implementation, over the same bytes
const viaOpenssl = (pub, ts, body, sigB64) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sendgrid-vec-'));
  try {
    fs.writeFileSync(path.join(dir, 'pub.pem'), pubKey(pub).export({ format: 'pem', type: 'spki' }));
    fs.writeFileSync(path.join(dir, 'sig.der'), Buffer.from(sigB64, 'base64'));
    fs.writeFileSync(path.join(dir, 'msg'), msg(ts, body));
    execFileSync('openssl', ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.der', 'msg'], { cwd: dir, stdio: 'pipe' });
    return true;
  } catch (e) {
    return false;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};
if (!verifies(libPublic, libTimestamp, libPayload, libSignature) || !viaOpenssl(libPublic, libTimestamp, libPayload, libSignature)) {
  throw new Error('the library vector does not verify');
}

const SIG = 'X-Twilio-Email-Event-Webhook-Signature';
const TS = 'X-Twilio-Email-Event-Webhook-Timestamp';
// the committed file, or the one --write wrote to $VECTORS_OUT
const file = path.join(process.env.VECTORS_OUT || path.join(__dirname, '..'), 'sendgrid.json');

if (process.argv.includes('--write')) {
  const sign = (key, ts, body) => crypto.sign('sha256', msg(ts, body), key).toString('base64');
  const lib = 'official: sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go (MIT)';
  const node = (what) => `independent: node crypto (gen/sendgrid.js), ${what}`;
  const H = (over) => {
    const h = { [SIG]: [libSignature], [TS]: [libTimestamp] };
    for (const [k, v] of Object.entries(over || {})) {
      if (v === null) delete h[k]; else h[k] = v;
    }
    return h;
  };
  const now = Number(libTimestamp);
  const base = { now, keys: [libPublic], body: libPayload };
  const none = { id: '', event: '' };
  // a batched delivery as SendGrid sends it (shape from SendGrid's Event Webhook reference; values made up), CRLF-terminated
  const batch = '[{"email":"example@test.com","timestamp":1700000000,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"processed","category":["cat facts"],"sg_event_id":"rbtnWrG1DVDGGGFHFyun0A==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000"},{"email":"example@test.com","timestamp":1700000000,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"delivered","response":"250 OK","sg_event_id":"rWVYmVk90MjZJ9iohOBa3w==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000"}]\r\n';
  const batchTs = '1700000000';
  const batchSig = sign(libKey, batchTs, batch);
  const cases = [
    { name: 'library-vector', source: lib, ...base, headers: H(), want: 'verified', fields: none },
    { name: 'library-not-valid-payload', source: `${lib}: "not valid payload"`, ...base, body: 'this is not valid payload for the given signature', headers: H(), want: 'bad_signature' },
    { name: 'library-not-valid-signature', source: `${lib}: "not valid signature" (the signature with text appended)`, ...base, headers: H({ [SIG]: [libSignature + 'causing failure'] }), want: 'malformed_signature' },
    { name: 'library-not-valid-timestamp', source: `${lib}: "not valid timestamp"`, ...base, headers: H({ [TS]: ['invalid timestamp'] }), want: 'malformed_signature' },
    { name: 'library-empty-timestamp', source: `${lib}: "empty timestamp"`, ...base, headers: H({ [TS]: [''] }), want: 'missing_signature' },
    { name: 'library-key-as-pem', source: `${lib}; the key as PEM (exported by node)`, ...base, keys: [libPEM], headers: H(), want: 'verified', fields: none },
    { name: 'rotation-second-key', source: `${lib}; another key listed first`, ...base, keys: [otherPublic, libPublic], headers: H(), want: 'verified', fields: none },
    { name: 'at-tolerance-stale-edge', source: `${lib}; clock 300 s after`, ...base, now: now + 300, headers: H(), want: 'verified', fields: none },
    { name: 'at-tolerance-future-edge', source: `${lib}; clock 300 s before`, ...base, now: now - 300, headers: H(), want: 'verified', fields: none },
    { name: 'stale', source: `${lib}; clock 301 s after`, ...base, now: now + 301, headers: H(), want: 'malformed_signature' },
    { name: 'future', source: `${lib}; clock 301 s before`, ...base, now: now - 301, headers: H(), want: 'malformed_signature' },
    { name: 'today', source: `${lib}; today's clock (1764547200), years after the vector`, ...base, now: 1764547200, headers: H(), want: 'malformed_signature' },
    { name: 'tolerance-10m', source: `${lib}; tolerance 10m, clock 9 min after`, ...base, now: now + 540,
      provider: { name: 'sendgrid', tolerance: '10m' }, headers: H(), want: 'verified', fields: none },
    { name: 'tolerance-off', source: `${lib}; tolerance 0, clock years later`, ...base, now: 1764547200,
      provider: { name: 'sendgrid', tolerance: 0 }, headers: H(), want: 'verified', fields: none },
    { name: 'wrong-key', source: `${lib}; configured with another P-256 key`, ...base, keys: [otherPublic], headers: H(), want: 'bad_signature' },
    { name: 'edited-body-newline', source: `${lib}; a newline added to the body`, ...base, body: libPayload + '\n', headers: H(), want: 'bad_signature' },
    { name: 'edited-body-reordered', source: `${lib}; the same JSON, keys in another order`, ...base, body: '{"event":"test_event","category":"example_payload","message_id":"message_id"}', headers: H(), want: 'bad_signature' },
    { name: 'edited-timestamp', source: `${lib}; timestamp header one second later (clock too)`, ...base, now: now + 1, headers: H({ [TS]: [String(now + 1)] }), want: 'bad_signature' },
    { name: 'missing-signature', source: lib, ...base, headers: H({ [SIG]: null }), want: 'missing_signature' },
    { name: 'missing-timestamp', source: lib, ...base, headers: H({ [TS]: null }), want: 'missing_signature' },
    { name: 'repeated-signature', source: lib, ...base, headers: H({ [SIG]: [libSignature, libSignature] }), want: 'malformed_signature' },
    { name: 'repeated-timestamp', source: lib, ...base, headers: H({ [TS]: [libTimestamp, libTimestamp] }), want: 'malformed_signature' },
    { name: 'signature-not-base64', source: lib, ...base, headers: H({ [SIG]: [libSignature.replace('+', '!')] }), want: 'malformed_signature' },
    { name: 'signature-truncated', source: `${lib}; the DER cut short (re-encoded)`, ...base,
      headers: H({ [SIG]: [Buffer.from(libSignature, 'base64').subarray(0, 60).toString('base64')] }), want: 'malformed_signature' },
    { name: 'signature-raw-r-s', source: `${lib}; the signature as raw r‖s (IEEE P1363), not DER`, ...base,
      headers: H({ [SIG]: [crypto.sign('sha256', msg(libTimestamp, libPayload), { key: libKey, dsaEncoding: 'ieee-p1363' }).toString('base64')] }), want: 'malformed_signature' },
    { name: 'signature-hex', source: `${lib}; the signature in hex, not base64`, ...base,
      headers: H({ [SIG]: [Buffer.from(libSignature, 'base64').toString('hex')] }), want: 'malformed_signature' },
    { name: 'batch', source: node('a batched delivery under the library\'s published private key'), now: Number(batchTs), keys: [libPublic], body: batch,
      headers: { [SIG]: [batchSig], [TS]: [batchTs] }, want: 'verified', fields: none },
    { name: 'batch-signed-by-other-key', source: node('the batch signed with another P-256 key'), now: Number(batchTs), keys: [libPublic], body: batch,
      headers: { [SIG]: [sign(otherKey, batchTs, batch)], [TS]: [batchTs] }, want: 'bad_signature' },
    { name: 'batch-body-alone-signed', source: node('the batch signed without the timestamp'), now: Number(batchTs), keys: [libPublic], body: batch,
      headers: { [SIG]: [crypto.sign('sha256', Buffer.from(batch), libKey).toString('base64')], [TS]: [batchTs] }, want: 'bad_signature' },
  ];
  write('sendgrid', {
    sender: 'sendgrid',
    provider: { name: 'sendgrid' },
    sources: [
      'sendgrid/sendgrid-go helpers/eventwebhook/eventwebhook_test.go (MIT): public key, timestamp, payload and signature of TestVerifySignature, and its negative cases (not valid payload, not valid signature, not valid timestamp, empty timestamp); the published test private key signs the other cases.',
      'Other signatures computed with Node crypto by gen/sendgrid.js --write, and checked with Node crypto and openssl by gen/sendgrid.js (never by the gateway\'s Go code).',
    ],
    cases,
  });
}

// Check the file: every case's signature verifies (or not) as it says.
const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
let checked = 0;
for (const c of doc.cases) {
  const sig = (c.headers[SIG] || [])[0];
  const ts = (c.headers[TS] || [])[0];
  if (!sig || !ts || (c.headers[SIG].length !== 1) || (c.headers[TS].length !== 1)) continue;
  // a configured key is base64 DER, or PEM
  const spki = (k) => (k.includes('BEGIN') ? crypto.createPublicKey(k).export({ format: 'der', type: 'spki' }).toString('base64') : k);
  const ok = c.keys.some((k) => verifies(spki(k), ts, c.body, sig));
  const okSSL = c.keys.some((k) => viaOpenssl(spki(k), ts, c.body, sig));
  if (c.want === 'verified' && !(ok && okSSL)) throw new Error(`${c.name}: does not verify (node ${ok}, openssl ${okSSL})`);
  if (c.want === 'bad_signature' && (ok || okSSL)) throw new Error(`${c.name}: verifies, but the case wants bad_signature`);
  checked++;
}
if (doc.cases.find((c) => c.name === 'library-vector').headers[SIG][0] !== libSignature) throw new Error('the library vector was changed');
console.log(`${file}: ${checked} signatures checked with node crypto and openssl`);
