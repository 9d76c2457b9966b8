#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1
/** `remora <command>`: dispatches to src/cli/<command>.ts, each exporting `main(argv): Promise<number>`. */

const COMMANDS: Record<string, string> = {
  run: 'the sidecar proxy',
  validate: 'check Istio config files offline',
  explain: 'show which route, destination and policies a request would get',
  demo: 'bundled example: two app versions with Remora routing between them',
  inject: 'add the sidecar to Kubernetes manifests',
  injector: 'the mutating admission webhook',
  wait: 'block until the local sidecar is ready',
  bench: 'open-loop HTTP latency benchmark',
  rollout: 'canary rollout of a VirtualService, checked against the sidecars\' metrics',
  iptables: 'print or apply transparent-capture iptables rules',
  certs: 'development root and SPIFFE workload certificates (openssl)',
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `usage: remora <command> [options]\n\ncommands:\n${Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(w)}  ${d}`).join('\n')}\n\nremora <command> --help for its options\n`;
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    const { VERSION } = await import('./version.js');
    process.stdout.write(`remora ${VERSION}\n`);
    return 0;
  }
  if (!(cmd in COMMANDS)) {
    process.stderr.write(`remora: unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  const mod = (await import(`./cli/${cmd}.js`)) as { main(argv: string[]): Promise<number> };
  return mod.main(rest);
}

main().then(
  (code) => { if (code !== -1) process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`remora: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
