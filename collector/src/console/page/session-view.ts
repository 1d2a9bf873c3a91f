/**
 * One session (/console/sessions/{id}): an exec session's recording in the
 * asciinema player (read in pieces to its end first; followed while the
 * session runs: the view polls the recording from the offset it has), a database session as its stream of
 * statements with their decisions, and every event of the session, each
 * linked to its detail.
 */
import type { AuditEvent } from '@chaperone/shared';
import { api } from './api.ts';
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { decisionClass, decisionText, eventSource, eventText } from './event-text.ts';
import { formatTime, shown, shownLines } from './format.ts';
import type { SessionEvents } from './query-types.ts';
import { RecordingBuffer } from './recording-buffer.ts';
import { RecordingPlayer } from './recording-player.ts';
import { link } from './routes.ts';
import { row, table } from './table.ts';

/** A session with no close event and an event this recent is taken to be running. */
const LIVE_MS = 10 * 60_000;

/** True once the session's close event is in (exec and port-forward close events carry the duration). */
function closed(events: readonly AuditEvent[]): boolean {
  return events.some(
    (e) => e.chaperone.exec?.durationMs !== undefined || e.chaperone.portForward?.durationMs !== undefined,
  );
}

export class SessionView implements View {
  readonly root = h('section', { class: 'session' });
  readonly poll = true;
  readonly #id: string;
  readonly #head = h('div', {});
  readonly #recordingBox = h('div', { class: 'recording' });
  readonly #list = h('div', {});
  readonly #recording = new RecordingBuffer();
  readonly #player = new RecordingPlayer();
  #live = false;
  #done = false;

  constructor(id: string) {
    this.#id = id;
    this.root.append(h('h2', {}, 'Session'), this.#head, this.#recordingBox, this.#list);
  }

  async refresh(): Promise<void> {
    if (this.#done) return;
    const id = encodeURIComponent(this.#id);
    const s = await api.get<SessionEvents>(`sessions/${id}`);
    const first = s.events[0];
    if (!first) return;
    const last = s.events[s.events.length - 1] ?? first;
    const wasLive = this.#live;
    this.#live =
      first.chaperone.protocol !== 'postgres'
        ? !closed(s.events) && Date.now() - Date.parse(last.stageTimestamp) < LIVE_MS
        : Date.now() - Date.parse(last.stageTimestamp) < LIVE_MS;
    replace(
      this.#head,
      h(
        'dl',
        { class: 'details' },
        h('dt', {}, 'Agent'),
        h('dd', {}, eventSource(first), ` (service account ${shown(first.chaperone.source.serviceAccount)})`),
        h('dt', {}, 'Protocol'),
        h('dd', {}, first.chaperone.protocol),
        h('dt', {}, 'Started'),
        h('dd', {}, formatTime(first.requestReceivedTimestamp)),
        h('dt', {}, 'State'),
        h('dd', { class: 'state' }, this.#live ? 'live: following as it runs' : 'ended'),
        h('dt', {}, 'Events'),
        h(
          'dd',
          {},
          h(
            'a',
            { href: link.events(new URLSearchParams({ sessionId: this.#id })) },
            `${s.events.length} events`,
          ),
        ),
      ),
    );
    if (s.recording) await this.#followRecording(id, wasLive);
    replace(this.#list, first.chaperone.protocol === 'postgres' ? statements(s.events) : eventList(s.events));
    // An ended session whose recording is all read changes no more.
    if (!this.#live && (!s.recording || this.#recording.offset > 0)) this.#done = true;
  }

  async #followRecording(id: string, wasLive: boolean): Promise<void> {
    const before = this.#recording.duration;
    const first = this.#recording.offset === 0;
    // The whole recording (what was added, when following) before the player starts: piece by piece.
    const grew = await this.#recording.readToEnd((offset, length) =>
      api.bytes(`sessions/${id}/recording?offset=${offset}&length=${length}`),
    );
    if (!grew && !first) return;
    if (first) replace(this.#recordingBox, h('h3', {}, 'Recording'), this.#player.el);
    // Live: play what was added from where the player was; ended: start at the beginning.
    this.#player.show(this.#recording.text, {
      autoPlay: this.#live || wasLive,
      startAt: first ? 0 : before,
    });
  }
}

function eventList(events: readonly AuditEvent[]): HTMLElement {
  return h(
    'div',
    {},
    h('h3', {}, 'Events'),
    table(
      'session-events',
      ['Time', 'Stage', 'Action', 'Decision', 'Rule'],
      events.map((e) =>
        row(
          { 'data-id': e.auditID, class: decisionClass(e) },
          h('a', { href: link.event(e.auditID) }, formatTime(e.requestReceivedTimestamp)),
          e.stage,
          h('code', { class: 'action-text' }, eventText(e)),
          h('span', { class: `decision ${decisionClass(e)}` }, decisionText(e)),
          h('code', {}, shown(e.chaperone.decision.rule)),
        ),
      ),
      'No events.',
    ),
  );
}

/** A database session as its statements, in order, each with its decision. */
function statements(events: readonly AuditEvent[]): HTMLElement {
  return h(
    'div',
    {},
    h('h3', {}, 'Statements'),
    table(
      'statements',
      ['Time', 'Statement', 'Decision', 'Rule', 'Rows', 'ms'],
      events.map((e) =>
        row(
          { 'data-id': e.auditID, class: decisionClass(e) },
          h('a', { href: link.event(e.auditID) }, formatTime(e.requestReceivedTimestamp)),
          e.chaperone.sql?.text !== undefined
            ? h('pre', { class: 'sql' }, shownLines(e.chaperone.sql.text))
            : h('code', { class: 'action-text' }, eventText(e)),
          h('span', { class: `decision ${decisionClass(e)}` }, decisionText(e)),
          h('code', {}, shown(e.chaperone.decision.rule)),
          e.chaperone.sql?.rows ?? '',
          e.chaperone.sql?.durationMs ?? '',
        ),
      ),
      'No statements.',
    ),
  );
}
