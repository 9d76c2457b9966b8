/**
 * Watches config paths and calls back on any change. Directories are watched as a whole,
 * not file by file, because a Kubernetes ConfigMap update is an atomic rename of the `..data` symlink:
 * a watch on a file follows the old inode and goes silent (ECOSYSTEM.md §2). Each directory gets its own
 * non-recursive watch: on Node 20/Linux a `recursive: true` watch was measured to report 4 of 15 rewrites
 * (bench "reload under load"). A slow poll of the tree backs up fs.watch, which can miss events too.
 *
 * How long to wait depends on what happened. A name renamed into place (fs.watch's 'rename': a ConfigMap's `..data`
 * swap, `mv`, a file created or deleted) is complete: it is read after `renameMs`, which only gathers the events of
 * one swap. A file written in place ('change') may be half-written: it is read once no write to it came for
 * `debounceMs`, so a slow writer is not read, and rejected, halfway. A file being written holds back the reading of
 * any rename meanwhile; a file renamed away (a temporary file moved into place) is written no more.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The pseudo-path of a change the poll saw (it does not know which file). */
const POLLED = '\0poll';
/** Names loadConfig reads (load.ts EXTENSIONS). */
const CONFIG_FILE = /\.(ya?ml|json)$/;

export class FileWatcher {
  private watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private lastSig = '';
  private stopped = false;
  /** Files written in place ('change'), by path: when the last write was seen (performance.now()). */
  private writing = new Map<string, number>();
  /** When the last rename not yet reported was seen. */
  private renamedAt = -Infinity;
  /** Some event since the last read may have been a directory's (see kick). */
  private maybeNewDirectory = false;
  /** When the first event not yet reported was seen (performance.now()): what the callback is told, for timings. */
  private firstAt: number | undefined;
  /** Callbacks made, and listings of the directories, for the tests. */
  fired = 0;
  listings = 0;

  constructor(
    private readonly paths: readonly string[],
    private readonly onChange: (since: number) => void,
    private readonly debounceMs = 100,
    private readonly pollMs = 2000,
    private readonly renameMs = 5,
  ) {}

  async start(): Promise<void> {
    await this.watchAll();
    this.lastSig = await this.signature();
    this.poll = setInterval(() => { void this.checkPoll(); }, this.pollMs);
    this.poll.unref();
  }

  /** Directories to watch: each directory path (and its subdirectories), or a file's parent. */
  private async directories(): Promise<string[]> {
    const dirs: string[] = [];
    const walk = async (p: string, depth: number): Promise<void> => {
      dirs.push(p);
      if (depth >= 8) return;
      let names: string[];
      try {
        names = await readdir(p);
      } catch {
        return;
      }
      for (const n of names) {
        if (n.startsWith('.')) continue; // ConfigMap internals change by rename of ..data in the top directory
        const child = join(p, n);
        try {
          if ((await stat(child)).isDirectory()) await walk(child, depth + 1);
        } catch { /* vanished */ }
      }
    };
    for (const p of this.paths) {
      try {
        if ((await stat(p)).isDirectory()) await walk(p, 0);
        else dirs.push(dirname(p));
      } catch {
        dirs.push(dirname(p));
      }
    }
    return [...new Set(dirs)];
  }

  private async watchAll(): Promise<void> {
    if (this.stopped) return;
    for (const d of await this.directories()) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, { persistent: false }, (type, name) => this.kick(type === 'rename' && name ? 'rename' : 'change', join(d, name ?? '')));
        w.on('error', () => {
          // The directory went away: forget it; the next scan or the poll picks up what replaces it.
          w.close();
          this.watchers.delete(d);
        });
        this.watchers.set(d, w);
      } catch {
        // Missing or not watchable: polling covers it.
      }
    }
    this.listings++;
  }

  /** An event: a rename (read soon) or a write in place, or what the poll saw (read once quiet for debounceMs). */
  private kick(type: 'rename' | 'change', path: string): void {
    const now = performance.now();
    this.firstAt ??= now;
    // A name that may be a new directory (created or renamed: not a config file's, not hidden, as watchAll skips
    // those), or what the poll saw: the directories are listed again after the read.
    if (path === POLLED || (type === 'rename' && !CONFIG_FILE.test(path) && !basename(path).startsWith('.'))) this.maybeNewDirectory = true;
    if (type === 'rename') {
      this.renamedAt = now;
      this.writing.delete(path); // replaced, created, moved away or deleted: what comes under that name is a new file
    } else {
      this.writing.set(path, now);
    }
    this.arm(now);
  }

  /**
   * When to read: renameMs after the last rename, and debounceMs after the last write to any file being written. What
   * the poll saw does not hold back a rename: that read, soon, reads every file, and the poll's change is (almost
   * always) one fs.watch reported already; a rename waiting debounceMs behind it was 1 edit in 13 at 50,000 services.
   */
  private due(now: number): number {
    let at = this.renamedAt + this.renameMs;
    const renamed = this.renamedAt !== -Infinity;
    for (const [path, t] of this.writing) {
      if (t + this.debounceMs <= now) this.writing.delete(path);
      else if (!(renamed && path === POLLED)) at = Math.max(at, t + this.debounceMs);
    }
    return at;
  }

  private arm(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    const timer = setTimeout(() => {
      // Timers run before the poll phase: events already queued (a write right after a file was created) are read
      // first, on the way to setImmediate, and may move the time to read (an event re-arms: this timer is done).
      setImmediate(() => {
        if (this.stopped || this.timer !== timer) return;
        const t = performance.now();
        if (this.due(t) > t + 1) return this.arm(t);
        this.timer = undefined;
        this.writing.clear();
        this.renamedAt = -Infinity;
        this.fired++;
        const since = this.firstAt ?? t;
        this.firstAt = undefined;
        this.onChange(since);
        // New subdirectories get their own watch; a file renamed into place (an edit) cannot be one: not listed again
        // (100 stats per edit at 50,000 services).
        if (this.maybeNewDirectory) { this.maybeNewDirectory = false; void this.watchAll(); }
      });
    }, Math.max(0, this.due(now) - now));
    timer.unref();
    this.timer = timer;
  }

  private async signature(): Promise<string> {
    const parts: string[] = [];
    const walk = async (p: string, depth: number): Promise<void> => {
      try {
        const st = await stat(p);
        parts.push(`${p}:${st.mtimeMs}:${st.size}:${st.ino}`);
        if (st.isDirectory() && depth < 8) {
          for (const n of (await readdir(p)).sort()) if (!n.startsWith('.')) await walk(join(p, n), depth + 1);
        }
      } catch {
        parts.push(`${p}:missing`);
      }
    };
    for (const p of this.paths) await walk(p, 0);
    return parts.join('|');
  }

  private async checkPoll(): Promise<void> {
    const sig = await this.signature();
    if (sig !== this.lastSig) { this.lastSig = sig; this.kick('change', POLLED); }
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
  }
}
