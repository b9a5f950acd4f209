// What weft monitor's events cost a forwarded packet, measured in the kernel
// with BPF_PROG_TEST_RUN: overlay_egress sending a pod's UDP packet to a
// vxlan peer (tunnel metadata, no FIB lookup: the same work every run),
// built without events (-DWEFT_NO_EVENTS), with events and nobody listening,
// with a monitor listening for drops, and with trace events sampled one in
// 100 and for every packet. The kernel times the runs itself; each figure is
// the median of 7 batches (the idle variants alternating).
//
//   node dist-test/bench/events.js [--packets 200000] [--json]
import path from 'node:path';
import fs from 'node:fs';
import { Lab } from '../lab/netns.js';
import { BpfObject } from 'weft/native/bpf.js';
import { OBJECT_DIR } from 'weft/dataplane/ebpf/loader.js';
import { CONFIG_KEY, MAP_CONFIG, MAP_EVENTS, MAP_MONITOR, MAP_PEERS, MAP_PORTS, MON, encodeConfig, encodeLpmKey, encodePeer, u32Key } from 'weft/dataplane/ebpf/maps.js';
import { MonitorSession } from 'weft/monitor/session.js';
import { localNetwork, route } from '../lab/model.js';

export interface EventsRow {
  mode: string;
  nsPerPacket: number;
  /** Events read from the ring while measuring, and those it had no room for. */
  events: number;
  lost: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** An Ethernet frame with a pod's UDP packet to 10.244.2.2, as the kernel hands it to the overlay device. */
function frame(): Buffer {
  const payload = Buffer.alloc(64, 0x77);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(5001, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([10, 244, 1, 2]).copy(ip, 12);
  Buffer.from([10, 244, 2, 2]).copy(ip, 16);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, udp, payload]);
}

function load(file: string, pinRoot: string): BpfObject {
  fs.mkdirSync(pinRoot, { recursive: true });
  const obj = BpfObject.load(file, { pinRoot });
  fs.rmSync(path.join(pinRoot, MAP_PORTS), { force: true });
  const local = localNetwork({
    backend: 'vxlan',
    network: '10.244.0.0/16',
    subnet: '10.244.1.0/24',
    publicIP: '192.0.2.11',
    iface: { name: 'eth0', index: 2, mtu: 1500, address: '192.0.2.11', mac: '02:00:00:00:00:11', networks: ['192.0.2.0/24'] },
    mtu: 1450,
    vxlan: { vni: 1, port: 8472, gbp: false, vtepMAC: '02:00:00:00:01:01', learning: false },
    pinDir: pinRoot,
  });
  obj.map(MAP_CONFIG).update(CONFIG_KEY, encodeConfig(local, { overlayIfindex: 3, overlayMAC: '02:00:00:00:00:03' }));
  const peer = route({ subnet: '10.244.2.0/24', publicIP: '192.0.2.12', encap: 'vxlan', vni: 1, vtepMAC: '02:00:00:00:02:01' });
  obj.map(MAP_PEERS).update(encodeLpmKey(peer.subnet), encodePeer(peer));
  return obj;
}

/** ns per run of overlay_egress over `packets` runs, in chunks the ring can hold between drains. */
function batch(obj: BpfObject, packets: number, chunk: number, drain: () => void): number {
  const prog = obj.program('overlay_egress');
  const data = frame();
  let ns = 0;
  for (let done = 0; done < packets; done += chunk) {
    const n = Math.min(chunk, packets - done);
    ns += prog.testRun({ data, repeat: n }).durationNs * n;
    drain();
  }
  return ns / packets;
}

const ROUNDS = 7;

async function measureEvents(packets: number): Promise<EventsRow[]> {
  const noEvents = path.resolve(OBJECT_DIR, '../bpf-noevents/overlay.o');
  if (!fs.existsSync(noEvents)) throw new Error(`${noEvents} is missing: make build makes the programs without events`);
  const lab = await Lab.create();
  const rows: EventsRow[] = [];
  try {
    const base = load(noEvents, path.join('/sys/fs/bpf', lab.id, 'noevents'));
    const obj = load(path.join(OBJECT_DIR, 'overlay.o'), path.join('/sys/fs/bpf', lab.id, 'events'));
    const none = (): void => undefined;
    // The two idle variants alternate, round by round, so that the machine's drift hits both alike.
    const idle: number[][] = [[], []];
    for (let r = 0; r < ROUNDS; r++) {
      idle[0].push(batch(base, packets, packets, none));
      idle[1].push(batch(obj, packets, packets, none));
    }
    rows.push({ mode: 'built without events (-DWEFT_NO_EVENTS)', nsPerPacket: median(idle[0]), events: 0, lost: 0 });
    rows.push({ mode: 'events built in, nobody listening', nsPerPacket: median(idle[1]), events: 0, lost: 0 });
    const listen = (mode: string, o: { drops: boolean; trace: boolean; sample: number }, chunk: number): void => {
      let events = 0;
      const s = new MonitorSession(obj.map(MAP_EVENTS), obj.map(MAP_MONITOR), o);
      s.start({ event: () => events++, lost: () => undefined, error: (err) => { throw err; } });
      const lost = (): number => Number(obj.map(MAP_MONITOR).lookup(u32Key(MON.lost))!.readBigUInt64LE(0));
      const lost0 = lost();
      try {
        // The measuring loop holds the event loop, where the session renews its deadlines: renew them here.
        const drain = (): void => {
          s.drain();
          s.renew();
        };
        const runs = Array.from({ length: ROUNDS }, () => batch(obj, packets, chunk, drain));
        rows.push({ mode, nsPerPacket: median(runs), events, lost: lost() - lost0 });
      } finally {
        s.stop();
      }
    };
    listen('a monitor listening for drops (none here)', { drops: true, trace: false, sample: 1 }, packets);
    // Chunks small enough that the 256 KiB ring (about 3,600 records) never fills between drains.
    listen('trace events, one packet in 100', { drops: true, trace: true, sample: 100 }, 200_000);
    listen('trace events, every packet', { drops: true, trace: true, sample: 1 }, 2_000);
    base.close();
    obj.close();
  } finally {
    await lab.destroy();
  }
  return rows;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--packets');
  const packets = at >= 0 ? Number(process.argv[at + 1]) : 200_000;
  if (!Number.isInteger(packets) || packets < 10_000) throw new Error('--packets: a whole number, at least 10000');
  const rows = await measureEvents(packets);
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ packets, rows }));
    return;
  }
  for (const r of rows) console.log(`${r.mode.padEnd(45)} ${r.nsPerPacket.toFixed(1).padStart(7)} ns/packet${r.events || r.lost ? `  (${r.events} events read, ${r.lost} lost)` : ''}`);
}

main().catch((err: unknown) => {
  console.error(`bench/events: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
