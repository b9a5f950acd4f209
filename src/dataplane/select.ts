// Chooses the dataplane for --dataplane (auto, ebpf, netlink, none). auto
// probes the kernel (probe.ts) and falls back to netlink with the first reason
// that rules eBPF out; ebpf fails with that reason instead. Switching a host
// from one dataplane to the other removes the first one's state before the
// second programs anything.
import { AgentFatalError, type DataplaneFactory } from '../agent/agent.js';
import type { Dataplane, LocalNetwork } from './types.js';
import type { Logger } from '../core/log.js';
import { forcedFailure, probeEbpf, ProbeConfigError, type ProbeResult } from './probe.js';
import { NetlinkDataplane, NetlinkUnsupportedError, UDP_UNSUPPORTED, uninstallNetlink } from './netlink/index.js';
import { EbpfDataplane, uninstallEbpf } from './ebpf/index.js';

/** Errors that are the user's to fix (a backend this dataplane cannot run here) end the agent with the message, not a stack. */
class AgentNetlinkDataplane extends NetlinkDataplane {
  override async start(local: LocalNetwork): Promise<void> {
    try {
      await super.start(local);
    } catch (err) {
      if (err instanceof NetlinkUnsupportedError) throw new AgentFatalError(`--dataplane=netlink: ${err.message}`);
      throw err;
    }
  }
}

/** The eBPF dataplane's filters, pins and devices go before netlink mode programs the host. */
function removeEbpfState(local: LocalNetwork, log: Logger): void {
  const r = uninstallEbpf(local.pinDir, log);
  if (r.filters.length || r.devices.length || r.pins.length) {
    log.info({ filters: r.filters, devices: r.devices, pins: r.pins }, 'removed the eBPF dataplane\'s state before programming the netlink dataplane');
  }
}

/** flannel.<VNI> (or flannel.ipip) and weft's per-peer routes go before the eBPF dataplane programs the host. */
function removeNetlinkState(log: Logger): void {
  const r = uninstallNetlink(log);
  if (r.devices.length || r.routes.length) {
    log.info({ devices: r.devices, routes: r.routes.length }, 'removed the netlink dataplane\'s state before programming the eBPF dataplane');
  }
}

async function netlink(local: LocalNetwork, log: Logger, reason: string): Promise<{ dataplane: Dataplane; reason: string }> {
  if (local.backend === 'udp') throw new AgentFatalError(`${reason}; but ${UDP_UNSUPPORTED}`);
  removeEbpfState(local, log);
  log.info({ dataplane: 'netlink', reason }, 'dataplane selected');
  return { dataplane: new AgentNetlinkDataplane(log), reason };
}

function probe(local: LocalNetwork): ProbeResult {
  try {
    return probeEbpf({ iface: local.iface, pinDir: local.pinDir, forceFail: forcedFailure() });
  } catch (err) {
    if (err instanceof ProbeConfigError) throw new AgentFatalError(err.message);
    throw err;
  }
}

export const selectDataplane: DataplaneFactory = async (choice, local, log) => {
  if (choice === 'none') return { dataplane: null, reason: '--dataplane=none: leases and subnet.env only, no packet forwarding' };
  if (choice === 'netlink') return netlink(local, log, '--dataplane=netlink: chosen on the command line (no eBPF probe)');

  const r = probe(local);
  if (!r.ok) {
    const why = `eBPF ruled out at the ${r.step} check: ${r.reason}`;
    if (choice === 'ebpf') throw new AgentFatalError(`--dataplane=ebpf: ${why} (--dataplane=auto would fall back to the netlink dataplane)`);
    log.warn({ step: r.step, passed: r.checks }, `--dataplane=auto: ${why}; falling back to the netlink dataplane`);
    return netlink(local, log, `auto: ${why}; using the netlink dataplane`);
  }
  removeNetlinkState(log);
  const reason = `${choice === 'auto' ? 'auto' : '--dataplane=ebpf'}: the kernel passed every eBPF check (${r.checks.join('; ')})`;
  log.info({ dataplane: 'ebpf', reason }, 'dataplane selected');
  return { dataplane: new EbpfDataplane(log), reason };
};
