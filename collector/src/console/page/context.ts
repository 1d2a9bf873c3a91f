/** What every view is given by main.ts. */
export interface ViewContext {
  /** Shows the collector's message above the view (undefined clears it). */
  showError(message: string | undefined): void;
  /** Handles a failed call: the sign-in page when the session ended, else the message. */
  failed(err: unknown): void;
}

/**
 * A view: its element, filled by refresh(); refreshed again every few
 * seconds when it `poll`s (approvals, a session that may be live), read once
 * otherwise (a list whose reader pages and filters it); tick() runs every
 * second while it is shown.
 */
export interface View {
  readonly root: HTMLElement;
  readonly poll?: boolean;
  refresh(): Promise<void>;
  tick?(): void;
}
