// The interface snapshot for selectInterface, read over rtnetlink in the
// agent's own network namespace.
import { NetlinkHandle } from '../native/netlink.js';
import type { IfaceSnapshot } from './iface.js';

export function snapshotInterfaces(): IfaceSnapshot {
  const nl = NetlinkHandle.open();
  try {
    return {
      links: nl.links().map((l) => ({ index: l.index, name: l.name, mtu: l.mtu, mac: l.mac, up: l.up })),
      addrs: nl.addrs(),
      routes: nl.routes().map((r) => ({ dst: r.dst, index: r.index, gateway: r.gateway, table: r.table, protocol: r.protocol })),
    };
  } finally {
    nl.close();
  }
}
