// A flannel host without flanneld: its lease written to etcd as flanneld
// writes it, and its kernel programmed with plain ip/bridge commands exactly as
// flannel's vxlan and host-gw backends program it (FLANNEL.md). Used to prove
// that weft and flannel hosts share a cluster, and as the benchmark's baseline.
import fs from 'node:fs';
import { formatSubnetEnv } from 'weft/agent/subnet-env.js';
import { IPNet } from 'weft/core/ipnet.js';
import { DEFAULT_VXLAN_PORT } from 'weft/config/network.js';
import type { LabEtcd } from './etcd.js';
import type { LabHost } from './netns.js';
import { subnetFile } from './agent.js';

export interface FlannelPeer {
  subnet: string;
  publicIP: string;
  vtepMAC?: string;
}

export interface FlannelHostOptions {
  backend: 'vxlan' | 'host-gw';
  prefix: string;
  network: string;
  subnet: string;
  vni?: number;
  port?: number;
  mtu?: number;
}

export class FlannelHost {
  readonly vtepMAC: string;
  private readonly programmed = new Set<string>();

  constructor(
    readonly host: LabHost,
    readonly o: FlannelHostOptions,
  ) {
    // A fixed, recognisable MAC per host (flanneld lets the kernel pick one).
    const octets = host.address.split('.').map(Number);
    this.vtepMAC = `0e:f1:${octets.map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
  }

  get dev(): string {
    return `flannel.${this.o.vni ?? 1}`;
  }

  get leaseValue(): string {
    const base = { PublicIP: this.host.address, PublicIPv6: null };
    return JSON.stringify(this.o.backend === 'vxlan' ? { ...base, BackendType: 'vxlan', BackendData: { VNI: this.o.vni ?? 1, VtepMAC: this.vtepMAC } } : { ...base, BackendType: 'host-gw' });
  }

  /** Writes the lease, subnet.env and the device, as flanneld does at start. */
  async start(etcd: LabEtcd): Promise<void> {
    const key = `${this.o.prefix}/subnets/${this.o.subnet.replace('/', '-')}`;
    await etcd.etcdctl(['put', key, this.leaseValue]);
    const mtu = this.o.mtu ?? (this.o.backend === 'vxlan' ? 1450 : 1500);
    fs.writeFileSync(subnetFile(this.host), formatSubnetEnv({ network: IPNet.parse(this.o.network)!, subnet: IPNet.parse(this.o.subnet)!, mtu, ipMasq: false }));
    if (this.o.backend !== 'vxlan') return;
    const h = this.host;
    await h.ip('link', 'add', this.dev, 'type', 'vxlan', 'id', String(this.o.vni ?? 1), 'local', h.address, 'dev', 'eth0', 'dstport', String(this.o.port ?? DEFAULT_VXLAN_PORT), 'nolearning');
    await h.ip('link', 'set', this.dev, 'address', this.vtepMAC, 'mtu', String(mtu), 'up');
    await h.ip('addr', 'add', `${IPNet.parse(this.o.subnet)!.ip}/32`, 'dev', this.dev);
  }

  /** Programs one peer: ARP + FDB + onlink route (vxlan), or a route via its PublicIP (host-gw). */
  async addPeer(p: FlannelPeer): Promise<void> {
    if (this.programmed.has(p.subnet)) return;
    const h = this.host;
    const gw = IPNet.parse(p.subnet)!.ip;
    if (this.o.backend === 'vxlan') {
      await h.ip('neigh', 'replace', gw, 'lladdr', p.vtepMAC!, 'dev', this.dev, 'nud', 'permanent');
      await h.exec(['bridge', 'fdb', 'append', p.vtepMAC!, 'dev', this.dev, 'dst', p.publicIP, 'self', 'permanent']);
      await h.ip('route', 'replace', p.subnet, 'via', gw, 'dev', this.dev, 'onlink');
    } else {
      await h.ip('route', 'replace', p.subnet, 'via', p.publicIP, 'dev', 'eth0');
    }
    this.programmed.add(p.subnet);
  }
}
