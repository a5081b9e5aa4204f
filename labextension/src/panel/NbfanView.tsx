import * as React from 'react';

import { LiveModel, LinkState } from '../live';
import { CallRow } from './CallRow';
import { RenderClock } from './clock';
import { ClusterCard } from './ClusterCard';
import { EmptyState } from './EmptyState';
import { asTree } from './tree';

const LINK_TEXT: { [link in LinkState]: string } = {
  connecting: 'connecting…',
  live: 'live',
  polling: 'polling',
  offline: 'offline'
};

/** Re-render whenever the clock says so: on model changes and each second, while visible. */
function useClock(clock: RenderClock): void {
  const [, setVersion] = React.useState(0);
  React.useEffect(() => {
    const bump = () => setVersion(v => v + 1);
    clock.ticked.connect(bump);
    return () => {
      clock.ticked.disconnect(bump);
    };
  }, [clock]);
}

/** The whole panel body: link status, the cluster card and the calls, running first. */
export function NbfanView(props: { model: LiveModel; clock: RenderClock }): JSX.Element {
  const { model } = props;
  useClock(props.clock);
  // One call open at a time: the server pushes the detail of one watched call per panel.
  const [expanded, setExpanded] = React.useState<string | null>(null);
  const [cancelling, setCancelling] = React.useState<Set<string>>(new Set());
  const [cancelError, setCancelError] = React.useState<string | null>(null);

  const toggle = (id: string) => setExpanded(old => (old === id ? null : id));
  React.useEffect(() => model.watch(expanded), [model, expanded]);
  const cancel = (id: string) => {
    setCancelling(old => new Set(old).add(id));
    setCancelError(null);
    model
      .cancel(id)
      .catch((error: unknown) =>
        setCancelError(
          `Could not cancel: ${error instanceof Error ? error.message : String(error)}`
        )
      )
      .finally(() =>
        setCancelling(old => {
          const next = new Set(old);
          next.delete(id);
          return next;
        })
      );
  };

  const now = Date.now() / 1000 + model.clockOffset;
  const calls = model.calls;
  const running = calls.filter(c => c.state === 'running').length;
  return (
    <div className="jp-nbfan-view" data-link={model.link}>
      <div className="jp-nbfan-section-title">
        <span>Cluster</span>
        <span
          className={`jp-nbfan-link-state jp-nbfan-link-${model.link}`}
          title={model.error ?? ''}
        >
          {LINK_TEXT[model.link]}
        </span>
      </div>
      {model.link === 'offline' && model.error && (
        <div className="jp-nbfan-error">No live data: {model.error}</div>
      )}
      <ClusterCard cluster={model.cluster} />
      <div className="jp-nbfan-section-title">
        <span>Calls</span>
        <span className="jp-nbfan-dim">{running > 0 ? `${running} running` : ''}</span>
      </div>
      {cancelError && <div className="jp-nbfan-error">{cancelError}</div>}
      {calls.length === 0 ? (
        <EmptyState />
      ) : (
        <ul className="jp-nbfan-calls">
          {asTree(calls).map(({ call, depth }) => (
            <CallRow
              key={call.call_id}
              call={call}
              depth={depth}
              now={now}
              expanded={expanded === call.call_id}
              detail={expanded === call.call_id ? model.detail : null}
              detailError={expanded === call.call_id ? model.detailError : null}
              cancelling={cancelling.has(call.call_id)}
              onToggle={toggle}
              onCancel={cancel}
            />
          ))}
        </ul>
      )}
    </div>
  );
}
