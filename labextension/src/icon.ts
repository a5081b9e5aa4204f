import { LabIcon } from '@jupyterlab/ui-components';

/** One source fanning out to three: the sidebar tab icon (jp-icon3 follows the theme). */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="5" cy="12" r="3"/>
    <circle cx="19" cy="5" r="2.5"/>
    <circle cx="19" cy="12" r="2.5"/>
    <circle cx="19" cy="19" r="2.5"/>
    <path d="M7.5 10.6 16.6 5.8l.7 1.3-9.1 4.8zM8 11.2h8.5v1.6H8zM7.5 13.4l.7-1.3 9.1 4.8-.7 1.3z"/>
  </g>
</svg>`;

export const nbfanIcon = new LabIcon({ name: 'nbfan:fan', svgstr });
