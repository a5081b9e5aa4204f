import * as React from 'react';

import { ICallDetail } from '../types';
import { FailureList } from './FailureList';
import { LineItem, OutputLines } from './OutputLines';

export interface ICallDetailProps {
  callId: string;
  /** While the call runs, more may come. */
  running: boolean;
  /** null until the first answer came. */
  detail: ICallDetail | null;
  /** Why it could not be read, if the last attempt failed. */
  error: string | null;
}

/** What a clicked call did: its failed inputs and its latest output lines, live. */
export function CallDetail(props: ICallDetailProps): JSX.Element {
  const { detail } = props;
  return (
    <div
      className="jp-nbfan-detail"
      data-call-id={props.callId}
      data-loaded={detail ? 'true' : 'false'}
      // Reading (selecting text, opening a traceback) does not close the call.
      onClick={e => e.stopPropagation()}
      onKeyDown={e => e.stopPropagation()}
    >
      {props.error && <div className="jp-nbfan-error">Could not read the call: {props.error}</div>}
      {detail === null ? (
        !props.error && <div className="jp-nbfan-detail-none">Loading…</div>
      ) : (
        <>
          <div className="jp-nbfan-detail-title">
            <span>Failed inputs</span>
            {detail.failures.length > 0 && (
              <span className="jp-nbfan-failed-text">{detail.failures.length}</span>
            )}
          </div>
          <FailureList failures={detail.failures} />
          <div className="jp-nbfan-detail-title">
            <span>Latest output</span>
            <code className="jp-nbfan-dim" title="every line this call wrote, in a terminal">
              nbfan logs {props.callId}
            </code>
          </div>
          {detail.held > 0 && (
            <div className="jp-nbfan-detail-note">
              {detail.held} lines over the forwarding rate did not reach the caller; nbfan logs
              reads them.
            </div>
          )}
          <OutputLines lines={detail.lines} running={props.running} />
          {props.running && detail.progress.length > 0 && (
            <ol className="jp-nbfan-lines jp-nbfan-progress-lines">
              {detail.progress.map(line => (
                <LineItem key={line.input ?? ''} line={line} stream="progress" />
              ))}
            </ol>
          )}
        </>
      )}
    </div>
  );
}
