import { describe, expect, it } from 'vitest';

import { sortCalls } from '../src/panel/order';
import { call } from './calls';

describe('sortCalls', () => {
  it('puts running calls first, newest first, then finished ones by when they ended', () => {
    const calls = [
      call({ call_id: 'old-done', state: 'done', started: 1, ended: 5 }),
      call({ call_id: 'running-early', started: 2 }),
      call({ call_id: 'late-failed', state: 'failed', started: 3, ended: 9 }),
      call({ call_id: 'running-late', started: 8 }),
      call({ call_id: 'cancelled-no-end', state: 'cancelled', started: 7, ended: null })
    ];
    expect(sortCalls(calls).map(c => c.call_id)).toEqual([
      'running-late',
      'running-early',
      'late-failed',
      'cancelled-no-end',
      'old-done'
    ]);
  });

  it('leaves its input as it was', () => {
    const calls = [call({ call_id: 'a', started: 1 }), call({ call_id: 'b', started: 2 })];
    sortCalls(calls);
    expect(calls.map(c => c.call_id)).toEqual(['a', 'b']);
  });
});
