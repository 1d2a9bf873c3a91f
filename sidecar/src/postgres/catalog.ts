/**
 * What the database's catalog says about the relations and functions a
 * statement reaches, for masking: a relation's schema, name, kind and columns
 * (to name the column behind RowDescription's table OID and attribute
 * number, and the columns a generated column is computed from), what it
 * reaches in turn (its inheritance children, the relations
 * and functions a view's definition reads), and a function's language and
 * definition (to read what it reads).
 *
 * Read on a connection of the sidecar's own to the declared database — never
 * on the agent's session, whose search_path, role and transaction the agent
 * controls — with every catalog name schema-qualified. A name as a statement
 * wrote it is looked up in every schema when it is unqualified: whichever one
 * the agent's search path picks, it is among them. Answers are cached for a
 * short time and forgotten when a statement through the guard changes a
 * definition (`invalidate`); one the sidecar cannot see (a relation created
 * in the agent's transaction, not yet committed) holds only what the agent
 * put there itself.
 */
import type { Logger } from '@chaperone/shared';
import type { BackendMessage } from './backend-decoder.ts';
import type { Credentials } from './credentials.ts';
import * as enc from './encode.ts';
import { connectUpstream, type UpstreamSession } from './upstream.ts';

export interface CatalogColumn {
  readonly name: string;
  /** The column's type, a domain's base type (what RowDescription reports). */
  readonly typeOid: number;
  /** A generated column: the attribute numbers of the columns it is computed from. */
  readonly generatedFrom?: readonly number[];
  /** A generated column (stored): COPY without a column list leaves it out. */
  readonly generated?: true;
}

export interface CatalogRelation {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** pg_class.relkind: `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table, … */
  readonly kind: string;
  /** By attribute number (dropped columns left out). */
  readonly columns: ReadonlyMap<number, CatalogColumn>;
  /** What it reaches, itself excluded: inheritance children and partitions, and what a view's or rule's definition reads (transitively). */
  readonly members: readonly { readonly schema: string; readonly name: string; readonly kind: string }[];
  /**
   * The tables it inherits from or is a partition of (transitively): their
   * rows include its rows, so their masks and rules cover it too.
   */
  readonly ancestors: readonly { readonly schema: string; readonly name: string; readonly kind: string }[];
  /** Functions its triggers (and its members') run: they see every row written. */
  readonly triggerFunctions: readonly number[];
  /** Functions its rules or view definition (and its members') call. */
  readonly ruleFunctions: readonly number[];
}

export interface CatalogFunction {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly language: string;
  /** pg_proc.prokind: `f` function, `p` procedure, `a` aggregate, `w` window function. */
  readonly kind: string;
  /** `CREATE OR REPLACE FUNCTION …` as pg_get_functiondef gives it (SQL and PL/pgSQL functions and procedures). */
  readonly definition?: string;
  /** An aggregate's support functions (transition, final, …). */
  readonly support: readonly number[];
}

/** What mask review and result masking ask of the catalog (a test double stands in for it in unit tests). */
export interface CatalogReader {
  /** The relation with this OID if it is cached: null when known not to exist, undefined when not cached. */
  cachedRelation(oid: number): CatalogRelation | null | undefined;
  relationsByOid(oids: readonly number[]): Promise<ReadonlyMap<number, CatalogRelation>>;
  /** Every relation a name as written (`users`, `billing.users`) may stand for. */
  relationsNamed(schema: string | undefined, name: string): Promise<readonly CatalogRelation[]>;
  functionsNamed(schema: string | undefined, name: string): Promise<readonly CatalogFunction[]>;
  functionsByOid(oids: readonly number[]): Promise<readonly CatalogFunction[]>;
}

const RELATIONS = (start: string) => `WITH RECURSIVE start(oid) AS (${start}),
edges(parent, child) AS (
  SELECT i.inhparent, i.inhrelid FROM pg_catalog.pg_inherits i
  UNION ALL
  SELECT w.ev_class, d.refobjid
    FROM pg_catalog.pg_rewrite w
    JOIN pg_catalog.pg_depend d
      ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
   WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> w.ev_class
),
reach(start, oid, depth) AS (
  SELECT s.oid, s.oid, 0 FROM start s
  UNION
  SELECT r.start, e.child, r.depth + 1 FROM reach r JOIN edges e ON e.parent = r.oid WHERE r.depth < 16
)
SELECT c.oid::pg_catalog.text, n.nspname, c.relname, c.relkind::pg_catalog.text,
  (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(a.attnum, a.attname,
            CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
            (SELECT pg_catalog.array_agg(d.refobjsubid)
               FROM pg_catalog.pg_attrdef ad
               JOIN pg_catalog.pg_depend d
                 ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
              WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum AND a.attgenerated <> ''
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = a.attrelid
                AND d.refobjsubid > 0 AND d.refobjsubid <> a.attnum),
            a.attgenerated <> '') ORDER BY a.attnum)::pg_catalog.text
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(mn.nspname, m.relname, m.relkind::pg_catalog.text))::pg_catalog.text
     FROM reach r JOIN pg_catalog.pg_class m ON m.oid = r.oid JOIN pg_catalog.pg_namespace mn ON mn.oid = m.relnamespace
    WHERE r.start = c.oid AND r.oid <> c.oid),
  (SELECT pg_catalog.string_agg(DISTINCT tg.tgfoid::pg_catalog.text, ',')
     FROM reach r JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = r.oid
    WHERE r.start = c.oid AND NOT tg.tgisinternal),
  (SELECT pg_catalog.string_agg(DISTINCT d.refobjid::pg_catalog.text, ',')
     FROM reach r JOIN pg_catalog.pg_rewrite w ON w.ev_class = r.oid
     JOIN pg_catalog.pg_depend d
       ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
    WHERE r.start = c.oid AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass),
  (WITH RECURSIVE up(oid, depth) AS (
     SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid
     UNION
     SELECT i.inhparent, u.depth + 1 FROM up u JOIN pg_catalog.pg_inherits i ON i.inhrelid = u.oid WHERE u.depth < 16)
   SELECT pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(an.nspname, a.relname, a.relkind::pg_catalog.text))::pg_catalog.text
     FROM up JOIN pg_catalog.pg_class a ON a.oid = up.oid JOIN pg_catalog.pg_namespace an ON an.oid = a.relnamespace)
FROM start s JOIN pg_catalog.pg_class c ON c.oid = s.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`;

const BY_OID = 'SELECT pg_catalog.unnest($1::pg_catalog.oid[])';
// pg_temp names the session's own temporary schema (pg_temp_N): which one is not known on this
// connection, so every temporary schema's relation of that name is taken.
const BY_NAME = `SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relname = $1 AND ($2::pg_catalog.text IS NULL OR n.nspname = $2
    OR ($2 = 'pg_temp' AND n.nspname OPERATOR(pg_catalog.~) '^pg_temp_[0-9]+$'))`;

const FUNCTIONS = (
  where: string,
) => `SELECT p.oid::pg_catalog.text, n.nspname, p.proname, l.lanname, p.prokind::pg_catalog.text,
  CASE WHEN p.prokind IN ('f', 'p') AND l.lanname IN ('sql', 'plpgsql') THEN pg_catalog.pg_get_functiondef(p.oid) END,
  (SELECT pg_catalog.concat_ws(',', ${[
    'aggtransfn',
    'aggfinalfn',
    'aggcombinefn',
    'aggserialfn',
    'aggdeserialfn',
    'aggmtransfn',
    'aggminvtransfn',
    'aggmfinalfn',
  ]
    .map((f) => `NULLIF(a.${f}::pg_catalog.oid, '0'::pg_catalog.oid)`)
    .join(', ')}) FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid)
FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE ${where}`;

type Row = readonly (string | null)[];

function oidList(text: string | null | undefined): number[] {
  return text ? text.split(',').filter(Boolean).map(Number) : [];
}

function relationOf(r: Row): CatalogRelation {
  const columns = new Map<number, CatalogColumn>();
  // json_build_array gives oid values as numbers or strings depending on the server: both are read.
  const attributes = JSON.parse(r[4] ?? '[]') as [
    number,
    string,
    number | string,
    number[] | null,
    boolean,
  ][];
  for (const [attnum, name, typeOid, from, generated] of attributes) {
    columns.set(Number(attnum), {
      name,
      typeOid: Number(typeOid),
      ...(from && from.length > 0 ? { generatedFrom: from.map(Number) } : {}),
      ...(generated === true ? { generated: true as const } : {}),
    });
  }
  const relationsIn = (text: string | null | undefined) =>
    (JSON.parse(text ?? '[]') as [string, string, string][]).map(([schema, name, kind]) => ({
      schema,
      name,
      kind,
    }));
  const members = relationsIn(r[5]);
  return {
    oid: Number(r[0]),
    schema: r[1] ?? '',
    name: r[2] ?? '',
    kind: r[3] ?? '',
    columns,
    members,
    ancestors: relationsIn(r[8]),
    triggerFunctions: oidList(r[6]),
    ruleFunctions: oidList(r[7]),
  };
}

function functionOf(r: Row): CatalogFunction {
  return {
    oid: Number(r[0]),
    schema: r[1] ?? '',
    name: r[2] ?? '',
    language: r[3] ?? '',
    kind: r[4] ?? '',
    ...(r[5] ? { definition: r[5] } : {}),
    support: oidList(r[6]),
  };
}

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

/** One connection of the sidecar's own: extended-protocol queries with text parameters, one at a time. */
class CatalogConnection {
  readonly #up: UpstreamSession;
  #pending: { rows: Row[]; error?: string; resolve: (rows: Row[]) => void; reject: (e: Error) => void }[] =
    [];
  #closed = false;

  constructor(up: UpstreamSession, onClose: () => void) {
    this.#up = up;
    up.socket.on('data', (d: Buffer) => {
      let msgs: BackendMessage[];
      try {
        msgs = up.decoder.push(d);
      } catch (err) {
        this.#fail(`the server broke the protocol: ${(err as Error).message}`);
        return;
      }
      for (const m of msgs) this.#message(m);
    });
    const closed = () => {
      this.#fail('the catalog connection closed');
      onClose();
    };
    up.socket.on('close', closed);
    up.socket.on('error', () => up.socket.destroy());
    up.socket.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #message(m: BackendMessage): void {
    const head = this.#pending[0];
    if (!head) return;
    if (m.type === 'DataRow') head.rows.push(m.values.map((v) => (v === null ? null : v.toString('utf8'))));
    else if (m.type === 'ErrorResponse') head.error = `${m.fields.C ?? ''} ${m.fields.M ?? ''}`.trim();
    else if (m.type === 'ReadyForQuery') {
      this.#pending.shift();
      if (head.error !== undefined) head.reject(new CatalogError(head.error));
      else head.resolve(head.rows);
    }
  }

  #fail(why: string): void {
    this.#closed = true;
    for (const p of this.#pending.splice(0)) p.reject(new CatalogError(why));
    this.#up.socket.destroy();
  }

  query(sql: string, params: readonly (string | null)[]): Promise<Row[]> {
    if (this.#closed) return Promise.reject(new CatalogError('the catalog connection is closed'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ rows: [], resolve, reject });
      this.#up.socket.write(
        Buffer.concat([
          enc.parse('', sql),
          enc.bind(
            '',
            '',
            params.map((p) => (p === null ? null : Buffer.from(p, 'utf8'))),
          ),
          enc.execute(''),
          enc.sync(),
        ]),
      );
    });
  }

  close(): void {
    this.#closed = true;
    this.#up.socket.end(enc.terminate());
  }
}

interface Cached<T> {
  readonly value: T;
  readonly until: number;
}

export interface CatalogOptions {
  readonly credentials: () => Credentials;
  readonly connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  /** How long an answer is trusted (changes made outside the guard are seen after this at the latest). */
  readonly ttlMs: number;
  readonly log: Logger;
  readonly now?: () => number;
}

export class Catalog implements CatalogReader {
  readonly #o: CatalogOptions;
  readonly #now: () => number;
  #connecting: Promise<CatalogConnection> | undefined;
  readonly #byOid = new Map<number, Cached<CatalogRelation | null>>();
  readonly #byName = new Map<string, Cached<readonly number[]>>();
  readonly #functionsByName = new Map<string, Cached<readonly CatalogFunction[]>>();
  readonly #functionsByOid = new Map<number, Cached<CatalogFunction | null>>();
  /** Bumped by invalidate(): answers to lookups started before it are not cached. */
  #generation = 0;

  constructor(o: CatalogOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** How long an answer is trusted (CatalogOptions.ttlMs). */
  get ttlMs(): number {
    return this.#o.ttlMs;
  }

  /** Counts the invalidations: an answer remembered under an older count may be out of date. */
  get generation(): number {
    return this.#generation;
  }

  /** Forgets every answer (a statement through the guard changed a definition). */
  invalidate(): void {
    this.#generation++;
    this.#byOid.clear();
    this.#byName.clear();
    this.#functionsByName.clear();
    this.#functionsByOid.clear();
  }

  close(): void {
    this.#connecting?.then(
      (c) => c.close(),
      () => {},
    );
    this.#connecting = undefined;
  }

  #connection(): Promise<CatalogConnection> {
    if (!this.#connecting) {
      const started = connectUpstream(
        this.#o.credentials(),
        [
          ['client_encoding', 'UTF8'],
          ['standard_conforming_strings', 'on'],
          ['search_path', 'pg_catalog'],
          ['application_name', 'chaperone-catalog'],
        ],
        { timeoutMs: this.#o.connectTimeoutMs, maxMessageBytes: this.#o.maxMessageBytes },
      ).then((up) => {
        const c = new CatalogConnection(up, () => {
          if (this.#connecting === started) this.#connecting = undefined;
        });
        return c;
      });
      started.catch(() => {
        if (this.#connecting === started) this.#connecting = undefined;
      });
      this.#connecting = started;
    }
    return this.#connecting;
  }

  async #query(sql: string, params: readonly (string | null)[]): Promise<Row[]> {
    try {
      const c = await this.#connection();
      return await c.query(sql, params);
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'catalog lookup failed');
      throw err instanceof CatalogError ? err : new CatalogError((err as Error).message);
    }
  }

  #fresh<K, T>(map: Map<K, Cached<T>>, key: K): T | undefined {
    const hit = map.get(key);
    if (!hit) return undefined;
    if (hit.until > this.#now()) return hit.value;
    map.delete(key);
    return undefined;
  }

  #keep<K, T>(map: Map<K, Cached<T>>, key: K, value: T, generation: number): void {
    if (generation === this.#generation) map.set(key, { value, until: this.#now() + this.#o.ttlMs });
  }

  cachedRelation(oid: number): CatalogRelation | null | undefined {
    return this.#fresh(this.#byOid, oid);
  }

  async relationsByOid(oids: readonly number[]): Promise<ReadonlyMap<number, CatalogRelation>> {
    const out = new Map<number, CatalogRelation>();
    const missing: number[] = [];
    for (const oid of new Set(oids)) {
      const hit = this.#fresh(this.#byOid, oid);
      if (hit === undefined) missing.push(oid);
      else if (hit) out.set(oid, hit);
    }
    if (missing.length === 0) return out;
    const generation = this.#generation;
    const rows = await this.#query(RELATIONS(BY_OID), [`{${missing.join(',')}}`]);
    const found = new Map(rows.map((r) => [Number(r[0]), relationOf(r)]));
    for (const oid of missing) {
      const r = found.get(oid) ?? null;
      this.#keep(this.#byOid, oid, r, generation);
      if (r) out.set(oid, r);
    }
    return out;
  }

  async relationsNamed(schema: string | undefined, name: string): Promise<readonly CatalogRelation[]> {
    const key = `${schema ?? ''}\0${name}`;
    const oids = this.#fresh(this.#byName, key);
    if (oids) return [...(await this.relationsByOid(oids)).values()];
    const generation = this.#generation;
    const rows = await this.#query(RELATIONS(BY_NAME), [name, schema ?? null]);
    const found = rows.map(relationOf);
    this.#keep(
      this.#byName,
      key,
      found.map((r) => r.oid),
      generation,
    );
    for (const r of found) this.#keep(this.#byOid, r.oid, r, generation);
    return found;
  }

  async functionsNamed(schema: string | undefined, name: string): Promise<readonly CatalogFunction[]> {
    const key = `${schema ?? ''}\0${name}`;
    const hit = this.#fresh(this.#functionsByName, key);
    if (hit) return hit;
    const generation = this.#generation;
    const rows = await this.#query(
      FUNCTIONS('p.proname = $1 AND ($2::pg_catalog.text IS NULL OR n.nspname = $2)'),
      [name, schema ?? null],
    );
    const found = rows.map(functionOf);
    this.#keep(this.#functionsByName, key, found, generation);
    return found;
  }

  async functionsByOid(oids: readonly number[]): Promise<readonly CatalogFunction[]> {
    const out: CatalogFunction[] = [];
    const missing: number[] = [];
    for (const oid of new Set(oids)) {
      const hit = this.#fresh(this.#functionsByOid, oid);
      if (hit === undefined) missing.push(oid);
      else if (hit) out.push(hit);
    }
    if (missing.length === 0) return out;
    const generation = this.#generation;
    const rows = await this.#query(FUNCTIONS('p.oid = ANY ($1::pg_catalog.oid[])'), [
      `{${missing.join(',')}}`,
    ]);
    const found = new Map(rows.map((r) => [Number(r[0]), functionOf(r)]));
    for (const oid of missing) {
      const f = found.get(oid) ?? null;
      this.#keep(this.#functionsByOid, oid, f, generation);
      if (f) out.push(f);
    }
    return out;
  }
}
