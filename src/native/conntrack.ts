// The addon's ctnetlink call (native/src/netlink_ct.cc), typed. Acts in the
// calling thread's network namespace.
import { addon } from './addon.js';

/**
 * Marks an established TCP entry's windows as tracked liberally in both
 * directions (IP_CT_TCP_FLAG_BE_LIBERAL), found by the tuple of a packet of
 * it (addresses as 4 network-order bytes); on false clears the mark. False
 * when conntrack no longer has the entry; other failures throw, naming the
 * call and the errno.
 */
export function ctSetTcpLiberal(saddr: Buffer, daddr: Buffer, sport: number, dport: number, on = true): boolean {
  return (addon().conntrack.ctSetTcpLiberal(saddr, daddr, sport, dport, on) as number) === 0;
}
