/**
 * Watches config paths and calls back (debounced) on any change. Directories are watched as a whole,
 * not file by file, because a Kubernetes ConfigMap update is an atomic rename of the `..data` symlink:
 * a watch on a file follows the old inode and goes silent (ECOSYSTEM.md §2). A slow poll of the
 * directory listing backs up fs.watch, which can miss events on some filesystems.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export class FileWatcher {
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private lastSig = '';

  constructor(private readonly paths: readonly string[], private readonly onChange: () => void, private readonly debounceMs = 100, private readonly pollMs = 2000) {}

  async start(): Promise<void> {
    for (const p of this.paths) {
      let target = p;
      let recursive = false;
      try {
        const st = await stat(p);
        if (st.isDirectory()) recursive = true;
        else target = dirname(p);
      } catch {
        target = dirname(p);
      }
      try {
        const w = watch(target, { recursive, persistent: false }, () => this.kick());
        w.on('error', () => { /* the poll below keeps working */ });
        this.watchers.push(w);
      } catch {
        // Directory missing or not watchable: polling covers it.
      }
    }
    this.lastSig = await this.signature();
    this.poll = setInterval(() => { void this.checkPoll(); }, this.pollMs);
    this.poll.unref();
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; this.onChange(); }, this.debounceMs);
    this.timer.unref();
  }

  private async signature(): Promise<string> {
    const { readdir } = await import('node:fs/promises');
    const parts: string[] = [];
    const walk = async (p: string, depth: number): Promise<void> => {
      try {
        const st = await stat(p);
        parts.push(`${p}:${st.mtimeMs}:${st.size}:${st.ino}`);
        if (st.isDirectory() && depth < 8) {
          for (const n of (await readdir(p)).sort()) if (!n.startsWith('.')) await walk(`${p}/${n}`, depth + 1);
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
    if (sig !== this.lastSig) { this.lastSig = sig; this.kick(); }
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
  }
}
