/**
 * The sidebar widget: a JupyterLab SidePanel whose body is the React view of a LiveModel. The
 * body re-renders only while the panel is visible (see RenderClock).
 */
import { ReactWidget, SidePanel } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';
import * as React from 'react';

import { nbfanIcon } from '../icon';
import { LiveModel } from '../live';
import { RenderClock } from './clock';
import { NbfanView } from './NbfanView';

export class NbfanPanel extends SidePanel {
  constructor(readonly model: LiveModel = new LiveModel()) {
    super({ content: new Panel() });
    this._clock = new RenderClock(model);
    this.id = 'nbfan-panel';
    this.addClass('jp-nbfan-panel');
    this.title.icon = nbfanIcon;
    this.title.caption = 'nbfan: live fan-out calls';

    const heading = new Widget({ node: document.createElement('h2') });
    heading.node.textContent = 'nbfan';
    heading.addClass('jp-nbfan-heading');
    this.header.addWidget(heading);

    const body = ReactWidget.create(React.createElement(NbfanView, { model, clock: this._clock }));
    body.addClass('jp-nbfan-body');
    this.addWidget(body);
    model.start();
  }

  dispose(): void {
    this._clock.dispose();
    this.model.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._clock.setVisible(this.isVisible);
  }

  protected onAfterDetach(msg: Message): void {
    super.onAfterDetach(msg);
    this._clock.setVisible(this.isVisible);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._clock.setVisible(this.isVisible);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._clock.setVisible(this.isVisible);
  }

  private readonly _clock: RenderClock;
}
