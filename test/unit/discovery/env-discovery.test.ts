/** Services from kubelet-injected environment variables. */
import { describe, expect, it } from 'vitest';
import { servicesFromEnv } from '../../../src/discovery/env-discovery.js';

const opts = { namespace: 'shop', clusterDomain: 'cluster.local' };

describe('servicesFromEnv', () => {
  it('single unnamed port → host in the pod namespace, ClusterIP as the only workload', () => {
    const out = servicesFromEnv({ SERVICE_1_SERVICE_HOST: '10.96.0.15', SERVICE_1_SERVICE_PORT: '80', SERVICE_1_PORT: 'tcp://10.96.0.15:80', SERVICE_1_PORT_80_TCP: 'tcp://10.96.0.15:80' }, opts);
    expect(out).toEqual([
      {
        hostname: 'service-1.shop.svc.cluster.local',
        namespace: 'shop',
        ports: [{ number: 80, name: '', protocol: '', targetPort: 80 }],
        resolution: 'STATIC',
        workloads: [{ address: '10.96.0.15', ports: { '': 80 }, labels: {}, weight: 1, name: 'service-1-clusterip' }],
        addresses: ['10.96.0.15'],
        location: 'MESH_INTERNAL',
        origin: 'env',
      },
    ]);
  });

  it('named ports (_SERVICE_PORT_<NAME>) with protocols from the names; UDP from docker-link variables', () => {
    const [svc] = servicesFromEnv(
      {
        KUBE_DNS_SERVICE_HOST: '10.96.0.10',
        KUBE_DNS_SERVICE_PORT: '53',
        KUBE_DNS_SERVICE_PORT_DNS: '53',
        KUBE_DNS_SERVICE_PORT_DNS_TCP: '53',
        KUBE_DNS_SERVICE_PORT_HTTP_METRICS: '9153',
        KUBE_DNS_PORT_53_UDP: 'udp://10.96.0.10:53',
        KUBE_DNS_PORT_53_TCP: 'tcp://10.96.0.10:53',
        KUBE_DNS_PORT_9153_TCP: 'tcp://10.96.0.10:9153',
      },
      opts,
    );
    expect(svc!.hostname).toBe('kube-dns.shop.svc.cluster.local');
    expect(svc!.ports).toEqual([
      { number: 53, name: 'dns', protocol: '', targetPort: 53 },
      { number: 53, name: 'dns-tcp', protocol: '', targetPort: 53 },
      { number: 9153, name: 'http-metrics', protocol: 'http', targetPort: 9153 },
    ]);
    expect(svc!.workloads[0]!.ports).toEqual({ dns: 53, 'dns-tcp': 53, 'http-metrics': 9153 });
  });

  it('UDP-only port', () => {
    const [svc] = servicesFromEnv({ SYSLOG_SERVICE_HOST: '10.96.0.30', SYSLOG_SERVICE_PORT: '514', SYSLOG_PORT_514_UDP: 'udp://10.96.0.30:514' }, opts);
    expect(svc!.ports[0]!.protocol).toBe('udp');
  });

  it('kubernetes master Service lives in default; IPv6 ClusterIPs are fine', () => {
    const out = servicesFromEnv(
      { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', KUBERNETES_SERVICE_PORT_HTTPS: '443', V6_SERVICE_HOST: 'fd00::10', V6_SERVICE_PORT: '8080' },
      opts,
    );
    expect(out.map((s) => [s.hostname, s.namespace, s.ports.map((p) => `${p.name}:${p.number}:${p.protocol}`)])).toEqual([
      ['kubernetes.default.svc.cluster.local', 'default', ['https:443:https']],
      ['v6.shop.svc.cluster.local', 'shop', [':8080:']],
    ]);
  });

  it.each([
    ['host not an IP', { BAD_SERVICE_HOST: 'bad.example', BAD_SERVICE_PORT: '80' }],
    ['no port', { NOPORT_SERVICE_HOST: '10.0.0.1' }],
    ['port out of range', { X_SERVICE_HOST: '10.0.0.1', X_SERVICE_PORT: '70000' }],
    ['lowercase variable (not kubelet-made)', { foo_SERVICE_HOST: '10.0.0.1', foo_SERVICE_PORT: '80' }],
    ['unrelated variables', { PATH: '/bin', HOME: '/root' }],
  ])('ignores %s', (_n, env) => {
    expect(servicesFromEnv(env, opts)).toEqual([]);
  });
});
