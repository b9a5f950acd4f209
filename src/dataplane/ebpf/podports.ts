// from_pod (bpf/gateway.c) at the TC ingress of every port of the pods'
// gateway bridge (docker0, cni0: found as the gateway hook finds it, by its
// address in our subnet): each pod's host-side veth, where a pod's packets
// enter the host before the bridge and bridge-nf see them. docker and CNI
// plugins add and remove ports at any time, so the set is followed through
// netlink events (watch.ts) and a periodic pass; a program someone removed is
// put back on the next pass.
//
// Attached as weft's own hooks are (attach.ts): a tcx link pinned beside the
// maps, one per port (link_from_pod_<ifindex>), updated in place by a
// restarted agent, or a classic filter in weft's slot. A new link goes last
// in the port's tcx chain, so that programs others attach there see every
// packet before from_pod sends one away; classic filters run after tcx
// programs whatever weft does. A port that leaves the bridge loses the
// program; a deleted port's link goes with it, and its pin is removed here.
import fs from 'node:fs';
import path from 'node:path';
import type { NetlinkHandle, Link } from '../../native/netlink.js';
import { tcxPrograms, type BpfMap, type BpfProgram } from '../../native/bpf.js';
import { attachHook, linkPin, removeLinkPin, type AttachMode } from './attach.js';
import { detach, hookOf, weftFilterOn, type FromPod } from './loader.js';
import { findGatewayDevice } from './gateway.js';
import { decodePodPortKey, encodePodPort, encodePodPortKey } from './maps.js';
import type { LocalNetwork } from '../../core/model.js';
import type { Logger } from '../../core/log.js';

const PROGRAM = 'from_pod';
const HOOK = hookOf(PROGRAM);

/** The pin of the link that holds from_pod on one port. */
export function portLinkPin(pinDir: string, ifindex: number): string {
  return `${linkPin(pinDir, PROGRAM)}_${ifindex}`;
}

/** The port a per-port pin names, or null for any other file. */
function pinnedPort(pinDir: string, name: string): number | null {
  const prefix = `${path.basename(linkPin(pinDir, PROGRAM))}_`;
  if (!name.startsWith(prefix)) return null;
  const n = Number(name.slice(prefix.length));
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** The pods' gateway bridge and its ports, or null when no bridge holds our subnet. */
export function gatewayPorts(nl: NetlinkHandle, local: LocalNetwork, exclude: number[]): { bridge: Link; ports: Link[] } | null {
  const dev = findGatewayDevice(nl, local.subnet, exclude);
  if (!dev || dev.kind !== 'bridge' || !dev.mac) return null;
  return { bridge: dev, ports: nl.links().filter((l) => l.master === dev.index) };
}

export class PodPortHooks {
  /** Ports this process put from_pod on -> the weft_pod_ports value written for them. */
  private readonly ports = new Map<number, string>();
  private bridge = '';

  constructor(
    private readonly nl: NetlinkHandle,
    private readonly fp: FromPod,
    private readonly local: LocalNetwork,
    private readonly exclude: number[],
    private readonly mode: AttachMode,
    private readonly log: Logger,
  ) {}

  private get prog(): BpfProgram {
    return this.fp.prog;
  }

  private get map(): BpfMap {
    return this.fp.ports;
  }

  /** Whether this process's from_pod runs on the port now (not a previous agent's, not removed by someone). */
  private holds(ifindex: number): boolean {
    if (this.mode === 'tcx') return tcxPrograms(ifindex, HOOK).some((e) => e.linkId !== 0 && e.progId === this.prog.id);
    return weftFilterOn(ifindex, HOOK, this.prog.id);
  }

  /** Takes from_pod off a port that left the bridge (or is gone: then only its pin and map entry are left). */
  private release(ifindex: number, exists: boolean): void {
    this.map.delete(encodePodPortKey(ifindex));
    this.ports.delete(ifindex);
    removeLinkPin(portLinkPin(this.local.pinDir, ifindex));
    if (exists) detach(ifindex, HOOK);
  }

  /** Makes from_pod run on exactly the gateway bridge's current ports. */
  sync(): { ports: number; attached: number; released: number } {
    const gw = gatewayPorts(this.nl, this.local, this.exclude);
    const name = gw ? `${gw.bridge.name}/${gw.bridge.index}` : '';
    if (name !== this.bridge) {
      if (gw) this.log.info({ bridge: gw.bridge.name, ports: gw.ports.length }, 'from_pod follows the ports of the pods\' gateway bridge: pods\' established flows to peers are sent from their ports');
      else if (this.bridge) this.log.info({ bridge: this.bridge.split('/')[0] }, 'the pods\' gateway bridge is gone: from_pod runs nowhere');
      this.bridge = name;
    }
    const want = new Map((gw?.ports ?? []).map((p) => [p.index, p]));
    let released = 0;
    for (const ifindex of [...this.ports.keys()]) {
      if (want.has(ifindex)) continue;
      this.release(ifindex, this.nl.link(ifindex) !== null);
      released++;
    }
    // Entries and pins a previous agent left for ports that are gone or elsewhere now.
    for (const [k] of this.map.entries()) {
      const ifindex = decodePodPortKey(k);
      if (!want.has(ifindex) && !this.ports.has(ifindex)) this.map.delete(k);
    }
    for (const n of fs.existsSync(this.local.pinDir) ? fs.readdirSync(this.local.pinDir) : []) {
      const ifindex = pinnedPort(this.local.pinDir, n);
      if (ifindex !== null && !want.has(ifindex)) removeLinkPin(path.join(this.local.pinDir, n));
    }
    let attached = 0;
    for (const [ifindex, port] of want) {
      const value = encodePodPort(gw!.bridge.index, gw!.bridge.mac!);
      const hex = value.toString('hex');
      // The entry first: a program that finds none passes the packet on.
      if (this.ports.get(ifindex) !== hex) this.map.update(encodePodPortKey(ifindex), value);
      this.ports.set(ifindex, hex);
      try {
        if (this.holds(ifindex)) continue;
        // Last on the port: the port is the runtime's, and programs others put there (policy) see every packet first.
        attachHook(this.local.pinDir, ifindex, PROGRAM, this.prog.fd, this.mode, { pin: portLinkPin(this.local.pinDir, ifindex), first: false });
        attached++;
        this.log.debug({ port: port.name, ifindex, bridge: gw!.bridge.name }, 'from_pod attached');
      } catch (err) {
        // The port went away between the dump and here; the next pass forgets it. Other ports go on.
        if (this.nl.link(ifindex)) throw err;
      }
    }
    if (attached || released) this.log.info({ bridge: gw?.bridge.name, ports: want.size, attached, released }, 'from_pod\'s ports changed');
    return { ports: want.size, attached, released };
  }

  /** The ports from_pod runs on. */
  get size(): number {
    return this.ports.size;
  }

  close(): void {
    this.prog.close();
    this.map.close();
  }
}
