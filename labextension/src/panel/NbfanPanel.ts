/**
 * The sidebar widget: a JupyterLab SidePanel whose body is the React view of a LiveModel.
 */
import { ReactWidget, SidePanel } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import * as React from 'react';

import { nbfanIcon } from '../icon';
import { LiveModel } from '../live';
import { NbfanView } from './NbfanView';

export class NbfanPanel extends SidePanel {
  constructor(readonly model: LiveModel = new LiveModel()) {
    super({ content: new Panel() });
    this.id = 'nbfan-panel';
    this.addClass('jp-nbfan-panel');
    this.title.icon = nbfanIcon;
    this.title.caption = 'nbfan: live fan-out calls';

    const heading = new Widget({ node: document.createElement('h2') });
    heading.node.textContent = 'nbfan';
    heading.addClass('jp-nbfan-heading');
    this.header.addWidget(heading);

    const body = ReactWidget.create(React.createElement(NbfanView, { model }));
    body.addClass('jp-nbfan-body');
    this.addWidget(body);
    model.start();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
