// `weft bpf ...` against weft's real objects (build/bpf/*.o) loaded into a lab
// host's pin dir and filled through the codecs, with no agent running: what
// the commands print is checked against what the test wrote, against the
// packets it ran through the programs (BPF_PROG_TEST_RUN), and against the
// TC filters it attached.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BpfObject, numPossibleCpus, tcAttach } from 'weft/native/bpf.js';
import { withNetns } from 'weft/native/addon.js';
import { CLI } from '../../lab/agent.js';
import { run, type RunResult } from '../../lab/exec.js';
import { attach, TC_HANDLE } from 'weft/dataplane/ebpf/loader.js';
import { LAYOUT, MAP_CONFIG, MAP_DROPS, MAP_EVENTS, MAP_MONITOR, MAP_PEERS, MAP_STATS, u32Key, DROP_REASONS } from 'weft/dataplane/ebpf/maps.js';
import type { RouteText } from '../../lab/model.js';
import { OVERLAY_O, PEER_IP, PEER_VTEP_MAC, VNI, makeFixture, type Fixture } from '../bpf/fixture.js';
import { ETH_P_IP, TC_ACT_UNSPEC, TC_ACT_REDIRECT, TC_ACT_SHOT, eth, podPacket } from '../bpf/packets.js';

let fx: Fixture;
let pinDir: string;
const VXLAN_PEER: RouteText = { subnet: '10.244.2.0/24', publicIP: '192.0.2.12', encap: 'vxlan', directRouting: false, vni: VNI, vtepMAC: PEER_VTEP_MAC };
const DR_PEER: RouteText = { subnet: '10.244.3.0/24', publicIP: PEER_IP, encap: 'direct', directRouting: true, vni: VNI, vtepMAC: '02:00:00:00:03:01' };

before(async () => {
  fx = await makeFixture();
  pinDir = fx.host.pinDir;
  fx.configure('vxlan');
  fx.setPeer(VXLAN_PEER);
  fx.setPeer(DR_PEER);
});
after(() => fx?.destroy());

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLANNELD_')));
}

/** weft in the lab host's network namespace (TC filters are per namespace; pins are not). */
function weft(args: string[]): Promise<RunResult> {
  return fx.host.exec([process.execPath, CLI, ...args], { allowFail: true, env: cleanEnv(), timeoutMs: 20_000 });
}

async function weftJson<T>(args: string[]): Promise<T> {
  const r = await weft([...args, '--pin-dir', pinDir, '-o', 'json']);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A frame as the kernel hands it to the overlay device. */
const frame = (dst: string): Buffer => Buffer.concat([eth(fx.overlayMAC, fx.overlayMAC, ETH_P_IP), podPacket(dst)]);

test('weft bpf peers: every entry the codecs wrote, with the config', async () => {
  const out = await weftJson<{ pinDir: string; config: Record<string, unknown>; peers: Array<Record<string, unknown>>; unreadable: unknown[] }>(['bpf', 'peers']);
  assert.equal(out.pinDir, pinDir);
  assert.deepEqual(out.peers, [
    { subnet: '10.244.1.0/24', local: true, backend: null, encap: 'none', publicIP: fx.host.address, vni: null, vtepMAC: null, directRouting: false },
    { subnet: '10.244.2.0/24', local: false, backend: 'vxlan', encap: 'vxlan', publicIP: '192.0.2.12', vni: VNI, vtepMAC: PEER_VTEP_MAC, directRouting: false },
    { subnet: '10.244.3.0/24', local: false, backend: 'vxlan', encap: 'direct', publicIP: PEER_IP, vni: VNI, vtepMAC: '02:00:00:00:03:01', directRouting: true },
  ]);
  assert.deepEqual(out.unreadable, []);
  const c = out.config;
  assert.deepEqual(
    [c.subnet, c.network, c.backend, c.ready, c.vni, c.port, c.underlayIfindex, c.overlayIfindex, c.address, c.overlayMAC],
    ['10.244.1.0/24', '10.244.0.0/16', 'vxlan', true, VNI, 8472, fx.ethIfindex, fx.overlayIfindex, fx.host.address, fx.overlayMAC],
  );
  const t = await weft(['bpf', 'peers', '--bpf-pin-dir', pinDir]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^3 entries in .*weft_peers \(our subnet 10\.244\.1\.0\/24, Network 10\.244\.0\.0\/16, backend vxlan\)$/m);
  assert.match(t.stdout, new RegExp(`^10\\.244\\.3\\.0/24 +vxlan +${PEER_IP.replace(/\./g, '\\.')} +1 +02:00:00:00:03:01 +direct-routing$`, 'm'));
});

interface Lookup { action: string; encap: string | null; via: string | null; vni: number | null; vtepMAC: string | null; port: number | null; dropReason: string | null; inNetwork: boolean; match: { subnet: string } | null; kernelAgrees: boolean; says: string }

test('weft bpf lookup: local, vxlan, direct-routing, unknown and outside addresses, each confirmed by a packet through overlay_egress', async () => {
  const cases: Array<[string, Partial<Lookup>]> = [
    ['10.244.1.5', { action: 'local', match: { subnet: '10.244.1.0/24' } as Lookup['match'], via: null }],
    ['10.244.2.7', { action: 'encapsulate', encap: 'vxlan', via: '192.0.2.12', vni: VNI, vtepMAC: PEER_VTEP_MAC, port: 8472 }],
    ['10.244.3.9', { action: 'forward', encap: null, via: PEER_IP }],
    ['10.244.9.9', { action: 'drop', dropReason: 'no_peer', match: null, inNetwork: true }],
    ['198.51.100.7', { action: 'pass', inNetwork: false, match: null }],
  ];
  for (const [ip, want] of cases) {
    const got = await weftJson<Lookup>(['bpf', 'lookup', ip]);
    for (const [k, v] of Object.entries(want)) {
      if (k === 'match') assert.equal(got.match?.subnet ?? null, (v as Lookup['match'])?.subnet ?? null, `${ip}: match`);
      else assert.deepEqual(got[k as keyof Lookup], v, `${ip}: ${k}`);
    }
    assert.equal(got.kernelAgrees, true, `${ip}: the kernel's trie agrees`);
  }
  // What lookup says the program does, the program does.
  assert.equal(fx.run(fx.overlay, 'overlay_egress', frame('10.244.2.7')).retval, TC_ACT_UNSPEC, 'vxlan: handed to the vxlan device');
  assert.equal(fx.run(fx.overlay, 'overlay_egress', frame('10.244.3.9')).retval, TC_ACT_REDIRECT, 'direct: redirected to the next hop');
  assert.equal(fx.run(fx.overlay, 'overlay_egress', frame('10.244.9.9')).retval, TC_ACT_SHOT, 'unknown: dropped');

  const t = await weft(['bpf', 'lookup', '10.244.2.7', '--pin-dir', pinDir]);
  assert.match(t.stdout, /^so +peer subnet 10\.244\.2\.0\/24: encapsulated in vxlan to 192\.0\.2\.12 \(VNI 1, inner destination MAC 02:00:00:00:02:01, UDP port 8472\)$/m);
  const bad = await weft(['bpf', 'lookup', '10.244.300.1', '--pin-dir', pinDir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"10\.244\.300\.1" is not an IPv4 address/);
});

interface CounterJson { counters: Array<{ direction: string; encap: string; packets: number; bytes: number }> }
interface DropJson { drops: Array<{ reason: string; code: number; packets: number; bytes: number; packetsPerSec?: number | null }>; at?: string }

test('weft bpf counters and drops: per-CPU values summed, after packets through the programs', async () => {
  const before = await weftJson<CounterJson>(['bpf', 'counters']);
  const beforeDrops = await weftJson<DropJson>(['bpf', 'drops']);
  const egressVxlan = frame('10.244.2.8');
  for (let i = 0; i < 3; i++) assert.equal(fx.run(fx.overlay, 'overlay_egress', egressVxlan).retval, TC_ACT_UNSPEC);
  const unknown = frame('10.244.77.1');
  for (let i = 0; i < 4; i++) assert.equal(fx.run(fx.overlay, 'overlay_egress', unknown).retval, TC_ACT_SHOT);
  // Per-CPU slots written directly: CPU i holds i+1 packets and 100*(i+1) bytes.
  const cpus = numPossibleCpus();
  const perCpu = Buffer.alloc(cpus * LAYOUT.weft_counter.size);
  for (let i = 0; i < cpus; i++) {
    perCpu.writeBigUInt64LE(BigInt(i + 1), i * LAYOUT.weft_counter.size + LAYOUT.weft_counter.fields.packets);
    perCpu.writeBigUInt64LE(BigInt(100 * (i + 1)), i * LAYOUT.weft_counter.size + LAYOUT.weft_counter.fields.bytes);
  }
  fx.overlay.map(MAP_DROPS).update(u32Key(DROP_REASONS.indexOf('encap_failed')), perCpu);

  const after = await weftJson<CounterJson>(['bpf', 'counters']);
  const afterDrops = await weftJson<DropJson>(['bpf', 'drops']);
  const diff = (a: { packets: number; bytes: number }, b: { packets: number; bytes: number }) => ({ packets: a.packets - b.packets, bytes: a.bytes - b.bytes });
  const row = (j: CounterJson, d: string, e: string) => j.counters.find((r) => r.direction === d && r.encap === e)!;
  assert.equal(after.counters.length, 10, 'two directions by five encapsulations');
  assert.deepEqual(diff(row(after, 'egress', 'vxlan'), row(before, 'egress', 'vxlan')), { packets: 3, bytes: 3 * egressVxlan.length });
  for (const r of after.counters) {
    if (r.direction === 'egress' && r.encap === 'vxlan') continue;
    assert.deepEqual(diff(r, row(before, r.direction, r.encap)), { packets: 0, bytes: 0 }, `${r.direction} ${r.encap} unchanged`);
  }
  const drop = (j: DropJson, reason: string) => j.drops.find((r) => r.reason === reason)!;
  assert.deepEqual(afterDrops.drops.map((d) => [d.code, d.reason]), DROP_REASONS.map((r, i) => [i, r]));
  assert.deepEqual(diff(drop(afterDrops, 'no_peer'), drop(beforeDrops, 'no_peer')), { packets: 4, bytes: 4 * unknown.length });
  const sum = (cpus * (cpus + 1)) / 2;
  assert.deepEqual({ packets: drop(afterDrops, 'encap_failed').packets, bytes: drop(afterDrops, 'encap_failed').bytes }, { packets: sum, bytes: 100 * sum });

  const t = await weft(['bpf', 'drops', '--pin-dir', pinDir]);
  assert.match(t.stdout, new RegExp(`^encap_failed +${sum} +${100 * sum} +bpf_skb_adjust_room / store failed$`, 'm'));
  const tc = await weft(['bpf', 'counters', '--pin-dir', pinDir]);
  assert.match(tc.stdout, new RegExp(`^egress +vxlan +${row(after, 'egress', 'vxlan').packets} +${row(after, 'egress', 'vxlan').bytes} \\(`, 'm'));
});

test('weft bpf drops --watch: one JSON line per refresh, rates from the packets sent in between', async () => {
  const child = spawn('nsenter', [`--net=/run/netns/${fx.host.name}`, '--', process.execPath, CLI, 'bpf', 'drops', '--watch', '--interval', '2', '--count', '2', '-o', 'json', '--pin-dir', pinDir], { env: cleanEnv() });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d));
  const firstLine = new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => {
    out += d;
    if (out.includes('\n')) resolve();
  }));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await firstLine;
  const unknown = frame('10.244.78.1');
  for (let i = 0; i < 5; i++) fx.run(fx.overlay, 'overlay_egress', unknown);
  assert.equal(await exited, 0, err);
  const [first, second] = out.trim().split('\n').map((l) => JSON.parse(l) as DropJson);
  const a = first.drops.find((d) => d.reason === 'no_peer')!;
  const b = second.drops.find((d) => d.reason === 'no_peer')!;
  assert.equal(a.packetsPerSec, null, 'no rate on the first read');
  assert.equal(b.packets - a.packets, 5);
  const seconds = (Date.parse(second.at!) - Date.parse(first.at!)) / 1000;
  assert.ok(Math.abs(b.packetsPerSec! * seconds - 5) < 1e-6, `rate ${b.packetsPerSec}/s over ${seconds} s is 5 packets`);
});

interface Programs {
  config: { underlayIfname: string; overlayIfname: string; ready: boolean } | null;
  filters: Array<{ ifname: string; hook: string; role: string | null; progId: number; name: string; tag: string; weft: boolean; weftSlot: boolean; priority: number }>;
  pins: Array<{ name: string; kind: string; id: number | null; type: string | null; objectName: string | null }>;
  findings: Array<{ severity: string; message: string }>;
}

test('weft bpf programs: filters with ids and tags, the pins, and what is stale', async () => {
  let r = await weftJson<Programs>(['bpf', 'programs']);
  assert.deepEqual(r.config, { underlayIfindex: fx.ethIfindex, underlayIfname: 'eth0', overlayIfindex: fx.overlayIfindex, overlayIfname: 'weft0', ready: true, backend: 'vxlan' });
  assert.deepEqual(r.pins.map((p) => [p.name, p.kind, p.type]), [[MAP_CONFIG, 'map', 'array'], [MAP_DROPS, 'map', 'percpu_array'], [MAP_EVENTS, 'map', 'ringbuf'], [MAP_MONITOR, 'map', 'array'], [MAP_PEERS, 'map', 'lpm_trie'], [MAP_STATS, 'map', 'percpu_array']]);
  assert.equal(r.pins.find((p) => p.name === MAP_PEERS)!.id, fx.overlay.map(MAP_PEERS).id);
  assert.deepEqual(r.filters, []);
  assert.deepEqual(r.findings.map((f) => f.message.split(' (')[0]).sort(), [
    'overlay_egress is not attached on weft0 egress',
    'overlay_ingress is not attached on weft0 ingress',
    'underlay_decap is not attached on eth0 ingress',
  ]);

  const ns = `/run/netns/${fx.host.name}`;
  withNetns(ns, () => {
    attach(fx.overlayIfindex, fx.overlay, 'overlay_egress');
    attach(fx.overlayIfindex, fx.overlay, 'overlay_ingress');
    attach(fx.ethIfindex, fx.underlay, 'underlay_decap');
  });
  r = await weftJson<Programs>(['bpf', 'programs']);
  const progs = { overlay_egress: fx.overlay.program('overlay_egress'), overlay_ingress: fx.overlay.program('overlay_ingress'), underlay_decap: fx.underlay.program('underlay_decap') };
  assert.deepEqual(
    r.filters.map((f) => [f.ifname, f.role, f.hook, f.name, f.progId, f.tag, f.weft, f.weftSlot]),
    [
      ['eth0', 'underlay', 'ingress', 'underlay_decap', progs.underlay_decap.id, progs.underlay_decap.tag, true, true],
      ['weft0', 'overlay', 'ingress', 'overlay_ingress', progs.overlay_ingress.id, progs.overlay_ingress.tag, true, true],
      ['weft0', 'overlay', 'egress', 'overlay_egress', progs.overlay_egress.id, progs.overlay_egress.tag, true, true],
    ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
  );
  assert.deepEqual(r.findings, [], 'set up as the loader sets it up: nothing to report');

  // Now make a mess: a second filter on one hook, a weft program on an interface weft does not use, a pinned program attached nowhere.
  await fx.host.ip('link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other0p');
  const other = JSON.parse(await fx.host.ip('-j', 'link', 'show', 'other0'))[0].ifindex as number;
  const stray = BpfObject.load(OVERLAY_O);
  try {
    withNetns(ns, () => {
      tcAttach({ ifindex: fx.overlayIfindex, hook: 'egress', progFd: progs.overlay_egress.fd, handle: 7, priority: 2 });
      attach(other, fx.underlay, 'underlay_decap');
    });
    stray.program('overlay_egress').pin(path.join(pinDir, 'stray_prog'));
    r = await weftJson<Programs>(['bpf', 'programs']);
    const msgs = r.findings.map((f) => `${f.severity}: ${f.message}`);
    assert.equal(msgs.length, 3, msgs.join('\n'));
    assert.ok(msgs.some((m) => m === `stale: 2 weft programs on weft0 egress: overlay_egress (prog ${progs.overlay_egress.id}, tc pref 1 handle 0x${TC_HANDLE.toString(16)}), overlay_egress (prog ${progs.overlay_egress.id}, tc pref 2 handle 0x7); weft attaches one per hook`), msgs.join('\n'));
    assert.ok(msgs.some((m) => m.startsWith('stale: underlay_decap is attached on other0 ingress, an interface weft does not use (weft_config: underlay eth0, overlay weft0)')), msgs.join('\n'));
    assert.ok(msgs.includes(`stale: pinned program overlay_egress (id ${stray.program('overlay_egress').id}) at ${path.join(pinDir, 'stray_prog')} is attached nowhere in this namespace`), msgs.join('\n'));
    assert.deepEqual(r.pins.find((p) => p.name === 'stray_prog'), { path: path.join(pinDir, 'stray_prog'), name: 'stray_prog', kind: 'prog', id: stray.program('overlay_egress').id, type: 'sched_cls', objectName: 'overlay_egress', tag: stray.program('overlay_egress').tag, error: null });
    const t = await weft(['bpf', 'programs', '--pin-dir', pinDir]);
    assert.match(t.stdout, new RegExp(`^weft0 +overlay +egress +overlay_egress +${progs.overlay_egress.id} +${progs.overlay_egress.tag} +tc pref 1 handle 0x${TC_HANDLE.toString(16)} +yes$`, 'm'));
    assert.match(t.stdout, /^problems:$/m);
  } finally {
    fs.rmSync(path.join(pinDir, 'stray_prog'), { force: true });
    stray.close();
  }
});

test('wrong pin dir, partial pins and maps of another layout: exit 3 or 1 with what to do', async () => {
  const nowhere = path.join(path.dirname(pinDir), 'nowhere');
  const r = await weft(['bpf', 'peers', '--pin-dir', nowhere]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`^weft: no pinned weft maps in ${nowhere}: is the agent running with the eBPF dataplane, or did you mean .*--bpf-pin-dir ${pinDir}\\b`));
  const bare = await weft(['bpf']);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /name a subcommand: weft bpf peers \| lookup <ip> \| counters \| drops \| programs/);
  for (const sub of [['counters'], ['drops'], ['lookup', '10.244.2.1'], ['programs']]) {
    assert.equal((await weft(['bpf', ...sub, '--pin-dir', nowhere])).code, 3, sub.join(' '));
  }
  const odd = path.join(path.dirname(pinDir), 'odd');
  fs.mkdirSync(odd);
  try {
    fx.overlay.map(MAP_STATS).pin(path.join(odd, MAP_PEERS));
    const partial = await weft(['bpf', 'peers', '--pin-dir', odd]);
    assert.equal(partial.code, 3);
    assert.match(partial.stderr, /holds weft_peers but not weft_config: a partial or older install/);
    fx.overlay.map(MAP_CONFIG).pin(path.join(odd, MAP_CONFIG));
    const wrong = await weft(['bpf', 'peers', '--pin-dir', odd]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /weft_peers is a percpu_array map with 4-byte keys and 16-byte values, but this weft reads weft_peers as a lpm_trie with 8-byte keys and 16-byte values: it was pinned by another weft version/);
  } finally {
    fs.rmSync(odd, { recursive: true, force: true });
  }
});
