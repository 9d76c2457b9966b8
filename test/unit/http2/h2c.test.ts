import { describe, expect, it } from 'vitest';
import { asksH2c, h2cSettings } from '../../../src/http2/h2c.js';

describe('asksH2c: an h2c upgrade a listener does not take is never passed on', () => {
  it.each([
    [['Upgrade', 'h2c'], true],
    [['upgrade', 'H2C'], true],
    [['Upgrade', 'websocket, h2c'], true],
    [['UPGRADE', ' h2c '], true],
    [['Upgrade', 'websocket'], false],
    [['Upgrade', 'h2c2'], false],
    [['x-upgrade', 'h2c'], false],
    [[], false],
  ] as Array<[string[], boolean]>)('%j → %s', (raw, want) => {
    expect(asksH2c(raw)).toBe(want);
  });

  it('the upgrades h2cSettings refuses are still h2c upgrades (served as HTTP/1.1, not passed on)', () => {
    const lenient = ['Connection', 'Upgrade', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAAP__'];
    expect(h2cSettings(lenient)).toBeNull();
    expect(asksH2c(lenient)).toBe(true);
  });
});
