import * as React from 'react';

import { percent } from './format';

export interface IProgressBarProps {
  done: number;
  failed: number;
  running: number;
  /** null while the inputs are still being counted. */
  total: number | null;
  /** With no total: the call runs on, or ended before its inputs were all read; the bar's
   * end stays open (hatched) rather than looking complete. */
  open: boolean;
}

/** With no total known, what has been seen fills this much of the bar. */
const UNKNOWN_FILL = 0.75;

/** A stacked bar: done, failed and running inputs out of the total. */
export function ProgressBar(props: IProgressBarProps): JSX.Element {
  const { done, failed, running } = props;
  const seen = done + failed + running;
  const unknown = props.total === null && props.open;
  const whole = Math.max(props.total ?? 0, unknown ? seen / UNKNOWN_FILL : seen, 1);
  const label =
    props.total === null
      ? `${done + failed} finished, total not known yet`
      : `${done + failed} of ${props.total} finished`;
  return (
    <div
      className="jp-nbfan-bar"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={props.total ?? undefined}
      aria-valuenow={done + failed}
      data-unknown-total={unknown ? 'true' : undefined}
    >
      <div className="jp-nbfan-bar-done" style={{ width: percent(done, whole) }} />
      <div className="jp-nbfan-bar-failed" style={{ width: percent(failed, whole) }} />
      <div className="jp-nbfan-bar-running" style={{ width: percent(running, whole) }} />
    </div>
  );
}
