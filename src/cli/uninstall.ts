// `weft uninstall`: removes every filter, pin, device and route weft created on
// this host (either dataplane), and nothing else. The agent must be stopped first (it would put them back).
import type { Argv, CommandModule } from 'yargs';
import { uninstallEbpf } from '../dataplane/ebpf/index.js';
import { uninstallNetlink } from '../dataplane/netlink/uninstall.js';
import { createLogger } from '../core/log.js';
import { pinDirOption, withOptions } from './options.js';

interface UninstallArgs {
  'bpf-pin-dir': string;
  output: 'table' | 'json';
}

export const uninstallCommand: CommandModule<object, UninstallArgs> = {
  command: 'uninstall',
  describe: "remove weft's TC filters, pinned maps and devices from this host (stop the agent first)",
  builder: (y: Argv) =>
    withOptions(y, pinDirOption, {
      output: { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'output format' },
    }) as unknown as Argv<UninstallArgs>,
  handler: (a) => {
    const log = createLogger({ level: 'warn' });
    const ebpf = uninstallEbpf(a['bpf-pin-dir'], log);
    const netlink = uninstallNetlink(log);
    const report = { filters: ebpf.filters, links: ebpf.links, devices: [...ebpf.devices, ...netlink.devices], routes: netlink.routes, pins: ebpf.pins };
    if (a.output === 'json') {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return;
    }
    const lines = [
      ...report.filters.map((f) => `detached filter  ${f}`),
      ...report.links.map((l) => `detached link    ${l}`),
      ...report.devices.map((d) => `deleted device   ${d}`),
      ...report.routes.map((r) => `deleted route    ${r}`),
      ...report.pins.map((p) => `removed pin      ${p}`),
    ];
    process.stdout.write((lines.length ? lines.join('\n') : 'nothing of weft was found on this host') + '\n');
  },
};
