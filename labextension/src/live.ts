/**
 * The panel's live view of the server: a websocket that receives pushed snapshots, reconnecting
 * by itself (with backoff) after a server restart, and REST polling of GET /calls while the
 * socket is down, so the panel never goes stale.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI, streamURL } from './handler';
import {
  ICallsSnapshot,
  ICallSnapshot,
  ICancelReply,
  IClusterSnapshot,
  StreamMessage
} from './types';

/** live: the socket pushes; polling: the socket is down but REST answers; offline: neither. */
export type LinkState = 'connecting' | 'live' | 'polling' | 'offline';

const POLL_MS = 1000;
const CLUSTER_POLL_MS = 5000;
const MAX_BACKOFF_MS = 5000;

const ORDER: { [state: string]: number } = { running: 0 };

/** Running calls first (newest first), then finished ones, most recently ended first. */
export function sortCalls(calls: ICallSnapshot[]): ICallSnapshot[] {
  return [...calls].sort((a, b) => {
    const ra = ORDER[a.state] ?? 1;
    const rb = ORDER[b.state] ?? 1;
    if (ra !== rb) {
      return ra - rb;
    }
    if (ra === 0) {
      return b.started - a.started;
    }
    return (b.ended ?? b.started) - (a.ended ?? a.started);
  });
}

export class LiveModel {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

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

  start(): void {
    this._connect();
    void this._poll();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.clearTimeout(this._reconnectTimer);
    window.clearTimeout(this._pollTimer);
    if (this._socket) {
      this._socket.onclose = null;
      this._socket.close();
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
    void this._poll();
    return reply.cancelled;
  }

  private _connect(): void {
    if (this._disposed) {
      return;
    }
    const WS = this.settings.WebSocket;
    let socket: WebSocket;
    try {
      socket = new WS(streamURL(this.settings));
    } catch (error) {
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    this._setLink(this._link === 'live' ? 'live' : 'connecting');
    socket.onopen = () => {
      this._backoff = 250;
      this._error = null;
      this._setLink('live');
    };
    socket.onmessage = event => this._onMessage(event.data);
    socket.onclose = () => {
      this._socket = null;
      if (this._link === 'live' || this._link === 'connecting') {
        this._setLink(this._polledOk ? 'polling' : 'offline');
      }
      this._scheduleReconnect();
      this._schedulePoll(0);
    };
  }

  private _scheduleReconnect(): void {
    if (this._disposed) {
      return;
    }
    window.clearTimeout(this._reconnectTimer);
    this._reconnectTimer = window.setTimeout(() => this._connect(), this._backoff);
    this._backoff = Math.min(this._backoff * 2, MAX_BACKOFF_MS);
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

  private _schedulePoll(delay: number): void {
    if (this._disposed) {
      return;
    }
    window.clearTimeout(this._pollTimer);
    this._pollTimer = window.setTimeout(() => void this._poll(), delay);
  }

  /** One REST refresh; repeats itself only while the socket is down. */
  private async _poll(): Promise<void> {
    if (this._disposed) {
      return;
    }
    try {
      const now = Date.now();
      const needCluster = !this._cluster || now - this._clusterPolledAt > CLUSTER_POLL_MS;
      const [calls, cluster] = await Promise.all([
        requestAPI<ICallsSnapshot>('calls', {}, this.settings),
        needCluster
          ? requestAPI<IClusterSnapshot>('cluster', {}, this.settings)
          : Promise.resolve(this._cluster)
      ]);
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
      this._polledOk = false;
      this._error = error instanceof Error ? error.message : String(error);
      if (this._link !== 'live') {
        this._setLink('offline');
        this._changed.emit();
      }
    }
    if (this._link !== 'live') {
      this._schedulePoll(POLL_MS);
    }
  }

  private _calls: ICallSnapshot[] = [];
  private _cluster: IClusterSnapshot | null = null;
  private _link: LinkState = 'connecting';
  private _error: string | null = null;
  private _offset = 0;
  private _socket: WebSocket | null = null;
  private _backoff = 250;
  private _polledOk = false;
  private _clusterPolledAt = 0;
  private _reconnectTimer = 0;
  private _pollTimer = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
