/** NetworkPolicy ingress semantics, table-driven against one served pod. */
import { describe, expect, it } from 'vitest';
import { compileNetworkPolicies, type NetworkPolicyLike, type Peer } from '../../../src/authz/network-policy.js';
import { cidrContains, parseCidr, parseIp } from '../../../src/authz/cidr.js';

const np = (name: string, spec: Record<string, unknown>, namespace = 'shop'): NetworkPolicyLike => ({ metadata: { name, namespace }, spec });
const POD = { app: 'reviews', version: 'v1' };
const NS = new Map<string, Record<string, string>>([
  ['shop', { 'kubernetes.io/metadata.name': 'shop', team: 'store' }],
  ['web', { 'kubernetes.io/metadata.name': 'web', team: 'store', tier: 'front' }],
  ['evil', { 'kubernetes.io/metadata.name': 'evil' }],
]);

const frontendInShop: Peer = { ip: '10.0.0.5', podLabels: { app: 'frontend' }, namespace: 'shop' };
const frontendInWeb: Peer = { ip: '10.0.1.5', podLabels: { app: 'frontend' }, namespace: 'web' };
const otherInShop: Peer = { ip: '10.0.0.6', podLabels: { app: 'other' }, namespace: 'shop' };
const podInEvil: Peer = { ip: '10.0.2.5', podLabels: { app: 'frontend' }, namespace: 'evil' };
const external: Peer = { ip: '203.0.113.7' };
const externalExcept: Peer = { ip: '203.0.113.200' };

interface Case {
  name: string;
  policies: NetworkPolicyLike[];
  peer: Peer;
  port: number;
  allowed: boolean;
  policy?: string;
}

const allowFrontend = np('allow-frontend', {
  podSelector: { matchLabels: { app: 'reviews' } },
  policyTypes: ['Ingress'],
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 9080 }] }],
});

const cases: Case[] = [
  { name: 'no policy: not isolated', policies: [], peer: external, port: 9080, allowed: true },
  {
    name: 'policy selecting other pods: not isolated',
    policies: [np('other', { podSelector: { matchLabels: { app: 'db' } }, ingress: [] })],
    peer: external,
    port: 9080,
    allowed: true,
  },
  {
    name: 'policy in another namespace does not isolate',
    policies: [np('deny-all', { podSelector: {}, policyTypes: ['Ingress'] }, 'web')],
    peer: external,
    port: 9080,
    allowed: true,
  },
  {
    name: 'Egress-only policy does not isolate ingress',
    policies: [np('egress', { podSelector: {}, policyTypes: ['Egress'], egress: [] })],
    peer: external,
    port: 9080,
    allowed: true,
  },
  { name: 'default deny (empty ingress)', policies: [np('deny-all', { podSelector: {}, policyTypes: ['Ingress'] })], peer: frontendInShop, port: 9080, allowed: false, policy: 'shop/deny-all' },
  { name: 'policyTypes absent means Ingress', policies: [np('deny-all', { podSelector: {} })], peer: frontendInShop, port: 9080, allowed: false, policy: 'shop/deny-all' },
  { name: 'allow all: one empty rule', policies: [np('allow-all', { podSelector: {}, ingress: [{}] })], peer: external, port: 1234, allowed: true, policy: 'shop/allow-all' },
  { name: 'podSelector peer, same namespace, right port', policies: [allowFrontend], peer: frontendInShop, port: 9080, allowed: true, policy: 'shop/allow-frontend' },
  { name: 'podSelector peer, wrong port', policies: [allowFrontend], peer: frontendInShop, port: 9081, allowed: false, policy: 'shop/allow-frontend' },
  { name: 'podSelector peer, other labels', policies: [allowFrontend], peer: otherInShop, port: 9080, allowed: false },
  { name: 'podSelector alone does not match pods of other namespaces', policies: [allowFrontend], peer: frontendInWeb, port: 9080, allowed: false },
  { name: 'podSelector never matches an IP that is not a known pod', policies: [allowFrontend], peer: external, port: 9080, allowed: false },
  {
    name: 'namespaceSelector alone: any pod of matching namespaces',
    policies: [np('from-store', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'store' } } }] }] })],
    peer: { ip: '10.0.1.9', podLabels: { app: 'anything' }, namespace: 'web' },
    port: 80,
    allowed: true,
  },
  {
    name: 'namespaceSelector alone: non-matching namespace',
    policies: [np('from-store', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'store' } } }] }] })],
    peer: podInEvil,
    port: 80,
    allowed: false,
  },
  {
    name: 'namespaceSelector + podSelector in one peer: AND',
    policies: [np('and', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'front' } }, podSelector: { matchLabels: { app: 'frontend' } } }] }] })],
    peer: frontendInWeb,
    port: 80,
    allowed: true,
  },
  {
    name: 'namespaceSelector + podSelector in one peer: pod label mismatch',
    policies: [np('and', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'front' } }, podSelector: { matchLabels: { app: 'frontend' } } }] }] })],
    peer: { ip: '10.0.1.6', podLabels: { app: 'other' }, namespace: 'web' },
    port: 80,
    allowed: false,
  },
  {
    name: 'namespaceSelector + podSelector in one peer: namespace mismatch',
    policies: [np('and', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'front' } }, podSelector: { matchLabels: { app: 'frontend' } } }] }] })],
    peer: frontendInShop,
    port: 80,
    allowed: false,
  },
  {
    name: 'two peers in one rule: OR',
    policies: [np('or', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { tier: 'front' } } }, { podSelector: { matchLabels: { app: 'frontend' } } }] }] })],
    peer: frontendInShop,
    port: 80,
    allowed: true,
  },
  {
    name: 'namespace name label (kubernetes.io/metadata.name) for unknown namespaces',
    policies: [np('by-name', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'unlisted' } } }] }] })],
    peer: { ip: '10.9.9.9', podLabels: {}, namespace: 'unlisted' },
    port: 80,
    allowed: true,
  },
  {
    name: 'matchExpressions In / DoesNotExist',
    policies: [
      np('expr', {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['reviews', 'ratings'] }] },
        ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }, { key: 'blocked', operator: 'DoesNotExist' }] } }] }],
      }),
    ],
    peer: otherInShop,
    port: 80,
    allowed: true,
  },
  {
    name: 'matchExpressions NotIn excludes',
    policies: [np('expr', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['other'] }] } }] }] })],
    peer: otherInShop,
    port: 80,
    allowed: false,
  },
  { name: 'ipBlock inside cidr', policies: [np('ip', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }] }] })], peer: external, port: 80, allowed: true },
  { name: 'ipBlock in except', policies: [np('ip', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }] }] })], peer: externalExcept, port: 80, allowed: false },
  { name: 'ipBlock matches a pod IP too', policies: [np('ip', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16' } }] }] })], peer: frontendInShop, port: 80, allowed: true },
  { name: 'ipBlock matches IPv4-mapped IPv6 peers', policies: [np('ip', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24' } }] }] })], peer: { ip: '::ffff:203.0.113.7' }, port: 80, allowed: true },
  { name: 'ipBlock IPv6', policies: [np('ip6', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00:1::/64' } }] }] })], peer: { ip: 'fd00:1::abcd' }, port: 80, allowed: true },
  { name: 'ports only (any source)', policies: [np('p', { podSelector: {}, ingress: [{ ports: [{ port: 8080 }] }] })], peer: external, port: 8080, allowed: true },
  { name: 'port range with endPort (inside)', policies: [np('range', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 32000, endPort: 32768 }] }] })], peer: external, port: 32768, allowed: true },
  { name: 'port range with endPort (outside)', policies: [np('range', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 32000, endPort: 32768 }] }] })], peer: external, port: 32769, allowed: false },
  { name: 'UDP port rule never matches TCP', policies: [np('udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 53 }] }] })], peer: external, port: 53, allowed: false },
  { name: 'port without number: all TCP ports', policies: [np('tcp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP' }] }] })], peer: external, port: 4444, allowed: true },
  { name: 'named port resolved from container ports', policies: [np('named', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })], peer: external, port: 8080, allowed: true },
  { name: 'named port: other number', policies: [np('named', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })], peer: external, port: 9090, allowed: false },
  { name: 'unknown named port never matches', policies: [np('named', { podSelector: {}, ingress: [{ ports: [{ port: 'grpc' }] }] })], peer: external, port: 8080, allowed: false },
  {
    name: 'union of policies: deny-all plus an allow',
    policies: [np('deny-all', { podSelector: {}, policyTypes: ['Ingress'] }), allowFrontend],
    peer: frontendInShop,
    port: 9080,
    allowed: true,
    policy: 'shop/allow-frontend',
  },
  {
    name: 'denial names every isolating policy',
    policies: [np('deny-all', { podSelector: {}, policyTypes: ['Ingress'] }), allowFrontend],
    peer: external,
    port: 9080,
    allowed: false,
    policy: 'shop/allow-frontend,shop/deny-all',
  },
];

describe('compileNetworkPolicies', () => {
  it.each(cases)('$name', (c) => {
    const evaluate = compileNetworkPolicies(c.policies, POD, 'shop', NS, { namedPorts: { http: 8080 } });
    const d = evaluate(c.peer, c.port);
    expect(d.allowed).toBe(c.allowed);
    if (c.policy !== undefined) expect(d.policy).toBe(c.policy);
  });
});

describe('cidr', () => {
  it.each([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['0.0.0.0/0', '::1', false],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7/32', '192.168.1.8', false],
    ['::/0', 'fd00::1', true],
    ['fd00::/8', 'fe80::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['::ffff:0:0/96', '::ffff:1.2.3.4', false], // mapped peers are treated as IPv4
    ['10.0.0.0/8', '[::ffff:10.1.1.1]', true],
  ])('%s contains %s → %s', (cidr, ip, expected) => {
    expect(cidrContains(parseCidr(cidr)!, parseIp(ip)!)).toBe(expected);
  });
  it.each(['10.0.0.0/33', 'nope', '10.0.0/8', '::/129', '1.2.3.4/x'])('rejects %s', (bad) => {
    expect(parseCidr(bad)).toBeUndefined();
  });
});
