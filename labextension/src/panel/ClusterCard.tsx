import * as React from 'react';

import { IClusterSnapshot, IGpu } from '../types';
import { formatBytes, percent, shortAddress } from './format';

function Meter(props: { label: string; value: number; max: number; text: string }): JSX.Element {
  return (
    <div className="jp-nbfan-meter" title={`${props.label}: ${props.text}`}>
      <span className="jp-nbfan-meter-label">{props.label}</span>
      <div className="jp-nbfan-meter-track">
        <div className="jp-nbfan-meter-fill" style={{ width: percent(props.value, props.max) }} />
      </div>
      <span className="jp-nbfan-meter-text">{props.text}</span>
    </div>
  );
}

function GpuRow(props: { gpu: IGpu }): JSX.Element {
  const { gpu } = props;
  const util = gpu.utilization;
  const used = gpu.memory_used;
  const total = gpu.memory_total;
  return (
    <div className="jp-nbfan-gpu">
      <div className="jp-nbfan-gpu-name" title={gpu.worker}>
        {gpu.model} <span className="jp-nbfan-dim">{shortAddress(gpu.worker)}</span>
      </div>
      <Meter
        label="util"
        value={util ?? 0}
        max={100}
        text={util === null ? 'n/a' : `${Math.round(util)}%`}
      />
      <Meter
        label="mem"
        value={used ?? 0}
        max={total ?? 1}
        text={
          used === null || total === null ? 'n/a' : `${formatBytes(used)} / ${formatBytes(total)}`
        }
      />
    </div>
  );
}

/** The cluster the kernels share: where it is, how big it is, its GPUs and dashboard. */
export function ClusterCard(props: { cluster: IClusterSnapshot | null }): JSX.Element {
  const { cluster } = props;
  if (!cluster) {
    return <div className="jp-nbfan-cluster jp-nbfan-dim">Looking for the cluster…</div>;
  }
  return (
    <div className="jp-nbfan-cluster">
      <code className="jp-nbfan-cluster-address" title="scheduler address">
        {cluster.address}
      </code>
      <div className="jp-nbfan-cluster-stats">
        <span>
          <b>{cluster.workers}</b> {cluster.workers === 1 ? 'worker' : 'workers'}
        </span>
        <span>
          <b>{cluster.threads}</b> cores
        </span>
        <span>
          <b>{formatBytes(cluster.memory)}</b>
        </span>
        {cluster.gpus.length > 0 && (
          <span>
            <b>{cluster.gpus.length}</b> {cluster.gpus.length === 1 ? 'GPU' : 'GPUs'}
          </span>
        )}
        {cluster.dashboard && (
          <a
            className="jp-nbfan-link"
            href={cluster.dashboard}
            target="_blank"
            rel="noopener noreferrer"
            title="Open the Dask dashboard"
          >
            Dashboard ↗
          </a>
        )}
      </div>
      {cluster.gpus.map((gpu, i) => (
        <GpuRow key={`${gpu.worker}-${i}`} gpu={gpu} />
      ))}
    </div>
  );
}
