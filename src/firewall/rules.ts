// flannel's masquerade and forward rules, rule for rule and with flannel's
// chain names and comments, written in the canonical form iptables-save and
// `iptables -S` print them back in, so that "are they in place" is a
// comparison of lines.
//
// FLANNEL-POSTRTG (nat, from POSTROUTING), in order:
//   kube-proxy's masquerade mark         RETURN (kube-proxy masquerades those itself)
//   our subnet -> the Network           RETURN (pod to pod keeps its address)
//   the Network -> our subnet           RETURN
//   outside -> our subnet               RETURN (a client's address reaches our pods)
//   the Network -> outside, not multicast  MASQUERADE (pods reach the world)
//   outside -> the rest of the Network  MASQUERADE (the host reaches remote pods)
// FLANNEL-FWD (filter, from FORWARD): ACCEPT from and to the Network, because
// docker sets the FORWARD policy to DROP when it turns on ip_forward.
import type { IPNet } from '../core/ipnet.js';

export type Table = 'nat' | 'filter';

export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
/** kube-proxy's KUBE-MARK-MASQ bit. */
export const KUBE_PROXY_MARK = '0x4000/0x4000';

export interface Chain {
  table: Table;
  name: string;
  /** The built-in chain that jumps to it. */
  parent: 'POSTROUTING' | 'FORWARD';
  /** The one rule in the parent that jumps here, as `-A PARENT ...`. */
  jump: string;
  /** The chain's rules, in order, as `-A NAME ...`. */
  rules: string[];
}

/** Our chains, with the table and the built-in chain each hangs from (what uninstall looks for). */
export const CHAINS: ReadonlyArray<Pick<Chain, 'table' | 'name' | 'parent'>> = [
  { table: 'nat', name: MASQ_CHAIN, parent: 'POSTROUTING' },
  { table: 'filter', name: FORWARD_CHAIN, parent: 'FORWARD' },
];

const MASQ_COMMENT = '-m comment --comment "flanneld masq"';
const FORWARD_COMMENT = '-m comment --comment "flanneld forward"';

function multicast(network: IPNet): string {
  return network.family === 4 ? '224.0.0.0/4' : 'ff00::/8';
}

export function masqChain(network: IPNet, subnet: IPNet, randomFully: boolean): Chain {
  const n = network.canonical().toString();
  const s = subnet.canonical().toString();
  const masq = `-j MASQUERADE${randomFully ? ' --random-fully' : ''}`;
  const rule = (spec: string): string => `-A ${MASQ_CHAIN} ${spec}`;
  return {
    table: 'nat',
    name: MASQ_CHAIN,
    parent: 'POSTROUTING',
    jump: `-A POSTROUTING ${MASQ_COMMENT} -j ${MASQ_CHAIN}`,
    rules: [
      rule(`-m mark --mark ${KUBE_PROXY_MARK} ${MASQ_COMMENT} -j RETURN`),
      rule(`-s ${s} -d ${n} ${MASQ_COMMENT} -j RETURN`),
      rule(`-s ${n} -d ${s} ${MASQ_COMMENT} -j RETURN`),
      rule(`! -s ${n} -d ${s} ${MASQ_COMMENT} -j RETURN`),
      rule(`-s ${n} ! -d ${multicast(network)} ${MASQ_COMMENT} ${masq}`),
      rule(`! -s ${n} -d ${n} ${MASQ_COMMENT} ${masq}`),
    ],
  };
}

export function forwardChain(network: IPNet): Chain {
  const n = network.canonical().toString();
  return {
    table: 'filter',
    name: FORWARD_CHAIN,
    parent: 'FORWARD',
    jump: `-A FORWARD ${FORWARD_COMMENT} -j ${FORWARD_CHAIN}`,
    rules: [`-A ${FORWARD_CHAIN} -s ${n} ${FORWARD_COMMENT} -j ACCEPT`, `-A ${FORWARD_CHAIN} -d ${n} ${FORWARD_COMMENT} -j ACCEPT`],
  };
}

/** `-A CHAIN spec` as `-D CHAIN spec`: the restore line that deletes that rule. */
export function deleteLine(appendLine: string): string {
  return appendLine.replace(/^-A /, '-D ');
}

/** What a chain and its parent hold now (null: the chain does not exist). */
export interface ChainState {
  rules: string[] | null;
  /** The parent's rules that jump to this chain. */
  jumps: string[];
}

/**
 * The iptables-restore --noflush lines (one table) that make `want` exactly
 * so: declaring the chain flushes it, then its rules, then one jump.
 */
export function ensureLines(want: Chain, now: ChainState): string[] {
  const lines = [`:${want.name} - [0:0]`, ...want.rules];
  const kept = now.jumps.filter((j) => j === want.jump).length;
  for (const j of now.jumps) if (j !== want.jump) lines.push(deleteLine(j));
  if (kept === 0) lines.push(want.jump);
  for (let i = 1; i < kept; i++) lines.push(deleteLine(want.jump));
  return lines;
}

/** The lines that remove a chain and every jump to it. */
export function removeLines(name: string, jumps: string[]): string[] {
  return [...jumps.map(deleteLine), `-F ${name}`, `-X ${name}`];
}

/** What differs between `want` and `now`, in words for the log (empty: in place). */
export function differences(want: Chain, now: ChainState): string[] {
  const out: string[] = [];
  if (now.rules === null) out.push(`${want.table} ${want.name} was missing`);
  else if (now.rules.join('\n') !== want.rules.join('\n')) {
    const missing = want.rules.filter((r) => !now.rules!.includes(r)).length;
    const extra = now.rules.filter((r) => !want.rules.includes(r)).length;
    out.push(`${want.table} ${want.name} held ${now.rules.length} rules (${missing} missing, ${extra} foreign${!missing && !extra ? ', out of order' : ''})`);
  }
  const kept = now.jumps.filter((j) => j === want.jump).length;
  if (kept === 0) out.push(`the jump from ${want.parent} to ${want.name} was missing`);
  if (kept > 1) out.push(`${want.parent} jumped to ${want.name} ${kept} times`);
  const other = now.jumps.length - kept;
  if (other) out.push(`${want.parent} held ${other} other jump${other > 1 ? 's' : ''} to ${want.name}`);
  return out;
}
