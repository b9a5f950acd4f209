// `weft uninstall` when it runs.
import { uninstallEbpf } from '../dataplane/ebpf/index.js';
import { uninstallNetlink } from '../dataplane/netlink/uninstall.js';
import { uninstallFirewall } from '../firewall/firewall.js';
import { createLogger } from '../core/log.js';
import type { UninstallArgs } from './uninstall.js';

export async function runUninstall(a: UninstallArgs): Promise<void> {
  const log = createLogger({ level: 'warn' });
  const ebpf = uninstallEbpf(a['bpf-pin-dir'], log);
  const netlink = uninstallNetlink(log);
  const chains = await uninstallFirewall();
  const report = { filters: ebpf.filters, links: ebpf.links, devices: [...ebpf.devices, ...netlink.devices], routes: netlink.routes, pins: ebpf.pins, chains };
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
    ...report.chains.map((c) => `removed chain    ${c}`),
  ];
  process.stdout.write((lines.length ? lines.join('\n') : 'nothing of weft was found on this host') + '\n');
}
