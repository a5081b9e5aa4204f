import * as React from 'react';

import { IOutputLine } from '../types';
import { clockTime, shortAddress } from './format';

/** Within this many pixels of the bottom, the list follows new lines. */
const STICK_PX = 8;

/** A call's latest output lines, oldest first, coloured by stream; follows new lines while
 * scrolled to the bottom. */
export function OutputLines(props: { lines: IOutputLine[]; running: boolean }): JSX.Element {
  const list = React.useRef<HTMLOListElement>(null);
  const atBottom = React.useRef(true);
  React.useLayoutEffect(() => {
    const node = list.current;
    if (node && atBottom.current) {
      node.scrollTop = node.scrollHeight;
    }
  }, [props.lines]);
  if (props.lines.length === 0) {
    return (
      <div className="jp-nbfan-detail-none">
        {props.running ? 'No output yet.' : 'It wrote no output.'}
      </div>
    );
  }
  return (
    <ol
      className="jp-nbfan-lines"
      ref={list}
      onScroll={e => {
        const node = e.currentTarget;
        atBottom.current = node.scrollHeight - node.scrollTop - node.clientHeight <= STICK_PX;
      }}
    >
      {props.lines.map((line, i) => (
        <LineItem key={i} line={line} />
      ))}
    </ol>
  );
}

/** One output line: its input index, then its text, coloured by stream (`stream` overrides the
 * data attribute, e.g. "progress" for a redrawn bar). */
export function LineItem(props: { line: IOutputLine; stream?: string }): JSX.Element {
  const { line } = props;
  return (
    <li
      className={`jp-nbfan-line jp-nbfan-stream-${line.stream}`}
      data-stream={props.stream ?? line.stream}
      data-input={line.input ?? ''}
      title={`${line.stream} at ${clockTime(line.time)}${line.worker ? ` on ${shortAddress(line.worker)}` : ''}`}
    >
      <span className="jp-nbfan-line-input">{line.input === null ? '' : `[${line.input}]`}</span>
      <span className="jp-nbfan-line-text">{line.text}</span>
    </li>
  );
}
