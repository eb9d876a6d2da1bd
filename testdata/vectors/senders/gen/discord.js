// Generates ../discord.json: Ed25519 vectors for the discord preset,
// signed and checked with Node's crypto (an implementation independent of
// the gateway's Go code), under the RFC 8032 §7.1 TEST 1 key pair (and
// TEST 2 as "another application's key"). Ed25519 is deterministic: the
// file is the same on every run.
//
// Discord signs "<X-Signature-Timestamp><body>" (discord/discord-interactions-js
// src/index.ts verifyKey: Buffer.concat([timestamp, rawBody])) and sends the
// signature in hex in X-Signature-Ed25519; the application's public key is
// shown in the developer portal as 64 hex digits.
'use strict';
const crypto = require('crypto');
const { assertEqual, write } = require('./common');

// RFC 8032 §7.1: a private key from its 32-byte seed (PKCS#8 wrapping).
const fromSeed = (hex) => crypto.createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(hex, 'hex')]),
  format: 'der', type: 'pkcs8',
});
const rawPublic = (priv) => crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);

const test1 = fromSeed('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
const test2 = fromSeed('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
// the RFC's published values, asserted so a typo stops the generator
assertEqual(rawPublic(test1).toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'RFC 8032 TEST 1 public key');
assertEqual(crypto.sign(null, Buffer.alloc(0), test1).toString('hex'),
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b', 'RFC 8032 TEST 1 signature');
assertEqual(rawPublic(test2).toString('hex'), '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', 'RFC 8032 TEST 2 public key');

const pubHex = rawPublic(test1).toString('hex');
const pubB64 = rawPublic(test1).toString('base64');
const pubPEM = crypto.createPublicKey(test1).export({ format: 'pem', type: 'spki' });
const otherHex = rawPublic(test2).toString('hex');

const sign = (priv, ts, body) => {
  const msg = Buffer.concat([Buffer.from(String(ts)), Buffer.from(body)]);
  const sig = crypto.sign(null, msg, priv);
  if (!crypto.verify(null, msg, crypto.createPublicKey(priv), sig)) throw new Error('Node does not verify its own signature');
  return sig.toString('hex');
};

// research/senders.md V9: the RFC 8032 TEST 1 key over "1700000000{"type":1}"
const ts = 1700000000;
const ping = '{"type":1}';
const pingSig = sign(test1, ts, ping);
assertEqual(pingSig, '1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f', 'research V9');

// an application command interaction (shape from discord.com/developers/docs/interactions/receiving-and-responding; ids made up),
// with non-ASCII text and a trailing newline, which must reach the upstream as they are
const command = '{"app_permissions":"442368","application_id":"1194011196012478525","channel_id":"1194011196012478528","data":{"id":"1194019453281353748","name":"greet","options":[{"name":"text","type":3,"value":"héllo ✓"}],"type":1},"guild_id":"1194011195466199091","id":"1194047713960419358","locale":"fr","token":"aW50ZXJhY3Rpb246MTE5NDA0NzcxMzk2MDQxOTM1ODpmYWtl","type":2,"version":1}\n';
// a webhook event (discord.com/developers/docs/events/webhook-events; values made up): type 1 is an event, no top-level id
const event = '{"version":1,"application_id":"1194011196012478525","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2023-11-14T22:13:20.000000","data":{"integration_type":0,"scopes":["applications.commands"],"user":{"id":"80351110224678912","username":"nelly"}}}}';

const rfc = 'RFC 8032 §7.1 TEST 1 key';
const node = (what) => `independent: node crypto (gen/discord.js), ${rfc}, ${what}`;
const H = (over) => {
  const h = { 'X-Signature-Ed25519': [pingSig], 'X-Signature-Timestamp': [String(ts)] };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete h[k]; else h[k] = v;
  }
  return h;
};
const base = { now: ts, keys: [pubHex], body: ping };
const pingFields = { id: '', event: '1' };
const v9 = `research/senders.md V9: ${rfc} over "1700000000{\\"type\\":1}", recomputed by node crypto (gen/discord.js)`;

const cases = [
  { name: 'v9-ping', source: v9, ...base, headers: H(), want: 'verified', fields: pingFields },
  { name: 'v9-ping-upper-case-hex', source: `${v9}; signature in upper-case hex`, ...base, headers: H({ 'X-Signature-Ed25519': [pingSig.toUpperCase()] }), want: 'verified', fields: pingFields },
  { name: 'key-as-base64', source: `${v9}; the public key as the base64 of its 32 bytes`, ...base, keys: [pubB64], headers: H(), want: 'verified', fields: pingFields },
  { name: 'key-as-pem', source: `${v9}; the public key as PEM (SubjectPublicKeyInfo, exported by node)`, ...base, keys: [pubPEM], headers: H(), want: 'verified', fields: pingFields },
  { name: 'key-upper-case-hex', source: `${v9}; the public key in upper-case hex`, ...base, keys: [pubHex.toUpperCase()], headers: H(), want: 'verified', fields: pingFields },
  { name: 'rotation-second-key', source: `${v9}; RFC 8032 TEST 2 key listed first`, ...base, keys: [otherHex, pubHex], headers: H(), want: 'verified', fields: pingFields },
  { name: 'command-interaction', source: node('an application command with UTF-8 text and a trailing newline'), ...base, body: command,
    headers: H({ 'X-Signature-Ed25519': [sign(test1, ts, command)] }), want: 'verified', fields: { id: '1194047713960419358', event: '2' } },
  { name: 'webhook-event', source: node('a webhook event (type 1, no id)'), ...base, body: event,
    headers: H({ 'X-Signature-Ed25519': [sign(test1, ts, event)] }), want: 'verified', fields: { id: '', event: '1' } },
  { name: 'empty-body', source: node('an empty body: the timestamp alone is signed'), ...base, body: '',
    headers: H({ 'X-Signature-Ed25519': [sign(test1, ts, '')] }), want: 'verified', fields: { id: '', event: '' } },
  { name: 'at-tolerance-stale-edge', source: `${v9}; clock 300 s after`, ...base, now: ts + 300, headers: H(), want: 'verified', fields: pingFields },
  { name: 'at-tolerance-future-edge', source: `${v9}; clock 300 s before`, ...base, now: ts - 300, headers: H(), want: 'verified', fields: pingFields },
  { name: 'stale', source: `${v9}; clock 301 s after`, ...base, now: ts + 301, headers: H(), want: 'malformed_signature' },
  { name: 'future', source: `${v9}; clock 301 s before`, ...base, now: ts - 301, headers: H(), want: 'malformed_signature' },
  { name: 'tolerance-10m', source: `${v9}; tolerance 10m, clock 9 min after`, ...base, now: ts + 540,
    provider: { name: 'discord', tolerance: '10m' }, headers: H(), want: 'verified', fields: pingFields },
  { name: 'tolerance-off', source: `${v9}; tolerance 0, clock a year after`, ...base, now: ts + 365 * 86400,
    provider: { name: 'discord', tolerance: 0 }, headers: H(), want: 'verified', fields: pingFields },
  { name: 'edited-body', source: v9, ...base, body: '{"type":2}', headers: H(), want: 'bad_signature' },
  { name: 'body-with-space', source: v9, ...base, body: '{"type": 1}', headers: H(), want: 'bad_signature' },
  { name: 'edited-timestamp', source: `${v9}; timestamp header one second later (clock too)`, ...base, now: ts + 1,
    headers: H({ 'X-Signature-Timestamp': [String(ts + 1)] }), want: 'bad_signature' },
  { name: 'timestamp-with-leading-zero', source: `${v9}; the same time as "01700000000", not the signed text`, ...base,
    headers: H({ 'X-Signature-Timestamp': ['0' + ts] }), want: 'bad_signature' },
  { name: 'body-alone-signed', source: node('the body signed without the timestamp'), ...base,
    headers: H({ 'X-Signature-Ed25519': [crypto.sign(null, Buffer.from(ping), test1).toString('hex')] }), want: 'bad_signature' },
  { name: 'wrong-key', source: `${v9}; configured with the RFC 8032 TEST 2 key`, ...base, keys: [otherHex], headers: H(), want: 'bad_signature' },
  { name: 'signed-by-other-key', source: node('signed with the RFC 8032 TEST 2 key'), ...base,
    headers: H({ 'X-Signature-Ed25519': [sign(test2, ts, ping)] }), want: 'bad_signature' },
  { name: 'rfc8032-test1-signature-of-empty-message', source: 'RFC 8032 §7.1 TEST 1 signature (of the empty message), not of timestamp‖body', ...base,
    headers: H({ 'X-Signature-Ed25519': ['e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'] }), want: 'bad_signature' },
  { name: 'missing-signature', source: v9, ...base, headers: H({ 'X-Signature-Ed25519': null }), want: 'missing_signature' },
  { name: 'empty-signature', source: v9, ...base, headers: H({ 'X-Signature-Ed25519': [''] }), want: 'missing_signature' },
  { name: 'missing-timestamp', source: v9, ...base, headers: H({ 'X-Signature-Timestamp': null }), want: 'missing_signature' },
  { name: 'repeated-signature', source: v9, ...base, headers: H({ 'X-Signature-Ed25519': [pingSig, pingSig] }), want: 'malformed_signature' },
  { name: 'repeated-timestamp', source: v9, ...base, headers: H({ 'X-Signature-Timestamp': [String(ts), String(ts)] }), want: 'malformed_signature' },
  { name: 'signature-truncated', source: v9, ...base, headers: H({ 'X-Signature-Ed25519': [pingSig.slice(0, 126)] }), want: 'malformed_signature' },
  { name: 'signature-not-hex', source: v9, ...base, headers: H({ 'X-Signature-Ed25519': ['z' + pingSig.slice(1)] }), want: 'malformed_signature' },
  { name: 'signature-base64', source: `${v9}; the signature in base64, not hex`, ...base,
    headers: H({ 'X-Signature-Ed25519': [Buffer.from(pingSig, 'hex').toString('base64')] }), want: 'malformed_signature' },
  { name: 'timestamp-not-a-number', source: v9, ...base, headers: H({ 'X-Signature-Timestamp': ['1700000000.5'] }), want: 'malformed_signature' },
  { name: 'timestamp-rfc3339', source: v9, ...base, headers: H({ 'X-Signature-Timestamp': ['2023-11-14T22:13:20Z'] }), want: 'malformed_signature' },
];

write('discord', {
  sender: 'discord',
  provider: { name: 'discord' },
  sources: [
    'RFC 8032 §7.1 TEST 1 and TEST 2 (Ed25519 key pairs; TEST 1 signature asserted): IETF test data.',
    'research/senders.md V9: TEST 1 key over "1700000000{\\"type\\":1}", recomputed here by Node crypto.',
    'Signed message "<X-Signature-Timestamp><body>", hex signature: discord.com/developers/docs/interactions/overview (security and authorization); discord/discord-interactions-js src/index.ts verifyKey (MIT).',
    'All signatures computed and checked with Node crypto by gen/discord.js (never by the gateway\'s Go code).',
  ],
  cases,
});
