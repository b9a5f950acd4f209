// Real docker in a lab host: Debian's dockerd and containerd in the host's
// network namespace and a mount namespace of their own (unshare -m), each
// with its own data root, exec root, pidfile, containerd and cgroup parent,
// so that two hosts on one machine do not share anything of docker's, and
// nothing of theirs is mounted where the machine would see it. Images come
// from `docker import` of busybox-static: nothing can be pulled here.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { run, stopProcess, waitFor, WaitAbort, type RunResult } from './exec.js';
import type { LabHost } from './netns.js';

const TOOLS = ['/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/sbin/runc', '/usr/bin/docker', '/bin/busybox'];
export const BUSYBOX_IMAGE = 'weft-lab/busybox:latest';

/** Why docker cannot run on this machine, or null when it can. */
export function dockerUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'dockerd needs root';
  const missing = TOOLS.filter((t) => !fs.existsSync(t));
  if (missing.length) return `${missing.join(', ')} missing: Debian's docker.io and busybox-static are not installed (make setup installs them)`;
  const cgroups = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => / cgroup2? /.test(l));
  if (!cgroups) return 'no cgroup filesystem is mounted: runc cannot create containers';
  return null;
}

export class LabDocker {
  private containerdPid: number | undefined;
  private log = '';

  private constructor(
    readonly host: LabHost,
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  get socket(): string {
    return path.join(this.dir, 'docker.sock');
  }

  /** The cgroup every container of this dockerd is created under (one per host, removed on stop). */
  get cgroupParent(): string {
    return this.host.name;
  }

  /** Starts containerd and dockerd in the host with the daemon options `args` (e.g. --bip, --mtu, --ip-masq). */
  static async start(host: LabHost, args: string[]): Promise<LabDocker> {
    const dir = path.join(host.dir, 'docker');
    fs.mkdirSync(dir, { recursive: true });
    const f = (name: string): string => path.join(dir, name);
    fs.writeFileSync(
      f('containerd.toml'),
      [
        'version = 2',
        `root = "${f('containerd-root')}"`,
        `state = "${f('containerd-state')}"`,
        // The CRI plugin is Kubernetes'; it would look for CNI configuration of the machine's.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${f('containerd.sock')}"`,
        '[ttrpc]',
        `  address = "${f('containerd.sock.ttrpc')}"`,
        '[debug]',
        '  address = ""',
        '',
      ].join('\n'),
    );
    const dockerd = [
      'dockerd',
      '--data-root', f('data'),
      '--exec-root', f('exec'),
      '--pidfile', f('docker.pid'),
      '--host', `unix://${f('docker.sock')}`,
      '--containerd', f('containerd.sock'),
      // Its key.json in our directory, not /etc/docker (20.10 has only the config key for it).
      '--config-file', f('daemon.json'),
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--cgroup-parent', `/${host.name}`,
      '--storage-driver', await storageDriver(dir),
      ...args,
    ];
    fs.writeFileSync(f('daemon.json'), `${JSON.stringify({ 'deprecated-key-path': f('key.json') })}\n`);
    // containerd first (its pid kept to stop it), then dockerd in this process's place, both in a private mount namespace.
    const script = [
      `containerd --config ${f('containerd.toml')} >${f('containerd.log')} 2>&1 &`,
      `echo $! >${f('containerd.pid')}`,
      `for i in $(seq 100); do [ -S ${f('containerd.sock')} ] && break; sleep 0.05; done`,
      `exec ${dockerd.map((a) => `'${a}'`).join(' ')}`,
    ].join('\n');
    const child = host.spawn(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', script]);
    const d = new LabDocker(host, dir, child);
    child.stdout!.on('data', (b: Buffer) => (d.log = (d.log + b.toString()).slice(-20_000)));
    child.stderr!.on('data', (b: Buffer) => (d.log = (d.log + b.toString()).slice(-20_000)));
    try {
      await waitFor(`dockerd in ${host.hostName} to serve`, async () => {
        if (child.exitCode !== null) throw new WaitAbort(`dockerd exited ${child.exitCode}: ${d.log.slice(-2000)}`);
        if (!fs.existsSync(d.socket)) return false;
        return (await d.docker(['version', '--format', '{{.Server.Version}}'], true)).code === 0;
      }, 30_000, 100);
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  /** The docker CLI (Debian's, matching the daemon) against this daemon. */
  docker(args: string[], allowFail = false, timeoutMs = 30_000): Promise<RunResult> {
    return run(['/usr/bin/docker', '--host', `unix://${this.socket}`, ...args], { allowFail, timeoutMs });
  }

  /** An image of /bin/busybox (static) and a link per applet, by `docker import`. */
  async importBusybox(): Promise<void> {
    const root = path.join(this.dir, 'busybox-root');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(root, 'tmp'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
    fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
    const applets = (await run(['/bin/busybox', '--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox');
    for (const a of applets) fs.symlinkSync('busybox', path.join(root, 'bin', a));
    const tar = path.join(this.dir, 'busybox.tar');
    await run(['tar', '-C', root, '-cf', tar, '.']);
    await this.docker(['import', '--change', 'ENV PATH=/bin', tar, BUSYBOX_IMAGE]);
  }

  /** A container's address on docker0. */
  async ipOf(container: string): Promise<string> {
    return (await this.docker(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', container])).stdout.trim();
  }

  /** Removes the containers, stops dockerd and containerd by PID, removes the cgroups and the files. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const ids = (await this.docker(['ps', '-aq'], true)).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.docker(['rm', '-f', ...ids], true);
    }
    await stopProcess(this.child, 10_000);
    const pidFile = path.join(this.dir, 'containerd.pid');
    this.containerdPid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) || undefined : undefined;
    if (this.containerdPid) {
      try {
        process.kill(this.containerdPid, 'SIGTERM');
        await waitFor('containerd to exit', () => !fs.existsSync(`/proc/${this.containerdPid}`), 10_000).catch(() => process.kill(this.containerdPid!, 'SIGKILL'));
      } catch {
        // Already gone.
      }
    }
    for (const controller of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      removeCgroup(path.join('/sys/fs/cgroup', controller, this.cgroupParent));
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** overlay2 where the data root's filesystem can hold an overlay's upper directory; vfs (plain copies: slow, always works) on overlayfs itself. */
async function storageDriver(dir: string): Promise<string> {
  const fsType = (await run(['stat', '-f', '-c', '%T', dir])).stdout.trim();
  return fsType === 'overlayfs' ? 'vfs' : 'overlay2';
}

/** rmdir a cgroup and the ones under it (cgroups are removed with rmdir, leaves first). */
function removeCgroup(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // Still in use (a process left in it): the lab's teardown kills what is left in the namespace.
  }
}
