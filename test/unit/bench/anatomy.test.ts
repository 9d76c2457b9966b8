// bench/anatomy.ts: parsing perf output into the legs of proxied requests (no perf needed here).
import { describe, it, expect } from 'vitest';
import { gapStats, parsePerfScript, parsePerfStat, proxyLegs, readWritePairs } from '../../../bench/anatomy.js';
import { parseStatUserSys } from '../../../src/bench/proc.js';

// The shape `perf script -F tid,time,event,trace` prints (recorded from nginx and Remora on this project's machines).
const NGINX = `
 4904  2248.490800: syscalls:sys_enter_recvfrom: fd: 0x0000001b, ubuf: 0x5603d2c0, size: 0x00000400, flags: 0x00000000, addr: 0x00000000, addr_len: 0x00000000
 4904  2248.490811: syscalls:sys_exit_recvfrom: 0x29
 4904  2248.490832:  syscalls:sys_enter_writev: fd: 0x00000036, vec: 0x7fff9fd1da80, vlen: 0x00000001
 4904  2248.490950: syscalls:sys_enter_recvfrom: fd: 0x00000036, ubuf: 0x5603d2c0, size: 0x00001000, flags: 0x00000000, addr: 0x00000000, addr_len: 0x00000000
 4904  2248.490961: syscalls:sys_exit_recvfrom: 0xa3
 4904  2248.490971:  syscalls:sys_enter_writev: fd: 0x0000001b, vec: 0x7fff9fd1dc50, vlen: 0x00000002
 4904  2248.490990: syscalls:sys_enter_recvfrom: fd: 0x0000001b, ubuf: 0x5603d2c0, size: 0x00000400, flags: 0x00000000, addr: 0x00000000, addr_len: 0x00000000
 4904  2248.490993: syscalls:sys_exit_recvfrom: 0xfffffffffffffff5
`;

const REMORA = `
10134  4035.734880:  syscalls:sys_enter_read: fd: 0x00000020, buf: 0x452e3b90, count: 0x00010000
10134  4035.734892:   syscalls:sys_exit_read: 0x32
10134  4035.734935:  syscalls:sys_enter_write: fd: 0x00000056, buf: 0x7ffeb8d19200, count: 0x0000010c
10134  4035.735010:  syscalls:sys_enter_read: fd: 0x00000056, buf: 0x452e3b90, count: 0x00010000
10134  4035.735015:   syscalls:sys_exit_read: 0xa3
10134  4035.735047:  syscalls:sys_enter_write: fd: 0x00000020, buf: 0x7ffeb8d19a50, count: 0x000000ea
10135  4035.735050:  syscalls:sys_enter_write: fd: 0x00000003, buf: 0x7ffeb8d19a50, count: 0x00000008
`;

describe('anatomy: perf script → proxy legs', () => {
  it('parses enters with their fd and exits with signed return values', () => {
    const ev = parsePerfScript(NGINX);
    expect(ev).toHaveLength(8);
    expect(ev[0]).toEqual({ t: 2248.4908, tid: 4904, kind: 'enter-read', fd: 0x1b, ret: 0 });
    expect(ev[1]).toMatchObject({ kind: 'exit-read', ret: 0x29 });
    expect(ev[2]).toMatchObject({ kind: 'enter-write', fd: 0x36 });
    expect(ev[7]).toMatchObject({ kind: 'exit-read', ret: -11 }); // EAGAIN
  });

  it('pairs each successful read with the next write on the same thread and splits the two legs', () => {
    const nginx = readWritePairs(parsePerfScript(NGINX));
    expect(nginx.map((p) => [p.readFd, p.writeFd])).toEqual([[0x1b, 0x36], [0x36, 0x1b]]);
    const legs = proxyLegs(nginx);
    expect(legs.request).toHaveLength(1);
    expect(legs.request[0]).toBeCloseTo(21, 0);
    expect(legs.response[0]).toBeCloseTo(10, 0);

    // Another thread's write (a V8 or libuv worker) does not end the main thread's pair.
    const remora = proxyLegs(readWritePairs(parsePerfScript(REMORA)));
    expect(remora.request[0]).toBeCloseTo(43, 0);
    expect(remora.response[0]).toBeCloseTo(32, 0);
  });

  it('leaves out pairs that do not chain into a request and its response', () => {
    const pairs = [
      { readFd: 5, writeFd: 6, gapUs: 10 },
      { readFd: 7, writeFd: 8, gapUs: 99 }, // another connection's request interleaved
      { readFd: 8, writeFd: 7, gapUs: 20 },
    ];
    expect(proxyLegs(pairs)).toEqual({ request: [99], response: [20] });
    expect(gapStats([])).toBeNull();
    expect(gapStats([3, 1, 2, 10])).toEqual({ n: 4, p50Us: 3, p90Us: 10 });
  });

  it('reads perf stat counts and /proc/PID/stat user and system ticks', () => {
    const stat = parsePerfStat('15022,,raw_syscalls:sys_enter,870086835,100.00,,\n4029,,syscalls:sys_enter_read,870211808,100.00,,\n<not counted>,,syscalls:sys_enter_futex,0,0.00,,\n');
    expect(stat).toEqual({ total: 15022, read: 4029 });
    const line = '2946 (node worker) S 1 2946 1 0 -1 4194560 9337 0 0 0 812 344 0 0 20 0 11 0 2410 1183735808 17310';
    expect(parseStatUserSys(line)).toEqual({ user: 812, sys: 344 });
  });
});
