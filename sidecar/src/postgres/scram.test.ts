import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { md5Password, ScramClient, ScramError, saslPrep } from './scram.ts';

describe('ScramClient', () => {
  // RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
  const serverFirst =
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

  it("produces RFC 7677's example exchange and accepts its server signature", async () => {
    const c = new ScramClient('pencil', { nonce: 'rOprNGfwEbeRWgbNEkqO', user: 'user' });
    assert.equal(c.first().toString(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    const final = await c.final(Buffer.from(serverFirst));
    assert.equal(
      final.toString(),
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    c.verify(Buffer.from('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
  });

  it('refuses a server that does not know the password, or bends the exchange', async () => {
    const c = new ScramClient('pencil', { nonce: 'rOprNGfwEbeRWgbNEkqO', user: 'user' });
    c.first();
    await c.final(Buffer.from(serverFirst));
    assert.throws(() => c.verify(Buffer.from('v=AAAArBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')), ScramError);
    assert.throws(() => c.verify(Buffer.from('e=invalid-proof')), /invalid-proof/);
    const other = new ScramClient('pencil', { nonce: 'abc' });
    other.first();
    await assert.rejects(
      other.final(Buffer.from('r=xyz,s=c2FsdA==,i=4096')),
      /did not extend our SCRAM nonce/,
    );
    await assert.rejects(other.final(Buffer.from('r=abcdef,s=c2FsdA==,i=999999999')), /SCRAM iterations/);
  });

  it('leaves the user name empty for PostgreSQL', () => {
    assert.match(new ScramClient('x').first().toString(), /^n,,n=,r=[A-Za-z0-9+/=]+$/);
  });
});

describe('md5Password and saslPrep', () => {
  it('computes md5(md5(password + user) + salt)', () => {
    // Worked out independently (Python's hashlib).
    assert.equal(
      md5Password('bob', 'secret', Buffer.from([1, 2, 3, 4])),
      'md5f21dfe33ff3a9e03dbc3e008251fe5cc',
    );
  });

  it('maps non-ASCII spaces and normalises; ASCII passes as is', () => {
    assert.equal(saslPrep('pass word'), 'pass word');
    assert.equal(saslPrep('pass\u00a0word'), 'pass word');
    assert.equal(saslPrep('\u2168'), 'IX');
  });
});
