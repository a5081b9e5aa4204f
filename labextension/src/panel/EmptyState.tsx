import * as React from 'react';

const EXAMPLE = `import nbfan, time as t
f = nbfan.App().function(t.sleep)
list(f.map([0.1] * 100))`;

/** What the panel shows before any call: what it is for, and three lines to try. */
export function EmptyState(): JSX.Element {
  return (
    <div className="jp-nbfan-empty">
      <p>
        No fan-out calls yet. Every <code>.map</code>, <code>.spawn</code> and <code>.remote</code>{' '}
        of every kernel on this cluster shows up here, live.
      </p>
      <p>Try it in a notebook:</p>
      <pre className="jp-nbfan-example">{EXAMPLE}</pre>
    </div>
  );
}
