// Shared helpers of the vector generators in this directory.
//
// Every generator computes its values with Node's crypto module, an
// implementation independent of the gateway's Go code, and writes
// ../<sender>.json. Official values (a sender's documented example, a
// library's test vector) are written as published and asserted equal to
// Node's result, so a generator stops if either is mistyped.
//
// Run all: sh testdata/vectors/senders/gen/all.sh (from the repository root).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function hmac(hash, key, ...parts) {
  const m = crypto.createHmac(hash, key);
  for (const p of parts) m.update(p);
  return m.digest();
}

const hex256 = (key, ...parts) => hmac('sha256', key, ...parts).toString('hex');
const b64256 = (key, ...parts) => hmac('sha256', key, ...parts).toString('base64');

function assertEqual(got, want, what) {
  if (got !== want) {
    throw new Error(`${what}: Node computes ${got}, the published value is ${want}`);
  }
}

// write stores the vector file of sender next to this directory, or in
// $VECTORS_OUT when set (the Go test that checks the committed files are
// this script's output uses it).
function write(sender, doc) {
  const file = path.join(process.env.VECTORS_OUT || path.join(__dirname, '..'), `${sender}.json`);
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  console.log(`wrote ${file}: ${doc.cases.length} cases`);
}

module.exports = { hmac, hex256, b64256, assertEqual, write };
