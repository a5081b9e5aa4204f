/**
 * The panel's live view of the server: a websocket that receives pushed snapshots, reopened by a
 * Poll (with exponential backoff) after a server restart, and REST polling of GET /calls (another
 * Poll, backing off while the server does not answer) while the socket is down, so the panel never
 * goes stale. Both polls stand by while the browser tab is hidden.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { CallDetailFeed } from './detail';
import { sortCalls } from './panel/order';
import { requestAPI, streamURL } from './handler';
import {
  ICallDetail,
  ICallsSnapshot,
  ICallSnapshot,
  ICancelReply,
  IClusterSnapshot,
  StreamMessage
} from './types';

/** live: the socket pushes; polling: the socket is down but REST answers; offline: neither. */
export type LinkState = 'connecting' | 'live' | 'polling' | 'offline';

/** REST polling period while the socket is down (and the server answers). */
const POLL_MS = 1000;
/** The cluster changes slowly: REST polls fetch it at most this often. */
const CLUSTER_POLL_MS = 5000;
/** How soon a socket that closed is reopened; failed attempts back off from there. */
const RECONNECT_MS = 250;
/**
 * After a failure each poll waits a random time between its interval and BACKOFF times its last
 * wait (Poll's decorrelated-jitter exponential backoff; 3 is Poll's default), at most
 * MAX_BACKOFF_MS, so a restarted server is seen again within a few seconds.
 */
const BACKOFF = 3;
const MAX_BACKOFF_MS = 5000;

export class LiveModel {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {
    this._stream = new Poll<void, Error>({
      auto: false,
      factory: () => this._openStream(),
      frequency: { interval: RECONNECT_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS },
      name: 'nbfan:stream',
      standby: 'when-hidden'
    });
    this._rest = new Poll<void, Error>({
      auto: false,
      factory: () => this._fetch(),
      frequency: { interval: POLL_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS },
      name: 'nbfan:rest',
      standby: 'when-hidden'
    });
    // The constructor raises `max` to at least Poll's default (30 s); the setter keeps ours.
    this._stream.frequency = { interval: RECONNECT_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS };
    this._rest.frequency = { interval: POLL_MS, backoff: BACKOFF, max: MAX_BACKOFF_MS };
    this._detail = new CallDetailFeed(settings, () => this._changed.emit());
  }

  /** Emitted whenever anything shown changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get calls(): ICallSnapshot[] {
    return this._calls;
  }

  get cluster(): IClusterSnapshot | null {
    return this._cluster;
  }

  /** The call whose detail is shown (see watch), if any. */
  get watched(): string | null {
    return this._detail.callId;
  }

  /** The watched call's failed inputs and latest output lines, once they came. */
  get detail(): ICallDetail | null {
    return this._detail.detail;
  }

  /** Why the watched call's detail could not be read, if the last attempt failed. */
  get detailError(): string | null {
    return this._detail.error;
  }

  /** Keep this call's detail live (null: none): pushed on the socket, or polled while it is down. */
  watch(callId: string | null): void {
    this._detail.watch(callId, this._socket);
  }

  get link(): LinkState {
    return this._link;
  }

  /** The last error met talking to the server, if the link is not live. */
  get error(): string | null {
    return this._error;
  }

  /** Server clock minus browser clock, in seconds (elapsed times use the server's clock). */
  get clockOffset(): number {
    return this._offset;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Open the socket, and poll REST until it is open (the first answer comes from either). */
  start(): void {
    void this._stream.start();
    void this._rest.start();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._stream.dispose();
    this._rest.dispose();
    this._detail.dispose();
    if (this._socket) {
      this._socket.onclose = null;
      this._socket.close();
      this._socket = null;
    }
    Signal.clearData(this);
  }

  /** Ask the server to cancel a call (its remaining inputs are not started). */
  async cancel(callId: string): Promise<boolean> {
    const reply = await requestAPI<ICancelReply>(
      `calls/${encodeURIComponent(callId)}/cancel`,
      { method: 'POST' },
      this.settings
    );
    this._refresh();
    return reply.cancelled;
  }

  /** Fetch now: through the REST poll while the socket is down (which also resets its backoff),
   * or once beside a live socket. */
  private _refresh(): void {
    if (this._disposed) {
      return;
    }
    if (this._link === 'live') {
      this._fetch().catch(() => undefined);
    } else {
      void this._rest.refresh();
    }
  }

  /**
   * The stream poll's factory, one life of the socket: rejects when the socket cannot be opened
   * (the poll backs off before the next attempt), resolves when an open socket closes (the poll
   * reopens it after RECONNECT_MS). While the socket is down the REST poll runs.
   */
  private _openStream(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const WS = this.settings.WebSocket;
      const socket = new WS(streamURL(this.settings));
      let opened = false;
      this._socket = socket;
      this._setLink(this._link === 'live' ? 'live' : 'connecting');
      socket.onopen = () => {
        opened = true;
        this._error = null;
        this._setLink('live');
        void this._rest.stop();
        this._detail.setSocket(socket);
      };
      socket.onmessage = (event: MessageEvent) => this._onMessage(event.data);
      socket.onclose = (event: CloseEvent) => {
        this._socket = null;
        this._detail.setSocket(null);
        if (this._link === 'live' || this._link === 'connecting') {
          this._setLink(this._polledOk ? 'polling' : 'offline');
        }
        if (opened) {
          // REST takes over until the socket is back (while it never opened, REST still runs).
          void this._rest.start();
          resolve();
        } else {
          reject(new Error(`the stream socket did not open (code ${event.code})`));
        }
      };
    });
  }

  private _onMessage(data: unknown): void {
    let message: StreamMessage;
    try {
      message = JSON.parse(String(data)) as StreamMessage;
    } catch {
      return;
    }
    if (message.type === 'calls') {
      this._setCalls(message);
    } else if (message.type === 'cluster') {
      this._cluster = message;
      this._changed.emit();
    } else if (message.type === 'detail') {
      this._detail.accept(message);
    }
  }

  private _setCalls(snapshot: ICallsSnapshot): void {
    this._offset = snapshot.time - Date.now() / 1000;
    this._calls = sortCalls(snapshot.calls);
    this._changed.emit();
  }

  private _setLink(link: LinkState): void {
    if (link !== this._link) {
      this._link = link;
      this._changed.emit();
    }
  }

  /** One REST refresh (the REST poll's factory): rejects when the server does not answer. */
  private async _fetch(): Promise<void> {
    try {
      const now = Date.now();
      const needCluster = !this._cluster || now - this._clusterPolledAt > CLUSTER_POLL_MS;
      const [calls, cluster] = await Promise.all([
        requestAPI<ICallsSnapshot>('calls', {}, this.settings),
        needCluster
          ? requestAPI<IClusterSnapshot>('cluster', {}, this.settings)
          : Promise.resolve(this._cluster)
      ]);
      if (this._disposed) {
        return;
      }
      if (needCluster) {
        this._clusterPolledAt = now;
      }
      this._polledOk = true;
      this._cluster = cluster;
      this._setCalls(calls);
      if (this._link !== 'live') {
        this._error = null;
        this._setLink('polling');
      }
    } catch (error) {
      if (this._disposed) {
        return;
      }
      this._polledOk = false;
      this._error = error instanceof Error ? error.message : String(error);
      if (this._link !== 'live') {
        this._setLink('offline');
        this._changed.emit();
      }
      throw error;
    }
  }

  private _calls: ICallSnapshot[] = [];
  private _cluster: IClusterSnapshot | null = null;
  private _link: LinkState = 'connecting';
  private _error: string | null = null;
  private _offset = 0;
  private _socket: WebSocket | null = null;
  private _polledOk = false;
  private _clusterPolledAt = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
  private readonly _stream: Poll<void, Error>;
  private readonly _rest: Poll<void, Error>;
  private readonly _detail: CallDetailFeed;
}
