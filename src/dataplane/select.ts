// Chooses the dataplane for --dataplane (auto, ebpf, netlink, none).
import type { DataplaneFactory } from '../agent/agent.js';

export const selectDataplane: DataplaneFactory = async (choice) => {
  if (choice === 'none') return { dataplane: null, reason: '--dataplane=none: leases and subnet.env only, no packet forwarding' };
  throw new Error(`--dataplane=${choice}: not available in this build yet; use --dataplane=none`);
};
