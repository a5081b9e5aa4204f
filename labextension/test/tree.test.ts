import { describe, expect, it } from 'vitest';

import { asTree } from '../src/panel/tree';
import { call } from './calls';

describe('asTree', () => {
  it('puts each call under the call it was made inside, at any depth, in snapshot order', () => {
    const calls = [
      call({ call_id: 'child', parent: 'root' }),
      call({ call_id: 'root' }),
      call({ call_id: 'grandchild', parent: 'child' }),
      call({ call_id: 'other' }),
      call({ call_id: 'second-child', parent: 'root' })
    ];
    expect(asTree(calls).map(e => [e.call.call_id, e.depth])).toEqual([
      ['root', 0],
      ['child', 1],
      ['grandchild', 2],
      ['second-child', 1],
      ['other', 0]
    ]);
  });

  it('shows a call whose parent is not in the snapshot at the top level', () => {
    const calls = [call({ call_id: 'orphan', parent: 'gone' })];
    expect(asTree(calls)).toEqual([{ call: calls[0], depth: 0 }]);
  });
});
