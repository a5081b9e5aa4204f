import { stopIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ICallDetail, ICallSnapshot } from '../types';
import { CallDetail } from './CallDetail';
import { formatDuration, formatRate } from './format';
import { ProgressBar } from './ProgressBar';
import { WorkerDistribution } from './WorkerDistribution';

export interface ICallRowProps {
  call: ICallSnapshot;
  /** How deep the call sits under the calls it was made inside (0: a top-level call). */
  depth: number;
  /** Now, on the server's clock (epoch seconds). */
  now: number;
  expanded: boolean;
  /** The expanded call's detail (failed inputs, latest output), null until it came. */
  detail: ICallDetail | null;
  detailError: string | null;
  cancelling: boolean;
  onToggle: (callId: string) => void;
  onCancel: (callId: string) => void;
}

function outcome(call: ICallSnapshot): string {
  const took = formatDuration((call.ended ?? call.started) - call.started);
  switch (call.state) {
    case 'done':
      return `done in ${took}`;
    case 'failed':
      return `failed after ${took}`;
    case 'cancelled':
      return `cancelled after ${took}`;
    default:
      return call.state;
  }
}

function counts(call: ICallSnapshot): string {
  const finished = call.done + call.failed;
  return call.total === null ? `${finished} / ?` : `${finished} / ${call.total}`;
}

/** One call: what it runs, who started it, how far it got, and a way to stop it. */
export function CallRow(props: ICallRowProps): JSX.Element {
  const { call, now } = props;
  const running = call.state === 'running';
  const elapsed = (running ? now : (call.ended ?? now)) - call.started;
  const remaining = call.total === null ? null : call.total - call.done - call.failed;
  const eta = running && remaining !== null && call.rate > 0 ? remaining / call.rate : null;
  const caller = call.caller;
  return (
    <li
      className={`jp-nbfan-call jp-nbfan-state-${call.state}${props.depth > 0 ? ' jp-nbfan-child-call' : ''}`}
      style={props.depth > 0 ? { marginLeft: `${props.depth * 14}px` } : undefined}
      data-call-id={call.call_id}
      data-parent={call.parent ?? ''}
      data-depth={props.depth}
      data-function={call.function}
      data-state={call.state}
      data-done={call.done}
      data-failed={call.failed}
      data-total={call.total ?? ''}
      aria-expanded={props.expanded}
      tabIndex={0}
      onClick={() => props.onToggle(call.call_id)}
      onKeyDown={e => {
        if (e.target === e.currentTarget && (e.key === 'Enter' || e.key === ' ')) {
          e.preventDefault();
          props.onToggle(call.call_id);
        }
      }}
    >
      <div className="jp-nbfan-call-head">
        <span
          className="jp-nbfan-call-fn"
          title={call.app ? `${call.app}.${call.function}` : call.function}
        >
          {call.function}
        </span>
        <span className="jp-nbfan-call-kind">{call.kind}</span>
        {running && (
          <span className="jp-nbfan-call-cancel" onClick={e => e.stopPropagation()}>
            <ToolbarButtonComponent
              icon={stopIcon}
              tooltip={
                props.cancelling ? 'Cancelling…' : 'Cancel: start none of its remaining inputs'
              }
              enabled={!props.cancelling}
              onClick={() => props.onCancel(call.call_id)}
              dataset={{ action: 'cancel' }}
            />
          </span>
        )}
      </div>
      <div
        className="jp-nbfan-call-caller"
        title={`${caller.kind} on ${caller.host} (pid ${caller.pid})`}
      >
        {caller.label}
      </div>
      <ProgressBar
        done={call.done}
        failed={call.failed}
        running={call.running}
        total={call.total}
        open={running || call.total === null}
      />
      <div className="jp-nbfan-call-stats">
        <span className="jp-nbfan-call-counts">{counts(call)}</span>
        {call.failed > 0 && <span className="jp-nbfan-failed-text">{call.failed} failed</span>}
        {call.retried > 0 && <span>{call.retried} retried</span>}
        {running && <span>{call.running} running</span>}
        <span className="jp-nbfan-call-times">
          {running ? (
            <>
              <span title="inputs per second, recent">{formatRate(call.rate)}</span>
              <span title="elapsed">{formatDuration(elapsed)}</span>
              <span title="estimated time left">ETA {formatDuration(eta)}</span>
            </>
          ) : (
            <span className="jp-nbfan-outcome">{outcome(call)}</span>
          )}
        </span>
      </div>
      {props.expanded && (
        <>
          <WorkerDistribution perWorker={call.per_worker} />
          <CallDetail
            callId={call.call_id}
            running={running}
            detail={props.detail}
            error={props.detailError}
          />
        </>
      )}
    </li>
  );
}
