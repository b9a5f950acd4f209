// The demo's last step: `weft monitor` on h1 while a pod pings a pod on h2
// (forwarding decisions, sampled every one) and an address no lease holds
// (no_peer drops): what an operator sees when asking why a packet did not arrive.
import fs from 'node:fs';
import path from 'node:path';
import type { LabHost } from '../lab/netns.js';
import { waitFor } from '../lab/exec.js';
import { MAP_EVENTS } from 'weft/dataplane/ebpf/maps.js';
import { dim, info, output, red, shell } from './ui.js';
import type { DemoPod } from './show.js';

/** An address in the Network that no lease holds (the allocator hands out the first 100 subnets). */
const NOBODY = '10.244.250.9';

export async function showMonitor(h: LabHost, from: DemoPod, to: DemoPod, cli: string): Promise<void> {
  if (!fs.existsSync(path.join(h.pinDir, MAP_EVENTS))) {
    info(dim('weft monitor reads the eBPF programs\' ring buffer: there is none with the netlink dataplane'));
    return;
  }
  // The two flows only: anything else the hosts send meanwhile (a neighbour's probe) is not this story.
  const args = ['monitor', '--bpf-pin-dir', h.pinDir, '--type', 'all', '--address', to.ip, '--address', NOBODY, '--duration', '10'];
  shell(`nsenter --net=/run/netns/${h.name} node ${cli} ${args.join(' ')}    ${dim('# stopped with Ctrl-C after the pings')}`);
  const child = h.spawn([process.execPath, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await waitFor('weft monitor to listen', () => err.includes('listening for') || child.exitCode !== null);
  shell(`ping -c 2 ${to.ip}    ${dim(`# in ${from.name}, to ${to.name}`)}`);
  await from.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '1', to.ip], { allowFail: true });
  shell(`ping -c 2 ${NOBODY}    ${dim(`# in ${from.name}: no lease holds ${NOBODY}`)}`);
  await from.ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '1', NOBODY], { allowFail: true });
  await waitFor('both drops to be shown', () => out.split('no_peer').length > 2 || child.exitCode !== null, 5000).catch(() => undefined);
  child.kill('SIGINT');
  const code = await exited;
  output(out || err);
  if (code !== 0) info(red(`weft monitor exited ${code}: ${err.trim()}`));
}
