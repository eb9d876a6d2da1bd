#!/usr/bin/env bash
# Regenerates vivreal.json and vev.json: signature test vectors computed
# independently of the Go code under test.
#
#   - The bodies are built with Node's JSON.stringify, which is what the
#     senders run (Vev's own example signs JSON.stringify(parsedBody)); note
#     that it leaves < > & and U+2028 unescaped, unlike Go's json.Marshal.
#   - Each MAC is computed twice, by `openssl dgst -hmac` over the body bytes
#     written to a file and by Node's crypto.createHmac; the script fails
#     unless both agree, and the committed "expected" is openssl's output.
#
# Usage (from anywhere): testdata/vectors/gen.sh
# Needs bash, node (>= 18) and openssl. The output is deterministic: running
# it again must leave the committed files unchanged (git diff is empty).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v node >/dev/null || { echo "gen.sh: node is required" >&2; exit 1; }
command -v openssl >/dev/null || { echo "gen.sh: openssl is required" >&2; exit 1; }

# Step 1 (node): build the cases, write each body's exact bytes to a file and
# a manifest line "<file>\t<algorithm>\t<secret file>".
WORK="$work" node <<'NODE'
const fs = require('fs');
const path = require('path');
const work = process.env.WORK;

// A deterministic HTML page: markup, entities, quotes of both kinds, a
// backslash, non-ASCII (é, 日本語, emoji) and U+2028, repeated to a size.
function html(title, repeat) {
  const section = (i) =>
    `<section id="s${i}" class="block" data-i='${i}'>` +
    `<h2>Caf\u00e9 &amp; cr\u00e8me br\u00fbl\u00e9e \u2014 \u65e5\u672c\u8a9e\u306e\u30da\u30fc\u30b8 ${i}</h2>` +
    `<p>Price &lt; 10 &gt; 5 & "quoted" 'single' \u{1F600}\u{1F680} na\u00efve r\u00e9sum\u00e9</p>` +
    `<a href="/p?x=1&y=2" title="say \\"hi\\"">link</a>` +
    `<script>if (a < b && c > d) { re = /\\d+/; s = "</div>"; }\u2028</script>` +
    `</section>`;
  let body = '';
  for (let i = 0; i < repeat; i++) body += section(i);
  return `<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>${title}</title>` +
    `<style>p > a { content: "\\201C"; }</style></head><body>${body}</body></html>`;
}

const vivreal = [
  {
    name: 'example',
    secret: 'vr_whsec_example',
    body: JSON.stringify({
      id: 'evt_01HZX3K9Q4',
      event: 'collection.object.created',
      timestamp: '2026-03-14T09:26:53.000Z',
      data: { collectionId: 'col_blog', objectId: 'obj_42', title: 'Hello' },
    }),
  },
  {
    name: 'object-updated-non-ascii',
    secret: 'vr_whsec_8f3c1e0a9b7d4c2e6f1a0b9c8d7e6f5a',
    body: JSON.stringify({
      id: 'evt_01J0A7M2R8-\u00e9t\u00e9',
      event: 'collection.object.updated',
      timestamp: '2026-04-01T23:59:59.999Z',
      data: {
        collectionId: 'col_recettes',
        objectId: 'obj_cr\u00e8me',
        fields: {
          title: 'Cr\u00e8me br\u00fbl\u00e9e \u00e0 la Zo\u00eb',
          city: '\u6771\u4eac',
          tags: ['d\u00e9ssert', '\u{1F36E}', 'na\u00efve', '\u00dcn\u00efc\u00f6d\u00e9'],
          quote: 'She said "bonjour" & left <quickly>',
        },
      },
    }),
  },
  {
    name: 'object-deleted-numeric-id',
    secret: 'vr_whsec_numeric',
    body: JSON.stringify({
      id: 12345,
      event: 'collection.object.deleted',
      timestamp: '2026-05-20T08:00:00.000Z',
      data: { collectionId: 'col_blog', objectId: 'obj_7' },
    }),
  },
  {
    name: 'pretty-printed-body',
    secret: 'vr_whsec_pretty',
    body: JSON.stringify({
      id: 'evt_pretty_01',
      event: 'collection.created',
      timestamp: '2026-06-02T12:30:00.000Z',
      data: { collectionId: 'col_new', name: 'Nouveaut\u00e9s' },
    }, null, 2) + '\n',
  },
  {
    // escapes in the raw body: the signature covers these bytes, not the
    // decoded text
    name: 'escaped-unicode-body',
    secret: 'vr_whsec_escapes',
    body: '{"id":"evt_esc_\\u00e9","event":"collection.object.updated",' +
      '"timestamp":"2026-07-07T07:07:07.000Z",' +
      '"data":{"name":"Caf\\u00e9 \\"Le Bon\\" \\\\ \\ud83d\\ude00","html":"<b>&amp;</b>"}}',
  },
  {
    name: 'secret-longer-than-block',
    secret: 'vr_whsec_' + 'k'.repeat(50) + '0123456789abcdefghijklmnopqrstuvwxyz',
    body: JSON.stringify({
      id: 'evt_longkey',
      event: 'collection.object.created',
      timestamp: '2026-08-08T08:08:08.000Z',
      data: { objectId: 'obj_1' },
    }),
  },
  {
    name: 'non-ascii-secret',
    secret: 's\u00e9cr\u00e8t-\u65e5\u672c-\u2713',
    body: JSON.stringify({
      id: 'evt_utf8key',
      event: 'collection.object.created',
      timestamp: '2026-09-09T09:09:09.000Z',
      data: { objectId: 'obj_\u00fc' },
    }),
  },
  {
    name: 'empty-body',
    secret: 'vr_whsec_empty',
    body: '',
  },
];

function vevEvent(id, event, payload) {
  return { id, hosting: 'hst_4Qm9Zt2Lx8', event, payload };
}

const vev = [
  {
    name: 'ping',
    secret: 'vev_sk_live_9d8c7b6a5f4e3d2c1b0a',
    body: JSON.stringify(vevEvent('evt_ping_7Hk2', 'PING', {})),
  },
  {
    name: 'publish',
    secret: 'vev_sk_live_9d8c7b6a5f4e3d2c1b0a',
    body: JSON.stringify(vevEvent('evt_pub_3Jq8', 'PUBLISH', {
      projectKey: 'prj_Xa81',
      url: 'https://www.example.com/fr/caf\u00e9',
      pages: [
        { key: 'pg_home', path: '/', title: 'Accueil \u2014 \u65e5\u672c\u8a9e \u{1F389}', html: html('Accueil', 2) },
        { key: 'pg_about', path: '/about', title: 'About "us" & <them>', html: html('About', 1) },
      ],
    })),
  },
  {
    // larger than the handler's first 32 KiB read buffer, so a chunked
    // read has to grow it
    name: 'publish-40k',
    secret: 'vev_sk_live_9d8c7b6a5f4e3d2c1b0a',
    body: JSON.stringify(vevEvent('evt_pub_big_1', 'PUBLISH', {
      projectKey: 'prj_Xa81',
      url: 'https://www.example.com/',
      pages: [{ key: 'pg_home', path: '/', title: 'Big', html: html('Big', 125) }],
    })),
  },
  {
    name: 'secret-longer-than-block',
    secret: 'vev_sk_' + 'abcdefghij'.repeat(15),
    body: JSON.stringify(vevEvent('evt_longkey_2', 'PUBLISH', {
      projectKey: 'prj_Yb22',
      pages: [{ key: 'pg_1', path: '/', html: '<p>\u00e9 &amp; \u65e5\u672c\u8a9e \u{1F600}</p>' }],
    })),
  },
  {
    name: 'empty-body',
    secret: 'vev_sk_empty',
    body: '',
  },
];

const fieldsOf = (body, names) => {
  const out = {};
  let obj;
  try { obj = JSON.parse(body); } catch (e) { obj = null; }
  for (const n of names) {
    const v = obj && typeof obj === 'object' ? obj[n] : undefined;
    if (typeof v === 'string') out[n] = v;
    else if (typeof v === 'number') out[n] = String(v); // the ids used here print as their JSON text
    else out[n] = '';
  }
  return out;
};

const manifest = [];
const all = { vivreal: { cases: vivreal, alg: 'sha256', fields: ['id', 'event'] },
              vev: { cases: vev, alg: 'sha512', fields: ['id', 'event', 'hosting'] } };
for (const [provider, { cases, alg, fields }] of Object.entries(all)) {
  cases.forEach((c, i) => {
    const f = path.join(work, `${provider}-${i}`);
    fs.writeFileSync(f + '.body', Buffer.from(c.body, 'utf8'));
    fs.writeFileSync(f + '.secret', Buffer.from(c.secret, 'utf8'));
    manifest.push(`${f}\t${alg}`);
    c.fields = fieldsOf(c.body, fields);
  });
}
fs.writeFileSync(path.join(work, 'manifest.tsv'), manifest.join('\n') + '\n');
fs.writeFileSync(path.join(work, 'cases.json'), JSON.stringify(all));
NODE

# Step 2 (openssl): the MAC of each body file, written next to it.
while IFS=$'\t' read -r f alg; do
  secret=$(cat "$f.secret")
  out=$(openssl dgst "-$alg" -hmac "$secret" <"$f.body")
  hex=${out##* }
  if ! [[ $hex =~ ^[0-9a-f]+$ ]]; then
    echo "gen.sh: unexpected openssl output: $out" >&2
    exit 1
  fi
  printf '%s' "$hex" >"$f.openssl"
done <"$work/manifest.tsv"

# Step 3 (node): cross-check with Node's crypto and write the vector files,
# with openssl's MAC as the expected value.
WORK="$work" OUT="$here" node <<'NODE'
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const work = process.env.WORK;
const all = JSON.parse(fs.readFileSync(path.join(work, 'cases.json'), 'utf8'));
const headers = { vivreal: 'X-Vivreal-Signature', vev: 'X-Vev-Signature' };
for (const [provider, { cases, alg }] of Object.entries(all)) {
  const out = cases.map((c, i) => {
    const f = path.join(work, `${provider}-${i}`);
    const body = fs.readFileSync(f + '.body');
    if (body.toString('utf8') !== c.body) throw new Error(`${provider}/${c.name}: body bytes do not round-trip`);
    const viaOpenssl = fs.readFileSync(f + '.openssl', 'utf8');
    const viaNode = crypto.createHmac(alg, Buffer.from(c.secret, 'utf8')).update(body).digest('hex');
    if (viaOpenssl !== viaNode) {
      throw new Error(`${provider}/${c.name}: openssl ${viaOpenssl} != node ${viaNode}`);
    }
    const upper = viaOpenssl.toUpperCase();
    const values = provider === 'vivreal'
      ? [viaOpenssl, 'sha256=' + viaOpenssl, upper, 'sha256=' + upper]
      : ['sha512=' + viaOpenssl, 'sha512=' + upper];
    return {
      name: c.name,
      algorithm: 'hmac-' + alg,
      secret: c.secret,
      header: headers[provider],
      header_values: values,
      expected: viaOpenssl,
      fields: c.fields,
      body: c.body,
    };
  });
  fs.writeFileSync(path.join(process.env.OUT, provider + '.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`gen.sh: wrote ${out.length} ${provider} vectors (openssl and node agree)`);
}
NODE
