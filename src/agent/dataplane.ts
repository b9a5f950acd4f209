// Which dataplane the agent runs (--dataplane auto, ebpf, netlink, none). auto
// probes the kernel (dataplane/probe.ts) and falls back to netlink with the
// first reason that rules eBPF out; ebpf fails with that reason instead.
// Switching a host from one dataplane to the other removes the first one's
// state before the second programs anything. This is the agent's wiring: the
// dataplanes below know nothing of each other or of the choice.
import { WeftError } from '../core/errors.js';
import type { LocalNetwork } from '../core/model.js';
import type { Logger } from '../core/log.js';
import type { Dataplane } from '../dataplane/types.js';
import { forcedFailure, probeEbpf, verifierCheckAsync, type ProbeResult } from '../dataplane/probe.js';
import { NetlinkDataplane, UDP_UNSUPPORTED, uninstallNetlink } from '../dataplane/netlink/index.js';
import { EbpfDataplane, uninstallEbpf, type EbpfOptions } from '../dataplane/ebpf/index.js';
import { GuardedDataplane } from '../dataplane/guard.js';

export type DataplaneChoice = 'auto' | 'ebpf' | 'netlink' | 'none';

export interface DataplaneWiring {
  choice: DataplaneChoice;
  /** The eBPF dataplane's switches (WEFT_EBPF_*, read by the CLI). */
  ebpf: EbpfOptions;
  /** WEFT_PROBE_FAIL's value: a probe step to fail on purpose, for testing the fallback (checked when the probe runs). */
  probeFail?: string;
}

export interface SelectedDataplane {
  dataplane: Dataplane | null;
  reason: string;
}

/** Chooses and builds the dataplane once the local network is known; the agent's tests pass their own. */
export type DataplaneFactory = (local: LocalNetwork, log: Logger) => Promise<SelectedDataplane>;

/** The eBPF dataplane's filters, pins and devices go before netlink mode programs the host. */
function removeEbpfState(local: LocalNetwork, log: Logger): void {
  const r = uninstallEbpf(local.pinDir, log);
  if (r.filters.length || r.links.length || r.devices.length || r.pins.length) {
    log.info({ filters: r.filters, links: r.links, devices: r.devices, pins: r.pins }, 'removed the eBPF dataplane\'s state before programming the netlink dataplane');
  }
}

/** flannel.<VNI> (or flannel.ipip) and weft's per-peer routes go before the eBPF dataplane programs the host. */
function removeNetlinkState(log: Logger): void {
  const r = uninstallNetlink(log);
  if (r.devices.length || r.routes.length) {
    log.info({ devices: r.devices, routes: r.routes.length }, 'removed the netlink dataplane\'s state before programming the eBPF dataplane');
  }
}

function netlink(local: LocalNetwork, log: Logger, reason: string): SelectedDataplane {
  if (local.backend === 'udp') throw new WeftError(`${reason}; but ${UDP_UNSUPPORTED}`);
  removeEbpfState(local, log);
  log.info({ dataplane: 'netlink', reason }, 'dataplane selected');
  return { dataplane: new NetlinkDataplane(log), reason };
}

export function selectDataplane(w: DataplaneWiring): DataplaneFactory {
  // The verifier's part of the probe starts now, on a libuv thread, and is done by the time the lease is.
  const verifier = w.choice === 'auto' || w.choice === 'ebpf' ? verifierCheckAsync().catch(() => undefined) : null;
  return async (local, log) => {
    if (w.choice === 'none') return { dataplane: null, reason: '--dataplane=none: leases and subnet.env only, no packet forwarding' };
    if (w.choice === 'netlink') return netlink(local, log, '--dataplane=netlink: chosen on the command line (no eBPF probe)');

    const r: ProbeResult = probeEbpf({ iface: local.iface, pinDir: local.pinDir, forceFail: forcedFailure(w.probeFail), verifier: verifier ? await verifier : undefined });
    if (!r.ok) {
      const why = `eBPF ruled out at the ${r.step} check: ${r.reason}`;
      if (w.choice === 'ebpf') throw new WeftError(`--dataplane=ebpf: ${why} (--dataplane=auto would fall back to the netlink dataplane)`);
      log.warn({ step: r.step, passed: r.checks }, `--dataplane=auto: ${why}; falling back to the netlink dataplane`);
      return netlink(local, log, `auto: ${why}; using the netlink dataplane`);
    }
    removeNetlinkState(log);
    const reason = `${w.choice === 'auto' ? 'auto' : '--dataplane=ebpf'}: the kernel passed every eBPF check (${r.checks.join('; ')})`;
    log.info({ dataplane: 'ebpf', reason }, 'dataplane selected');
    return { dataplane: new GuardedDataplane(new EbpfDataplane(log, w.ebpf), log), reason };
  };
}
