// Where a captured connection's original destination sits in the registry: a VIP with a service port, an endpoint
// address and port (mapped back to the service port), or nothing.
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { resolveCaptured } from '../../../src/routing/l4-destination.js';

const YAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.example.internal]
  addresses: [10.96.0.10]
  ports:
  - { number: 80, name: http, protocol: HTTP, targetPort: 8080 }
  - { number: 5432, name: tcp-db, protocol: TCP }
  resolution: STATIC
  endpoints:
  - { address: 10.1.0.5 }
  - { address: 10.1.0.6 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: [ext.example.com]
  addresses: [192.0.2.0/24]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: NONE
`;

describe('resolveCaptured', () => {
  const { resources, errors } = parseDocuments(YAML, 'capture.yaml');
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });

  it('maps a VIP and a service port to the service and its cluster', () => {
    expect(errors).toEqual([]);
    const http = resolveCaptured(snap, { address: '10.96.0.10', port: 80 });
    expect(http.via).toBe('vip');
    expect(http.entry?.host).toBe('reviews.example.internal');
    expect(http.cluster?.name).toBe('outbound|80||reviews.example.internal');
    expect(http.cluster?.protocol).toBe('http');
    expect(resolveCaptured(snap, { address: '10.96.0.10', port: 5432 }).cluster?.protocol).toBe('tcp');
    // A port the service does not have: the service is known, its cluster is not.
    const other = resolveCaptured(snap, { address: '10.96.0.10', port: 9999 });
    expect(other.entry?.host).toBe('reviews.example.internal');
    expect(other.cluster).toBeUndefined();
  });

  it('maps an endpoint address and target port back to the service port', () => {
    const ep = resolveCaptured(snap, { address: '10.1.0.6', port: 8080 });
    expect(ep.via).toBe('endpoint');
    expect(ep.port).toBe(80);
    expect(ep.cluster?.name).toBe('outbound|80||reviews.example.internal');
    expect(ep.entry?.host).toBe('reviews.example.internal');
  });

  it('maps an address inside a ServiceEntry CIDR to that service on the dialled port', () => {
    const c = resolveCaptured(snap, { address: '192.0.2.7', port: 443 });
    expect(c.via).toBe('cidr');
    expect(c.entry?.host).toBe('ext.example.com');
    expect(c.cluster?.name).toBe('outbound|443||ext.example.com');
    expect(c.cluster?.resolution).toBe('NONE'); // the capture hook passes it to the original destination, as that service
  });

  it('knows nothing of other addresses', () => {
    expect(resolveCaptured(snap, { address: '10.1.0.7', port: 8080 })).toMatchObject({ via: 'unknown', entry: undefined, cluster: undefined, port: 8080 });
    expect(resolveCaptured(snap, { address: '192.0.3.7', port: 443 }).via).toBe('unknown');
    expect(resolveCaptured(undefined, { address: '10.96.0.10', port: 80 }).via).toBe('unknown');
  });
});
