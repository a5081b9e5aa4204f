import * as React from 'react';

import { IFailure } from '../types';
import { attemptsText, clockTime, failureText, shortAddress } from './format';

/** One failed input: which, what it raised, where, after how many attempts, and its traceback. */
function FailureItem(props: { failure: IFailure }): JSX.Element {
  const { failure } = props;
  return (
    <li className="jp-nbfan-failure" data-input={failure.input} data-exc-type={failure.exc_type}>
      <div className="jp-nbfan-failure-head">
        <span className="jp-nbfan-failure-input">input {failure.input}</span>
        <span className="jp-nbfan-failure-error" title={failure.exc_type}>
          {failureText(failure.exc_type, failure.message)}
        </span>
      </div>
      <div className="jp-nbfan-failure-meta">
        {failure.worker && <span title={failure.worker}>{shortAddress(failure.worker)}</span>}
        <span>{attemptsText(failure.attempts)}</span>
        <span>{clockTime(failure.time)}</span>
      </div>
      {failure.traceback && (
        <details className="jp-nbfan-traceback">
          <summary>Traceback</summary>
          <pre>{failure.traceback}</pre>
        </details>
      )}
    </li>
  );
}

/** A call's failed inputs, in input order. */
export function FailureList(props: { failures: IFailure[] }): JSX.Element {
  if (props.failures.length === 0) {
    return <div className="jp-nbfan-detail-none">No input has failed.</div>;
  }
  return (
    <ul className="jp-nbfan-failures">
      {props.failures.map(f => (
        <FailureItem key={f.input} failure={f} />
      ))}
    </ul>
  );
}
