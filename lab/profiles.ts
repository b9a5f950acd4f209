// Host profiles: the netfilter rules a real host carries beside the overlay,
// applied to a lab host (its own namespace) after its bridge exists, the same
// way for flannel's and weft's hosts, so that a benchmark or a test compares
// the overlays where users run them.
//
//   bare    flanneld's own default only: FLANNEL-FWD (--iptables-forward-rules, on by
//           default; --ip-masq is off by default): a filter chain, conntrack follows
//           nothing
//   docker  docker 20.10's filter and nat rules for docker0 holding FLANNEL_SUBNET
//           (as mk-docker-opts starts it when flanneld masquerades: --ip-masq=false),
//           FORWARD policy DROP; flannel's FLANNEL-FWD and FLANNEL-POSTRTG rules
//   kube    kube-proxy's iptables-mode rules (iptables-nft here): KUBE-FORWARD with the
//           INVALID drop, the masquerade mark and the conntrack accept; 1,000 ClusterIP
//           services DNAT'ed to pods; flannel's FLANNEL-FWD and FLANNEL-POSTRTG rules
//
// flannel's two chains are written by weft's own firewall module's definitions
// (src/firewall/rules.ts, byte for byte flannel's); both kinds of host get them,
// and a weft agent's own firewall finds them as it writes them. The lab's flannel
// hosts are programmed with ip commands (lab/flannel.ts) and write no rules of
// their own: without FLANNEL-FWD on bare, flannel's forwarded packets met no
// FORWARD hook while a weft agent's (which writes FLANNEL-FWD, as flanneld does)
// met one, and weft's netlink dataplane, flannel's own kernel path, read 0.86x.
//
// The ClusterIPs: the lab may use no addresses but 192.0.2.0/24, 198.51.100.0/24
// and 10.244.0.0/16, so the service range is 10.244.240.0/20, a part of the
// Network no lease in the lab reaches (the allocator hands out the first 100
// free subnets, the benchmark's flannel hosts take 10.244.1.0 and .2.0).
import { IPNet } from 'weft/core/ipnet.js';
import { KUBE_PROXY_MARK, forwardChain, masqChain, type Chain } from 'weft/firewall/rules.js';
import type { Netns } from './netns.js';

export const PROFILES = ['bare', 'docker', 'kube'] as const;
export type HostProfile = (typeof PROFILES)[number];

export function isProfile(s: string): s is HostProfile {
  return (PROFILES as readonly string[]).includes(s);
}

export const SERVICE_RANGE = IPNet.v4('10.244.240.0/20', 'service range');
export const SERVICES = 1000;
export const SERVICE_PORT = 80;
/** kube-proxy's masquerade mark. */
export const MASQ_MARK = KUBE_PROXY_MARK;

/** The i-th service's ClusterIP (0-based). */
export function serviceIP(i: number): string {
  return SERVICE_RANGE.hostAt(BigInt(i + 1));
}

export interface ProfileContext {
  /** FLANNEL_NETWORK, e.g. 10.244.0.0/16. */
  network: string;
  /** FLANNEL_SUBNET as subnet.env writes it (the bridge's address), e.g. 10.244.3.1/24. */
  subnet: string;
  /** The bridge that holds the subnet (docker0). */
  bridge: string;
  /** kube: the pods behind the services, taken in turn (service i -> endpoints[i % n]). */
  endpoints?: Array<{ ip: string; port: number }>;
  /** kube: how many ClusterIP services (default SERVICES). */
  services?: number;
}

/**
 * flannel's forward and masquerade chains (FLANNEL.md, "ip-masq"), for flanneld with --ip-masq: the same
 * lines weft's own firewall writes (src/firewall/rules.ts), so that a weft agent taking them over finds them
 * as it would write them, and flannel's and weft's hosts start from the same rules.
 */
function flannelRules(network: string, podCIDR: string): { filter: string[]; nat: string[] } {
  const lines = (c: Chain): string[] => [`:${c.name} - [0:0]`, c.jump, ...c.rules];
  const net = IPNet.v4(network, 'FLANNEL_NETWORK');
  return { filter: lines(forwardChain(net)), nat: lines(masqChain(net, IPNet.v4(podCIDR, 'FLANNEL_SUBNET'), true)) };
}

/** docker 20.10 with the default bridge (docker0, --bip=FLANNEL_SUBNET, --ip-masq=false, --icc=true). */
function dockerRules(bridge: string): { filter: string[]; nat: string[] } {
  return {
    filter: [
      ':FORWARD DROP [0:0]',
      ':DOCKER - [0:0]',
      ':DOCKER-ISOLATION-STAGE-1 - [0:0]',
      ':DOCKER-ISOLATION-STAGE-2 - [0:0]',
      ':DOCKER-USER - [0:0]',
      '-A FORWARD -j DOCKER-USER',
      '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
      `-A FORWARD -o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A FORWARD -o ${bridge} -j DOCKER`,
      `-A FORWARD -i ${bridge} ! -o ${bridge} -j ACCEPT`,
      `-A FORWARD -i ${bridge} -o ${bridge} -j ACCEPT`,
      `-A DOCKER-ISOLATION-STAGE-1 -i ${bridge} ! -o ${bridge} -j DOCKER-ISOLATION-STAGE-2`,
      '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
      `-A DOCKER-ISOLATION-STAGE-2 -o ${bridge} -j DROP`,
      '-A DOCKER-ISOLATION-STAGE-2 -j RETURN',
      '-A DOCKER-USER -j RETURN',
    ],
    nat: [
      ':DOCKER - [0:0]',
      '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
      `-A DOCKER -i ${bridge} -j RETURN`,
    ],
  };
}

const chainId = (kind: string, i: number): string => `KUBE-${kind}-${(0x5eed0000 + i).toString(16).toUpperCase()}`;

/** kube-proxy in iptables mode (Kubernetes 1.2x), with `services` ClusterIP services. */
function kubeRules(network: string, endpoints: Array<{ ip: string; port: number }>, services: number): { filter: string[]; nat: string[] } {
  const filter = [
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-EXTERNAL-SERVICES - [0:0]',
    ':KUBE-FIREWALL - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A INPUT -j KUBE-FIREWALL',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -j KUBE-FIREWALL',
    '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -m comment --comment "kubernetes forwarding rules" -j DROP',
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQ_MARK} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  ];
  const nat = [
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    `-A KUBE-MARK-MASQ -j MARK --set-xmark ${MASQ_MARK}`,
    `-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK} -j RETURN`,
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  const chains: string[] = [];
  const rules: string[] = [];
  for (let i = 0; i < services; i++) {
    const svc = chainId('SVC', i);
    const sep = chainId('SEP', i);
    const ep = endpoints[i % endpoints.length];
    const ip = serviceIP(i);
    const name = `bench/svc-${i}:http`;
    chains.push(`:${svc} - [0:0]`, `:${sep} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${ip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${SERVICE_PORT} -j ${svc}`,
      `-A ${svc} ! -s ${network} -d ${ip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${SERVICE_PORT} -j KUBE-MARK-MASQ`,
      `-A ${svc} -m comment --comment "${name} -> ${ep.ip}:${ep.port}" -j ${sep}`,
      `-A ${sep} -s ${ep.ip}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`,
      `-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${ep.ip}:${ep.port}`,
    );
  }
  rules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return { filter, nat: [...nat, ...chains, ...rules] };
}

/** The iptables-restore input for a profile. */
export function profileRules(profile: HostProfile, ctx: ProfileContext): string {
  const gw = IPNet.v4(ctx.subnet, 'FLANNEL_SUBNET');
  const podCIDR = gw.canonical().toString();
  const network = IPNet.v4(ctx.network, 'FLANNEL_NETWORK').canonical().toString();
  const flannel = flannelRules(network, podCIDR);
  // flanneld with its defaults: the forward chain, no masquerade (a nat rule would make conntrack follow flows).
  if (profile === 'bare') return ['*filter', ...flannel.filter, 'COMMIT'].join('\n') + '\n';
  let own: { filter: string[]; nat: string[] };
  if (profile === 'docker') own = dockerRules(ctx.bridge);
  else {
    if (!ctx.endpoints?.length) throw new Error('the kube profile needs the pods its services lead to (endpoints)');
    own = kubeRules(network, ctx.endpoints, ctx.services ?? SERVICES);
  }
  // Chain declarations before the rules that jump to them, as iptables-save writes them.
  const table = (name: string, lines: string[]): string[] => [`*${name}`, ...lines.filter((l) => l.startsWith(':')), ...lines.filter((l) => !l.startsWith(':')), 'COMMIT'];
  return [...table('filter', [...own.filter, ...flannel.filter]), ...table('nat', [...own.nat, ...flannel.nat])].join('\n') + '\n';
}

/**
 * Applies a profile to a host's namespace: its rules in one iptables-restore
 * transaction, and the sysctls that go with them (kube-proxy's conntrack
 * timeouts and bridge-nf). Only ever inside a namespace the lab made.
 */
export async function applyProfile(host: Netns, profile: HostProfile, ctx: ProfileContext): Promise<void> {
  await host.exec(['iptables-restore', '--noflush'], { input: profileRules(profile, ctx), timeoutMs: 60_000 });
  if (profile === 'bare') return;
  // Both docker and kube-proxy need bridged traffic to meet iptables; kube-proxy also sets its conntrack timeouts.
  await host.sysctl('net.bridge.bridge-nf-call-iptables', '1');
  if (profile === 'kube') {
    await host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', '86400');
    await host.sysctl('net.netfilter.nf_conntrack_tcp_timeout_close_wait', '3600');
  }
}
