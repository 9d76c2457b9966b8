// The pure parts moved out of src/app.ts: the /stats views of the exposition, the PEM count, the PeerAuthentication
// key and its unenforced-STRICT warning (once per set of policies), and the in-flight count the drain waits on.
import { describe, expect, it } from 'vitest';
import { pemCount, statsJson, statsText } from '../../../src/app-views.js';
import { peerAuthnKey, warnUnenforcedMtls } from '../../../src/app-mtls.js';
import { InFlight } from '../../../src/app-drain.js';
import { Logger } from '../../../src/util/logger.js';
import type { EffectivePeerAuthn } from '../../../src/security/peer-authentication.js';

const EXPOSITION = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1 2"} 3\nb 4.5\n';

describe('admin views', () => {
  it('/stats is the exposition without comments; its JSON splits at the last space', () => {
    expect(statsText(EXPOSITION)).toBe('a_total{x="1 2"} 3\nb 4.5\n');
    expect(statsJson(statsText(EXPOSITION))).toEqual({ stats: [{ name: 'a_total{x="1 2"}', value: 3 }, { name: 'b', value: 4.5 }] });
  });

  it('counts the certificates of a PEM bundle', () => {
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(pemCount('')).toBe(0);
    expect(pemCount(cert + cert)).toBe(2);
  });
});

describe('PeerAuthentication', () => {
  const pa = (mode: EffectivePeerAuthn['mode'], ports: Array<[number, EffectivePeerAuthn['mode']]> = [], policies: string[] = []): EffectivePeerAuthn =>
    ({ mode, ports: new Map(ports), policies }) as EffectivePeerAuthn;

  it('keys the mode and the port modes', () => {
    expect(peerAuthnKey(pa('PERMISSIVE'))).toBe('PERMISSIVE|');
    expect(peerAuthnKey(pa('STRICT', [[8080, 'PERMISSIVE'], [9090, 'DISABLE']]))).toBe('STRICT|8080=PERMISSIVE,9090=DISABLE');
  });

  it('warns about an unenforced STRICT once per set of policies', () => {
    const lines: string[] = [];
    const logger = new Logger('info', (l) => { lines.push(l); });
    let warned = '';
    warned = warnUnenforcedMtls(pa('STRICT', [], ['ns/a']), warned, logger);
    warned = warnUnenforcedMtls(pa('STRICT', [], ['ns/a']), warned, logger);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', policies: ['ns/a'] });
    warned = warnUnenforcedMtls(pa('PERMISSIVE', [[80, 'STRICT']], ['ns/b']), warned, logger);
    expect(lines).toHaveLength(2);
    warned = warnUnenforcedMtls(pa('PERMISSIVE'), warned, logger);
    expect(warned).toBe('');
    warned = warnUnenforcedMtls(pa('STRICT', [], ['ns/a']), warned, logger);
    expect(lines).toHaveLength(3);
  });
});

describe('requests in flight', () => {
  it('calls the drain waiters once the last response closes', () => {
    const f = new InFlight();
    let woken = 0;
    f.active += 2;
    f.waiters.push(() => { woken++; });
    f.ended();
    expect(woken).toBe(0);
    f.ended();
    expect(woken).toBe(1);
    expect(f.waiters).toHaveLength(0);
  });
});
