/**
 * The telemetry snapshot schema, version 1: a mirror of nbfan/scheduler/schema.py
 * (see the telemetry contract). The panel only reads these shapes.
 */

export const SCHEMA_VERSION = 1;

export type CallKind =
  'remote' | 'spawn' | 'remote_gen' | 'map' | 'starmap' | 'for_each' | 'spawn_map' | 'magic';

export type CallState = 'running' | 'done' | 'failed' | 'cancelled';

export type CallerKind = 'kernel' | 'script' | 'process';

export interface ICaller {
  /** What to show: notebook file name, script name, or "python (pid N)". */
  label: string;
  kind: CallerKind;
  host: string;
  pid: number;
  notebook: string | null;
}

export interface ICallSnapshot {
  call_id: string;
  /** The call this one was made inside (a function calling another). */
  parent: string | null;
  function: string;
  app: string | null;
  kind: CallKind;
  caller: ICaller;
  state: CallState;
  /** Known once the inputs are exhausted. */
  total: number | null;
  /** Inputs, not Dask tasks. */
  done: number;
  failed: number;
  running: number;
  retried: number;
  /** Inputs finished per worker address. */
  per_worker: { [worker: string]: number };
  /** Epoch seconds. */
  started: number;
  ended: number | null;
  /** Inputs per second over the last few seconds. */
  rate: number;
}

export interface ICallsSnapshot {
  version: number;
  time: number;
  calls: ICallSnapshot[];
}

export interface IGpu {
  worker: string;
  model: string;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
}

export interface IClusterSnapshot {
  version: number;
  address: string;
  workers: number;
  threads: number;
  memory: number;
  gpus: IGpu[];
  dashboard: string | null;
}

/** Where a line an input wrote went: sys.stdout, sys.stderr, or a root logging handler. */
export type OutputStream = 'stdout' | 'stderr' | 'log';

/** One failed input of a call (its last attempt). */
export interface IFailure {
  /** The input's index in the call (0 for a .remote). */
  input: number;
  /** Qualified: "builtins.ValueError". */
  exc_type: string;
  message: string;
  /** The remote traceback, as Python prints it. */
  traceback: string;
  /** The worker address of the last attempt. */
  worker: string | null;
  attempts: number;
  /** Epoch seconds. */
  time: number;
}

/** One line an input wrote. */
export interface IOutputLine {
  input: number | null;
  stream: OutputStream;
  /** Epoch seconds. */
  time: number;
  worker: string | null;
  text: string;
}

/** GET /nbfan/api/calls/ID, and the websocket's {type: "detail"} for the watched call. */
export interface ICallDetail {
  call_id: string;
  /** In input order, the first 100. */
  failures: IFailure[];
  /** The latest lines, oldest first. */
  lines: IOutputLine[];
  /** Lines kept on the cluster but not forwarded to the caller (over the rate limit). */
  held: number;
  /** The running inputs' unfinished lines they redraw in place (tqdm bars), latest state each. */
  progress: IOutputLine[];
}

/** What the stream websocket pushes. */
export type StreamMessage =
  | ({ type: 'calls' } & ICallsSnapshot)
  | ({ type: 'cluster' } & IClusterSnapshot)
  | ({ type: 'detail' } & ICallDetail);

/** What the panel sends on the websocket: show this call's detail with each push (null: none). */
export interface IWatchMessage {
  type: 'watch';
  call_id: string | null;
}

export interface ICancelReply {
  cancelled: boolean;
}
