import { describe, expect, it } from 'vitest';

import {
  attemptsText,
  clockTime,
  failureText,
  formatBytes,
  formatDuration,
  formatRate,
  percent,
  shortAddress,
  shortExcType
} from '../src/panel/format';

describe('formatDuration', () => {
  it.each([
    [null, '–'],
    [undefined, '–'],
    [-1, '–'],
    [Infinity, '–'],
    [0, '0.0s'],
    [9.94, '9.9s'],
    [42.4, '42s'],
    [61, '1m 01s'],
    [3600 + 5 * 60 + 9, '1h 05m']
  ])('%s -> %s', (seconds, shown) => {
    expect(formatDuration(seconds)).toBe(shown);
  });
});

describe('formatBytes', () => {
  it.each([
    [null, '–'],
    [512, '512 B'],
    [1536, '1.5 KiB'],
    [200 * 2 ** 20, '200 MiB'],
    [3 * 2 ** 40, '3.0 TiB'],
    [5 * 2 ** 50, '5120 TiB']
  ])('%s -> %s', (bytes, shown) => {
    expect(formatBytes(bytes)).toBe(shown);
  });
});

describe('formatRate', () => {
  it.each([
    [0, '–'],
    [NaN, '–'],
    [2.345, '2.3/s'],
    [42.5, '43/s'],
    [12345, '12.3k/s']
  ])('%s -> %s', (rate, shown) => {
    expect(formatRate(rate)).toBe(shown);
  });
});

describe('the small ones', () => {
  it('shortens worker addresses', () => {
    expect(shortAddress('tcp://127.0.0.1:40123')).toBe('127.0.0.1:40123');
    expect(shortAddress('tls://host:1')).toBe('host:1');
  });

  it('clamps widths', () => {
    expect(percent(5, 10)).toBe('50%');
    expect(percent(20, 10)).toBe('100%');
    expect(percent(-1, 10)).toBe('0%');
    expect(percent(1, 0)).toBe('0%');
  });

  it('names exceptions as users write them', () => {
    expect(shortExcType('builtins.ValueError')).toBe('ValueError');
    expect(shortExcType('mymod.Oops')).toBe('mymod.Oops');
    expect(failureText('builtins.KeyError', "'four'")).toBe("KeyError: 'four'");
    expect(failureText('builtins.StopIteration', '')).toBe('StopIteration');
    expect(attemptsText(1)).toBe('1 attempt');
    expect(attemptsText(3)).toBe('3 attempts');
  });

  it('shows clock times in the local zone', () => {
    const epoch = new Date(2026, 11, 6, 14, 3, 7).getTime() / 1000;
    expect(clockTime(epoch)).toBe('14:03:07');
    expect(clockTime(NaN)).toBe('–');
  });
});
