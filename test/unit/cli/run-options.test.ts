/** `remora run` flags parsed into RunOptions (only what a test needs beyond the CLI integration tests). */
import { describe, it, expect } from 'vitest';
import { runOptionsFrom } from '../../../src/cli/run.js';

const opts = (...args: string[]): Exclude<ReturnType<typeof runOptionsFrom>, 'help'> => {
  const o = runOptionsFrom(['--config', '/nowhere', ...args], {});
  if (o === 'help') throw new Error('help');
  return o;
};

describe('--tunnel-idle-timeout', () => {
  it('defaults to 1 h (Envoy stream idle timeout for upgrades)', () => {
    expect(opts().tunnelIdleTimeoutMs).toBe(3_600_000);
  });

  it('takes a duration, a bare number of ms, or 0 (never)', () => {
    expect(opts('--tunnel-idle-timeout', '30m').tunnelIdleTimeoutMs).toBe(1_800_000);
    expect(opts('--tunnel-idle-timeout', '1h30m').tunnelIdleTimeoutMs).toBe(5_400_000);
    expect(opts('--tunnel-idle-timeout', '250').tunnelIdleTimeoutMs).toBe(250);
    expect(opts('--tunnel-idle-timeout', '0').tunnelIdleTimeoutMs).toBe(0);
    expect(runOptionsFrom(['--config', '/x'], { REMORA_TUNNEL_IDLE_TIMEOUT: '10s' })).toMatchObject({ tunnelIdleTimeoutMs: 10_000 });
  });

  it('refuses what is not a duration', () => {
    expect(() => opts('--tunnel-idle-timeout', 'soon')).toThrow(/--tunnel-idle-timeout must be a duration/);
    expect(() => opts('--tunnel-idle-timeout', '-1s')).toThrow(/--tunnel-idle-timeout/);
  });
});

describe('--mirror-body-bytes', () => {
  it('is unset by default (the proxy then uses --retry-buffer-bytes), else a whole number of bytes', () => {
    expect(opts().mirrorBodyBytes).toBeUndefined();
    expect(opts('--mirror-body-bytes', '1048576').mirrorBodyBytes).toBe(1_048_576);
    expect(opts('--mirror-body-bytes', '0').mirrorBodyBytes).toBe(0);
    expect(runOptionsFrom(['--config', '/x'], { REMORA_MIRROR_BODY_BYTES: '4096' })).toMatchObject({ mirrorBodyBytes: 4096 });
  });

  it('refuses what is not a whole number of bytes', () => {
    expect(() => opts('--mirror-body-bytes', '1.5')).toThrow(/--mirror-body-bytes must be a whole number of bytes/);
    expect(() => opts('--mirror-body-bytes', '-1')).toThrow(/--mirror-body-bytes/);
    expect(() => opts('--mirror-body-bytes', '64k')).toThrow(/--mirror-body-bytes/);
  });
});

describe('the environment is read here, in the CLI layer, and handed down as options', () => {
  it('POD_NAME, REMORA_CREDENTIALS_DIR, REMORA_ORIGINAL_DST and REMORA_CLUSTER_SCHED become RunOptions', () => {
    const o = runOptionsFrom(['--config', '/x'], { POD_NAME: 'reviews-v1-7d9f-abcde', REMORA_CREDENTIALS_DIR: '/creds', REMORA_ORIGINAL_DST: 'conntrack', REMORA_CLUSTER_SCHED: 'none' });
    expect(o).toMatchObject({ podName: 'reviews-v1-7d9f-abcde', workloadName: 'reviews-v1', credentialsDir: '/creds', originalDst: 'conntrack', clusterSched: 'none' });
  });

  it('leaves them unset without the variables (the modules keep their defaults)', () => {
    const o = opts();
    expect(o.podName).toBeUndefined();
    expect(o.credentialsDir).toBeUndefined();
    expect(o.originalDst).toBeUndefined();
    expect(o.clusterSched).toBeUndefined();
  });
});
