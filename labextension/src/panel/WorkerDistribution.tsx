import * as React from 'react';

import { percent, shortAddress } from './format';

/** How a call's finished inputs spread over the workers, busiest first. */
export function WorkerDistribution(props: {
  perWorker: { [worker: string]: number };
}): JSX.Element {
  const rows = Object.entries(props.perWorker).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) {
    return <div className="jp-nbfan-workers jp-nbfan-dim">No input has finished yet.</div>;
  }
  const max = Math.max(...rows.map(([, n]) => n), 1);
  return (
    <div className="jp-nbfan-workers" aria-label="inputs per worker">
      {rows.map(([worker, n]) => (
        <div className="jp-nbfan-worker" key={worker} data-worker={worker}>
          <span className="jp-nbfan-worker-name" title={worker}>
            {shortAddress(worker)}
          </span>
          <div className="jp-nbfan-meter-track">
            <div className="jp-nbfan-meter-fill" style={{ width: percent(n, max) }} />
          </div>
          <span className="jp-nbfan-worker-count">{n}</span>
        </div>
      ))}
    </div>
  );
}
