// Generates ../slack.json: Slack's documented example (official, clock
// pinned to its 2018 timestamp) and cases computed with Node's crypto.
'use strict';
const { hex256, assertEqual, write } = require('./common');

// api.slack.com/authentication/verifying-requests-from-slack, the worked example.
const secret = '8f742231b10e8888abcd99yyyzzz85a5';
const ts = 1531420618;
const body = 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
const official = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';
const sign = (s, t, b) => 'v0=' + hex256(s, `v0:${t}:`, b);
assertEqual(sign(secret, ts, body), official, 'Slack docs example');

const docs = 'official: api.slack.com/authentication/verifying-requests-from-slack (worked example; clock pinned to its timestamp)';
const node = 'independent: node crypto (gen/slack.js)';
const H = (over) => {
  const h = { 'X-Slack-Signature': [official], 'X-Slack-Request-Timestamp': [String(ts)] };
  for (const [k, v] of Object.entries(over || {})) {
    if (v === null) delete h[k]; else h[k] = v;
  }
  return h;
};
const base = { now: ts, keys: [secret], body };
const none = { id: '', event: '' };
const events = '{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"app_mention","text":"hi","ts":"1531420618.000200"},"type":"event_callback","event_id":"Ev123ABC456","event_time":1531420618}';
const challenge = '{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}';

const cases = [
  { name: 'docs-example', source: docs, ...base, headers: H(), want: 'verified', fields: none },
  { name: 'docs-example-5min-later', source: `${docs}; clock 300 s after`, ...base, now: ts + 300, headers: H(), want: 'verified', fields: none },
  { name: 'docs-example-stale', source: `${docs}; clock 301 s after`, ...base, now: ts + 301, headers: H(), want: 'malformed_signature' },
  { name: 'docs-example-future', source: `${docs}; clock 301 s before`, ...base, now: ts - 301, headers: H(), want: 'malformed_signature' },
  { name: 'docs-example-today', source: `${docs}; today's clock (1764547200), years after the example`, ...base, now: 1764547200, headers: H(), want: 'malformed_signature' },
  { name: 'docs-example-tolerance-off', source: `${docs}; tolerance 0, clock years later`, ...base, now: 1764547200,
    provider: { name: 'slack', tolerance: 0 }, headers: H(), want: 'verified', fields: none },
  { name: 'missing-signature', source: docs, ...base, headers: H({ 'X-Slack-Signature': null }), want: 'missing_signature' },
  { name: 'missing-timestamp', source: docs, ...base, headers: H({ 'X-Slack-Request-Timestamp': null }), want: 'missing_signature' },
  { name: 'v1-prefix', source: docs, ...base, headers: H({ 'X-Slack-Signature': [official.replace('v0=', 'v1=')] }), want: 'malformed_signature' },
  { name: 'no-prefix', source: docs, ...base, headers: H({ 'X-Slack-Signature': [official.slice(3)] }), want: 'malformed_signature' },
  { name: 'timestamp-not-a-number', source: docs, ...base, headers: H({ 'X-Slack-Request-Timestamp': ['1531420618.5'] }), want: 'malformed_signature' },
  { name: 'repeated-signature', source: docs, ...base, headers: H({ 'X-Slack-Signature': [official, official] }), want: 'malformed_signature' },
  { name: 'repeated-timestamp', source: docs, ...base, headers: H({ 'X-Slack-Request-Timestamp': [String(ts), String(ts)] }), want: 'malformed_signature' },
  { name: 'edited-body', source: docs, ...base, body: body.replace('text=&', 'text=x&'), headers: H(), want: 'bad_signature' },
  { name: 'edited-timestamp', source: docs, ...base, headers: H({ 'X-Slack-Request-Timestamp': [String(ts + 1)] }), want: 'bad_signature' },
  { name: 'wrong-secret', source: docs, ...base, keys: ['8f742231b10e8888abcd99yyyzzz85a6'], headers: H(), want: 'bad_signature' },
  { name: 'rotation-second-secret', source: `${docs}; another secret listed first`, ...base, keys: ['old-signing-secret', secret], headers: H(), want: 'verified', fields: none },
  { name: 'events-api-json', source: `${node}: an Events API event_callback (shape from api.slack.com/apis/events-api) under the docs secret`, ...base, body: events,
    headers: H({ 'X-Slack-Signature': [sign(secret, ts, events)] }), want: 'verified', fields: { id: '', event: 'event_callback' } },
  { name: 'url-verification', source: `${node}: the url_verification handshake body (api.slack.com/events/url_verification) under the docs secret`, ...base, body: challenge,
    headers: H({ 'X-Slack-Signature': [sign(secret, ts, challenge)] }), want: 'verified', fields: { id: '', event: 'url_verification' } },
];

write('slack', {
  sender: 'slack',
  provider: { name: 'slack' },
  sources: [
    'Slack docs, "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack): signing secret, timestamp, slash-command body and v0 signature of the worked example; Slack docs terms, used as facts with this citation.',
    'Other cases: derived from the example, signatures computed with Node crypto by gen/slack.js.',
  ],
  cases,
});
