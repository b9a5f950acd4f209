// A real etcd cluster of three members for the fault tests: each member in a
// lab namespace of its own on the first underlay segment (192.0.2.2 to .4),
// talking to the others over it, so that a member can be killed, stopped, or
// cut off with blackhole routes while agents in other lab hosts use the
// cluster. The process handling (data dir, health wait, the forwarder the
// test process reaches a member through) is LabEtcd's; this module only
// composes members and says which one leads.
import http from 'node:http';
import { Etcd3 } from 'etcd3';
import { LabEtcd } from './etcd.js';
import { waitFor } from './exec.js';
import type { Lab, LabHost } from './netns.js';

export interface ClusterMember {
  name: string;
  host: LabHost;
  etcd: LabEtcd;
  /** The member's address on the underlay. */
  address: string;
}

export interface EndpointStatus {
  name: string;
  memberId: string;
  leaderId: string;
  revision: number;
}

export class LabEtcdCluster {
  private readonly clients: Etcd3[] = [];
  /** Namespaces holding blackhole routes partition() added. */
  private readonly cut: LabHost[] = [];

  private constructor(
    readonly lab: Lab,
    readonly members: ClusterMember[],
  ) {}

  /** Starts `size` members (default 3) at 192.0.2.<firstOctet + i> and waits until the cluster serves. */
  static async start(lab: Lab, o: { size?: number; firstOctet?: number; extraArgs?: string[] } = {}): Promise<LabEtcdCluster> {
    const size = o.size ?? 3;
    const first = o.firstOctet ?? 2;
    const hosts: LabHost[] = [];
    for (let i = 0; i < size; i++) hosts.push(await lab.addHost(`e${i + 1}`, { octet: first + i }));
    const initialCluster = hosts.map((h, i) => `e${i + 1}=http://${h.address}:2380`).join(',');
    // Members start together: each waits for the others to form a quorum before it reports healthy.
    const etcds = await Promise.all(
      hosts.map((h, i) =>
        LabEtcd.start({
          netns: h,
          member: { name: `e${i + 1}`, address: h.address, initialCluster },
          extraArgs: ['--initial-cluster-token', lab.id, '--initial-cluster-state', 'new', ...(o.extraArgs ?? [])],
        }),
      ),
    );
    return new LabEtcdCluster(
      lab,
      hosts.map((h, i) => ({ name: `e${i + 1}`, host: h, etcd: etcds[i], address: h.address })),
    );
  }

  /** Every member's client URL, comma-separated, as agents take --etcd-endpoints. */
  get endpoints(): string {
    return this.members.map((m) => m.etcd.endpoint).join(',');
  }

  member(name: string): ClusterMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no etcd member ${name}`);
    return m;
  }

  running(m: ClusterMember): boolean {
    const pid = m.etcd.pid;
    return pid !== undefined && isAlive(pid);
  }

  /** A client for the test process over every member that runs (each through its loopback forwarder); closed on destroy. */
  client(): Etcd3 {
    const c = new Etcd3({ hosts: this.members.filter((m) => this.running(m)).map((m) => m.etcd.clientEndpoint) });
    this.clients.push(c);
    return c;
  }

  /** etcdctl against the running members (but `except`), from the first one's namespace. */
  async etcdctl(args: string[], o: { allowFail?: boolean; except?: ClusterMember[] } = {}): Promise<string> {
    const allowFail = o.allowFail ?? false;
    const up = this.members.filter((m) => this.running(m) && !(o.except ?? []).includes(m));
    if (!up.length) throw new Error('no etcd member runs');
    const r = await up[0].host.exec(['etcdctl', '--endpoints', up.map((m) => m.etcd.endpoint).join(','), ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      allowFail,
      timeoutMs: 15_000,
    });
    return r.stdout + (allowFail ? r.stderr : '');
  }

  /** What each running member reports about itself (etcdctl endpoint status). */
  async status(): Promise<EndpointStatus[]> {
    const out: EndpointStatus[] = [];
    for (const m of this.members.filter((x) => this.running(x))) {
      const r = await m.host.exec(['etcdctl', '--endpoints', m.etcd.endpoint, '--command-timeout=2s', 'endpoint', 'status', '-w', 'json'], {
        env: { ...process.env, ETCDCTL_API: '3' },
        allowFail: true,
        timeoutMs: 5000,
      });
      if (r.code !== 0) continue;
      const [s] = JSON.parse(r.stdout) as Array<{ Status: { header: { member_id: string | number; revision: number }; leader: string | number } }>;
      out.push({ name: m.name, memberId: String(s.Status.header.member_id), leaderId: String(s.Status.leader), revision: s.Status.header.revision });
    }
    return out;
  }

  /** The member every running member names as leader (waits until they agree). */
  async leader(timeoutMs = 15_000): Promise<ClusterMember> {
    return waitFor(
      'the etcd members to agree on a leader',
      async () => {
        const st = await this.status();
        const ids = new Set(st.map((s) => s.leaderId));
        if (st.length === 0 || ids.size !== 1 || [...ids][0] === '0') return undefined;
        const lead = st.find((s) => s.memberId === [...ids][0]);
        return lead ? this.member(lead.name) : undefined;
      },
      timeoutMs,
      200,
    );
  }

  /** SIGKILL, as a crash or a power cut would end it; restart() brings it back with its data. */
  async kill(m: ClusterMember): Promise<void> {
    const pid = m.etcd.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    await waitFor(`etcd member ${m.name} (pid ${pid}) to die`, () => !isAlive(pid), 5000, 20);
  }

  async restart(m: ClusterMember): Promise<void> {
    await m.etcd.ensureRunning();
  }

  /**
   * Cuts the member off with blackhole routes on both sides: in its
   * namespace towards each peer (and each of `hosts`), and in theirs towards
   * it. One side alone is not a partition: packets on an established TCP
   * connection still arrive, only their acknowledgements are lost. With
   * `peers` false only the hosts are cut off (a blackholed path from the
   * agents to one member, the member still in the cluster). heal() removes
   * every blackhole route this module added.
   */
  async partition(m: ClusterMember, o: { peers?: boolean; hosts?: LabHost[] } = {}): Promise<void> {
    const others = [...(o.peers ?? true ? this.members.filter((x) => x !== m).map((x) => x.host) : []), ...(o.hosts ?? [])];
    for (const other of others) {
      await m.host.ip('route', 'add', 'blackhole', `${other.address}/32`);
      await other.ip('route', 'add', 'blackhole', `${m.address}/32`);
      this.cut.push(other);
    }
    this.cut.push(m.host);
  }

  async heal(): Promise<void> {
    for (const h of new Set(this.cut)) {
      for (const r of JSON.parse((await h.ip('-j', 'route', 'show', 'type', 'blackhole')) || '[]') as Array<{ dst: string }>) {
        await h.ip('route', 'del', 'blackhole', r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      }
    }
    this.cut.length = 0;
  }

  /** Watchers the member serves (etcd's own gauge on /metrics): which member an agent's watch sits on. */
  async watchers(m: ClusterMember): Promise<number> {
    const body = await httpGet(`${m.etcd.clientEndpoint}/metrics`);
    const line = body.split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_watcher_total '));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients.length = 0;
    await Promise.all(this.members.map((m) => m.etcd.destroy()));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}
