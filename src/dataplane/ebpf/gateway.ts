// gateway_ingress (bpf/gateway.c) on the device that holds our subnet's
// gateway address: the pods' bridge, found by its address, without
// configuration. Opt-in (WEFT_EBPF_GATEWAY=1): it adds a filter on a device
// weft does not own, which the inspection commands do not know yet. A host
// without such a device, or before it appears, simply has no hook: pods'
// traffic takes the kernel's forward path to the overlay device as always.
import { NetlinkHandle, type Link } from '../../native/netlink.js';
import type { BpfProgram } from '../../native/bpf.js';
import { subnetHolders } from './ports.js';
import { attachProgram, detach, hookOf, weftFilterOn } from './loader.js';
import type { LocalNetwork } from '../../core/model.js';
import type { IPNet } from '../../core/ipnet.js';
import type { Logger } from '../../core/log.js';

/** The device with an IPv4 address whose network holds our whole subnet (docker0 10.244.3.1/24), other than weft's own. */
export function findGatewayDevice(nl: NetlinkHandle, subnet: IPNet, exclude: number[]): Link | null {
  const [first] = subnetHolders(nl, subnet, exclude);
  return first === undefined ? null : nl.link(first);
}

/** Where gateway_ingress runs on the gateway device. */
const HOOK = hookOf('gateway_ingress');

export class GatewayHook {
  private ifindex: number | null = null;

  constructor(
    private readonly nl: NetlinkHandle,
    private readonly prog: BpfProgram,
    private readonly local: LocalNetwork,
    private readonly exclude: number[],
    private readonly log: Logger,
  ) {}

  /** Attaches to the current gateway device (again, when someone removed the filter); follows it when it moves. */
  sync(): void {
    const dev = findGatewayDevice(this.nl, this.local.subnet, this.exclude);
    if (this.ifindex !== null && this.ifindex !== dev?.index) {
      const old = this.nl.link(this.ifindex);
      if (old) detach(old.index, HOOK);
      this.log.info({ device: old?.name ?? this.ifindex }, 'the gateway device changed: pods\' traffic to peers takes the forward path there');
      this.ifindex = null;
    }
    if (!dev) return;
    const ours = weftFilterOn(dev.index, HOOK, this.prog.id);
    if (ours && this.ifindex === dev.index) return;
    attachProgram(dev.index, HOOK, this.prog.fd);
    this.ifindex = dev.index;
    this.log.info({ device: dev.name, subnet: this.local.subnet.toString() }, 'gateway_ingress attached: pods\' traffic to peers is sent from the gateway device');
  }

  get device(): number | null {
    return this.ifindex;
  }

  close(): void {
    this.prog.close();
  }
}
