// Chooses the dataplane for --dataplane (auto, ebpf, netlink, none).
import type { DataplaneFactory } from '../agent/agent.js';

export const selectDataplane: DataplaneFactory = async (choice, _local, log) => {
  if (choice === 'none') return { dataplane: null, reason: '--dataplane=none: leases and subnet.env only, no packet forwarding' };
  if (choice === 'ebpf') {
    const { EbpfDataplane } = await import('./ebpf/index.js');
    return { dataplane: new EbpfDataplane(log), reason: '--dataplane=ebpf' };
  }
  throw new Error(`--dataplane=${choice}: not available in this build yet; use --dataplane=ebpf or none`);
};
