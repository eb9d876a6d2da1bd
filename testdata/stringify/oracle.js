// The reference: what Vev's documented Node receiver hashes for a body,
// body-parser's json() (default strict mode) followed by JSON.stringify:
//
//   - one leading UTF-8 BOM is stripped (iconv-lite does it);
//   - the bytes are decoded as UTF-8, invalid bytes becoming U+FFFD by the
//     WHATWG rule (Buffer#toString equals iconv-lite's decoding);
//   - the first character after JSON white space must be '{' or '[';
//   - JSON.parse, then JSON.stringify, then UTF-8.
//
// stringify(buf) returns the Buffer hashed, or null where the receiver
// answers 400 (or JSON.stringify throws, as past ~4k levels of nesting).
//
// Run as a program (node oracle.js) it is the differential fuzzer's
// long-running oracle: one base64 body per input line; one output line
// each, "+<base64 of the text>" or "-".
'use strict';

function stringify(buf) {
  if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
    buf = buf.subarray(3);
  }
  const text = buf.toString('utf8');
  const m = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/.exec(text);
  if (!m || (m[1] !== '{' && m[1] !== '[')) return null;
  try {
    return Buffer.from(JSON.stringify(JSON.parse(text)), 'utf8');
  } catch (e) {
    return null;
  }
}

module.exports = { stringify };

if (require.main === module) {
  const readline = require('readline');
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (out.length) {
      process.stdout.write(out.join(''));
      out.length = 0;
    }
  };
  rl.on('line', (line) => {
    const r = stringify(Buffer.from(line, 'base64'));
    out.push(r === null ? '-\n' : '+' + r.toString('base64') + '\n');
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush); // after the lines of this chunk of input
    }
  });
  rl.on('close', flush);
}
