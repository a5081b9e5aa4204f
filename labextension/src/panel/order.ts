import { ICallSnapshot } from '../types';

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
