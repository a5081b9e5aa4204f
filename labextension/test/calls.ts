import { ICallSnapshot } from '../src/types';

/** A call snapshot as the server sends it, with the fields a test cares about given. */
export function call(fields: Partial<ICallSnapshot> & { call_id: string }): ICallSnapshot {
  return {
    parent: null,
    function: 'f',
    app: null,
    kind: 'map',
    caller: { kind: 'script', host: 'h', pid: 1, label: 'job.py', notebook: null },
    state: 'running',
    total: 10,
    done: 0,
    failed: 0,
    running: 0,
    retried: 0,
    per_worker: {},
    started: 0,
    ended: null,
    rate: 0,
    ...fields
  };
}
