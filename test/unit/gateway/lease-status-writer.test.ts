/** The pure parts of the status writer: the Lease decision and which status.parents to write. */
import { describe, expect, it } from 'vitest';
import { decide } from '../../../src/gateway/lease.js';
import { nextParents } from '../../../src/gateway/status-writer.js';
import type { RouteParentStatus } from '../../../src/gateway/status.js';

describe('Lease decision', () => {
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  it('acquires a missing or released lease, renews its own, follows a live holder, takes over an expired one', () => {
    expect(decide(undefined, 'a', t0)).toBe('acquire');
    expect(decide({ holderIdentity: '' }, 'a', t0)).toBe('acquire');
    expect(decide({ holderIdentity: 'a', renewTime: '2024-01-01T00:00:00Z' }, 'a', t0)).toBe('renew');
    expect(decide({ holderIdentity: 'b', renewTime: '2024-12-31T23:59:50.000000Z', leaseDurationSeconds: 15 }, 'a', t0)).toBe('follow');
    expect(decide({ holderIdentity: 'b', renewTime: '2024-12-31T23:59:45.000000Z', leaseDurationSeconds: 15 }, 'a', t0)).toBe('acquire');
  });
});

describe('status.parents to write', () => {
  const cond = (status: 'True' | 'False', reason: string, time?: string) => ({ type: 'Accepted' as const, status, reason, message: 'm', observedGeneration: 1, ...(time ? { lastTransitionTime: time } : {}) });
  const mine = (c: ReturnType<typeof cond>): RouteParentStatus => ({ parentRef: { group: '', kind: 'Service', name: 'cart' }, controllerName: 'remora.io/mesh-controller', conditions: [c] });
  const istio: RouteParentStatus = { parentRef: { group: '', kind: 'Service', name: 'cart' }, controllerName: 'istio.io/gateway-controller', conditions: [cond('True', 'Accepted', 'x')] };

  it('writes nothing when the status already says it; keeps other controllers and unchanged transition times', () => {
    const now = '2025-06-01T00:00:00Z';
    expect(nextParents([istio, mine(cond('True', 'Accepted', 'old'))], [mine(cond('True', 'Accepted'))], now)).toBeUndefined();
    const changed = nextParents([istio, mine(cond('True', 'Accepted', 'old'))], [mine({ ...cond('True', 'Accepted'), message: 'new' })], now)!;
    expect(changed[0]).toBe(istio);
    expect(changed[1]!.conditions[0]).toMatchObject({ message: 'new', lastTransitionTime: 'old' });
    const flipped = nextParents([mine(cond('True', 'Accepted', 'old'))], [mine(cond('False', 'NoMatchingParent'))], now)!;
    expect(flipped[0]!.conditions[0]!.lastTransitionTime).toBe(now);
    // A parentRef that went away is removed from our entries.
    expect(nextParents([istio, mine(cond('True', 'Accepted', 'old'))], [], now)).toEqual([istio]);
  });
});
