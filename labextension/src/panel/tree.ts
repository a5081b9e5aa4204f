import { ICallSnapshot } from '../types';

/** A call and how deep it sits under the calls it was made inside. */
export interface ITreeEntry {
  call: ICallSnapshot;
  depth: number;
}

/**
 * The calls in the snapshot's order, each followed by the calls made inside it (a function
 * calling another), at any depth. A parent's progress counts its own inputs; its children
 * show theirs under it.
 */
export function asTree(calls: ICallSnapshot[]): ITreeEntry[] {
  const ids = new Set(calls.map(c => c.call_id));
  const children = new Map<string, ICallSnapshot[]>();
  for (const call of calls) {
    if (call.parent !== null && ids.has(call.parent)) {
      const siblings = children.get(call.parent) ?? [];
      siblings.push(call);
      children.set(call.parent, siblings);
    }
  }
  const ordered: ITreeEntry[] = [];
  const add = (call: ICallSnapshot, depth: number): void => {
    ordered.push({ call, depth });
    for (const child of children.get(call.call_id) ?? []) {
      add(child, depth + 1);
    }
  };
  for (const call of calls) {
    if (call.parent === null || !ids.has(call.parent)) {
      add(call, 0);
    }
  }
  return ordered;
}
