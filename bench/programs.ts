// weft's TC programs on a bench case's hosts, for the profiling scripts
// (profile.ts, stream-profile.ts) to read their run statistics.
import { withNetns } from 'weft/native/addon.js';
import { tcxPrograms, tcxSupported, progInfo, tcFilters } from 'weft/native/bpf.js';
import { NetlinkHandle } from 'weft/native/netlink.js';
import type { CaseSetup } from './cases.js';

/** weft's programs on the case's hosts (both ends), by id, for bpftool. */
export function weftPrograms(s: CaseSetup): Array<{ host: string; id: number; name: string }> {
  const out: Array<{ host: string; id: number; name: string }> = [];
  for (const a of s.agents) {
    withNetns(`/run/netns/${a.host.name}`, () => {
      const nl = NetlinkHandle.open();
      try {
        for (const l of nl.links()) {
          for (const hook of ['ingress', 'egress'] as const) {
            const ids = [...(tcxSupported() ? tcxPrograms(l.index, hook).map((e) => e.progId) : []), ...tcFilters(l.index, hook).flatMap((f) => (f.progId ? [f.progId] : []))];
            for (const id of ids) out.push({ host: a.host.hostName, id, name: `${progInfo(id).name}@${l.name}` });
          }
        }
      } finally {
        nl.close();
      }
    });
  }
  return out;
}
