import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

import { NbfanPanel } from './panel/NbfanPanel';

/** The nbfan sidebar: every fan-out of every kernel on the shared cluster, live. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbfan:panel',
  description: 'A left-sidebar panel that shows nbfan fan-out calls live.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new NbfanPanel();
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);
  }
};

export default plugin;
