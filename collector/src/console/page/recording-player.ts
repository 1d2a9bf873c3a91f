/**
 * The asciinema web player (npm `asciinema-player` 3.x, bundled into app.js
 * with its CSS in app.css) showing an exec session's asciicast v2 recording.
 *
 * Following a live session: the player takes a recording as data
 * (`{data: string}`: its `doFetch` wraps a string in a Response and its
 * asciicast parser reads the JSON lines), and its live drivers (websocket,
 * eventsource) need a streaming server the API does not have. So the view
 * polls the recording from the offset it has, and when it grew, the player
 * is created again with the whole text, starting where the previous one
 * ended and playing on, so what was added plays as it happened.
 *
 * The player draws the terminal with the CSSOM (element.style), which the
 * console's CSP allows; its terminal emulator is WebAssembly inside the
 * bundle (hence `'wasm-unsafe-eval'` in the CSP, security-headers.ts).
 */
import * as AsciinemaPlayer from 'asciinema-player';
import { h, replace } from './dom.ts';

export class RecordingPlayer {
  readonly el = h('div', { class: 'player' });
  #player: AsciinemaPlayer.Player | undefined;

  /** Shows `text` (asciicast v2); starts playing at `startAt` seconds when `autoPlay`. */
  show(text: string, opts: { startAt?: number; autoPlay?: boolean } = {}): void {
    this.dispose();
    const box = h('div', {});
    replace(this.el, box);
    this.#player = AsciinemaPlayer.create({ data: text }, box, {
      autoPlay: opts.autoPlay ?? false,
      startAt: opts.startAt ?? 0,
      idleTimeLimit: 2,
      fit: 'width',
      terminalFontSize: 'small',
      controls: true,
    });
  }

  dispose(): void {
    this.#player?.dispose();
    this.#player = undefined;
  }
}
