// Generates vectors.jsonl: every case of the research's tables (V1-V63,
// B1-B32; shared/research/vev-stringify.md section 7), a PUBLISH in three
// encodings, the two end-to-end checks of its section 7.3, and the differences the differential fuzzer
// found (fuzz-found.jsonl, appended as it finds them), each with what Node
// itself produces:
//
//   {"name", "content_type", "content_encoding", "in" (base64 of the body),
//    "out" (base64 of JSON.stringify(JSON.parse(body)) as Vev's Node
//    receiver computes it, see oracle.js; null where it answers 400),
//    "hmac" (hex HMAC-SHA512 of out under the secret "vev-test-secret", by
//    Node's crypto), "accept" (whether stringify_fallback must verify a
//    request with these headers signed with hmac)}
//
// Usage: node testdata/stringify/gen.js > testdata/stringify/vectors.jsonl
// (.ci/run reruns it when node is present and fails on any difference.)
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { stringify } = require('./oracle.js');

const SECRET = 'vev-test-secret';
const JSON_CT = 'application/json';

// b('text', [0xff], 'more'): strings are UTF-8, arrays are raw bytes.
function b(...parts) {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

// 2^-1075, the midpoint between 0 and the smallest subnormal, exactly:
// 5^1075 * 10^-1075.
const five = (5n ** 1075n).toString();
const half = five[0] + '.' + five.slice(1) + 'e-' + (1075 - (five.length - 1));

// A Vev PUBLISH event (vevepeter/webhook-reciever src/types.ts) with an
// HTML page: quotes, <, >, &, non-ASCII, a U+2028, an emoji.
function publish() {
  const html = '<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Caf\u00e9 & cr\u00e8me</title>' +
    '<script>var a = "x</p>" && 1 < 2;</script></head><body><div class="card" data-x=\'1\'>' +
    'Na\u00efve \u2014 5 > 3 &amp; &lt;b&gt; \u65e5\u672c\u8a9e \ud83d\ude80 \u2028 line</div>\n</body></html>';
  return JSON.stringify({
    event: 'PUBLISH', hosting: 'hosting_1', id: 'evt_publish_1',
    payload: {
      pages: [{ html, path: '/index.html', title: 'Caf\u00e9', index: true, viewerUrl: 'https://vev.design/v/x', downloadUrl: 'https://cdn.vev.design/x.zip' }],
      projectId: 'p1', projectTitle: 'Site', pluginsData: { '10': { a: 1 }, '2': [1.5, -0, 1e21] },
    },
  });
}

const cases = [
  ['V1', '{"b":1,"a":2,"c":3}'],
  ['V2', '{"b":1,"2":2,"1":3}'],
  ['V3', '{"10":1,"9":2,"a":3,"0":4}'],
  ['V4', '{"a":0,"4294967295":1,"4294967294":2,"1":3}'],
  ['V5', '{"x":0,"01":1,"-1":2,"1.0":3," 1":4,"1e0":5,"+1":6,"1":7}'],
  ['V6', '{"b":0,"9007199254740993":1,"2":2}'],
  ['V7', '{"a":1,"\\u0031":2}'],
  ['V8', '{"a":1,"b":2,"a":3}'],
  ['V9', '{"a":{"x":1,"z":0},"b":0,"a":{"y":2}}'],
  ['V10', '{"a":1,"b":2,"\\u0061":3}'],
  ['V11', '{"1":"x","b":0,"1":"y","0":"z"}'],
  ['V12', '{"__proto__":{"x":1},"a":2}'],
  ['V13', '{"b":0,"__proto__":1,"__proto__":[2]}'],
  ['V14', '{"":1,"\\n":2,"\\u00e9":3,"\\/":4}'],
  ['V15', b('{', [0x0d, 0x0a], '  "a": [ 1, 2 ],', [0x0a, 0x09], '"b" : { }', [0x0d, 0x0a], '}')],
  ['V16', b(' ', [0x09, 0x0d, 0x0a], '{"a":1}', [0x0a], ' ')],
  ['V17', '{"a":[],"b":{},"c":[{},[]]}'],
  ['V18', '{"u":"http:\\/\\/x.io\\/p"}'],
  ['V19', '{"h":"\\u003cp\\u003eA \\u0026 B\\u003c/p\\u003e"}'],
  ['V20', '{"s":"\\u00E9\\u00e9"}'],
  ['V21', '{"s":"\\ud83d\\ude00"}'],
  ['V22', b('{"s":"', [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], '"}')],
  ['V23', '{"s":"\\uD800"}'],
  ['V24', '{"s":"\\uDC00x"}'],
  ['V25', '{"s":"\\ude00\\ud83d"}'],
  ['V26', '{"s":"\\ud83d\\u0041"}'],
  ['V27', '{"s":"\\u0000\\u0001\\u001F\\u007f"}'],
  ['V28', '{"s":"\\u0008\\u0009\\u000A\\u000c\\u000D\\u0022\\u005C"}'],
  ['V29', '{"s":"\\b\\f\\n\\r\\t\\"\\\\"}'],
  ['V30', '{"s":"\\u2028\\u2029"}'],
  ['V31', b('{"s":"', [0x7f, 0xe2, 0x80, 0xa8], '"}')],
  ['V32', '{"s":"\\ufeff\\uffff"}'],
  ['V33', '{"h":"<a href=\\"/x?a=1&b=2\\">it\'s</a>"}'],
  ['V34', b([0xef, 0xbb, 0xbf], '{"a":1}')],
  ['V35', b('{"s":"', [0xef, 0xbb, 0xbf], '"}')],
  ['V36', b('{"s":"a', [0xff], 'b"}')],
  ['V37', b('{"s":"', [0xe2, 0x82], 'x"}')],
  ['V38', b('{"s":"', [0xf0, 0x9f, 0x98], 'x"}')],
  ['V39', b('{"s":"', [0xed, 0xa0, 0x80], '"}')],
  ['V40', b('{"s":"', [0xc0, 0xaf], '"}')],
  ['V41', b('{"s":"', [0xf4, 0x90, 0x80, 0x80], '"}')],
  ['V42', b('{"s":"', [0x80, 0xbf], '"}')],
  ['V43', b('{"s":"', [0xe0, 0x80, 0x80], '"}')],
  ['V44', b('{"k', [0xfe], '":1}')],
  ['V45', '[1.0,1E2,1e+2,10e1,1000e-1,0.1e1]'],
  ['V46', '[-0,-0.0,-0e5,0e-5,-0E+0]'],
  ['V47', '[1e-7,1.5e-7,1e-6,0.000001234,1e20,1e21,999999999999999999999,123e-20]'],
  ['V48', '[9007199254740993,9007199254740992.5,12345678901234567890,-12345678901234567891]'],
  ['V49', '[0.1,0.2,0.30000000000000004,4.35,1.7976931348623157e308,2.2250738585072014e-308,5e-324,123456789012345680000]'],
  ['V50', '[1e400,-1e400,1e-400,-1e-400,1.8e308]'],
  ['V51', '[' + half + ',' + half.replace('e-', '1e-') + ']'],
  ['V52', '[1e0000000000000000000001,0.0000000000000000000000000000001e31,100000000000000000000000000000000000000000e-41]'],
  ['V53', '[1e21,1.5e300,-2e-300,4.9406564584124654e-324,1e308,1e100]'],
  ['V54', '[0,-1,42,2147483648,4294967296,9007199254740991]'],
  ['V55', '{"t":true,"f":false,"n":null}'],
  ['V56', '[1,"a",null]'],
  ['V57', b('{"', [0xff], '":1,"', [0xfe], '":2}')],
  ['V58', b('{"\\ufffd":1,"x":0,"', [0xc0], '":2}')],
  ['V59', '{"\\ud800":1,"\\uD800":2}'],
  ['V60', '{"00":1,"-0":2,"0":3}'],
  ['V61', '{"b":1,"\\u0032":2,"1\\u0030":3}'],
  ['V62', '{"a":[{"y":1,"0":2}],"1":3}'],
  ['V63', '[1e-99999999999999999999,-1e99999999999999999999]'],

  // B: the gate (headers) and what JSON.parse refuses. B1 and B6-B8 are
  // hashed as {} by body-parser 1, B11/B12 decoded/inflated: the gateway
  // refuses them all on purpose (research 4.1).
  ['B1', '', { accept: false }],
  ['B2', b('  ', [0x0a])],
  ['B3', '"x"'],
  ['B4', '1'],
  ['B5', 'null'],
  ['B6', '{"a":1}', { ct: 'text/plain', accept: false }],
  ['B7', '{"a":1}', { ct: '', accept: false }],
  ['B8', '{"a":1}', { ct: 'application/vnd.api+json', accept: false }],
  ['B9', '{"a":1}', { ct: 'Application/JSON; Charset=UTF-8' }],
  ['B10', b('{"a":"', [0xe9], '"}'), { ct: 'application/json; charset=latin1', accept: false }],
  ['B11', Buffer.from('{"a":"\u00e9"}', 'utf16le'), { ct: 'application/json; charset=utf-16le', accept: false }],
  ['B12', require('zlib').gzipSync(Buffer.from('{"a":1}'), { level: 9 }), { ce: 'gzip', accept: false }],
  ['B13', '{"a":1,}'],
  ['B14', '{"a":1 /* c */}'],
  ['B15', '{"a":NaN}'],
  ['B16', '{"a":01}'],
  ['B17', '{"a":+1}'],
  ['B18', '{"a":.5}'],
  ['B19', '{"a":1.}'],
  ['B20', b('{"a":"x', [0x09], 'y"}')],
  ['B21', b('{"a":"x', [0x00], 'y"}')],
  ['B22', '{"a":"\\x41"}'],
  ['B23', '{"a":"\\u12"}'],
  ['B24', "{'a':1}"],
  ['B25', b(' ', [0xef, 0xbb, 0xbf], '{"a":1}')],
  ['B26', b([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf], '{"a":1}')],
  ['B27', b([0xc2, 0xa0], '{"a":1}')],
  ['B28', b('{"a":1}', [0x0c])],
  ['B29', '{"a":1}x'],
  ['B30', '{"a":1}{"b":2}'],
  ['B31', b('{"a":1}', [0xff])],
  ['B32', b('{"a":1}', [0xe2, 0x80, 0xa8])],

  // research 5.2: a realistic PUBLISH in three encodings (compact as Vev
  // sends it, pretty-printed, Go's HTML escapes); all three hash alike
  ['PUBLISH compact', publish()],
  ['PUBLISH pretty', JSON.stringify(JSON.parse(publish()), null, 2)],
  ['PUBLISH Go-escaped', publish().replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')],

  // research 7.3: the HMACs of these two are published there
  ['PING pretty', '{\n  "event": "PING",\n  "id": "e1"\n}'],
  ['Go-escaped HTML', '{"h":"\\u003cb\\u003eA \\u0026 B\\u003c/b\\u003e"}'],
];

const lines = [];
const emit = (name, input, opts = {}) => {
  const out = stringify(input);
  const ct = opts.ct === undefined ? JSON_CT : opts.ct;
  const ce = opts.ce || '';
  const hmac = out === null ? '' : crypto.createHmac('sha512', SECRET).update(out).digest('hex');
  const accept = out !== null && opts.accept !== false;
  lines.push(JSON.stringify({
    name, content_type: ct, content_encoding: ce,
    in: input.toString('base64'), out: out === null ? null : out.toString('base64'),
    hmac, accept,
  }));
};
for (const [name, input, opts] of cases) {
  emit(name, typeof input === 'string' ? Buffer.from(input, 'utf8') : input, opts);
}

// Inputs on which the differential fuzzer once disagreed with Node
// (FuzzStringifyNode / TestStringifyDifferential write them here): one
// {"name", "in"} per line.
const found = path.join(__dirname, 'fuzz-found.jsonl');
if (fs.existsSync(found)) {
  for (const line of fs.readFileSync(found, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const v = JSON.parse(line);
    emit(v.name, Buffer.from(v.in, 'base64'));
  }
}
process.stdout.write(lines.join('\n') + '\n');
