import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitAt as cutAt } from '../kube/http1/test-streams.ts';
import {
  DEFAULT_MAX_HOLD_BYTES,
  type MaskKind,
  StreamMasker,
  type StreamMaskerOptions,
} from './stream-masker.ts';

function maskOnce(text: string | Buffer, opts?: StreamMaskerOptions): { out: string; masker: StreamMasker } {
  const masker = new StreamMasker(opts);
  const buf = typeof text === 'string' ? Buffer.from(text) : text;
  const out = Buffer.concat([masker.push(buf), masker.end()]).toString();
  return { out, masker };
}

function maskChunks(chunks: readonly Buffer[], opts?: StreamMaskerOptions, idleAfter?: Set<number>): Buffer {
  const masker = new StreamMasker(opts);
  const out: Buffer[] = [];
  chunks.forEach((c, k) => {
    out.push(masker.push(c));
    if (idleAfter?.has(k)) out.push(masker.idle());
  });
  out.push(masker.end());
  return Buffer.concat(out);
}

const JWT =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVtIn0.' +
  'Zm9vYmFyc2lnbmF0dXJlLWNhbmFyeS0xMjM0NTY3ODkw_-';
const KEY_BODY = [
  'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
  'VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK',
];
const pem = (label: string, eol = '\n'): string =>
  `-----BEGIN ${label}-----${eol}${KEY_BODY.join(eol)}${eol}-----END ${label}-----${eol}`;

describe('StreamMasker detectors', () => {
  const cases: { name: string; input: string; expect: string; kind: MaskKind }[] = [
    { name: 'JWT', input: `token: ${JWT}\n`, expect: 'token: [masked:jwt]\n', kind: 'jwt' },
    {
      name: 'unsigned JWT (empty signature)',
      input: 'x eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. y',
      expect: 'x [masked:jwt] y',
      kind: 'jwt',
    },
    { name: 'JWT in a URL', input: `?t=${JWT}&a=1`, expect: '?t=[masked:jwt]&a=1', kind: 'jwt' },
    ...[
      'RSA PRIVATE KEY',
      'EC PRIVATE KEY',
      'OPENSSH PRIVATE KEY',
      'ENCRYPTED PRIVATE KEY',
      'PRIVATE KEY',
    ].map((label) => ({
      name: `PEM ${label}`,
      input: `before\n${pem(label)}after\n`,
      expect: 'before\n[masked:private-key]\nafter\n',
      kind: 'private-key' as const,
    })),
    {
      name: 'PEM with CRLF (a pty) and RFC 1421 headers',
      input: `${pem('RSA PRIVATE KEY', '\r\n').replace('\r\nMII', '\r\nProc-Type: 4,ENCRYPTED\r\nDEK-Info: AES-128-CBC,0A1B\r\n\r\nMII')}$ `,
      expect: '[masked:private-key]\r\n$ ',
      kind: 'private-key',
    },
    {
      name: 'GCP service-account JSON (escaped newlines)',
      input: `{"type":"service_account","private_key":"${pem('PRIVATE KEY', '\\n')}","client_email":"a@b"}`,
      expect: '{"type":"service_account","private_key":"[masked:private-key]\\n","client_email":"a@b"}',
      kind: 'private-key',
    },
    {
      name: 'base64 PEM key (kubeconfig client-key-data)',
      input: `    client-key-data: ${Buffer.from(pem('RSA PRIVATE KEY')).toString('base64')}\n    token: x\n`,
      expect: '    client-key-data: [masked:private-key]\n    token: x\n',
      kind: 'private-key',
    },
    {
      name: 'base64 PEM key wrapped at 76',
      input: `${Buffer.from(pem('PRIVATE KEY')).toString('base64').replace(/.{76}/g, '$&\n')}\n$ `,
      expect: '[masked:private-key]\n$ ',
      kind: 'private-key',
    },
    {
      name: 'AWS access key id',
      input: 'id=AKIAIOSFODNN7EXAMPLE;',
      expect: 'id=[masked:aws-access-key-id];',
      kind: 'aws-access-key-id',
    },
    {
      name: 'AWS temporary access key id',
      input: '"AccessKeyId": "ASIAY34FZKBOKMUTVV7A"',
      expect: '"AccessKeyId": "[masked:aws-access-key-id]"',
      kind: 'aws-access-key-id',
    },
    {
      name: 'AWS secret key, credentials file',
      input: 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n',
      expect: 'aws_secret_access_key = [masked:aws-secret-access-key]\n',
      kind: 'aws-secret-access-key',
    },
    {
      name: 'AWS secret key, env',
      input: 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n',
      expect: 'AWS_SECRET_ACCESS_KEY=[masked:aws-secret-access-key]\n',
      kind: 'aws-secret-access-key',
    },
    {
      name: 'AWS secret key, STS JSON',
      input: '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",',
      expect: '"SecretAccessKey": "[masked:aws-secret-access-key]",',
      kind: 'aws-secret-access-key',
    },
    ...['ghp_', 'gho_', 'ghs_', 'ghu_'].map((p) => ({
      name: `GitHub ${p}`,
      input: `GH=${p}16C7e42F292c6912E7710c838347Ae178B4a x`,
      expect: 'GH=[masked:github-token] x',
      kind: 'github-token' as const,
    })),
    {
      name: 'GitHub fine-grained token',
      input: 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345 x',
      expect: '[masked:github-token] x',
      kind: 'github-token',
    },
    {
      name: 'Slack bot token',
      input: 'SLACK=xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx\n',
      expect: 'SLACK=[masked:slack-token]\n',
      kind: 'slack-token',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { out, masker } = maskOnce(c.input);
      assert.equal(out, c.expect);
      assert.equal(masker.masked[c.kind], 1);
    });
  }

  const untouched = [
    '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n',
    `ca.crt: ${Buffer.from('-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n').toString('base64')}\n`,
    'eyJhbGciOiJIUzI1NiJ9 only one segment',
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0 two segments',
    'eyJ.short.x',
    'AKIAIOSFODNN7 short',
    'ghp_short',
    'xoxb-short',
    'aws_secret_access_key =\n',
    'aws_secret_access_key = $AWS_SECRET',
    'secret access key: none',
    'a plain line with eyes, ghosts, AKS, xoxo and ---- dashes\n',
  ];
  for (const text of untouched) {
    it(`leaves ${JSON.stringify(text.slice(0, 30))} alone`, () => {
      const { out, masker } = maskOnce(text);
      assert.equal(out, text);
      assert.equal(
        Object.values(masker.masked).reduce((a, b) => a + b),
        0,
      );
    });
  }
});

describe('StreamMasker PEM blocks', () => {
  it('a BEGIN line quoted in source code masks the line, not the rest of the output', () => {
    // Fails if any byte (not only non-PEM ones) keeps a block open.
    const text = 'key.py:3:  if line == "-----BEGIN RSA PRIVATE KEY-----":\nkey.py:4:    found = True\n';
    assert.equal(
      maskOnce(text).out,
      'key.py:3:  if line == "[masked:private-key]":\nkey.py:4:    found = True\n',
    );
  });

  it('a key that never ends is masked to the end of the stream, however long', () => {
    // Fails if the block is given up after the hold-back cap.
    const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=';
    const body = Array.from({ length: 1000 }, () => line).join('\n');
    const text = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n`;
    const masker = new StreamMasker();
    const chunks = cutAt(Buffer.from(text), [5, 40, 4096, 30000, 60000]);
    const out = Buffer.concat([...chunks.map((c) => masker.push(c)), masker.end()]).toString();
    assert.equal(out, '[masked:private-key]');
    assert.ok(masker.held < 100, 'the body is swallowed, not held');
  });

  it('two keys, and text between them, each handled', () => {
    const text = `${pem('EC PRIVATE KEY')}mid\n${pem('PRIVATE KEY')}`;
    const { out, masker } = maskOnce(text);
    assert.equal(out, '[masked:private-key]\nmid\n[masked:private-key]\n');
    assert.equal(masker.masked['private-key'], 2);
  });
});

describe('StreamMasker values', () => {
  const value = 'hunter22-canary';
  it('masks the value, its base64 and base64url forms', () => {
    const b64 = Buffer.from(value).toString('base64');
    const b64url = Buffer.from('~~>?~~>?').toString('base64url');
    const text = `plain ${value}\ndata:\n  password: ${b64}\nurl ${b64url}\n`;
    const { out, masker } = maskOnce(text, { values: [value, '~~>?~~>?'] });
    assert.equal(out, 'plain [masked:secret]\ndata:\n  password: [masked:secret]\nurl [masked:secret]\n');
    assert.equal(masker.masked.secret, 3);
  });

  it('masks a value inside a longer base64 text at any alignment', () => {
    // A registry password inside a base64 .dockerconfigjson; fails without the offset-1/2 forms.
    for (const prefix of ['{"auths":{"r":{"password":"', '{"auths":{"r":{"password":"x', '{"a":"xy']) {
      const enc = Buffer.from(`${prefix}${value}"}}}`).toString('base64');
      const { out } = maskOnce(`.dockerconfigjson: ${enc}\n`, { values: [value] });
      assert.match(out, /\[masked:secret\]/, prefix);
      const left = out.split('[masked:secret]');
      const decoded = left.map((s) =>
        Buffer.from(s.replace('.dockerconfigjson: ', ''), 'base64').toString('latin1'),
      );
      assert.ok(
        !decoded.join('').includes(value.slice(2, -2)),
        'no long piece of the value decodes from what is left',
      );
    }
  });

  it('masks UTF-8 values and keeps the characters around them', () => {
    const { out } = maskOnce('⟨пароль-секрет⟩ ok 日本', { values: ['пароль-секрет'] });
    assert.equal(out, '⟨[masked:secret]⟩ ok 日本');
  });

  it('ignores values too short to mask safely, and says so', () => {
    const { out, masker } = maskOnce('true 1 abc', { values: ['true', '1', 'abc'] });
    assert.equal(out, 'true 1 abc');
    assert.equal(masker.ignoredValues, 3);
  });

  it('masks a value longer than the confirm length completely, and stops where the stream leaves it', () => {
    const long = `${'L'.repeat(100)}${'o'.repeat(300)}ng!`;
    const text = `a ${long} b ${long.slice(0, 300)}X c`;
    const { out } = maskOnce(text, { values: [long] });
    assert.equal(out, `a [masked:secret] b [masked:secret]X c`);
  });

  it('prefers the longest value that matches at a position', () => {
    const { out } = maskOnce('abcdef-ghij', { values: ['abcdef', 'abcdef-ghij'] });
    assert.equal(out, '[masked:secret]');
  });
});

describe('StreamMasker hold-back', () => {
  it('holds at most maxHoldBytes, then masks an undecidable JWT-like run rather than show it', () => {
    // Fails if the JWT candidate is held without bound or released unmasked.
    const masker = new StreamMasker({ maxHoldBytes: 2048 });
    const run = `eyJ${'A'.repeat(5000)}.${'B'.repeat(10)}.${'C'.repeat(10)} tail`;
    const out: Buffer[] = [];
    for (const c of cutAt(Buffer.from(run), [100, 1000, 2000, 2100, 3000, 4000])) {
      out.push(masker.push(c));
      assert.ok(masker.held <= 2048, `held ${masker.held}`);
    }
    out.push(masker.end());
    assert.equal(Buffer.concat(out).toString(), '[masked:jwt] tail');
  });

  it('passes text without trigger bytes at once', () => {
    const masker = new StreamMasker();
    assert.equal(masker.push(Buffer.from('hello world\n')).toString(), 'hello world\n');
    assert.equal(masker.held, 0);
  });

  it('holds a cut trigger until it is decided', () => {
    const masker = new StreamMasker();
    assert.equal(masker.push(Buffer.from('ok e')).toString(), 'ok ');
    assert.equal(masker.push(Buffer.from('y')).toString(), '');
    assert.equal(masker.push(Buffer.from('es')).toString(), 'eye', '"s" may start secret_access_key');
    assert.equal(masker.push(Buffer.from(' ')).toString(), 's ');
  });

  it('ends output chunks on character boundaries and keeps every byte', () => {
    const text = Buffer.from('añ日🙂z');
    const masker = new StreamMasker();
    const outs = [...text].map((b) => masker.push(Buffer.of(b)));
    outs.push(masker.end());
    for (const o of outs)
      assert.equal(Buffer.from(o.toString()).compare(o), 0, 'each chunk decodes by itself');
    assert.deepEqual(Buffer.concat(outs), text);
  });

  it('idle() shows an echoed key that could start a pattern, never a value', () => {
    const masker = new StreamMasker({ values: ['passw0rd-canary'] });
    assert.equal(masker.push(Buffer.from('$ e')).toString(), '$ ');
    assert.equal(masker.idle().toString(), 'e', 'a lone "e" echoed by the shell');
    assert.equal(masker.push(Buffer.from('cho p')).toString(), 'cho ');
    assert.equal(masker.idle().toString(), '', '"p" may be the start of the value: held');
    assert.equal(masker.push(Buffer.from('assw0rd-canary\n')).toString(), '[masked:secret]\n');
  });

  it('idle() inside a JWT shows its public eyJ only', () => {
    const masker = new StreamMasker();
    const out = [masker.push(Buffer.from(JWT.slice(0, 30))), masker.idle(), masker.idle()];
    out.push(masker.push(Buffer.from(JWT.slice(30))), masker.end());
    assert.equal(Buffer.concat(out).toString(), 'eyJ[masked:jwt]');
  });

  it('eager: an echoed key that could start a pattern goes out with its own push, a value byte does not', () => {
    // (the value's base64 forms start with c, B and w: those keys would be held)
    const masker = new StreamMasker({ values: ['passw0rd-canary'], eager: true });
    const typed = ['$ ', 'e', 'x', 'i', 't', ' ', 'g', 'h', 's', '_', ' ', 'A', 'K', 'I', 'A', 'x', ' '];
    for (const key of typed) assert.equal(masker.push(Buffer.from(key)).toString(), key, `echo of ${key}`);
    assert.equal(masker.push(Buffer.from('p')).toString(), '', '"p" may be the start of the value: held');
    assert.equal(masker.push(Buffer.from('assw0rd-canary\n')).toString(), '[masked:secret]\n');
    assert.equal(masker.push(Buffer.from('AKIA')).toString(), 'AKIA', 'the public prefix');
    assert.equal(masker.push(Buffer.from('IOSFODNN7')).toString(), '', 'the key body is held');
    assert.equal(masker.push(Buffer.from('EXAMPLE ')).toString(), '[masked:aws-access-key-id] ');
  });

  it('eager: a JWT shows its public eyJ at once, never more', () => {
    const masker = new StreamMasker({ eager: true });
    const out = [...JWT].map((c) => masker.push(Buffer.from(c)).toString());
    out.push(masker.end().toString());
    assert.deepEqual(out.slice(0, 3), ['e', 'y', 'J']);
    assert.equal(out.join(''), 'eyJ[masked:jwt]');
  });

  it('returns a chunk it does not change as the same buffer (the session passes such a message on as it came)', () => {
    // Fails if push() copied or re-sliced an undecided-free chunk.
    const masker = new StreamMasker({ eager: true });
    const chunk = Buffer.from('plain output, nothing held\n');
    assert.equal(masker.push(chunk), chunk);
    const held = Buffer.from('ends in e');
    assert.notEqual(new StreamMasker().push(held), held, 'a chunk with a held byte is a part of it');
  });

  it('refuses push() after end()', () => {
    const masker = new StreamMasker();
    masker.end();
    assert.throws(() => masker.push(Buffer.from('x')));
  });
});

// ---- properties -------------------------------------------------------------

/** Text that cannot complete any pattern: no digits, upper case, '.', '-', '_', ':' or '='. */
const plainText = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz  \n\t,;"\'(){}é日🙂'.split(''), '\u{1F642}'),
  maxLength: 40,
});
/** Starts of patterns that the plain text after them cannot complete (each is followed by "x"). */
const nearMiss = fc.constantFrom(
  'eyJ',
  'eyJhbGci',
  '-----BEGIN ',
  '-----BEGIN RSA PRIVATE KEY',
  'AKIA',
  'ASIAABC',
  'gh',
  'ghp',
  'github',
  'xoxb',
  'secret_access_key',
  'SecretAccessKey ',
  'hunter',
);

const b64url = (min: number, max: number) =>
  fc.string({
    unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('')),
    minLength: min,
    maxLength: max,
  });
const upperAlnum = (n: number) =>
  fc.string({
    unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('')),
    minLength: n,
    maxLength: n,
  });
const alnum = (n: number) =>
  fc.string({
    unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.split('')),
    minLength: n,
    maxLength: n,
  });

/** A secret as printed, and the parts of it that must never be shown. */
interface Planted {
  text: string;
  hidden: readonly string[];
}
const VALUE = 'Opal-canary-7731';
const secret: fc.Arbitrary<Planted> = fc.oneof(
  fc.tuple(b64url(5, 60), b64url(2, 60), b64url(0, 60)).map(([h, p, s]) => ({
    text: `eyJ${h}.${p}.${s}`,
    hidden: [`${h}.${p}`],
  })),
  fc
    .tuple(
      fc.constantFrom('RSA ', 'EC ', 'OPENSSH ', ''),
      fc.array(b64url(8, 64), { minLength: 1, maxLength: 4 }),
    )
    .map(([label, lines]) => ({
      text: `-----BEGIN ${label}PRIVATE KEY-----\n${lines.join('\n')}\n-----END ${label}PRIVATE KEY-----`,
      hidden: lines,
    })),
  fc.array(b64url(8, 64), { minLength: 1, maxLength: 3 }).map((lines) => {
    const text = Buffer.from(
      `-----BEGIN EC PRIVATE KEY-----\n${lines.join('\n')}\n-----END EC PRIVATE KEY-----\n`,
    ).toString('base64');
    return { text, hidden: [text.slice(20)] };
  }),
  fc.tuple(fc.constantFrom('AKIA', 'ASIA'), upperAlnum(16)).map(([p, b]) => ({ text: p + b, hidden: [b] })),
  fc
    .tuple(fc.constantFrom('ghp_', 'ghs_', 'gho_'), alnum(36))
    .map(([p, b]) => ({ text: p + b, hidden: [b] })),
  alnum(40).map((v) => ({ text: `aws_secret_access_key = ${v}`, hidden: [v] })),
  alnum(24).map((v) => ({ text: `xoxp-${v}`, hidden: [v] })),
  fc.constant({ text: VALUE, hidden: [VALUE] }),
  fc.constant({
    text: Buffer.from(VALUE).toString('base64'),
    hidden: [Buffer.from(VALUE).toString('base64')],
  }),
);

const stream = fc
  .array(fc.tuple(plainText, fc.option(nearMiss), fc.option(secret)), { maxLength: 8 })
  .map((parts) => {
    let text = '';
    const hidden: string[] = [];
    for (const [plain, miss, planted] of parts) {
      text += `${plain} ${miss ?? ''}x `;
      if (planted) {
        text += `${planted.text} `;
        hidden.push(...planted.hidden);
      }
    }
    return { text: Buffer.from(text), hidden };
  });
const cuts = fc.array(fc.nat(), { maxLength: 12 });
const OPTS: StreamMaskerOptions = { values: [VALUE], maxHoldBytes: 1024 };

describe('StreamMasker properties', () => {
  it('every cut of the stream gives the output of one push', () => {
    // Fails e.g. without the check for a trigger cut at the end of a chunk (#next's tail loop).
    fc.assert(
      fc.property(stream, cuts, ({ text }, points) => {
        const whole = maskChunks([text], OPTS);
        assert.deepEqual(maskChunks(cutAt(text, points), OPTS), whole);
        assert.deepEqual(maskChunks(cutAt(text, [...Array(text.length).keys()]), OPTS), whole);
      }),
      { numRuns: 300 },
    );
  });

  it('no planted secret is shown, in any cut, with idle() anywhere', () => {
    // Fails e.g. if idle() ignored a candidate's public length, or a detector shown its body on NO.
    fc.assert(
      fc.property(stream, cuts, fc.array(fc.nat(12)), ({ text, hidden }, points, idles) => {
        const out = maskChunks(cutAt(text, points), OPTS, new Set(idles)).toString('latin1');
        for (const h of hidden) assert.ok(!out.includes(Buffer.from(h).toString('latin1')), `${h} shown`);
      }),
      { numRuns: 300 },
    );
  });

  it('eager: no planted secret is shown when every byte is pushed alone, or in any cut', () => {
    // Fails e.g. if the eager release ignored a candidate's public length, or a value's first byte.
    const eager: StreamMaskerOptions = { ...OPTS, eager: true };
    fc.assert(
      fc.property(stream, cuts, fc.array(fc.nat(12)), ({ text, hidden }, points, idles) => {
        const whole = new StreamMasker(OPTS);
        whole.push(text);
        whole.end();
        for (const chunks of [cutAt(text, points), cutAt(text, [...Array(text.length).keys()])]) {
          const masker = new StreamMasker(eager);
          const parts: Buffer[] = [];
          chunks.forEach((c, k) => {
            parts.push(masker.push(c));
            if (idles.includes(k)) parts.push(masker.idle());
          });
          parts.push(masker.end());
          const out = Buffer.concat(parts).toString('latin1');
          for (const h of hidden) assert.ok(!out.includes(Buffer.from(h).toString('latin1')), `${h} shown`);
          assert.deepEqual(masker.masked, whole.masked, 'the same secrets are masked');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('eager: text typed one character at a time is echoed by the push of that character', () => {
    // Fails if public bytes waited for idle() (a typed `e`, `g`, `s` or `x` would be held).
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...Array.from('abcdefghijklmnopqrstuvwxyz  \t,;"\'(){}é日🙂'))),
        (typed) => {
          const masker = new StreamMasker({ ...OPTS, eager: true });
          for (const ch of typed) assert.equal(masker.push(Buffer.from(ch)).toString(), ch);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('text with no secret comes out unchanged, in any cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(plainText, fc.option(nearMiss)), { maxLength: 10 }),
        cuts,
        (parts, points) => {
          const text = Buffer.from(parts.map(([p, m]) => `${p}${m ?? ''}x `).join(''));
          assert.deepEqual(maskChunks(cutAt(text, points), OPTS), text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random bytes never throw, terminate, and come out the same in any cut', () => {
    const bytes = fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(bytes, cuts, (buf, points) => {
        const whole = maskChunks([buf], OPTS);
        assert.deepEqual(maskChunks(cutAt(buf, points), OPTS), whole);
      }),
      { numRuns: 500 },
    );
  });

  it('holds no more than the cap, whatever the input', () => {
    const unit = fc.constantFrom('eyJ', 'A', '.', '-----BEGIN ', 'x', 'Opal', 'ghp_', '-');
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 800 }), cuts, (units, points) => {
        const masker = new StreamMasker(OPTS);
        for (const c of cutAt(Buffer.from(units.join('')), points)) {
          masker.push(c);
          assert.ok(masker.held <= 1024 + 4, `held ${masker.held}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('default cap is 16 KiB', () => {
    assert.equal(DEFAULT_MAX_HOLD_BYTES, 16 * 1024);
  });
});
