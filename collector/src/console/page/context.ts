/** What every view is given by main.ts. */
export interface ViewContext {
  /** Shows the collector's message above the view (undefined clears it). */
  showError(message: string | undefined): void;
  /** Handles a failed call: the sign-in page when the session ended, else the message. */
  failed(err: unknown): void;
}

/** A view: its element, filled by refresh(); tick() runs every second while it is shown. */
export interface View {
  readonly root: HTMLElement;
  refresh(): Promise<void>;
  tick?(): void;
}
