/**
 * The detail of the one call the panel shows open (its failed inputs and latest output lines),
 * kept live: while the stream socket is open the panel asks the server to push it ({type:
 * "watch", call_id}, answered by {type: "detail"} with each push); while it is down a Poll fetches
 * GET /nbfan/api/calls/ID instead (backing off while the server does not answer).
 */
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';

import { requestAPI } from './handler';
import { ICallDetail, IWatchMessage } from './types';

/** REST polling period of the open call's detail while the socket is down. */
const POLL_MS = 1000;
const BACKOFF = 3;
const MAX_BACKOFF_MS = 5000;
/** WebSocket.OPEN */
const OPEN = 1;

export class CallDetailFeed {
  /** `changed` is called whenever what `detail` returns changes. */
  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly changed: () => void
  ) {
    this._poll = new Poll<void, Error>({
      auto: false,
      factory: () => this._fetch(),
      frequency: { interval: POLL_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS },
      name: 'nbfan:detail',
      standby: 'when-hidden'
    });
    // The constructor raises `max` to at least Poll's default (30 s); the setter keeps ours.
    this._poll.frequency = { interval: POLL_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS };
  }

  /** The call shown open, if any. */
  get callId(): string | null {
    return this._callId;
  }

  /** The open call's detail, once it came (never another call's). */
  get detail(): ICallDetail | null {
    return this._detail;
  }

  /** Why the open call's detail could not be read, if the last attempt failed. */
  get error(): string | null {
    return this._error;
  }

  /** Show this call's detail (null: none), through `socket` if it is open, else by polling. */
  watch(callId: string | null, socket: WebSocket | null): void {
    if (this._disposed || callId === this._callId) {
      return;
    }
    this._callId = callId;
    this._detail = null;
    this._error = null;
    this.changed();
    this.setSocket(socket);
    if (callId !== null) {
      // The first answer at once, whichever way the next ones come.
      this._fetch().catch(() => undefined);
    }
  }

  /** The stream socket opened (watch through it) or closed (null: poll until it is back). */
  setSocket(socket: WebSocket | null): void {
    if (this._disposed) {
      return;
    }
    if (socket !== null && socket.readyState === OPEN) {
      const message: IWatchMessage = { type: 'watch', call_id: this._callId };
      socket.send(JSON.stringify(message));
      void this._poll.stop();
    } else if (this._callId !== null) {
      void this._poll.start();
    } else {
      void this._poll.stop();
    }
  }

  /** A detail that came (pushed or fetched): kept if it is the open call's. */
  accept(detail: ICallDetail): void {
    if (this._disposed || detail.call_id !== this._callId) {
      return;
    }
    this._detail = detail;
    this._error = null;
    this.changed();
  }

  dispose(): void {
    this._disposed = true;
    this._poll.dispose();
  }

  /** One REST read of the open call's detail (the poll's factory). */
  private async _fetch(): Promise<void> {
    const callId = this._callId;
    if (callId === null) {
      return;
    }
    try {
      this.accept(
        await requestAPI<ICallDetail>(`calls/${encodeURIComponent(callId)}`, {}, this.settings)
      );
    } catch (error) {
      if (!this._disposed && callId === this._callId) {
        this._error = error instanceof Error ? error.message : String(error);
        this.changed();
      }
      throw error;
    }
  }

  private _callId: string | null = null;
  private _detail: ICallDetail | null = null;
  private _error: string | null = null;
  private _disposed = false;
  private readonly _poll: Poll<void, Error>;
}
