/**
 * One typed door to the nbfan server routes (/nbfan/api/...), through JupyterLab's
 * ServerConnection so the token, XSRF cookie and base URL are handled as for any Lab request.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PATH = 'nbfan/api';

/** The server answered with an error status (the message comes from its JSON body). */
export class NbfanAPIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'NbfanAPIError';
  }
}

/** Call `/nbfan/api/<endPoint>` and return its JSON body typed as `T`. */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text) as unknown;
    } catch {
      // not JSON: keep the text for the error message
    }
  }
  if (!response.ok) {
    throw new NbfanAPIError(response.status, errorMessage(data) || response.statusText);
  }
  return data as T;
}

/** The error text of a failed reply: its JSON `message` (or `reason`), or its plain text. */
function errorMessage(data: unknown): string {
  if (data && typeof data === 'object') {
    const body = data as { message?: unknown; reason?: unknown };
    const message = body.message || body.reason;
    if (!message) {
      return '';
    }
    return typeof message === 'string' ? message : JSON.stringify(message);
  }
  return typeof data === 'string' ? data : '';
}

/** The websocket URL of the live stream, with the token when Lab appends one. */
export function streamURL(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  let url = URLExt.join(settings.wsUrl, API_PATH, 'stream');
  if (settings.appendToken && settings.token !== '') {
    url += `?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}
