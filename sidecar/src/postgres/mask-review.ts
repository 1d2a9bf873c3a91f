/**
 * Mask review of a statement before it runs, when masks are in force: how the
 * masks apply to each relation it names (by name, and through the catalog:
 * a view over a masked table, a table whose children are masked), the
 * functions it calls and those that run for it (a view's, the triggers of
 * what it writes) — a SQL or PL/pgSQL function's definition is read with the
 * same classifier and reviewed in turn, a built-in or C function only if it
 * runs SQL of its own, any other language cannot be read — and, for
 * `COPY table TO STDOUT`, which of the copied columns are masked. The result
 * is a denial (mask-check.ts), or the COPY's plan. Catalog answers are the
 * only I/O (catalog.ts).
 */
import { masksOfCatalogTable, masksOfWrittenTable, type SqlMask, sqlNameParts } from '@chaperone/shared';
import type { CatalogFunction, CatalogReader, CatalogRelation } from './catalog.ts';
import { type CopyFormat, copyFormat } from './copy-masker.ts';
import { isQueryFunction, maskDenial, type RelationMasks, VALUE_STATISTICS } from './mask-check.ts';
import { emptyMaskFacts, type MaskFacts, mergeMaskFacts } from './mask-facts.ts';
import { type ColumnPlan, catalogName, columnMask, relationMasks } from './result-masker.ts';
import type { Classification } from './sql-classifier.ts';

/** A statement as mask review reads it. */
export interface ReviewedStatement {
  readonly facts: MaskFacts;
  /** Functions it calls, as written. */
  readonly functions: readonly string[];
  /** Relations it writes, as written (their triggers run). */
  readonly writes: readonly string[];
}

export interface CopyPlan {
  readonly format: CopyFormat;
  readonly columns: readonly ColumnPlan[];
}

export type MaskVerdict =
  | { readonly denial: string }
  | {
      readonly denial?: undefined;
      /** Whether it reads a masked table (by name, or one containing or read by what it names). */
      readonly reaches: boolean;
      readonly copy?: CopyPlan;
    };

export interface MaskReviewDeps {
  readonly catalog: CatalogReader;
  readonly classifier: { classify(text: string): Classification };
}

/** How deep functions that call functions are read. */
const MAX_FUNCTION_DEPTH = 4;
const BUILT_IN_SCHEMAS = new Set(['pg_catalog', 'information_schema']);
const READABLE_LANGUAGES = new Set(['sql', 'plpgsql']);

/** A name as written (`users`, `billing.users`, `"a.b".t`, `db.s.t`) as schema and name, unquoted. */
export function splitName(written: string): { schema?: string; name: string } {
  const parts = sqlNameParts(written, true);
  const name = parts[parts.length - 1] as string;
  return parts.length > 1 ? { schema: parts[parts.length - 2] as string, name } : { name };
}

class Review {
  readonly #masks: readonly SqlMask[];
  readonly #deps: MaskReviewDeps;
  readonly #relations = new Map<string, { masks: RelationMasks; found: readonly CatalogRelation[] }>();
  readonly #functions = new Set<string>();
  /** A relation the reviewed statement names has masked columns. */
  reaches = false;

  constructor(masks: readonly SqlMask[], deps: MaskReviewDeps) {
    this.#masks = masks;
    this.#deps = deps;
  }

  async #relation(name: string): Promise<{ masks: RelationMasks; found: readonly CatalogRelation[] }> {
    const known = this.#relations.get(name);
    if (known) return known;
    const { schema, name: rel } = splitName(name);
    const found = await this.#deps.catalog.relationsNamed(schema, rel);
    const masks = new Set(masksOfWrittenTable(this.#masks, name));
    let through: string | undefined;
    let statistics: string | undefined;
    for (const r of found) {
      const stats = r.members.find((m) => m.schema === 'pg_catalog' && VALUE_STATISTICS.has(m.name));
      if (stats) statistics = catalogName(stats.schema, stats.name);
      const own = relationMasks(r, this.#masks);
      for (const m of own) masks.add(m);
      // A generated column computed from a masked one is masked too: its name joins the masks.
      for (const [attnum, col] of r.columns) {
        const by = col.generatedFrom ? columnMask(r, own, attnum) : undefined;
        if (by) masks.add({ rule: by.rule, columns: [col.name] });
      }
      // A view's columns are computed from what it reads: a masked table among those cannot be attributed.
      if ((r.kind === 'v' || r.kind === 'm') && through === undefined) {
        const base = r.members.find(
          (m) => masksOfCatalogTable(this.#masks, catalogName(m.schema, m.name)).length > 0,
        );
        if (base) through = catalogName(base.schema, base.name);
      }
    }
    const out = {
      masks: { masks: [...masks], ...(through ? { through } : {}), ...(statistics ? { statistics } : {}) },
      found,
    };
    this.#relations.set(name, out);
    return out;
  }

  async statement(s: ReviewedStatement, depth: number): Promise<string | undefined> {
    const names = new Set(s.facts.relations);
    if (s.facts.copy) names.add(s.facts.copy.relation);
    const looked = new Map<string, { masks: RelationMasks; found: readonly CatalogRelation[] }>();
    for (const n of names) looked.set(n, await this.#relation(n));
    // Also through code it runs (depth > 0): an error raised there can quote a row of a masked table.
    if ([...looked.values()].some((l) => l.masks.masks.length > 0)) this.reaches = true;
    const denial = maskDenial(
      s.facts,
      s.functions,
      this.#masks,
      (r) => looked.get(r)?.masks ?? { masks: masksOfWrittenTable(this.#masks, r) },
    );
    if (denial) return denial;
    // Functions that run for the statement: called by name, used by a view it reads, triggered by a write.
    const writes = new Set(s.writes);
    const fns: [CatalogFunction, string | undefined][] = [];
    for (const [n, l] of looked) {
      for (const r of l.found) {
        for (const f of await this.#deps.catalog.functionsByOid(r.ruleFunctions)) fns.push([f, undefined]);
        // A trigger function's NEW and OLD are rows of the table written.
        if (!writes.has(n)) continue;
        for (const f of await this.#deps.catalog.functionsByOid(r.triggerFunctions)) fns.push([f, n]);
      }
    }
    for (const f of s.functions) {
      const { schema, name } = splitName(f);
      for (const g of await this.#deps.catalog.functionsNamed(schema, name)) fns.push([g, undefined]);
    }
    for (const [f, rows] of fns) {
      const why = await this.#function(f, depth, rows);
      if (why) return why;
    }
    return undefined;
  }

  /** Reviews a function that runs for the statement; `rows`: the table whose rows it gets as NEW and OLD (a trigger's). */
  async #function(f: CatalogFunction, depth: number, rows?: string): Promise<string | undefined> {
    const key = `${f.oid}\0${rows ?? ''}`;
    if (this.#functions.has(key)) return undefined;
    this.#functions.add(key);
    const name = catalogName(f.schema, f.name);
    if (isQueryFunction(f.name)) {
      return maskDenial(emptyMaskFacts(), [name], this.#masks, () => ({ masks: [] }));
    }
    if (depth >= MAX_FUNCTION_DEPTH) {
      return `function ${name} is reached through functions nested too deeply to read for masked columns`;
    }
    if (f.kind === 'a') {
      for (const g of await this.#deps.catalog.functionsByOid(f.support)) {
        const why = await this.#function(g, depth + 1);
        if (why) return `aggregate ${name}: ${why}`;
      }
      return undefined;
    }
    if (BUILT_IN_SCHEMAS.has(f.schema) || f.language === 'internal' || f.language === 'c') return undefined;
    if (!READABLE_LANGUAGES.has(f.language) || f.definition === undefined) {
      return `function ${name} is written in ${f.language}, which the guard cannot read to see whether it reads masked columns`;
    }
    const classified = this.#deps.classifier.classify(f.definition).statements;
    const own = rows === undefined ? emptyMaskFacts() : { ...emptyMaskFacts(), relations: new Set([rows]) };
    const facts = classified.map((c) => c.mask).reduce(mergeMaskFacts, own);
    const why = await this.statement(
      {
        facts,
        functions: classified.flatMap((c) => c.statement.functions ?? []),
        writes: classified.flatMap((c) => c.statement.writes ?? []),
      },
      depth + 1,
    );
    return why ? `function ${name}: ${why}` : undefined;
  }

  async copy(s: ReviewedStatement): Promise<MaskVerdict> {
    const copy = s.facts.copy;
    const none = { reaches: this.reaches };
    if (copy?.to !== 'client') return none;
    const { masks, found } = await this.#relation(copy.relation);
    if (masks.masks.length === 0) return none;
    let format: CopyFormat;
    try {
      format = copyFormat(copy.options);
    } catch (err) {
      return { denial: `COPY of masked table ${copy.relation}: ${(err as Error).message}` };
    }
    const tables = found.filter((r) => r.kind === 'r' || r.kind === 'p' || r.kind === 'm' || r.kind === 'f');
    const plans = tables.map((r) => {
      const attnums = new Map([...r.columns].map(([n, c]) => [c.name, n]));
      // Without a column list the server copies every column but the generated ones.
      const names = copy.columns ?? [...r.columns.values()].filter((c) => !c.generated).map((c) => c.name);
      const over = [...new Set([...masks.masks, ...relationMasks(r, this.#masks)])];
      return names.map((n): ColumnPlan => {
        const attnum = attnums.get(n) ?? -1;
        const by = columnMask(r, over, attnum);
        return { typeOid: r.columns.get(attnum)?.typeOid ?? 0, ...(by ? { maskedBy: by.rule } : {}) };
      });
    });
    const first = plans[0];
    const same = (a: readonly ColumnPlan[], b: readonly ColumnPlan[]) =>
      a.length === b.length &&
      a.every((c, i) => c.typeOid === b[i]?.typeOid && c.maskedBy === b[i]?.maskedBy);
    if (!first || !plans.every((p) => same(p, first))) {
      return {
        denial: `COPY of masked table ${copy.relation}: ${first ? 'tables of that name in several schemas have different masked columns; name its schema' : 'the guard cannot see its columns (a table created in this transaction)'}`,
      };
    }
    return { reaches: true, copy: { format, columns: first } };
  }
}

/** Reviews one statement under `masks`: a denial, or how its COPY output is masked. */
export async function reviewMasks(
  s: ReviewedStatement,
  masks: readonly SqlMask[],
  deps: MaskReviewDeps,
): Promise<MaskVerdict> {
  if (masks.length === 0) return { reaches: false };
  const review = new Review(masks, deps);
  const denial = await review.statement(s, 0);
  if (denial) return { denial };
  return review.copy(s);
}
