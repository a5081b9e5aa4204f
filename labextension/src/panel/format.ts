/** Small, pure formatters for the panel's numbers. */

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) {
    return '–';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)}s`;
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatRate(perSecond: number): string {
  if (!isFinite(perSecond) || perSecond <= 0) {
    return '–';
  }
  if (perSecond >= 1000) {
    return `${(perSecond / 1000).toFixed(1)}k/s`;
  }
  return `${perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(1)}/s`;
}

/** "tcp://127.0.0.1:40123" -> "127.0.0.1:40123": worker addresses without the protocol. */
export function shortAddress(address: string): string {
  return address.replace(/^[a-z]+:\/\//, '');
}

/** A fraction in [0, 1] as a CSS width. */
export function percent(part: number, whole: number): string {
  if (whole <= 0) {
    return '0%';
  }
  return `${Math.max(0, Math.min(100, (100 * part) / whole))}%`;
}

/** "builtins.ValueError" -> "ValueError"; other modules' exceptions keep their module. */
export function shortExcType(qualified: string): string {
  return qualified.startsWith('builtins.') ? qualified.slice('builtins.'.length) : qualified;
}

/** "ValueError: three", or just the type when the exception has no message. */
export function failureText(excType: string, message: string): string {
  const type = shortExcType(excType);
  return message ? `${type}: ${message}` : type;
}

/** "1 attempt", "3 attempts". */
export function attemptsText(attempts: number): string {
  return attempts === 1 ? '1 attempt' : `${attempts} attempts`;
}

/** Epoch seconds as the browser's local wall-clock time, "14:03:07". */
export function clockTime(epochSeconds: number): string {
  if (!isFinite(epochSeconds)) {
    return '–';
  }
  const d = new Date(epochSeconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}
