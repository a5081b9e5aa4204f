/**
 * When the panel body re-renders: on every change of the model, and once a second so elapsed
 * times and ETAs tick, but only while the panel is visible. While it is hidden (the sidebar
 * collapsed, another panel in front, or the browser tab in the background) nothing re-renders;
 * shown again, it renders at once and ticks on.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { LiveModel } from '../live';

const TICK_MS = 1000;

export class RenderClock {
  constructor(private readonly model: LiveModel) {
    this._poll = new Poll<void, Error>({
      auto: false,
      factory: () => Promise.resolve(this._ticked.emit()),
      frequency: { interval: TICK_MS, backoff: false },
      name: 'nbfan:clock',
      // a background tab skips the ticks (Poll lingers one tick, then stands by)
      standby: 'when-hidden'
    });
    model.changed.connect(this._onModelChanged);
  }

  /** Emitted when the view should render again. */
  get ticked(): ISignal<this, void> {
    return this._ticked;
  }

  /** Whether the panel is visible, so the clock ticks. */
  get isVisible(): boolean {
    return this._visible;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Follow the panel's visibility: shown, render now and tick; hidden, stop. */
  setVisible(visible: boolean): void {
    if (this._disposed || visible === this._visible) {
      return;
    }
    this._visible = visible;
    void (visible ? this._poll.start() : this._poll.stop());
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._visible = false;
    this._poll.dispose();
    this.model.changed.disconnect(this._onModelChanged);
    Signal.clearData(this);
  }

  /** An arrow function, so it can be connected without a `this` argument. */
  private readonly _onModelChanged = (): void => {
    // While hidden a change is not rendered: the tick on showing renders the latest state.
    if (this._visible && !document.hidden) {
      this._ticked.emit();
    }
  };

  private _disposed = false;
  private _visible = false;
  private readonly _poll: Poll<void, Error>;
  private _ticked = new Signal<this, void>(this);
}
