// Memory probe for issue #26 (docs/performance.md, "A sidecar that stays small"): starts the bench upstream and one
// Remora per variant (one service, CPU 0), runs max-throughput (or 3,000 req/s open-loop) rounds against each in turn,
// sampling /proc/PID/status every 100 ms; prints idle and peak RSS (private), req/s and CPU ms per 1,000 requests
// (warm-up included), and with "smaps": true the mappings at the peak grouped by file (DETAIL=1: anonymous ones by size).
// "extra": [...] are more `remora run` arguments ($P1: the upstream port, e.g. for --trace-endpoint).
// "probe": true adds --import bench/mem-probe-inproc.mjs (V8 spaces at the highest RSS, written to PROBE_OUT).
//   npx tsc -p tsconfig.bench.json && node bench/mem-probe.mjs '[{"name":"now","flags":["--max-semi-space-size=1","--v8-pool-size=1"],"smaps":true},
//     {"name":"main","flags":["--max-semi-space-size=2"],"cli":"../main/dist/cli.js"}]' ROUNDS DURATION_MS [max|open]
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const B = `${ROOT}/build`;
const { startProcess, stopProcess, freePort, pinSelf } = await import(`${B}/bench/procs.js`);
const { policyYaml, POLICY_HOST } = await import(`${B}/bench/configs.js`);
const { runLoad } = await import(`${B}/src/bench/generator.js`);
pinSelf('1');
const variants = JSON.parse(process.argv[2]);
const rounds = Number(process.argv[3] ?? 1);
const dur = Number(process.argv[4] ?? 5000);
const mode = process.argv[5] ?? 'max';
const [p1, p2] = [await freePort(), await freePort()];
// Whatever happens (a proxy that fails to start throws), the processes started here are stopped on exit.
const kids = [];
process.on('exit', () => { for (const k of kids) try { process.kill(k.pid); } catch { /* gone */ } });
const up = await startProcess({ name: 'up', cmd: process.execPath, args: [`${B}/bench/upstream.js`, String(p1), String(p2)], cpus: '1', marker: 'upstream ready' });
kids.push(up);
const dir = mkdtempSync(join(tmpdir(), 'remora-mem-probe-')); writeFileSync(join(dir, 'mesh.yaml'), policyYaml(p1, p2));
const st = (pid) => { const s = readFileSync(`/proc/${pid}/status`, 'utf8'); const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1]) / 1024; return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), hwm: kb('VmHWM'), threads: Number(/^Threads:\s+(\d+)/m.exec(s)[1]) }; };
const minflt = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[7]);
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
function smapsGroups(pid) {
  const txt = readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  const g = {}; let cur = null;
  for (const l of txt) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \d+\s*(.*)$/.exec(l);
    if (m) { let name = m[2] || '[anon]'; if (name==='[anon]' && process.env.DETAIL) { const [a,b]=l.split(' ')[0].split('-').map(h=>parseInt(h,16)); const sz=(b-a)/1024; name = '[anon ' + (sz>=8000&&sz<=8200?'8M-stack': sz===256?'256k-v8page': sz>=60000? '64M-arena?': sz<=132?'<=132k':'other '+Math.round(sz)+'k') + ']'; } if (name.includes('/')) name = name.split('/').pop(); cur = (g[name + ' ' + m[1]] ??= { rss: 0, anon: 0, pd: 0, n: 0 }); cur.n++; continue; }
    const k = /^(Rss|Anonymous|Private_Dirty):\s+(\d+)/.exec(l);
    if (k && cur) { if (k[1] === 'Rss') cur.rss += +k[2]; else if (k[1] === 'Anonymous') cur.anon += +k[2]; else cur.pd += +k[2]; }
  }
  return g;
}
const outDir = mkdtempSync(join(tmpdir(), 'remora-mem-probe-out-'));
const procs = [];
for (const v of variants) {
  const out = join(outDir, `probe-${v.name}.json`);
  const args = [...(v.flags ?? []), ...(v.probe ? ['--import', `${ROOT}/bench/mem-probe-inproc.mjs`] : []), v.cli ?? `${ROOT}/dist/cli.js`, 'run', '--config', dir, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--log-level', 'warn', ...(v.extra ?? []).map((a) => a.replace('$P1', String(p1)))];
  const env = { ...process.env, ...(v.env ?? {}), PROBE_OUT: out };
  const origEnv = process.env; process.env = env;
  const p = await startProcess({ name: v.name, cmd: process.execPath, args, cpus: '0', marker: 'remora ready', timeoutMs: 60000 });
  kids.push(p);
  process.env = origEnv;
  procs.push({ v, p, outbound: Number(p.ready.outbound), out, res: [] });
}
await new Promise((r) => setTimeout(r, 2000));
for (const x of procs) x.idle = st(x.p.pid);
for (let r = 0; r < rounds; r++) for (const x of procs) {
  let peak = { rss: 0 }, peakSm = null, lastSm = 0;
  const iv = setInterval(() => { const s = st(x.p.pid); if (s.rss > peak.rss) { peak = s; if (x.v.smaps && Date.now() - lastSm > 400) { peakSm = smapsGroups(x.p.pid); lastSm = Date.now(); } } }, 100);
  const c0 = cpu(x.p.pid);
  const f0 = minflt(x.p.pid);
  const o = await runLoad(`http://127.0.0.1:${x.outbound}/`, { mode, rate: 3000, connections: mode === 'max' ? 64 : 16, durationMs: dur, warmupMs: 1000, headers: [['host', `${POLICY_HOST}:${p1}`]] });
  const c1 = cpu(x.p.pid);
  const faults = minflt(x.p.pid) - f0;
  clearInterval(iv);
  const req = o.completed;
  x.res.push({ faults, peak, rps: o.achievedRps, cpuMs: c1 - c0, reqPerCpuS: req / ((c1 - c0) / 1000) * ((dur) / (dur + 1000)), err: Object.values(o.errors).reduce((a, b) => a + b, 0), peakSm });
  await new Promise((r) => setTimeout(r, 300));
}
for (const x of procs) {
  const rs = x.res;
  console.log(`${x.v.name.padEnd(28)} idle ${x.idle.rss.toFixed(1)} (${x.idle.anon.toFixed(1)}) thr ${x.idle.threads} | peaks ${rs.map((r) => `${r.peak.rss.toFixed(1)}(${r.peak.anon.toFixed(1)})`).join(' ')} hwm ${st(x.p.pid).hwm.toFixed(1)} | rps ${rs.map((r) => r.rps.toFixed(0)).join(' ')} | cpuMs/1k ${rs.map((r) => (r.cpuMs / (r.rps * (dur + 1000) / 1000) * 1000).toFixed(1)).join(' ')} err ${rs.map((r) => r.err).join(' ')} | minor faults ${rs.map((r) => r.faults).join(' ')}`);
  if (x.v.smaps) { const sm = rs.at(-1).peakSm; const e = Object.entries(sm).filter(([, v]) => v.rss > 200).sort((a, b) => b[1].rss - a[1].rss); for (const [k, v] of e) console.log(`   ${k.padEnd(40)} rss ${(v.rss / 1024).toFixed(1)} anon ${(v.anon / 1024).toFixed(1)} privdirty ${(v.pd / 1024).toFixed(1)} n ${v.n}`); }
  if (x.v.probe) { try { console.log('   ', readFileSync(x.out, 'utf8')); } catch {} }
}
for (const x of procs) await stopProcess(x.p);
await stopProcess(up);
process.exit(0);
