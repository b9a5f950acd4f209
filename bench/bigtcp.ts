// BIG TCP A/B (issue 15): the same pod-to-pod stream through a case with the
// devices' IPv4 aggregate limits (gso_ipv4_max_size / gro_ipv4_max_size) left
// at 64 KiB and raised, modes interleaved within every round (in an order
// that alternates), so that other people's work on this shared machine hits
// both alike. Modes:
//
//   off    every device at the kernel's default (65536)
//   pods   the pods' ports (both veth ends) and their bridge: what weft could set itself
//   all    also the hosts' underlay devices and the lab router's ends of them, as on a
//          host whose NIC does BIG TCP (the lab's "wire" is veths, which carry an
//          aggregate whole where a real NIC would segment it)
//
// The lab's "wire" (veths through the router's bridge) carries an aggregate whole, which
// flatters 'all': --wire segmented makes it behave like NICs, for every mode alike: the
// router's ends segment every aggregate to the MTU (tso and gso off, as a NIC's TSO puts
// MTU frames on the wire) and the hosts' underlay veths reassemble with GRO (veth's NAPI
// GRO on, as a NIC's GRO does, up to the device's gro_ipv4_max_size).
//
// A device that refuses (a vxlan device without a lower device: tso_max_size 65536) keeps its
// default; the devices set and refused are printed with what the kernel read back.
//
//   node dist-test/bench/bigtcp.js [--profile bare|docker|kube]
//     [--cases flannel-host-gw,weft-ebpf-host-gw,weft-ebpf-vxlan] [--modes off,pods,all]
//     [--rounds 5] [--seconds 5] [--rate 2] [--size 196608] [--wire lab|segmented] [--out FILE]
import fs from 'node:fs';
import type { Netns } from '../lab/netns.js';
import { withNetns } from 'weft/native/addon.js';
import { NetlinkHandle, type LinkSizes } from 'weft/native/netlink.js';
import { inCase, profileScriptArgs, withReadyCases, type Bench, type CaseSetup } from './cases.js';
import { iperf, median, netnsInodes, placeRun, type Throughput } from './measure.js';
import type { HostProfile } from '../lab/profiles.js';

const DEFAULT_SIZE = 65536;
const MODES = ['off', 'pods', 'all'] as const;
type Mode = (typeof MODES)[number];

interface Options {
  profile: HostProfile;
  cases: string[];
  modes: Mode[];
  rounds: number;
  seconds: number;
  rateGbps: number;
  size: number;
  wire: 'lab' | 'segmented';
  out: string | null;
}

function parse(argv: string[]): Options {
  const { a, profile, cases } = profileScriptArgs(argv, { profile: 'bare', cases: ['flannel-host-gw', 'weft-ebpf-host-gw', 'weft-ebpf-vxlan'] });
  const modes = (a.get('modes') ?? MODES.join(',')).split(',');
  for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new Error(`--modes: ${MODES.join(', ')}, not ${m}`);
  const wire = a.get('wire') ?? 'lab';
  if (wire !== 'lab' && wire !== 'segmented') throw new Error(`--wire: lab or segmented, not ${wire}`);
  return {
    profile,
    cases,
    modes: modes as Mode[],
    rounds: Number(a.get('rounds') ?? 5),
    seconds: Number(a.get('seconds') ?? 5),
    rateGbps: Number(a.get('rate') ?? 2),
    size: Number(a.get('size') ?? 196608),
    wire: wire === 'segmented' ? 'segmented' : 'lab',
    out: a.get('out') ?? null,
  };
}

/** A namespace's devices in one of the modes' sets. */
interface DeviceSet {
  ns: Netns;
  names: string[];
}

/** The devices each mode raises, for one case: pods' ports and bridge in 'pods'; in 'all' the underlay too. */
function devices(b: Bench, s: CaseSetup): Record<Exclude<Mode, 'off'>, DeviceSet[]> {
  const hosts = b.lab.hosts.filter((h) => h.pods.includes(s.client!) || h.pods.includes(s.server!));
  const pods: DeviceSet[] = [...hosts.map((h) => ({ ns: h as Netns, names: ['vp1', 'docker0', 'weft0?'] })), { ns: s.client!, names: ['eth0'] }, { ns: s.server!, names: ['eth0'] }];
  const underlay: DeviceSet[] = [...hosts.map((h) => ({ ns: h as Netns, names: ['eth0'] })), { ns: b.lab.router, names: hosts.map((h) => `${h.segment}-${h.hostName}`.slice(0, 15)) }];
  return { pods, all: [...pods, ...underlay] };
}

/** Sets every device of `sets` to `size` (gso and gro); returns "ns/dev: read-back" lines, refusals included. */
function setSizes(sets: DeviceSet[], size: number): string[] {
  const out: string[] = [];
  for (const d of sets) {
    withNetns(`/run/netns/${d.ns.name}`, () => {
      const nl = NetlinkHandle.open();
      try {
        for (const name of d.names) {
          // "name?": a device only some cases have (weft0: the eBPF host-gw's overlay device).
          const link = nl.link(name.replace(/\?$/, ''));
          if (!link && name.endsWith('?')) continue;
          if (!link) throw new Error(`${d.ns.name}: no device ${name}`);
          let refused = '';
          try {
            nl.linkSet(link.index, { gsoIpv4MaxSize: size, groIpv4MaxSize: size });
          } catch (err) {
            refused = ` (refused: ${(err as Error).message})`;
          }
          out.push(`${d.ns.name}/${link.name}: ${show(nl.linkSizes(link.index))}${refused}`);
        }
      } finally {
        nl.close();
      }
    });
  }
  return out;
}

const show = (z: LinkSizes | null): string => (z ? `gso_ipv4_max_size ${z.gsoIpv4MaxSize} gro_ipv4_max_size ${z.groIpv4MaxSize} tso_max_size ${z.tsoMaxSize}` : 'gone');

/** --wire segmented: the case's underlay behaves like NICs (see the top of this file). */
async function segmentWire(b: Bench, s: CaseSetup): Promise<void> {
  const hosts = b.lab.hosts.filter((h) => h.pods.includes(s.client!) || h.pods.includes(s.server!));
  for (const h of hosts) {
    await b.lab.router.exec(['ethtool', '-K', `${h.segment}-${h.hostName}`.slice(0, 15), 'tso', 'off', 'gso', 'off']);
    await h.exec(['ethtool', '-K', 'eth0', 'gro', 'on']);
  }
}

/** Every device of every mode back to the default, then the mode's own raised. */
function applyMode(b: Bench, s: CaseSetup, mode: Mode, size: number): string[] {
  const d = devices(b, s);
  setSizes(d.all, DEFAULT_SIZE);
  return mode === 'off' ? [] : setSizes(d[mode], size);
}

interface Sample {
  round: number;
  caseName: string;
  mode: Mode;
  single: Throughput;
  paced: Throughput;
  cpu: number | null;
}

const fmt = (xs: number[], digits: number): string => {
  const m = median(xs);
  const half = xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / 2 / m : NaN;
  return `${m.toFixed(digits)} ±${Number.isFinite(half) ? Math.round(half * 100) : '-'}% (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
};

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const samples: Sample[] = [];
  await withReadyCases(o.profile, o.cases, 31, async (b, setups) => {
    for (const s of setups) {
      if (o.wire === 'segmented') await segmentWire(b, s);
      for (const mode of o.modes.filter((m) => m !== 'off')) console.log(`${s.def.name} ${mode}:\n  ${applyMode(b, s, mode, o.size).join('\n  ')}`);
      applyMode(b, s, 'off', o.size);
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const s of setups) {
        const ours = netnsInodes((n) => inCase(s, n));
        // Alternate the modes' order each round, so that neither always runs first after a case switch.
        const modes = round % 2 ? [...o.modes].reverse() : o.modes;
        for (const mode of modes) {
          applyMode(b, s, mode, o.size);
          const p = await placeRun('auto', 20_000);
          const single = await iperf(s.client!, s.serverIP!, o.seconds, { cpu: p.cpu, ours });
          const paced = await iperf(s.client!, s.serverIP!, o.seconds, { rateBps: o.rateGbps * 1e9, ours });
          samples.push({ round, caseName: s.def.name, mode, single, paced, cpu: p.cpu });
          console.log(`round ${round + 1} ${s.def.name} ${mode}: 1 stream ${single.gbps.toFixed(2)} Gbit/s (cpu ${p.cpu}, waited ${p.waitedMs} ms), paced ${paced.gbps.toFixed(2)} Gbit/s ${paced.ownCpuSecPerGB?.toFixed(2)} CPU s/GB`);
        }
        applyMode(b, s, 'off', o.size);
      }
    }
  });
  console.log(`\n${o.profile}, ${o.wire} wire: medians of ${o.rounds} rounds, ± half the min–max spread; ratio = mode / off within each round`);
  console.log('| case | mode | 1 stream Gbit/s | x off | CPU s/GB (paced) | x off |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const c of o.cases) {
    for (const mode of o.modes) {
      const mine = samples.filter((x) => x.caseName === c && x.mode === mode);
      const ratio = (f: (t: Sample) => number): number[] =>
        mine.map((x) => f(x) / f(samples.find((y) => y.caseName === c && y.mode === 'off' && y.round === x.round)!)).filter(Number.isFinite);
      const single = (x: Sample): number => x.single.gbps;
      const cpu = (x: Sample): number => x.paced.ownCpuSecPerGB ?? x.paced.cpuSecPerGB;
      const vsOff = mode === 'off' || !o.modes.includes('off');
      console.log(`| ${c} | ${mode} | ${fmt(mine.map(single), 2)} | ${vsOff ? '' : fmt(ratio(single), 2)} | ${fmt(mine.map(cpu), 2)} | ${vsOff ? '' : fmt(ratio(cpu), 2)} |`);
    }
  }
  if (o.out) fs.writeFileSync(o.out, JSON.stringify({ options: o, samples }, null, 2));
}

main().catch((err: unknown) => {
  console.error(`bigtcp: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
