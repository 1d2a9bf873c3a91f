/**
 * One agent connection to a declared database, and the sidecar's own
 * connection to the real server behind it (session semantics: one upstream
 * connection per agent connection, for its whole life).
 *
 * Start-up: the agent is its own server's client. SSLRequest is answered `N`
 * (or `S` and TLS with the pod's local CA, when configured), GSSENCRequest
 * `N`, a direct TLS ClientHello (libpq 17) gets TLS when the sidecar has its
 * local identity (and it negotiates ALPN "postgresql", as PostgreSQL 17
 * requires); a CancelRequest is mapped to the upstream backend. The
 * agent needs no password (AuthenticationOk): it never has the real one, and
 * whatever it might send is never forwarded. The sidecar connects upstream
 * with the Secret's credentials, forcing client_encoding UTF8 and
 * standard_conforming_strings on (the two settings that change how the server
 * reads SQL text: the guard reads it that way, and refuses to go on if the
 * server ever reports otherwise).
 *
 * Then every simple Query (each of its statements) and every Parse is read
 * with the real parser and decided by the policy before it is forwarded. A
 * denial is answered as the server answers an error, with SQLSTATE 42501 and
 * the rule's message, and the session stays usable. So that the session ends
 * up in the state the server would have put it in — inside a transaction
 * block an error aborts the transaction; in the extended protocol the server
 * discards messages until Sync — the denied statement is replaced, on its way
 * to the server, by one that fails to parse (it cannot do anything): the
 * server itself aborts the transaction, discards until Sync and reports the
 * true transaction status; the sidecar swaps the server's syntax error for
 * the denial. Messages after a denied Parse are discarded here until Sync, as
 * the server would.
 *
 * A statement a `review` rule matches is held until a human decides
 * (review/sql-hold.ts): a simple Query's statements one by one, a prepared
 * statement at each Bind, with its values (its Parse is not held, so nobody
 * is asked twice). Approved, it is judged again with the policy in force
 * then, which wins unless it is still the same rule's review.
 *
 * A decision made earlier is made again when the policy changed since: at a
 * Bind (under masks other than its Parse was checked under, masking is
 * checked again), at an Execute of a portal bound under another policy, and
 * for the other statements of a query string once a hold among them ends.
 *
 * With masks in force (docs/policy.md, "Masking SQL results"), a statement
 * that would send a masked column's value anywhere but a plain output column
 * is denied before it runs (mask-review.ts; reading the catalog holds the
 * agent's later messages until it is done), and the rows that come back are
 * rewritten: each RowDescription's columns are named through the catalog
 * (holding the server's later messages while it is read), and DataRows and
 * COPY data have the masked values replaced. An Execute gets a Describe of
 * its portal from the sidecar first, whose answer the agent never sees, so
 * its rows are read with their real formats even when the client described
 * nothing.
 *
 * Every statement produces one audit event: denied ones when they are
 * denied, before the agent hears of it; the others when the server ends them
 * (rows from CommandComplete), before the agent hears of that.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import {
  type CompiledPolicy,
  type Decision,
  evaluate,
  type Logger,
  masksOfCatalogTable,
  masksOfWrittenTable,
  qualifiedNameMatcher,
  type SelfProtection,
  type SqlMask,
  type SqlStatement,
  sqlMasksFor,
} from '@chaperone/shared';
import type { Spool } from '../audit/spool.ts';
import type { Identity } from '../identity.ts';
import type { SidecarMetrics } from '../metrics.ts';
import { bindDigestParts, describeParams } from '../review/bind-params.ts';
import type { ReviewClient } from '../review/review-client.ts';
import { judgedAgain, reviewStatement } from '../review/sql-hold.ts';
import { rowsOf, statementEvent } from './audit-event.ts';
import type { BackendDecoder, BackendMessage, FieldDescription } from './backend-decoder.ts';
import type { CatalogFunction, CatalogReader } from './catalog.ts';
import { CopyMasker } from './copy-masker.ts';
import type { CredentialStore, Credentials } from './credentials.ts';
import * as enc from './encode.ts';
import { FrontendDecoder, type FrontendMessage } from './frontend-decoder.ts';
import { maskDenial } from './mask-check.ts';
import { emptyMaskFacts, mergeMaskFacts, storedMaskFacts } from './mask-facts.ts';
import { type CopyPlan, reviewMasks, splitName } from './mask-review.ts';
import { ProtocolError } from './protocol.ts';
import { ResponseTracker, type Run } from './response-tracker.ts';
import {
  type ColumnPlan,
  catalogName,
  maskRow,
  masksAny,
  resultPlan,
  withoutValues,
} from './result-masker.ts';
import { sqlAction } from './sql-action.ts';
import { type ClassifiedStatement, executeOf, type SqlClassifier } from './sql-classifier.ts';
import { connectUpstream, UpstreamError, type UpstreamSession } from './upstream.ts';

/** Startup parameters passed on to the server; everything else a client sends is dropped. */
const PASSED_PARAMETERS = [
  'application_name',
  'DateStyle',
  'TimeZone',
  'IntervalStyle',
  'extra_float_digits',
  'search_path',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'bytea_output',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
];

export interface CancelTarget {
  readonly credentials: Credentials;
  readonly processId: number;
  readonly secretKey: Buffer;
}

/** The keys the sidecar gave its agents, and the upstream backends they stand for. */
export class CancelRegistry {
  readonly #targets = new Map<string, CancelTarget>();

  static key(processId: number, secretKey: Buffer): string {
    return `${processId}:${secretKey.toString('hex')}`;
  }

  add(key: string, target: CancelTarget): void {
    this.#targets.set(key, target);
  }

  delete(key: string): void {
    this.#targets.delete(key);
  }

  get(processId: number, secretKey: Buffer): CancelTarget | undefined {
    return this.#targets.get(CancelRegistry.key(processId, secretKey));
  }
}

export interface SessionOptions {
  /** The declared database's name (what rules' `sql.databases` match). */
  readonly database: string;
  readonly credentials: CredentialStore;
  readonly classifier: SqlClassifier;
  readonly policy: { readonly current: CompiledPolicy };
  readonly protection: SelfProtection;
  readonly identity: Identity;
  readonly spool: Spool;
  /** Why statements must be refused now (the audit spool or collector), or undefined. */
  readonly auditRefusal: () => string | undefined;
  readonly failOpen: boolean;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  readonly cancels: CancelRegistry;
  readonly cancel: (target: CancelTarget) => Promise<void>;
  /** The pod's local TLS identity; `offer`: answer SSLRequest with S (otherwise only direct TLS gets it). */
  readonly tls?: { readonly context: SecureContext; readonly offer: boolean };
  readonly maxMessageBytes: number;
  /** Query strings (Query, Parse) longer than this are refused unread: the parser runs on the event loop. */
  readonly maxParsedSqlBytes: number;
  readonly connectTimeoutMs: number;
  /** A client that has not finished its start-up by then is dropped. */
  readonly startupTimeoutMs: number;
  /** Why this connection is refused at its startup message (too many connections), if it is. */
  readonly refuse?: string;
  /** The database's catalog, read on the sidecar's own connection (for masking). */
  readonly catalog: CatalogReader & {
    invalidate(): void;
    readonly generation: number;
    readonly ttlMs: number;
  };
  /** Holds statements a review rule matches until a human decides (absent: they are denied). */
  readonly reviews?: ReviewClient;
}

/** What the sidecar decided about a statement, carried until the server ends it. */
interface Judged {
  readonly classified: ClassifiedStatement;
  /** What the policy saw (for EXECUTE: what was prepared). */
  readonly statement: SqlStatement;
  readonly decision: Decision;
  readonly receivedAt: Date;
  readonly overheadMs: number;
  /** How `COPY … TO STDOUT` of a masked table is masked. */
  readonly copy?: CopyPlan;
  /** It reads a masked table: its errors and notices lose what could hold a value (result-masker.ts withoutValues). */
  readonly readsMasked?: boolean;
  /** Its event's id, named before it was recorded (a statement held for review). */
  readonly auditID?: string;
  /** The query string it came from and its place there: what a review's digest pins. */
  readonly source?: { readonly text: string; readonly index: number };
  /** A Parse's declared parameter types (what an approver reads of a Bind's values). */
  readonly paramTypes?: readonly number[];
  /**
   * EXECUTE: what was prepared under its name when it was judged (the approver reads it; a review's digest
   * pins it). The server looks the name up when it runs: a Bind or Execute finding another there judges again.
   */
  readonly executed?: Prepared;
  /** The policy and user its decision was made under (a portal's is made again at Execute when either changed). */
  readonly decidedUnder?: Generation;
  /** The masks (maskKey) under which masking was found able to make it safe (checked again when they change). */
  readonly maskedWith?: string;
}

/** A statement prepared under a name: what an EXECUTE of it runs. */
type Prepared = Pick<Judged, 'classified' | 'statement' | 'source'>;

/** What a decision was made under: the policy object in force and the user. */
interface Generation {
  readonly policy: CompiledPolicy;
  readonly user: string;
}

/** An allow decision with the policy and user it was made under. */
interface KeptAllow {
  readonly policy: CompiledPolicy;
  readonly user: string;
  readonly decision: Decision;
}

/** Masks as a comparable key: a statement checked under masks with the same key needs no new check. */
function maskKey(masks: readonly SqlMask[]): string {
  return JSON.stringify(masks);
}

/** Kinds after which the catalog's cached answers may be out of date. */
const RUNS_CODE = ['do', 'call', 'dynamic-sql'];
const CHANGES_DEFINITIONS = ['ddl', ...RUNS_CODE];
/**
 * Statements after which the guard no longer knows what the session's portals
 * hold: a cursor declared or closed in SQL shares their names, and code run on
 * the server (a DO block, a procedure) may open or close cursors by any name.
 */
const REPLACES_PORTALS = new Set(['DeclareCursorStmt', 'ClosePortalStmt']);
/**
 * The #reachedBy keys of what a statement names: `r:` a relation as written,
 * `f:` a function as called.
 */
function reachKeys(s: SqlStatement): string[] {
  return [...s.tables.map((t) => `r:${t}`), ...(s.functions ?? []).map((f) => `f:${f}`)];
}

/** What a relation's or function's code reaches and does (#reachOf). */
interface Reach {
  readonly reaches: readonly string[];
  readonly kinds: readonly string[];
}

/** Kinds of a function's own definition (CREATE FUNCTION), not of what its body does. */
const DEFINING_KINDS = new Set(['create', 'create-function', 'ddl', 'write']);
/** Kinds of a body's statements that write (the body's `write` is told from the definition's by these). */
const WRITING_KINDS = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'truncate',
  'drop',
  'alter',
  'copy-from',
  'grant',
  'revoke',
  'create-role',
  'comment',
]);

/** How deep code (function bodies, triggers) is followed for what it reaches (#reachOf). */
const MAX_CODE_DEPTH = 3;
/** Relation names a session remembers what they reach (#afterCatalog); past it, it starts again. */
const MAX_REACHED_NAMES = 4096;
/** What the server sends for a portal that holds a statement; an empty query's gets EmptyQueryResponse (and NoData). */
const RESULT_MESSAGES = new Set([
  'RowDescription',
  'DataRow',
  'CommandComplete',
  'PortalSuspended',
  'CopyInResponse',
  'CopyOutResponse',
  'CopyBothResponse',
]);
/** A client that has not finished its start-up by then is dropped (the server's authentication_timeout is 1 min). */
export const STARTUP_TIMEOUT_MS = 60_000;
/**
 * The longest query string read by default. The parser is synchronous and
 * takes about 2 to 5 ms per KiB on the worst shapes (long VALUES lists, IN
 * lists, thousands of statements in one string): 256 KiB keeps any one
 * statement's stall of the sidecar's event loop, which every connection of
 * the pod shares, under about a second.
 */
export const MAX_PARSED_SQL_BYTES = 256 * 1024;

const SEVERITY = { allow: 0, mask: 1, review: 2, deny: 3 } as const;

/** A decision under which a statement runs: allowed, masked, or a review a human approved (and still in force). */
function runs(d: Decision): boolean {
  return (
    d.action === 'allow' || d.action === 'mask' || (d.action === 'review' && d.approval?.state === 'approved')
  );
}

/**
 * The decision on a PREPARE that a review rule matches: it runs, and the
 * statement it prepares is asked about at each EXECUTE or Bind of it, with
 * the values (one approval per execution, none for the PREPARE).
 */
function preparedOnly(d: Decision): Decision {
  return {
    action: 'allow',
    rule: d.rule,
    reason: d.reason,
    message: `PREPARE runs nothing; rule "${d.rule}" asks a human about each EXECUTE of what it prepares (${d.message})`,
    ...(d.sqlMasks ? { sqlMasks: d.sqlMasks } : {}),
  };
}

/** A review not asked yet: a prepared statement's, asked at its Bind with the values (#bind). */
function awaitsBind(d: Decision): boolean {
  return d.action === 'review' && d.approval === undefined;
}

export class PostgresSession {
  readonly #o: SessionOptions;
  readonly #log: Logger;
  readonly #sessionId = randomUUID();
  /** Aborted when the session ends: a statement held for review is withdrawn. */
  readonly #gone = new AbortController();
  /** Names the statements the sidecar substitutes for denied ones; unguessable to the agent. */
  readonly #nonce = randomBytes(8).toString('hex');
  readonly #remote: string;
  #agent: Socket | TLSSocket;
  #fe: FrontendDecoder;
  #upstream: UpstreamSession | undefined;
  #phase: 'startup' | 'connecting' | 'ready' | 'closed' = 'startup';
  /** Messages that arrived while the upstream connection was being made. */
  #early: FrontendMessage[] = [];
  #application: string | undefined;
  #cancelKey: string | undefined;
  #toUpstream: Buffer[] = [];
  #toAgent: Buffer[] = [];
  readonly #tracker: ResponseTracker<Judged>;
  /** Allow decisions at Bind, by prepared statement, with the policy and user they were made under (#bindDecision). */
  readonly #allowedBinds = new WeakMap<Judged, KeptAllow>();
  /**
   * Allow decisions of query strings' statements, by the classified statement (the classifier's caches
   * give the same object for the same text, or the same literal shape), the same way (#judge).
   */
  readonly #allowedStatements = new WeakMap<SqlStatement, KeptAllow>();
  /** The last string classified (#classify). */
  #lastRead: { text: string; classified: readonly ClassifiedStatement[]; hit: boolean } | undefined;
  /**
   * What the catalog says each relation named (as written) reaches, under the
   * catalog generation it was read in (#afterCatalog, #reached).
   */
  readonly #reachedBy = new Map<
    string,
    {
      readonly generation: number;
      readonly until: number;
      readonly reaches: readonly string[];
      /** What the code it runs (a function's body, a relation's triggers and rules) does. */
      readonly kinds: readonly string[];
    }
  >();
  /** Relations linked by definitions this session sent and the catalog may not show yet, by unqualified name (#linkDefinitions). */
  readonly #links = new Map<string, { readonly names: Set<string>; readonly batch: number }>();
  /** The deny and review rules on tables of the policy in force, with their table matchers (#rulesOnTables). */
  #rulesOnTablesOf:
    | { policy: CompiledPolicy; rules: { name: string; tables: (name: string) => boolean }[] }
    | undefined;
  /** Prepared statements by name (protocol Parse and SQL PREPARE share one namespace). */
  readonly #prepared = new Map<string, Judged>();
  /** Portals by name: what their statement was judged at Bind (undefined for an empty query's portal). */
  readonly #portals = new Map<string, Judged | undefined>();
  /** The batch (#batch) each portal was bound in: the server drops it when that batch's transaction ends. */
  readonly #portalBatch = new Map<string, number>();
  /** Names of prepared statements whose query is empty (nothing to judge or record). */
  readonly #emptyPrepared = new Set<string>();
  /**
   * Changes of names sent to the server (a Parse, a Bind of a portal, a
   * Close, a statement that prepares, drops or may replace them): the number
   * of the last one sent, by `s:<name>` for a prepared statement and
   * `p:<name>` for a portal (`s:*`, `p:*`: every one). An answer (a Parse's,
   * a Bind's, a statement's end) is taken only from the last change of its
   * name (#latest). Emptied whenever no change waits for an answer.
   */
  readonly #changing = new Map<string, number>();
  /** Changes waiting for the server's answer, with the batch (#batch) they were sent in. */
  readonly #unanswered = new Map<number, number>();
  /** The change a statement sent to run makes (#sending). */
  readonly #changeNumber = new WeakMap<Run<Judged>, number>();
  #changes = 0;
  /**
   * Counts the Syncs and Queries sent. Within one batch a failure makes the
   * server discard what follows, so a Bind may be judged by a Parse not yet
   * answered; after the Sync it may not (#namesGate).
   */
  #batch = 0;
  /** A message waits until no change of names sent in an earlier batch is unanswered (#namesGate). */
  #namesWait = false;
  /** For each Parse in flight, what its name held before, restored if the server refuses the Parse (#parsed). */
  readonly #parseUndo: {
    name: string;
    before: Judged | undefined;
    wasEmpty: boolean;
    change: number;
    /** No other change of the name waited for an answer when it was sent: `before` is what the server holds. */
    settled: boolean;
  }[] = [];
  /** After a denied Parse: discard until Sync, as the server does after an error. */
  #discarding = false;
  readonly #denials = new Map<number, Buffer>();
  #denialSeq = 0;
  /** Messages that arrived while a statement's mask review reads the catalog: handled in order after it. */
  #held: FrontendMessage[] | undefined;
  /** Works holding the agent's messages (#hold) not done yet. */
  #holds = 0;
  /** Server messages waiting while the columns of a result are read from the catalog. */
  readonly #fromServer: BackendMessage[] = [];
  #serverHeld = false;
  /** The result being sent has been described (its columns are known), and how its rows are masked. */
  #described = false;
  #plan: readonly ColumnPlan[] | undefined;
  #copyMasker: CopyMasker | undefined;
  /** A statement changed definitions: the catalog's answers are dropped again when its transaction ends. */
  #definitionsChanged = false;
  #masks: { policy: CompiledPolicy; masks: readonly SqlMask[] } | undefined;
  /**
   * Where the server is with COPY FROM STDIN (copy-in): `starting` after a
   * statement that may start it was sent (the agent's later messages wait
   * for the server's answer), `in` once it said CopyInResponse, `ending`
   * after the sidecar failed the copy because the agent sent a message
   * other than COPY data (the agent's messages wait for the server's answer).
   */
  #copy: 'none' | 'starting' | 'in' | 'ending' = 'none';
  /** The Query that started the copy holds another COPY FROM STDIN after it. */
  #copyAgain = false;
  /**
   * Something ran (a Query, Bind or Execute) whose change of settings the
   * server has not reported yet: it reports client_encoding (ParameterStatus)
   * only before its next ReadyForQuery, and reads every query string that
   * arrives before then in the new encoding.
   */
  #unreported = false;
  /** A Bind or Execute was sent with no Sync (or Query) after it: no ReadyForQuery will come unasked. */
  #unsyncedRun = false;
  /** A query string with non-ASCII text waits for the server's ReadyForQuery (#encodingGate). */
  #encodingWait = false;

  constructor(socket: Socket, o: SessionOptions) {
    this.#o = o;
    this.#agent = socket;
    this.#remote = socket.remoteAddress ?? '127.0.0.1';
    this.#log = o.log.child({ database: o.database, session: this.#sessionId });
    this.#fe = new FrontendDecoder({ maxMessageBytes: o.maxMessageBytes });
    this.#tracker = new ResponseTracker<Judged>({
      done: (run, outcome) => this.#done(run, outcome),
      parsed: (name, ok) => this.#parsed(name, ok),
      mismatch: (what) =>
        this.#log.warn({ what }, 'the server answered differently than the sidecar expected'),
    });
    socket.setNoDelay(true);
    this.#listenAgent();
    const startup = setTimeout(() => {
      if (this.#phase === 'startup')
        this.#fatal(
          '08P01',
          `the start-up did not finish within ${o.startupTimeoutMs / 1000} s (--database-startup-timeout); connect again and send the startup message at once`,
        );
    }, o.startupTimeoutMs);
    startup.unref();
    socket.once('close', () => clearTimeout(startup));
  }

  /**
   * Runs a socket callback so that nothing it throws escapes: an unexpected
   * error ends this session (FATAL, logged), never the sidecar process that
   * guards every other connection and the Kubernetes API.
   */
  #contained(what: string, f: () => void): void {
    try {
      f();
    } catch (err) {
      this.#log.error({ err, what }, 'unexpected error in a database session; the session is ended');
      this.#toAgent = [];
      try {
        this.#fatal('XX000', 'internal error in the guard; the session is ended');
      } catch {
        this.#agent.destroy();
        this.#upstream?.socket.destroy();
      }
    }
  }

  get sessionId(): string {
    return this.#sessionId;
  }

  // -------------------------------------------------------------------------
  // Sockets

  readonly #onAgentData = (chunk: Buffer) => this.#contained('agent data', () => this.#agentData(chunk));
  readonly #onAgentClose = () => this.#close('the agent closed the connection');
  readonly #onAgentError = (err: Error) => {
    this.#log.debug({ err: err.message }, 'agent connection error');
    this.#close('agent connection error');
  };

  #listenAgent(): void {
    this.#agent.on('data', this.#onAgentData);
    this.#agent.on('close', this.#onAgentClose);
    this.#agent.on('error', this.#onAgentError);
  }

  #unlistenAgent(): void {
    this.#agent.off('data', this.#onAgentData);
    this.#agent.off('close', this.#onAgentClose);
    this.#agent.off('error', this.#onAgentError);
  }

  #flush(): void {
    const up = this.#upstream?.socket;
    if (this.#toUpstream.length > 0 && up && !up.destroyed) {
      const parts = this.#toUpstream;
      this.#toUpstream = [];
      const ok = up.write(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      if (!ok && !this.#agent.isPaused()) {
        this.#agent.pause();
        up.once('drain', () => this.#agent.resume());
      }
    }
    if (this.#toAgent.length > 0 && !this.#agent.destroyed) {
      const parts = this.#toAgent;
      this.#toAgent = [];
      const ok = this.#agent.write(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      if (!ok && up && !up.isPaused()) {
        up.pause();
        this.#agent.once('drain', () => up.resume());
      }
    }
  }

  #close(why: string): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#gone.abort();
    this.#tracker.abandon(`the connection ended (${why})`);
    if (this.#cancelKey) this.#o.cancels.delete(this.#cancelKey);
    const up = this.#upstream?.socket;
    if (up && !up.destroyed) up.end(enc.terminate());
    if (!this.#agent.destroyed) this.#agent.end();
    // A peer that does not close its side is not waited for.
    for (const s of [up, this.#agent]) if (s) setTimeout(() => s.destroy(), 2000).unref();
    this.#log.debug({ why }, 'session closed');
  }

  /** Ends the session with a FATAL error the agent can read. */
  #fatal(code: string, message: string): void {
    if (this.#phase === 'closed') return;
    this.#toAgent.push(enc.errorMessage('FATAL', code, `chaperone: ${message}`));
    this.#flush();
    this.#close(message);
  }

  // -------------------------------------------------------------------------
  // Start-up

  #agentData(chunk: Buffer): void {
    let msgs: FrontendMessage[];
    try {
      msgs = this.#fe.push(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.#fatal(err.sqlstate, `the client broke the protocol: ${err.message}`);
        return;
      }
      throw err;
    }
    for (const m of msgs) {
      if (this.#phase === 'closed') return;
      if (this.#phase === 'startup') this.#startup(m);
      else if (this.#phase === 'connecting') this.#early.push(m);
      else this.#fromAgent(m);
    }
    this.#flush();
  }

  #startup(m: FrontendMessage): void {
    switch (m.type) {
      case 'SSLRequest':
        if (this.#o.tls?.offer) {
          this.#agent.write(Buffer.from('S'));
          this.#startTls(this.#fe.takeBuffered());
        } else {
          this.#agent.write(Buffer.from('N'));
        }
        return;
      case 'GSSENCRequest':
        this.#agent.write(Buffer.from('N'));
        return;
      case 'TlsClientHello':
        if (!this.#o.tls) {
          this.#log.info('a client opened with TLS directly, and this sidecar has no local TLS identity');
          this.#close('direct TLS without a local TLS identity');
          return;
        }
        this.#startTls(this.#fe.takeBuffered());
        return;
      case 'CancelRequest': {
        const target = this.#o.cancels.get(m.processId, m.secretKey);
        this.#close('cancel request');
        if (target) {
          this.#o
            .cancel(target)
            .catch((err) =>
              this.#log.warn({ err: (err as Error).message }, 'could not pass a cancel request on'),
            );
        }
        return;
      }
      case 'StartupMessage':
        this.#startSession(m);
        return;
      default:
        this.#fatal('08P01', `expected a startup message, got ${m.type}`);
    }
  }

  /**
   * TLS with the pod's local certificate. After an SSLRequest nothing may have
   * arrived yet (bytes sent before the handshake are not protected by it); for
   * direct TLS the bytes already read are the ClientHello's start.
   */
  #startTls(buffered: Buffer): void {
    const tls = this.#o.tls;
    if (!tls) return;
    const raw = this.#agent;
    const direct = buffered.length > 0 && buffered[0] === 0x16;
    if (buffered.length > 0 && !direct) {
      this.#fatal('08P01', 'the client sent data before the TLS handshake');
      return;
    }
    this.#unlistenAgent();
    let transport: Socket | Duplex = raw;
    if (direct) {
      // The ClientHello's first bytes were read already: hand them to TLS in front of the rest.
      const pipe = new Duplex({
        read: () => raw.resume(),
        write: (chunk, _enc, cb) => raw.write(chunk, cb),
        final: (cb) => raw.end(cb),
      });
      raw.on('data', (c: Buffer) => {
        if (!pipe.push(c)) raw.pause();
      });
      raw.on('end', () => pipe.push(null));
      raw.on('close', () => pipe.destroy());
      raw.on('error', () => pipe.destroy());
      pipe.push(buffered);
      transport = pipe;
    }
    const secure = new TLSSocket(transport as Socket, {
      isServer: true,
      secureContext: tls.context,
      ALPNProtocols: ['postgresql'],
    });
    this.#agent = secure;
    this.#fe = new FrontendDecoder({ maxMessageBytes: this.#o.maxMessageBytes });
    this.#listenAgent();
    // Direct TLS must name the protocol (ALPN "postgresql"), as PostgreSQL 17 requires: a client of
    // another protocol (a browser tricked into connecting here) must not be read as a PostgreSQL one.
    if (direct)
      secure.once('secure', () => {
        if (secure.alpnProtocol !== 'postgresql')
          this.#fatal(
            '08P01',
            'a direct TLS connection must negotiate ALPN "postgresql" (libpq 17 sslnegotiation=direct does); connect with sslnegotiation=postgres otherwise',
          );
      });
  }

  #startSession(m: Extract<FrontendMessage, { type: 'StartupMessage' }>): void {
    if (this.#o.refuse !== undefined) {
      this.#fatal('53300', this.#o.refuse);
      return;
    }
    const p = m.parameters;
    const replication = p.get('replication');
    if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      this.#fatal('42501', 'replication connections are not allowed through the guard');
      return;
    }
    this.#application = p.get('application_name');
    // A newer protocol minor or protocol options: say which we speak (3.0, none), as a server does.
    const options = [...p.keys()].filter((k) => k.startsWith('_pq_.'));
    if ((m.protocol & 0xffff) !== 0 || options.length > 0)
      this.#toAgent.push(enc.negotiateProtocolVersion(0, options));
    const parameters: [string, string][] = [
      ['client_encoding', 'UTF8'],
      ['standard_conforming_strings', 'on'],
    ];
    for (const k of PASSED_PARAMETERS) {
      const v = p.get(k);
      if (v !== undefined) parameters.push([k, v]);
    }
    let credentials: Credentials;
    try {
      credentials = this.#o.credentials.current;
    } catch (err) {
      this.#fatal(
        '08006',
        `the credentials of database "${this.#o.database}" are not usable: ${(err as Error).message}`,
      );
      return;
    }
    this.#phase = 'connecting';
    this.#agent.pause();
    connectUpstream(credentials, parameters, {
      timeoutMs: this.#o.connectTimeoutMs,
      maxMessageBytes: this.#o.maxMessageBytes,
    }).then(
      (up) => this.#ready(up, credentials),
      (err: unknown) => {
        const e = err instanceof UpstreamError ? err : new UpstreamError('connect', String(err));
        this.#o.metrics.upstreamErrors.inc({ protocol: 'postgres', reason: e.reason });
        this.#log.warn(
          { reason: e.reason, err: e.message },
          'could not open the upstream database connection',
        );
        this.#fatal(e.sqlstate, `could not connect to database "${this.#o.database}": ${e.message}`);
      },
    );
  }

  #ready(up: UpstreamSession, credentials: Credentials): void {
    if (this.#phase === 'closed') {
      up.socket.end(enc.terminate());
      return;
    }
    this.#upstream = up;
    const secretKey = randomBytes(4);
    this.#cancelKey = CancelRegistry.key(up.processId, secretKey);
    this.#o.cancels.add(this.#cancelKey, { credentials, processId: up.processId, secretKey: up.secretKey });
    this.#toAgent.push(enc.authenticationOk(), ...up.notices);
    for (const [name, value] of up.parameters) {
      const unsafe = unsafeSetting(name, value);
      if (unsafe) {
        this.#fatal('0A000', unsafe);
        return;
      }
      this.#toAgent.push(enc.parameterStatus(name, value));
    }
    // The agent cancels with the backend's process id and a key of the sidecar's own.
    this.#toAgent.push(enc.backendKeyData(up.processId, secretKey), enc.readyForQuery(up.status));
    this.#phase = 'ready';
    up.socket.on('data', (d: Buffer) =>
      this.#contained('server data', () => this.#upstreamData(up.decoder, d)),
    );
    up.socket.on('close', () => this.#close('the database server closed the connection'));
    up.socket.on('error', (err) => {
      this.#o.metrics.upstreamErrors.inc({ protocol: 'postgres', reason: 'connection' });
      this.#log.warn({ err: err.message }, 'upstream database connection error');
      this.#close('upstream connection error');
    });
    up.socket.resume();
    this.#log.debug({ tls: up.tls, backend: up.processId }, 'session started');
    for (const m of this.#early.splice(0)) if (this.#phase === 'ready') this.#fromAgent(m);
    this.#flush();
    this.#agent.resume();
  }

  // -------------------------------------------------------------------------
  // Agent → server

  #fromAgent(m: FrontendMessage): void {
    if (this.#held) {
      this.#held.push(m);
      return;
    }
    if (this.#copy === 'in' && this.#duringCopy(m)) return;
    if (this.#discarding && m.type !== 'Sync' && m.type !== 'Terminate') return;
    switch (m.type) {
      case 'Query':
        if (this.#namesGate(m)) return;
        if (m.raw.length > this.#o.maxParsedSqlBytes) this.#tooLong('Query', m.raw.length);
        else if (!this.#encodingGate(m, m.query)) this.#query(m.query, m.raw);
        return;
      case 'Parse':
        if (m.raw.length > this.#o.maxParsedSqlBytes) this.#tooLong('Parse', m.raw.length);
        else if (!this.#encodingGate(m, m.query)) this.#parse(m);
        return;
      case 'Bind':
        if (!this.#namesGate(m)) this.#bind(m);
        return;
      case 'Describe':
        this.#forward(m.raw, { t: 'describe' });
        return;
      case 'Execute':
        if (!this.#namesGate(m)) this.#execute(m);
        return;
      case 'Close':
        // A Close of a name that does not exist succeeds: the name is gone either way, unless discarded.
        this.#change([`${m.target === 'S' ? 's' : 'p'}:${m.name}`], false);
        if (m.target === 'S') {
          this.#prepared.delete(m.name);
          this.#emptyPrepared.delete(m.name);
        } else this.#dropPortal(m.name);
        this.#forward(m.raw, { t: 'close' });
        return;
      case 'Sync':
        this.#discarding = false;
        this.#forward(m.raw, { t: 'sync' });
        return;
      case 'Flush':
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        this.#toUpstream.push(m.raw);
        return;
      case 'FunctionCall':
        this.#functionCall();
        return;
      case 'Terminate':
        this.#close('the agent ended the session');
        return;
      default:
        this.#fatal('08P01', `unexpected ${m.type} message`);
    }
  }

  #forward(raw: Buffer, expect: Parameters<ResponseTracker<Judged>['expect']>[0]): void {
    this.#toUpstream.push(raw);
    // After an error the server discards everything until Sync, unanswered and unrun.
    const discarded = this.#tracker.discarding && expect.t !== 'sync';
    const ends = expect.t === 'sync' || expect.t === 'query' || expect.t === 'refused';
    this.#tracker.expect(ends ? { ...expect, batch: this.#batch } : expect);
    if (discarded) return;
    if (expect.t === 'query') for (const run of expect.runs) this.#sending(run);
    else if (expect.t === 'execute' && expect.run) this.#sending(expect.run);
    if (ends) this.#batch++;
    // What can run code (a function may change client_encoding), and what makes the server report it.
    if (expect.t === 'query' || expect.t === 'bind' || expect.t === 'execute') this.#unreported = true;
    if (expect.t === 'bind' || expect.t === 'execute') this.#unsyncedRun = true;
    else if (expect.t === 'sync' || expect.t === 'query' || expect.t === 'refused') this.#unsyncedRun = false;
  }

  /**
   * The server reads a query string's bytes in its client_encoding when the
   * message arrives. The guard reads them as UTF-8, which is what the server
   * was told; but a statement that ran before (a function calling
   * set_config, a DO block) may have changed it, and the server says so only
   * at its next ReadyForQuery. ASCII reads the same in every encoding the
   * server accepts from a client; other text waits until the server has
   * reported, or, when no ReadyForQuery will come before it (a Bind or
   * Execute with no Sync after it), is refused. True when `m` was handled here.
   */
  #encodingGate(m: FrontendMessage, text: string): boolean {
    if (!this.#unreported || Buffer.byteLength(text, 'utf8') === text.length) return false;
    if (this.#unsyncedRun) {
      this.#refuseProtocol(
        m.type,
        '(statement text not read: non-ASCII text after an unsynced Execute)',
        '0A000',
        'chaperone-sql-encoding-unknown',
        'a query string with non-ASCII text follows a Bind or Execute with no Sync between them; the server reports a change of client_encoding only at Sync, so the guard cannot know how the server will read this text. Send Sync first (or use ASCII, with the text as a parameter)',
        m.type === 'Query' ? 'query' : 'parse',
      );
      return true;
    }
    this.#encodingWait = true;
    this.#held = [m];
    this.#agent.pause();
    return true;
  }

  /**
   * Classifies a SQL string; EXECUTE of a prepared statement is judged by
   * what it runs (`executed`): what a PREPARE earlier in the same string
   * prepares under its name (a DEALLOCATE or DISCARD ALL there leaves it
   * unknown), as the server runs them in order, else what was prepared before.
   */
  #classify(
    text: string,
    counted = true,
  ): {
    classified: readonly ClassifiedStatement[];
    statements: SqlStatement[];
    executed: (Prepared | undefined)[];
  } {
    // A string read before its catalog lookups (#afterCatalog) is read once: texts over the cache's limit are not kept.
    let last = this.#lastRead;
    if (last?.text !== text) {
      const hits = this.#o.classifier.stats.hits;
      const classified = this.#o.classifier.classify(text).statements;
      last = { text, classified, hit: this.#o.classifier.stats.hits > hits };
      this.#lastRead = last;
    }
    const classified = last.classified;
    if (counted) this.#o.metrics.sqlParseCache.inc({ result: last.hit ? 'hit' : 'miss' });
    const here = new Map<string, Prepared | undefined>();
    let cleared = false;
    const executed = classified.map((c, index) => {
      const name = c.executes;
      const target =
        name === undefined
          ? undefined
          : here.has(name) || cleared
            ? here.get(name)
            : this.#prepared.get(name);
      if (c.deallocates === '*' || c.statement.kinds?.includes('dynamic-sql')) {
        cleared = true;
        here.clear();
      } else if (c.deallocates !== undefined) here.set(c.deallocates, undefined);
      if (c.prepares)
        here.set(c.prepares.name, {
          classified: c,
          statement: c.prepares.statement,
          source: { text, index },
        });
      return target;
    });
    const statements = classified.map((c, i) =>
      c.executes === undefined ? c.statement : executeOf(c.statement, executed[i]?.statement, c.executes),
    );
    return { classified, statements, executed };
  }

  /**
   * A review is returned as is, to be held (#afterApproval, #holdBind), when
   * an approval service is configured; otherwise it is denied. `counted`: the
   * statement is counted in the decisions metric (not when it is judged again
   * after an approval).
   */
  #decide(statement: SqlStatement, counted = true): Decision {
    const reached = this.#reached(statement);
    if (!reached) {
      const d: Decision = {
        action: 'deny',
        rule: 'chaperone-sql-tables-unverifiable',
        reason: 'self_protection',
        message: `rules on tables are in force, and the guard could not read the database's catalog to see what ${statement.tables.join(', ')} reach (the tables a view reads, partitions, inheritance); the statement is denied: send it again`,
      };
      if (counted)
        this.#o.metrics.sqlStatements.inc({ kind: statement.kind, action: d.action, rule: d.rule });
      return d;
    }
    const evaluated = evaluate(
      sqlAction(this.#o.database, [reached], this.#o.identity.user.username),
      this.#o.policy.current,
      this.#o.protection,
    );
    const d = this.#newName(reached, evaluated) ?? evaluated;
    if (counted) this.#o.metrics.sqlStatements.inc({ kind: statement.kind, action: d.action, rule: d.rule });
    switch (d.action) {
      case 'allow':
      case 'deny':
        return d;
      case 'review':
        // PREPARE runs nothing: what it prepares is asked about at each EXECUTE or Bind of it.
        if (statement.kind === 'PrepareStmt') return preparedOnly(d);
        if (this.#o.reviews) return d;
        return {
          ...d,
          action: 'deny',
          message: `rule "${d.rule}" requires a human's approval (${d.message}), and no approval service is configured for this sidecar; the statement is denied`,
        };
      case 'mask':
        return d;
    }
  }

  /**
   * A definition that would give a table a deny or review rule names another
   * name (a view over it, a rule on it, a partition or child of it) is
   * refused: code run later resolves names when it runs (a function's body,
   * an operator's, a default's, a policy's), so a name made now could reach
   * the table where the guard does not look. An administrator makes such
   * definitions; an allow that the policy gives them is not enough.
   */
  #newName(s: SqlStatement, d: Decision): Decision | undefined {
    if (!s.linksRelations || (d.action !== 'allow' && d.action !== 'mask') || !this.#tableRules())
      return undefined;
    const rules = this.#rulesOnTables();
    for (const t of [...s.tables, ...(s.reaches ?? [])]) {
      const rule = rules.find((r) => r.tables(t));
      if (!rule) continue;
      return {
        action: 'deny',
        rule: 'chaperone-sql-no-new-names',
        reason: 'self_protection',
        message: `this definition would give ${t}, which rule "${rule.name}" names, another name (a view over it, a rule on it, a partition or child of it) that code run later could reach it by; an administrator can make it`,
      };
    }
    return undefined;
  }

  /** The deny and review rules on tables of the policy in force, each with a matcher of its `tables`. */
  #rulesOnTables(): readonly { name: string; tables: (name: string) => boolean }[] {
    const policy = this.#o.policy.current;
    if (this.#rulesOnTablesOf?.policy !== policy) {
      const rules = policy.policy.rules
        .filter((r) => (r.action === 'deny' || r.action === 'review') && r.match.sql?.tables !== undefined)
        .map((r) => ({ name: r.name, tables: qualifiedNameMatcher(r.match.sql?.tables ?? [], true) }));
      this.#rulesOnTablesOf = { policy, rules };
    }
    return this.#rulesOnTablesOf.rules;
  }

  /** Whether the policy in force has deny or review rules on tables: only they read what the catalog says a statement reaches. */
  #tableRules(): boolean {
    return this.#rulesOnTables().length > 0;
  }

  /**
   * The statement with what the catalog says it reaches (`reaches`: the
   * tables a view it names reads, partitions, inheritance), when rules on
   * tables are in force; undefined when a relation it names was never looked
   * up (an answer older than the catalog's last invalidation is used until
   * the next lookup: a Query, Parse or Bind looks again, #afterCatalog).
   */
  #reached(s: SqlStatement): SqlStatement | undefined {
    const functions = s.functions ?? [];
    if ((s.tables.length === 0 && functions.length === 0) || !this.#tableRules()) return s;
    const extra = new Set<string>();
    const kinds = new Set(s.kinds ?? []);
    const before = kinds.size;
    for (const key of reachKeys(s)) {
      const known = this.#reachedBy.get(key);
      if (!known) return undefined;
      for (const r of known.reaches) extra.add(r);
      for (const k of known.kinds) kinds.add(k);
    }
    for (const t of s.tables) for (const r of this.#links.get(splitName(t).name)?.names ?? []) extra.add(r);
    if (extra.size === 0 && kinds.size === before) return s;
    return {
      ...s,
      ...(extra.size > 0 ? { reaches: [...extra].sort() } : {}),
      ...(kinds.size > before ? { kinds: [...kinds].sort() } : {}),
    };
  }

  /**
   * Runs `then` once the catalog has said what the relations the statements
   * `named` gives name reach (when rules on tables are in force; otherwise
   * they are not even read, so as to stay off the path of every statement):
   * at once when every one
   * is known under the catalog's current generation, else after looking them
   * up (the agent's later messages wait). A lookup that fails leaves the name
   * unknown, and a statement naming it is denied (#decide).
   */
  #afterCatalog(named: () => readonly SqlStatement[], then: () => void): void {
    if (!this.#tableRules()) {
      then();
      return;
    }
    const statements = named();
    const generation = this.#o.catalog.generation;
    const now = Date.now();
    const fresh = (key: string) => {
      const known = this.#reachedBy.get(key);
      // Changes made outside the guard are seen once an answer is older than the catalog's trust.
      return known !== undefined && known.generation === generation && known.until > now;
    };
    const missing = [...new Set(statements.flatMap(reachKeys))].filter((k) => !fresh(k));
    if (missing.length === 0) {
      then();
      return;
    }
    this.#hold(
      (async () => {
        const done = new Map<string, Reach>();
        for (const key of missing) {
          try {
            await this.#reachOf(key, 0, done, fresh);
          } catch (err) {
            this.#log.warn({ err: (err as Error).message }, 'the catalog could not say what a name reaches');
          }
        }
        if (this.#phase === 'closed') return;
        // A definition committed meanwhile (the catalog was told to forget): what was read may be old.
        if (this.#o.catalog.generation !== generation) this.#afterCatalog(() => statements, then);
        else then();
      })(),
    );
  }

  /**
   * What a relation (`r:` key) or a function (`f:` key) reaches, as the
   * catalog says, remembered in #reachedBy: a relation's members and
   * ancestors and what the code of its triggers and rules names; a
   * function's body's tables and what they reach. Code is read to a depth of
   * MAX_CODE_DEPTH (deeper, it reaches what it names only). The server
   * resolves the names in a PL/pgSQL body when it runs, so a body's tables are
   * looked up as they stand now, not as they stood when the function was made.
   */
  async #reachOf(
    key: string,
    depth: number,
    done: Map<string, Reach>,
    fresh: (key: string) => boolean,
  ): Promise<Reach> {
    const known = done.get(key) ?? (fresh(key) ? this.#reachedBy.get(key) : undefined);
    if (known) return known;
    done.set(key, { reaches: [], kinds: [] }); // a cycle reaches nothing more through itself
    const generation = this.#o.catalog.generation;
    const { schema, name } = splitName(key.slice(2));
    const out = new Set<string>();
    const kinds = new Set<string>();
    let code: readonly CatalogFunction[];
    if (key.startsWith('r:')) {
      const found = await this.#o.catalog.relationsNamed(schema, name);
      for (const r of found)
        for (const m of [...r.members, ...r.ancestors]) out.add(catalogName(m.schema, m.name));
      const oids = found.flatMap((r) => [...r.triggerFunctions, ...r.ruleFunctions]);
      code = oids.length > 0 ? await this.#o.catalog.functionsByOid(oids) : [];
    } else {
      code = await this.#o.catalog.functionsNamed(schema, name);
    }
    // An aggregate runs its support functions (transition, final, …).
    const support = code.flatMap((f) => f.support);
    if (support.length > 0) code = [...code, ...(await this.#o.catalog.functionsByOid(support))];
    for (const f of code) {
      if (f.definition === undefined) continue;
      for (const c of this.#o.classifier.classify(f.definition).statements) {
        const body = c.statement;
        for (const t of body.tables) out.add(t);
        // What the code does, not its own definition (create, ddl; write only with what writes).
        const does = (body.kinds ?? []).filter((k) => !DEFINING_KINDS.has(k));
        for (const k of does) kinds.add(k);
        if (does.some((k) => WRITING_KINDS.has(k))) kinds.add('write');
        const further = reachKeys(body);
        // Deeper than the guard reads: what it reaches is not known, and a statement reaching it is denied.
        if (depth >= MAX_CODE_DEPTH && further.length > 0)
          throw new Error(`code nested more than ${MAX_CODE_DEPTH} calls deep`);
        for (const k of further) {
          const inner = await this.#reachOf(k, depth + 1, done, fresh);
          for (const r of inner.reaches) out.add(r);
          for (const x of inner.kinds) kinds.add(x);
        }
      }
    }
    const reach: Reach = { reaches: [...out].sort(), kinds: [...kinds].sort() };
    done.set(key, reach);
    if (this.#reachedBy.size >= MAX_REACHED_NAMES) this.#reachedBy.clear();
    this.#reachedBy.set(key, { generation, until: Date.now() + this.#o.catalog.ttlMs, ...reach });
    return reach;
  }

  /**
   * Links the relations a definition names to each other (a view and what it
   * reads, a partition or child and its parent, a rule and what its action
   * writes), for the statements sent after it: the sidecar's own catalog
   * connection does not see them until they are committed, and not before
   * they run. Over-cautious on purpose (every relation the statement names
   * reaches every other); undone when its transaction ends (#linksEnded),
   * from when the catalog says what is committed.
   */
  #linkDefinitions(s: SqlStatement): void {
    if (!s.linksRelations || s.tables.length < 2 || !this.#tableRules()) return;
    for (const t of s.tables) {
      const key = splitName(t).name;
      const link = this.#links.get(key) ?? { names: new Set<string>(), batch: this.#batch };
      for (const u of s.tables) if (u !== t) link.names.add(u);
      this.#links.set(key, { names: link.names, batch: this.#batch });
    }
  }

  /** The transaction of the batches up to `batch` ended: what it defined is the catalog's to say now. */
  #linksEnded(batch: number | undefined): void {
    if (batch === undefined) return;
    for (const [key, link] of this.#links) if (link.batch <= batch) this.#links.delete(key);
  }

  /** The masks in force for this session's database now (what the rows of a result are masked by). */
  #currentMasks(): readonly SqlMask[] {
    const policy = this.#o.policy.current;
    if (this.#masks?.policy !== policy) {
      const probe = sqlAction(this.#o.database, [], this.#o.identity.user.username);
      this.#masks = { policy, masks: sqlMasksFor(probe, policy.policy.rules) };
    }
    return this.#masks.masks;
  }

  /** The policy object in force now and the user: what a decision is made under. */
  #generation(): Generation {
    return { policy: this.#o.policy.current, user: this.#o.identity.user.username };
  }

  /** Whether a decision made under `g` was made under the policy and user in force now. */
  #isCurrent(g: Generation | undefined): boolean {
    return g?.policy === this.#o.policy.current && g.user === this.#o.identity.user.username;
  }

  /**
   * A statement decided earlier (before a hold, at the Bind of a portal now
   * executed), decided again when the policy or user changed since: an
   * approval stands only while the same rule still reviews it (judgedAgain);
   * a review that now matches a statement decided without one refuses it (a
   * statement is asked about when it is sent, or at its Bind).
   */
  #rejudged(j: Judged, counted: boolean): Judged {
    if (this.#isCurrent(j.decidedUnder)) return j;
    const now = this.#generation();
    const fresh = this.#decide(j.statement, counted);
    if (j.decision.approval?.state === 'approved')
      return { ...j, decidedUnder: now, decision: judgedAgain(j.decision, fresh, this.#currentMasks()) };
    if (fresh.action !== 'review') return { ...j, decidedUnder: now, decision: fresh };
    return {
      ...j,
      decidedUnder: now,
      decision: {
        ...fresh,
        action: 'deny',
        message: `the policy changed after this statement was decided, and rule "${fresh.rule}" now requires a human's approval (${fresh.message}); send it again (Bind it again) to have it reviewed`,
      },
    };
  }

  /** The policy's decisions on a string's statements. */
  #judge(text: string): Judged[] {
    const t0 = process.hrtime.bigint();
    const receivedAt = new Date();
    const { classified, statements, executed: targets } = this.#classify(text);
    const decidedUnder = this.#generation();
    // In order: a definition earlier in the string links the relations it names for the statements after it.
    const decisions = statements.map((s) => {
      const d = this.#keptAllow(this.#allowedStatements, s, s);
      this.#linkDefinitions(s);
      return d;
    });
    const overheadMs = Number(process.hrtime.bigint() - t0) / 1e6 / Math.max(1, statements.length);
    return statements.map((statement, i) => {
      const c = classified[i] as ClassifiedStatement;
      const executed = targets[i];
      return {
        classified: c,
        statement,
        decision: decisions[i] as Decision,
        receivedAt,
        overheadMs,
        source: { text, index: i },
        decidedUnder,
        ...(executed ? { executed } : {}),
      };
    });
  }

  /**
   * Why a string's statements are refused, if they are: the worst decision,
   * or the audit trail that cannot take their events. `atParse`: a review not
   * asked yet is no refusal (its Bind is held, #bind).
   */
  #refusal(
    judged: Judged[],
    atParse = false,
  ): { decision: Decision; index: number; sqlstate: string } | undefined {
    let worst = -1;
    judged.forEach((j, i) => {
      const d = j.decision;
      if (
        !runs(d) &&
        !(atParse && awaitsBind(d)) &&
        (worst === -1 || SEVERITY[d.action] > SEVERITY[(judged[worst] as Judged).decision.action])
      ) {
        worst = i;
      }
    });
    if (worst !== -1)
      return { decision: (judged[worst] as Judged).decision, index: worst, sqlstate: '42501' };
    const unrecordable = judged.length > 0 ? this.#o.auditRefusal() : undefined;
    if (unrecordable === undefined) return undefined;
    return this.#unrecordable(judged, unrecordable);
  }

  /** Refuses statements (all of `judged`) because the audit trail cannot take their events. */
  #unrecordable(judged: Judged[], why: string): { decision: Decision; index: number; sqlstate: string } {
    const decision: Decision = {
      action: 'deny',
      rule: 'chaperone-audit-unavailable',
      reason: 'self_protection',
      message: why,
    };
    judged.splice(0, judged.length, ...judged.map((j) => ({ ...j, decision })));
    return { decision, index: 0, sqlstate: '53000' };
  }

  /**
   * A Bind: the prepared statement is judged again with the policy in force
   * now (the policy may have changed since its Parse), and refused when the
   * audit trail cannot take its event or when the guard does not know it.
   * A refusal is sent to the server as a failing Parse of the unnamed
   * statement (which the server drops, as the guard does). A statement a
   * review rule matches is asked about here, once per Bind, with the values
   * bound (none is asked at its Parse): nothing runs without a Bind, and
   * every Bind is decided.
   */
  #bind(m: Extract<FrontendMessage, { type: 'Bind' }>): void {
    this.#afterCatalog(
      () => {
        const prepared = this.#prepared.get(m.statement);
        if (!prepared) return [];
        const retargeted = this.#retargeted(prepared)?.statement;
        return retargeted ? [prepared.statement, retargeted] : [prepared.statement];
      },
      () => this.#bindRead(m),
    );
  }

  #bindRead(m: Extract<FrontendMessage, { type: 'Bind' }>): void {
    if (this.#emptyPrepared.has(m.statement)) {
      this.#sendBind(m, undefined);
      return;
    }
    this.#dropPortal(m.portal);
    const prepared = this.#prepared.get(m.statement);
    if (!prepared) {
      this.#refuseProtocol(
        'Bind',
        `(bind of prepared statement "${m.statement}")`,
        '26000',
        'chaperone-sql-unknown-statement',
        `prepared statement "${m.statement}" is not one the guard knows (it was not prepared through the guard, it was refused, or a statement sent since may have changed it: DEALLOCATE, PREPARE, DISCARD ALL, dynamic SQL); the Bind is refused: prepare it again`,
      );
      return;
    }
    const retargeted = this.#retargeted(prepared);
    const under = this.#generation();
    const fresh = retargeted ? this.#decide(retargeted.statement) : this.#bindDecision(prepared);
    if (fresh.action === 'review' && this.#o.reviews) {
      this.#holdBind(m, retargeted ?? prepared, fresh, this.#o.reviews);
      return;
    }
    this.#bindAs(m, retargeted ?? prepared, fresh, under);
  }

  /**
   * A statement that runs a prepared statement by name (a Parse of `EXECUTE
   * p`, `CREATE TABLE … AS EXECUTE p`) as it stands now, when what is
   * prepared under that name is no longer what it was judged with (the
   * server looks the name up when it runs): what it runs now, no decision
   * made under it yet (an approval of what it ran before does not cover it),
   * masking to be checked again. Undefined when nothing changed.
   */
  #retargeted(j: Judged): Judged | undefined {
    const name = j.classified.executes;
    if (name === undefined) return undefined;
    const target = this.#prepared.get(name);
    if (target === j.executed) return undefined;
    const { executed: _was, maskedWith: _checked, decidedUnder: _under, ...rest } = j;
    const { approval: _approval, ...decision } = j.decision;
    return {
      ...rest,
      decision,
      statement: executeOf(j.classified.statement, target?.statement, name),
      ...(target ? { executed: target } : {}),
    };
  }

  /**
   * The policy's decision on a Bind of a prepared statement. An allow is kept
   * with the policy object and user it was made under, and reused while both
   * are the same: the Action the policy reads (database, user, the statement
   * as classified at Parse) is the same at every Bind — no rule reads a
   * Bind's values — and evaluate is pure. Anything but an allow is decided
   * again at every Bind (a review is held each time).
   */
  #bindDecision(prepared: Judged): Decision {
    return this.#keptAllow(this.#allowedBinds, prepared, prepared.statement);
  }

  /**
   * The decision on `statement`: an allow kept under `key` is reused while the
   * policy and user are those it was decided under (the same inputs to the
   * same evaluation); anything else is decided afresh, and an allow is kept.
   */
  #keptAllow<K extends object>(kept: WeakMap<K, KeptAllow>, key: K, statement: SqlStatement): Decision {
    const policy = this.#o.policy.current;
    const user = this.#o.identity.user.username;
    const k = kept.get(key);
    if (k?.policy === policy && k.user === user) {
      const d = k.decision;
      this.#o.metrics.sqlStatements.inc({ kind: statement.kind, action: d.action, rule: d.rule });
      return d;
    }
    const d = this.#decide(statement);
    // A decision that read the catalog (rules on tables; what the relations and functions it names
    // reach, #reached) may change with it: not kept.
    if (d.action === 'allow' && !(this.#tableRules() && reachKeys(statement).length > 0))
      kept.set(key, { policy, user, decision: d });
    return d;
  }

  /**
   * Binds (or refuses) a prepared statement as decided (under `under`). Masks
   * other than those its Parse was checked under (the policy changed since)
   * are checked again first: a statement masking can no longer make safe is
   * refused, not run with a masked column's value in an expression.
   */
  #bindAs(
    m: Extract<FrontendMessage, { type: 'Bind' }>,
    prepared: Judged,
    fresh: Decision,
    under: Generation,
  ): void {
    const masks = fresh.sqlMasks ?? [];
    // A statement that passed mask review keeps what the review found (under the same masks); a policy that now
    // denies it wins, and an approval is recorded on the decision it ran under.
    const decision =
      runs(fresh) &&
      fresh.approval === undefined &&
      prepared.decision.action === 'mask' &&
      maskKey(masks) === prepared.maskedWith
        ? prepared.decision
        : fresh;
    const bound: Judged = { ...prepared, decision, decidedUnder: under, receivedAt: new Date() };
    this.#maskedAgain(bound, masks, (j) => {
      const judged: Judged[] = [j];
      const refusal = this.#refusal(judged);
      if (refusal) {
        this.#refuse(judged, refusal, 'parse');
        this.#prepared.delete('');
        this.#emptyPrepared.delete('');
        return;
      }
      this.#sendBind(m, judged[0]);
    });
  }

  /**
   * Sends a Bind: its portal holds `judged` (undefined: an empty query) from
   * now on, and is forgotten if the server refuses the Bind (a portal of that
   * name exists: 42P03) or discards it.
   */
  #sendBind(m: Extract<FrontendMessage, { type: 'Bind' }>, judged: Judged | undefined): void {
    const key = `p:${m.portal}`;
    const change = this.#change([key], true);
    this.#portals.set(m.portal, judged);
    this.#portalBatch.set(m.portal, this.#batch);
    this.#forward(m.raw, {
      t: 'bind',
      settle: (ok) => {
        if (!ok && this.#latest(key, change)) this.#dropPortal(m.portal);
        this.#answered(change);
      },
    });
  }

  /**
   * Gives `done` the statement `j` as masking leaves it under `masks`, those
   * of its decision: as it is when it was checked under the same masks (or
   * does not run); otherwise checked again (#maskReviewed: denied when
   * masking cannot make it safe, with what it reaches and how a COPY is
   * masked otherwise). Reading the catalog holds the agent's later messages.
   */
  #maskedAgain(j: Judged, masks: readonly SqlMask[], done: (j: Judged) => void): void {
    const key = maskKey(masks);
    if (!runs(j.decision) || key === j.maskedWith) {
      done(j);
      return;
    }
    const { copy: _copy, readsMasked: _reads, ...unchecked } = j;
    const base: Judged = { ...unchecked, maskedWith: key };
    if (!this.#maskFacts(base, masks)) {
      done(base);
      return;
    }
    this.#hold(
      (async () => {
        const checked = await this.#maskReviewed(base, masks);
        if (this.#phase === 'closed') return;
        const d = checked.decision;
        done(
          d.action === 'deny'
            ? {
                ...checked,
                decision: {
                  ...d,
                  message: `${d.message} (the masks in force changed after the statement was prepared; it is checked again under them)`,
                },
              }
            : checked,
        );
      })(),
    );
  }

  /**
   * An Execute of a portal the guard saw bound. Its statement is decided again
   * when the policy changed since its Bind (a portal lives on across Syncs in
   * a transaction block, and one suspended by a row limit is executed again),
   * and checked again under masks that changed; it is refused when the
   * decision does not let it run or the audit trail cannot take its event.
   */
  #execute(m: Extract<FrontendMessage, { type: 'Execute' }>): void {
    if (!this.#portals.has(m.portal)) {
      this.#unknownPortal(m);
      return;
    }
    const bound = this.#portals.get(m.portal);
    if (!bound) {
      this.#executeAs(m, undefined);
      return;
    }
    const now = this.#rejudged(this.#retargeted(bound) ?? bound, true);
    if (now === bound) this.#executeAs(m, bound);
    else this.#maskedAgain(now, now.decision.sqlMasks ?? [], (j) => this.#executeAs(m, j));
  }

  /** Refuses an Execute of a portal the guard does not know. */
  #unknownPortal(m: Extract<FrontendMessage, { type: 'Execute' }>): void {
    this.#refuseProtocol(
      'Execute',
      `(execute of portal "${m.portal}")`,
      '34000',
      'chaperone-sql-unknown-portal',
      `portal "${m.portal}" was not created by a Bind the guard saw, or a statement sent since may have replaced it (a cursor declared or closed in SQL, a DO block, a procedure); a cursor declared in SQL is read with FETCH, and a portal is bound again with Bind; the Execute is refused`,
    );
  }

  /** Sends an Execute of a portal bound as `judged` (undefined: an empty query's), or refuses it. */
  #executeAs(m: Extract<FrontendMessage, { type: 'Execute' }>, judged: Judged | undefined): void {
    // Checked again after a mask check: the server may have refused the Bind meanwhile (#sendBind).
    if (!this.#portals.has(m.portal)) {
      this.#unknownPortal(m);
      return;
    }
    if (judged) {
      // Fail closed here too: a statement prepared earlier does not run while its event cannot be kept.
      const refused: Judged[] = [{ ...judged, receivedAt: new Date() }];
      const refusal = this.#refusal(refused);
      if (refusal) {
        this.#dropPortal(m.portal);
        this.#refuse(refused, refusal, 'parse');
        this.#prepared.delete('');
        this.#emptyPrepared.delete('');
        return;
      }
      this.#portals.set(m.portal, judged);
    }
    const run = judged ? { about: judged, startNs: process.hrtime.bigint() } : undefined;
    // With masks in force the sidecar reads the portal's columns (and their formats) itself first.
    if (this.#currentMasks().length > 0)
      this.#forward(enc.describe('P', m.portal), { t: 'own-describe', run });
    this.#forward(m.raw, { t: 'execute', run });
    if (judged && copiesIn(judged)) {
      // Whatever the server answers (CopyInResponse, an error, COPY from a file done) is sent now.
      this.#toUpstream.push(enc.flush());
      this.#awaitCopy();
    }
  }

  /** Refuses a query string too long to parse on the event loop, unread (the session goes on). */
  #tooLong(kind: 'Query' | 'Parse', bytes: number): void {
    const limit = this.#o.maxParsedSqlBytes;
    this.#refuseProtocol(
      kind,
      `(statement text not read: ${bytes} bytes)`,
      '54000',
      'chaperone-sql-too-long',
      `the query string is ${bytes} bytes and the guard reads at most ${limit} (--max-sql-parse-bytes); send large values as parameters (Bind) or with COPY, or split the statement`,
      kind === 'Query' ? 'query' : 'parse',
    );
  }

  /** Refuses an extended-protocol message the guard cannot judge (the session goes on after Sync). */
  #refuseProtocol(
    kind: string,
    text: string,
    sqlstate: string,
    rule: string,
    message: string,
    via: 'query' | 'parse' = kind === 'FunctionCall' ? 'query' : 'parse',
  ): void {
    const decision: Decision = { action: 'deny', rule, reason: 'self_protection', message };
    const statement: SqlStatement = { kind, tables: [] };
    this.#o.metrics.sqlStatements.inc({ kind, action: 'deny', rule });
    this.#refuse(
      [
        {
          classified: { statement, text, fingerprint: '', mask: emptyMaskFacts() },
          statement,
          decision,
          receivedAt: new Date(),
          overheadMs: 0,
        },
      ],
      { decision, index: 0, sqlstate },
      via,
    );
    if (via === 'parse') {
      this.#prepared.delete('');
      this.#emptyPrepared.delete('');
    }
  }

  /**
   * Runs `then` on a string's statements once masking has had its say: with
   * masks in force, a statement that would send a masked column's value where
   * it cannot be masked is denied (mask-check.ts), first on what it names,
   * then with what the catalog knows (mask-review.ts). Reading the catalog
   * holds the agent's later messages until it is done.
   */
  #afterMaskReview(judged: Judged[], then: (judged: Judged[]) => void): void {
    // A Parse a review rule matches is reviewed too: what masking cannot make safe is denied before anyone is asked.
    const run = judged.every((j) => runs(j.decision) || awaitsBind(j.decision));
    // What each was checked under: a Bind or Execute under other masks checks it again (#maskedAgain).
    const masks = judged.map((j) => this.#masksOf(j));
    const stamped = judged.map((j, i): Judged => ({ ...j, maskedWith: maskKey(masks[i] ?? []) }));
    const todo = run
      ? stamped.map((j, i) => (this.#maskFacts(j, masks[i]) ? i : -1)).filter((i) => i !== -1)
      : [];
    if (todo.length === 0) {
      then(stamped);
      return;
    }
    const t0 = process.hrtime.bigint();
    this.#hold(
      (async () => {
        const out = [...stamped];
        for (const i of todo) out[i] = await this.#maskReviewed(out[i] as Judged, masks[i] ?? []);
        if (this.#phase === 'closed') return;
        // The policy changed while the catalog was read: decided and checked again under the one in force now.
        if (judged.some((j) => !awaitsBind(j.decision) && !this.#isCurrent(j.decidedUnder))) {
          this.#afterMaskReview(
            judged.map((j) => (awaitsBind(j.decision) ? j : this.#rejudged(j, false))),
            then,
          );
          return;
        }
        const extraMs = Number(process.hrtime.bigint() - t0) / 1e6 / out.length;
        then(out.map((j) => ({ ...j, overheadMs: j.overheadMs + extraMs })));
      })(),
    );
  }

  /**
   * Runs `then` once every statement a review rule holds is decided, one
   * after the other (the agent's later messages wait; the first that is not
   * approved ends the asking). A deny among the statements stands without
   * asking anyone.
   */
  #afterApproval(judged: Judged[], then: (judged: Judged[]) => void): void {
    const reviews = this.#o.reviews;
    const todo = judged.map((j, i) => (j.decision.action === 'review' ? i : -1)).filter((i) => i !== -1);
    if (!reviews || todo.length === 0 || judged.some((j) => j.decision.action === 'deny')) {
      then(judged);
      return;
    }
    this.#hold(
      (async () => {
        const out = [...judged];
        for (const i of todo) {
          const j = out[i] as Judged;
          const { decision, auditID } = await this.#askReview(reviews, j, j.decision, {
            digest: reviews.digest(this.#statementParts(j)),
          });
          out[i] = { ...j, decision, auditID, decidedUnder: this.#generation() };
          if (!runs(decision)) break;
        }
        if (this.#phase === 'closed') return;
        // The policy may have changed while a statement was held: the others were decided before it.
        then(out.every((j) => runs(j.decision)) ? out.map((j) => this.#rejudged(j, false)) : out);
      })(),
    );
  }

  /**
   * What a review's digest of a statement pins: its database and the exact
   * text it came from; for EXECUTE, also that of the statement it runs (the
   * same EXECUTE of a statement prepared again is another action).
   */
  #statementParts(j: Judged): string[] {
    const source = (x: Pick<Judged, 'classified' | 'source'>) => {
      const src = x.source ?? { text: x.classified.text, index: 0 };
      return [src.text, String(src.index)];
    };
    const parts = ['postgres', this.#o.database, ...source(j)];
    if (j.classified.executes === undefined) return parts;
    return [...parts, 'executes', ...(j.executed ? source(j.executed) : ['', ''])];
  }

  /**
   * Asks for a human's decision on a statement (sql-hold.ts); its event will
   * name the id returned. Approved, the statement is judged again with the
   * policy in force now, which wins unless it is still this rule's review
   * (judgedAgain).
   */
  async #askReview(
    reviews: ReviewClient,
    j: Judged,
    d: Decision,
    about: { readonly digest: string; readonly params?: readonly string[] },
  ): Promise<{ decision: Decision; auditID: string }> {
    const auditID = randomUUID();
    const decision = await reviewStatement(
      reviews,
      {
        auditId: auditID,
        kind: j.statement.kind,
        // An EXECUTE is read with what it runs.
        text: j.executed
          ? `${j.classified.text}\n-- ${j.classified.executes} was prepared as: ${j.executed.classified.text}`
          : j.classified.text,
        database: this.#o.database,
        ...about,
        decision: d,
        masks: this.#currentMasks(),
      },
      this.#gone.signal,
    );
    if (decision.approval?.state !== 'approved') return { decision, auditID };
    return {
      decision: judgedAgain(decision, this.#decide(j.statement, false), this.#currentMasks()),
      auditID,
    };
  }

  /**
   * Holds a Bind of a statement a review rule matches until a human decides
   * on it with its parameter values (bind-params.ts shows them; the digest
   * pins them), then binds as decided.
   */
  #holdBind(
    m: Extract<FrontendMessage, { type: 'Bind' }>,
    prepared: Judged,
    d: Decision,
    reviews: ReviewClient,
  ): void {
    const values = { params: m.params, formats: m.paramFormats, types: prepared.paramTypes ?? [] };
    const digest = reviews.digest([...this.#statementParts(prepared), ...bindDigestParts(values)]);
    this.#hold(
      (async () => {
        const { decision, auditID } = await this.#askReview(reviews, prepared, d, {
          digest,
          params: describeParams(values),
        });
        if (this.#phase === 'closed') return;
        this.#bindAs(m, { ...prepared, auditID }, decision, this.#generation());
      })(),
    );
  }

  /** The masks a statement runs under: for a review not asked yet (a Parse), those in force now. */
  #masksOf(j: Judged): readonly SqlMask[] {
    return awaitsBind(j.decision) ? this.#currentMasks() : (j.decision.sqlMasks ?? []);
  }

  /** What mask review reads of a statement (with what EXECUTE runs), when masks are in force and it reaches anything. */
  #maskFacts(j: Judged, masks = this.#masksOf(j)) {
    if (masks.length === 0) return undefined;
    const c = j.classified;
    const prepared = c.executes !== undefined ? j.executed?.classified.mask : undefined;
    // What EXECUTE runs reaches the client as it is only from EXECUTE itself or an EXPLAIN that stores nothing.
    const own = c.statement;
    const returned =
      own.kind === 'ExecuteStmt' || (own.kind === 'ExplainStmt' && !(own.kinds ?? []).includes('write'));
    const facts = prepared ? mergeMaskFacts(c.mask, returned ? prepared : storedMaskFacts(prepared)) : c.mask;
    const functions = j.statement.functions ?? [];
    if (facts.relations.size === 0 && functions.length === 0) return undefined;
    return { facts, functions, writes: j.statement.writes ?? [] };
  }

  async #maskReviewed(j: Judged, masks: readonly SqlMask[]): Promise<Judged> {
    const s = this.#maskFacts(j, masks);
    if (!s) return j;
    const deny = (rule: string, message: string): Judged => ({
      ...j,
      decision: { action: 'deny', rule, reason: 'self_protection', message },
    });
    // What the statement names is enough to deny most: no catalog needed.
    const named = maskDenial(s.facts, s.functions, masks, (r) => ({ masks: masksOfWrittenTable(masks, r) }));
    if (named) return deny('chaperone-sql-mask-unmaskable', named);
    try {
      const v = await reviewMasks(s, masks, { catalog: this.#o.catalog, classifier: this.#o.classifier });
      if (v.denial !== undefined) return deny('chaperone-sql-mask-unmaskable', v.denial);
      return { ...j, ...(v.copy ? { copy: v.copy } : {}), ...(v.reaches ? { readsMasked: true } : {}) };
    } catch (err) {
      return deny(
        'chaperone-sql-mask-unverifiable',
        `masks are in force on this database and the guard could not read its catalog to see what the statement reaches (${(err as Error).message}); the statement is denied`,
      );
    }
  }

  /**
   * Holds the agent's messages until `work` is done, and until every other
   * work started meanwhile is (a check that starts from within another's, as
   * a mask check after an approval does, keeps what is held already).
   */
  #hold(work: Promise<void>): void {
    this.#held ??= [];
    this.#holds++;
    this.#agent.pause();
    work.then(
      () => {
        this.#holds--;
        this.#release();
      },
      (err: unknown) => {
        this.#log.error({ err: (err as Error).message }, 'mask review failed');
        this.#fatal('XX000', 'the guard failed while reviewing a statement for masked columns');
      },
    );
  }

  #release(): void {
    if (this.#holds > 0) {
      this.#flush();
      return;
    }
    // The server has not yet said whether a copy started or ended, or reported its settings: what
    // the agent sent next means waits for that.
    if (this.#copy === 'starting' || this.#copy === 'ending' || this.#encodingWait || this.#namesWait) {
      this.#flush();
      return;
    }
    const held = this.#held ?? [];
    this.#held = undefined;
    while (held.length > 0 && this.#phase !== 'closed') {
      this.#fromAgent(held.shift() as FrontendMessage);
      if (this.#held) {
        // Another statement's review started: the rest waits for it.
        (this.#held as FrontendMessage[]).push(...held);
        this.#flush();
        return;
      }
    }
    this.#flush();
    if (this.#phase !== 'closed') this.#agent.resume();
  }

  #query(text: string, raw: Buffer): void {
    this.#afterCatalog(
      () => this.#classify(text, false).statements,
      () => this.#queryRead(text, raw),
    );
  }

  #queryRead(text: string, raw: Buffer): void {
    this.#afterApproval(this.#judge(text), (approved) =>
      this.#afterMaskReview(approved, (judged) => {
        const refusal = this.#refusal(judged);
        if (refusal) {
          this.#refuse(judged, refusal, 'query');
          return;
        }
        const now = process.hrtime.bigint();
        this.#forward(raw, { t: 'query', runs: judged.map((about) => ({ about, startNs: now })), next: 0 });
        if (judged.some(copiesIn)) this.#awaitCopy();
      }),
    );
  }

  /** A Parse a review rule matches is not held: its Binds are, each with its values (#bind). */
  #parse(m: Extract<FrontendMessage, { type: 'Parse' }>): void {
    this.#afterCatalog(
      () => this.#classify(m.query, false).statements,
      () => this.#parseRead(m),
    );
  }

  #parseRead(m: Extract<FrontendMessage, { type: 'Parse' }>): void {
    this.#afterMaskReview(this.#judge(m.query), (judged) => {
      const refusal = this.#refusal(judged, true);
      if (refusal) {
        this.#refuse(judged, refusal, 'parse', m.name);
        return;
      }
      const first = judged[0];
      const key = `s:${m.name}`;
      const settled = !this.#changing.has(key) && !this.#changing.has('s:*');
      this.#parseUndo.push({
        name: m.name,
        before: this.#prepared.get(m.name),
        wasEmpty: this.#emptyPrepared.has(m.name),
        change: this.#change([key], true),
        settled,
      });
      if (first && judged.length === 1) this.#prepared.set(m.name, { ...first, paramTypes: m.paramTypes });
      else this.#prepared.delete(m.name);
      if (judged.length === 0) this.#emptyPrepared.add(m.name);
      else this.#emptyPrepared.delete(m.name);
      this.#forward(m.raw, { t: 'parse', name: m.name });
    });
  }

  // -------------------------------------------------------------------------
  // COPY FROM STDIN
  //
  // In copy-in the server reads only CopyData, CopyDone and CopyFail; it
  // ignores Flush and Sync ("for the convenience of client libraries that may
  // send those without noticing that the command they just sent was COPY"),
  // and any other message fails the copy and is consumed. So what a message
  // means depends on whether the server is in copy-in when it reads it, which
  // the sidecar learns from the server: the agent's messages after a statement
  // that may start a copy wait for the server's answer.

  /** Holds the agent's later messages until the server says whether a copy started. */
  #awaitCopy(): void {
    // A request the server discards (after an error, until Sync) starts nothing and gets no answer.
    if (this.#tracker.discarding) return;
    this.#copy = 'starting';
    this.#held ??= [];
    this.#agent.pause();
  }

  /** An agent message while the server is in copy-in; true when it was handled here. */
  #duringCopy(m: FrontendMessage): boolean {
    switch (m.type) {
      case 'CopyData':
        this.#toUpstream.push(m.raw);
        return true;
      case 'CopyDone':
      case 'CopyFail':
        this.#toUpstream.push(m.raw);
        // The rest of the Query may start another copy.
        if (this.#copyAgain) this.#awaitCopy();
        else this.#copy = 'none';
        return true;
      case 'Flush':
      case 'Sync':
        // The server ignores them in copy-in; not sent, so that none it would answer is ever in doubt.
        return true;
      case 'Terminate':
        return false;
      default:
        // The server would fail the copy and end the connection. The sidecar fails the copy itself
        // and holds the message until the server answers: if the copy failed on its own first, the
        // server reads the message as any other, and so does the sidecar.
        this.#copy = 'ending';
        this.#toUpstream.push(enc.copyFail(`chaperone_copy_${this.#nonce}: ${m.type} during COPY`));
        this.#held = [m];
        this.#agent.pause();
        return true;
    }
  }

  /**
   * A server message while a copy may be starting, running or ending; true
   * when it was handled here (the sidecar failed the copy, and the session ends).
   */
  #copyProgress(m: BackendMessage): boolean {
    const state = this.#copy;
    if (state === 'none') return false;
    if (m.type === 'CopyInResponse' && state === 'starting') {
      const head = this.#tracker.head;
      this.#copyAgain = head?.t === 'query' && head.runs.slice(head.next + 1).some((r) => copiesIn(r.about));
      this.#copy = 'in';
      this.#release();
      return false;
    }
    const settled =
      m.type === 'ErrorResponse' ||
      m.type === 'ReadyForQuery' ||
      (m.type === 'CommandComplete' && (state !== 'starting' || this.#tracker.head?.t === 'execute'));
    if (!settled) return false;
    this.#copy = 'none';
    this.#copyAgain = false;
    if (state === 'in') return false;
    if (
      state === 'ending' &&
      m.type === 'ErrorResponse' &&
      m.fields.M?.includes(`chaperone_copy_${this.#nonce}`)
    ) {
      // The server was still in copy-in: it would have failed the copy on the agent's message and,
      // the message's body then unread, ended the connection. So does the sidecar; nothing held runs.
      const code = this.#held?.[0]?.raw[0] ?? 0;
      this.#held = undefined;
      this.#tracker.backend(m);
      this.#toAgent.push(
        enc.errorMessage(
          'ERROR',
          '08P01',
          `unexpected message type 0x${code.toString(16).toUpperCase().padStart(2, '0')} during COPY from stdin`,
        ),
      );
      this.#fatal(
        '08P01',
        'terminating connection because protocol synchronization was lost (a message other than COPY data arrived during COPY FROM STDIN)',
      );
      return true;
    }
    this.#release();
    return false;
  }

  #functionCall(): void {
    this.#refuseProtocol(
      'FunctionCall',
      '(function call)',
      '42501',
      'chaperone-sql-function-call',
      'the function-call protocol (FunctionCall messages: libpq PQfn, the large-object API) calls functions the guard cannot see by name; use SQL instead',
    );
  }

  /**
   * Refuses a string's statements: records their events, then sends the
   * server a statement that fails to parse in their place (so the server
   * itself aborts a transaction in progress and discards until Sync), and
   * keeps the denial to send the agent instead of the server's error.
   */
  #refuse(
    judged: readonly Judged[],
    refusal: { decision: Decision; index: number; sqlstate: string },
    via: 'query' | 'parse',
    parseName = '',
  ): void {
    const d = refusal.decision;
    const n = judged.length;
    for (const j of judged) {
      const decision: Decision =
        j.decision.action !== 'allow'
          ? j.decision
          : {
              action: 'deny',
              rule: d.rule,
              reason: d.reason,
              message: `not run: statement ${refusal.index + 1} of the same query was denied by rule "${d.rule}"`,
            };
      this.#record({ ...j, decision }, { notRun: 'denied' }, undefined);
    }
    const denied = judged[refusal.index];
    const kinds =
      denied?.statement.kinds?.filter((k) => k !== 'write' && k !== 'ddl').join(', ') ||
      denied?.statement.kind ||
      'statement';
    const error = enc.errorMessage('ERROR', refusal.sqlstate, d.message, {
      detail: `chaperone rule "${d.rule}" denied statement ${refusal.index + 1} of ${Math.max(n, 1)} (${kinds})${n > 1 ? '; none of them ran' : ''}`,
    });
    const id = ++this.#denialSeq;
    this.#denials.set(id, error);
    const failing = `chaperone_denied_${this.#nonce}_${id}`;
    if (via === 'query') {
      this.#forward(enc.query(failing), { t: 'refused' });
    } else {
      this.#forward(enc.parse(parseName, failing), { t: 'refused-parse' });
      this.#discarding = true;
    }
  }

  // -------------------------------------------------------------------------
  // Server → agent

  #upstreamData(decoder: BackendDecoder, chunk: Buffer): void {
    let msgs: BackendMessage[];
    try {
      msgs = decoder.push(chunk);
    } catch (err) {
      this.#o.metrics.upstreamErrors.inc({ protocol: 'postgres', reason: 'protocol' });
      this.#log.warn({ err: (err as Error).message }, 'the database server broke the protocol');
      this.#fatal('08P01', 'the database server sent something that is not the PostgreSQL protocol');
      return;
    }
    for (const m of msgs) this.#fromServer.push(m);
    this.#drainServer();
  }

  /** Handles the server's messages in order, unless a result's columns are being read from the catalog. */
  #drainServer(): void {
    while (!this.#serverHeld && this.#fromServer.length > 0 && this.#phase !== 'closed') {
      const m = this.#fromServer.shift() as BackendMessage;
      try {
        this.#fromUpstream(m);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.#log.warn({ err: err.message }, 'a result could not be masked');
        this.#toAgent = [];
        this.#fatal(err.sqlstate, `a result could not be masked (${err.message}); the session is ended`);
        return;
      }
    }
    this.#flush();
  }

  /** Holds the server's messages until `work` is done. */
  #holdServer(work: Promise<void>): void {
    const up = this.#upstream?.socket;
    this.#serverHeld = true;
    up?.pause();
    work.then(
      () => {
        this.#serverHeld = false;
        if (this.#phase === 'closed') return;
        up?.resume();
        this.#drainServer();
      },
      (err: unknown) => {
        this.#log.warn({ err: (err as Error).message }, 'could not read the columns of a result');
        this.#toAgent = [];
        this.#fatal(
          '58000',
          `masks are in force and the guard could not read the database catalog to see which columns of a result are masked (${(err as Error).message}); the session is ended (the statement may have run)`,
        );
      },
    );
  }

  /** The columns of a result about to be sent, and which of them are masked. */
  #describe(fields: readonly FieldDescription[]): void {
    this.#described = true;
    this.#plan = undefined;
    const masks = this.#currentMasks();
    if (masks.length === 0) return;
    const cat = this.#o.catalog;
    const oids = [...new Set(fields.map((f) => f.tableOid).filter((o) => o !== 0))];
    const set = (relation: (oid: number) => ReturnType<typeof cat.cachedRelation>) => {
      const plan = resultPlan(fields, (o) => relation(o) ?? undefined, masks);
      this.#plan = masksAny(plan) ? plan : undefined;
    };
    if (oids.every((o) => cat.cachedRelation(o) !== undefined)) {
      set((o) => cat.cachedRelation(o));
      return;
    }
    this.#holdServer(cat.relationsByOid(oids).then((found) => set((o) => found.get(o))));
  }

  /** The current result ended. */
  #endResult(): void {
    this.#described = false;
    this.#plan = undefined;
  }

  #count(masked: ReadonlyMap<string, number>): void {
    if (masked.size === 0) return;
    const run = this.#tracker.current();
    if (!run) return;
    run.masked ??= new Map();
    for (const [rule, n] of masked) run.masked.set(rule, (run.masked.get(rule) ?? 0) + n);
  }

  /**
   * An error or notice: without what could hold a masked value, when the
   * statement reads masked tables (itself or through code it runs), or when
   * the error names a masked table (a constraint checked there, a cascade).
   */
  #notice(m: Extract<BackendMessage, { type: 'ErrorResponse' | 'NoticeResponse' }>): Buffer {
    const { s: schema, t: table } = m.fields;
    const namesMasked =
      table !== undefined &&
      masksOfCatalogTable(this.#currentMasks(), catalogName(schema ?? 'public', table)).length > 0;
    if (!namesMasked && !this.#tracker.current()?.about.readsMasked) return m.raw;
    const f = withoutValues(m.fields);
    return m.type === 'ErrorResponse' ? enc.errorResponse(f) : enc.noticeResponse(f);
  }

  #fromUpstream(m: BackendMessage): void {
    if (this.#copyProgress(m)) return;
    if (RESULT_MESSAGES.has(m.type) && this.#emptyPortalAnswered()) {
      // Nothing the guard did not judge reaches the agent, and nothing runs unrecorded.
      this.#log.warn({ message: m.type }, 'the server ran a portal the guard knew as an empty query');
      this.#toAgent = [];
      this.#fatal(
        '08P01',
        'the server answered an Execute of a portal bound to an empty query with a result: the portal was replaced behind the guard (by code run on the server); the session is ended',
      );
      return;
    }
    switch (m.type) {
      case 'ErrorResponse': {
        const ours =
          m.fields.C === '42601'
            ? new RegExp(`chaperone_denied_${this.#nonce}_(\\d+)`).exec(m.fields.M ?? '')
            : null;
        const shown = ours ? undefined : this.#notice(m);
        this.#tracker.backend(m);
        this.#endResult();
        this.#copyMasker = undefined;
        const replacement = ours ? this.#denials.get(Number(ours[1])) : undefined;
        if (ours) this.#denials.delete(Number(ours[1]));
        this.#toAgent.push(replacement ?? shown ?? m.raw);
        return;
      }
      case 'NoticeResponse':
        this.#toAgent.push(this.#notice(m));
        return;
      case 'ReadyForQuery': {
        this.#tracker.backend(m);
        this.#endResult();
        if (m.status === 'I') {
          this.#portalsEnded(this.#tracker.readied?.batch);
          this.#linksEnded(this.#tracker.readied?.batch);
        }
        if (this.#tracker.pending === 0) this.#denials.clear();
        // No other ReadyForQuery is coming and nothing ran unsynced: every setting a statement
        // changed has been reported (ParameterStatus comes before ReadyForQuery).
        const settled = !this.#tracker.awaitsReady && !this.#unsyncedRun;
        if (settled) this.#unreported = false;
        if (m.status === 'I' && this.#definitionsChanged) {
          // A transaction that changed definitions ended: what the catalog said inside it may be stale now.
          this.#definitionsChanged = false;
          this.#o.catalog.invalidate();
        }
        this.#toAgent.push(m.raw);
        const waiting = this.#encodingWait || this.#namesWait;
        if (settled) this.#encodingWait = false;
        if (this.#namesSettled()) this.#namesWait = false;
        if (waiting && !this.#encodingWait && !this.#namesWait) this.#release();
        return;
      }
      case 'RowDescription':
      case 'NoData': {
        const head = this.#tracker.head?.t;
        this.#tracker.backend(m);
        // The sidecar's own Describe before an Execute: its answer is for the sidecar only.
        if (head !== 'own-describe') this.#toAgent.push(m.raw);
        if (m.type === 'RowDescription' && (head === 'own-describe' || head === 'query'))
          this.#describe(m.fields);
        else if (head === 'own-describe') this.#endResult();
        return;
      }
      case 'DataRow': {
        if (this.#plan) {
          const { raw, masked } = maskRow(m.values, this.#plan);
          this.#count(masked);
          this.#toAgent.push(raw);
          return;
        }
        if (!this.#described && this.#currentMasks().length > 0) {
          throw new ProtocolError('a result row arrived whose columns the guard did not read first');
        }
        this.#toAgent.push(m.raw);
        return;
      }
      case 'CommandComplete':
      case 'EmptyQueryResponse':
      case 'PortalSuspended':
        this.#tracker.backend(m);
        this.#endResult();
        this.#toAgent.push(m.raw);
        return;
      case 'CopyOutResponse': {
        const plan = this.#tracker.current()?.about.copy;
        if (plan) {
          const masker = new CopyMasker(plan.format, plan.columns, this.#o.maxMessageBytes);
          if (!masker.matches(m.format))
            throw new ProtocolError(
              'the server sent COPY data in another format than the statement asked for',
            );
          this.#copyMasker = masker;
        }
        this.#tracker.backend(m);
        this.#toAgent.push(m.raw);
        return;
      }
      case 'CopyData':
        if (this.#copyMasker) {
          const { messages, masked } = this.#copyMasker.push(m.data);
          this.#count(masked);
          this.#toAgent.push(...messages);
          return;
        }
        this.#toAgent.push(m.raw);
        return;
      case 'CopyDone':
        this.#copyMasker?.end();
        this.#copyMasker = undefined;
        this.#toAgent.push(m.raw);
        return;
      case 'ParameterStatus': {
        const unsafe = unsafeSetting(m.name, m.value);
        if (unsafe) {
          this.#log.warn(
            { setting: m.name },
            'the server reported a setting the guard cannot read SQL under; ending the session',
          );
          this.#fatal('0A000', unsafe);
          return;
        }
        this.#toAgent.push(m.raw);
        return;
      }
      case 'Authentication':
      case 'BackendKeyData':
        this.#fatal('08P01', `the database server sent ${m.type} in the middle of a session`);
        return;
      default:
        this.#tracker.backend(m);
        this.#toAgent.push(m.raw);
    }
  }

  /**
   * What a statement sent to run changes in what the guard knows of the
   * session's prepared statements and portals, from the moment it is sent:
   * the server runs what comes after it only after it, so a Bind or an
   * EXECUTE sent behind `DEALLOCATE q; PREPARE q AS …` is not judged as the
   * old q. The names it drops or prepares are forgotten now; what it prepares
   * is known when it completes (#done). Code the guard cannot read (dynamic
   * SQL) may have changed any of them: all are forgotten. A cursor declared
   * or closed in SQL, a DO block or a procedure may replace a portal: portals
   * are forgotten. A Bind or Execute of a forgotten name is refused.
   */
  #sending(run: Run<Judged>): void {
    const { classified: c, statement } = run.about;
    const kinds = statement.kinds ?? [];
    const all = c.deallocates === '*' || kinds.includes('dynamic-sql');
    const names = all ? ['*'] : [c.deallocates, c.prepares?.name].filter((n) => n !== undefined);
    const portals = all || REPLACES_PORTALS.has(statement.kind) || kinds.some((k) => RUNS_CODE.includes(k));
    if (names.length === 0 && !portals) return;
    const keys = names.map((n) => `s:${n}`);
    if (portals) keys.push('p:*');
    this.#changeNumber.set(run, this.#change(keys, true));
    for (const name of names) {
      if (name === '*') {
        this.#prepared.clear();
        this.#emptyPrepared.clear();
      } else {
        this.#prepared.delete(name);
        this.#emptyPrepared.delete(name);
      }
    }
    if (portals) this.#dropPortal();
  }

  /** Records a change of names (`s:…`, `p:…`) sent now; `answered`: an answer of the server will settle it (#answered). */
  #change(keys: readonly string[], answered: boolean): number {
    const n = ++this.#changes;
    for (const k of keys) this.#changing.set(k, n);
    if (answered) this.#unanswered.set(n, this.#batch);
    return n;
  }

  /** Whether change `n` is the last one sent of `key` (nothing sent after it changes that name). */
  #latest(key: string, n: number): boolean {
    const every = `${key.slice(0, 2)}*`;
    return Math.max(this.#changing.get(every) ?? 0, this.#changing.get(key) ?? 0) === n;
  }

  /** The server answered change `n` (or discarded it); with none left waiting, a held message goes on at the next ReadyForQuery. */
  #answered(n: number): void {
    this.#unanswered.delete(n);
    if (this.#unanswered.size === 0) this.#changing.clear();
    // Held messages go on once the changes they wait for are answered, ReadyForQuery or not (after an
    // error the server discards a Query, and answers nothing until the Sync still held here). Not
    // from within the tracker's handling of the answer: once it is done.
    if (this.#namesWait && this.#namesSettled())
      queueMicrotask(() =>
        this.#contained('names settled', () => {
          if (!this.#namesWait || !this.#namesSettled() || this.#phase === 'closed') return;
          this.#namesWait = false;
          if (!this.#encodingWait) this.#release();
        }),
      );
  }

  /** Forgets portal `name` (every portal when undefined). */
  #dropPortal(name?: string): void {
    if (name === undefined) {
      this.#portals.clear();
      this.#portalBatch.clear();
    } else {
      this.#portals.delete(name);
      this.#portalBatch.delete(name);
    }
  }

  /**
   * The transaction of the batches up to `batch` ended (ReadyForQuery, idle):
   * the server dropped every portal bound in them, and the guard forgets them,
   * so that a portal a function declares later under the same name is not
   * taken for the one bound.
   */
  #portalsEnded(batch: number | undefined): void {
    if (batch === undefined) return;
    for (const [name, b] of this.#portalBatch) {
      if (b > batch) continue;
      this.#dropPortal(name);
    }
  }

  /**
   * A Query, Bind or Execute waits while a change of names sent before the
   * last Sync (or Query) is unanswered: the server may have refused it (a
   * name in use), and what follows the Sync runs anyway, with the name as
   * the server holds it. Within one batch nothing waits: after a failure the
   * server discards the rest of the batch. True when `m` was held here.
   */
  #namesGate(m: FrontendMessage): boolean {
    if (this.#unanswered.size === 0) return false;
    for (const batch of this.#unanswered.values()) {
      if (batch < this.#batch) {
        this.#namesWait = true;
        this.#held = [m];
        this.#agent.pause();
        return true;
      }
    }
    return false;
  }

  /** The server is answering an Execute (or the sidecar's Describe before it) of a portal judged empty. */
  #emptyPortalAnswered(): boolean {
    const head = this.#tracker.head;
    return (head?.t === 'execute' || head?.t === 'own-describe') && head.run === undefined;
  }

  /** Whether a message held by #namesGate may go on. */
  #namesSettled(): boolean {
    for (const batch of this.#unanswered.values()) if (batch < this.#batch) return false;
    return true;
  }

  /**
   * A Parse the server refused (a name in use: 42P05) leaves the name as it
   * was, empty or not: an empty statement the guard took for it would let a
   * Bind of the statement still there run undecided. What it was is known
   * only when nothing else changed the name while the Parse was unanswered;
   * otherwise the name is forgotten. A change of the name sent after the
   * Parse decides what it holds.
   */
  #parsed(name: string, ok: boolean): void {
    const undo = this.#parseUndo.shift();
    if (!undo || undo.name !== name) return;
    if (!ok && this.#latest(`s:${name}`, undo.change)) {
      if (undo.settled && undo.before) this.#prepared.set(name, undo.before);
      else this.#prepared.delete(name);
      if (undo.settled && undo.wasEmpty) this.#emptyPrepared.add(name);
      else this.#emptyPrepared.delete(name);
    }
    this.#answered(undo.change);
  }

  /** A statement the server ended (or never ran): its event, and what it changed in the session's prepared statements. */
  #done(
    run: Run<Judged>,
    outcome: { rows?: number; tag?: string; sqlstate?: string; notRun?: string },
  ): void {
    const j = run.about;
    const completed = outcome.tag !== undefined;
    const changed = this.#changeNumber.get(run);
    if (changed !== undefined) {
      const prepares = j.classified.prepares;
      // Taken only if nothing sent after it changes the name: the server runs that next.
      if (completed && prepares && this.#latest(`s:${prepares.name}`, changed)) {
        this.#prepared.set(prepares.name, { ...j, statement: prepares.statement });
        this.#emptyPrepared.delete(prepares.name);
      }
      this.#answered(changed);
    }
    if (completed) {
      if ((j.statement.kinds ?? []).some((k) => CHANGES_DEFINITIONS.includes(k))) {
        this.#o.catalog.invalidate();
        this.#definitionsChanged = true;
      }
    }
    const rows = outcome.tag !== undefined ? rowsOf(outcome.tag) : undefined;
    const durationMs = Number(process.hrtime.bigint() - run.startNs) / 1e6;
    const ok = this.#record(
      j,
      {
        ...(rows !== undefined ? { rows } : {}),
        ...(outcome.sqlstate !== undefined ? { sqlstate: outcome.sqlstate } : {}),
        ...(outcome.notRun !== undefined ? { notRun: outcome.notRun } : {}),
      },
      outcome.notRun === undefined ? durationMs : undefined,
      run.masked,
    );
    if (!ok && !this.#o.failOpen && this.#phase !== 'closed') {
      // The statement ran and its record could not be kept: the agent does not get its answer.
      this.#toAgent = [];
      this.#fatal(
        '58030',
        `the audit event of a statement could not be written to the audit spool (${this.#o.spool.writeFailure ?? 'unknown reason'}); the session is ended because unrecorded statements are not allowed. The statement may have run: check before retrying.`,
      );
    }
  }

  /**
   * Writes a statement's audit event; true when the spool took it. A statement
   * that had values masked is recorded as masked, by the rule that masked the
   * most of them (the message names them all).
   */
  #record(
    j: Judged,
    outcome: { rows?: number; sqlstate?: string; notRun?: string },
    durationMs: number | undefined,
    masked?: ReadonlyMap<string, number>,
  ): boolean {
    let decision = j.decision;
    let total = 0;
    if (masked && masked.size > 0) {
      const byRule = [...masked].sort((a, b) => b[1] - a[1]);
      total = byRule.reduce((n, [, c]) => n + c, 0);
      for (const [rule, n] of byRule) this.#o.metrics.maskedFields.inc({ protocol: 'postgres', rule }, n);
      const [rule] = byRule[0] as [string, number];
      const by = byRule.map(([r, n]) => `${n} by rule "${r}"`).join(', ');
      decision = {
        action: 'mask',
        rule,
        reason: 'rule_matched',
        message: `${decision.message}; ${total} values masked (${by})`,
      };
    }
    const event = statementEvent({
      identity: this.#o.identity,
      sessionId: this.#sessionId,
      database: this.#o.database,
      dbUser: this.#safeUser(),
      remoteAddress: this.#remote,
      ...(this.#application !== undefined ? { application: this.#application } : {}),
      ...(j.auditID !== undefined ? { auditID: j.auditID } : {}),
      statement: j.statement,
      text: j.classified.text,
      fingerprint: j.classified.fingerprint,
      decision,
      receivedAt: j.receivedAt,
      ...(durationMs !== undefined ? { durationMs } : {}),
      overheadMs: j.overheadMs,
      outcome,
      masked: total,
    });
    const m = this.#o.metrics;
    const d = decision;
    m.requests.inc({ protocol: 'postgres', verb: 'query', action: d.action, rule: d.rule });
    if (d.action === 'deny' || (d.action === 'review' && d.approval?.state !== 'approved'))
      m.blocked.inc({ protocol: 'postgres', rule: d.rule });
    m.overhead.observe({ protocol: 'postgres' }, j.overheadMs / 1000);
    try {
      this.#o.spool.append(event);
      return true;
    } catch (err) {
      m.auditWriteFailures.inc();
      this.#log.error(
        { err: (err as Error).message, auditID: event.auditID },
        'could not write an audit event to the spool',
      );
      return false;
    }
  }

  #safeUser(): string {
    try {
      return this.#o.credentials.current.user;
    } catch {
      return '';
    }
  }
}

/**
 * Settings under which the server would read SQL text differently from the
 * guard: a client encoding other than UTF-8 (bytes the guard reads as UTF-8
 * would mean other characters), or standard_conforming_strings off (a
 * backslash would escape a quote). The session cannot go on under them.
 */
export function unsafeSetting(name: string, value: string): string | undefined {
  if (name === 'client_encoding' && !['UTF8', 'UNICODE'].includes(value.toUpperCase())) {
    return `client_encoding became ${value}; the guard reads SQL as UTF-8 and ends the session rather than read it differently from the server. Keep client_encoding UTF8 (the client converts text on its side), and do not change it in functions or DO blocks`;
  }
  if (name === 'standard_conforming_strings' && value !== 'on') {
    return 'standard_conforming_strings was turned off; the guard ends the session rather than read strings differently from the server';
  }
  return undefined;
}

/** A statement that may start COPY FROM STDIN (or from a file or program: the server's answer tells). */
function copiesIn(j: { readonly statement: SqlStatement }): boolean {
  return j.statement.kinds?.includes('copy-from') ?? false;
}
