// weft's CNI plugin on the netlink dataplane: CNI pods on three hosts reach each other (ping and TCP,
// the full cross-host matrix) and a hostPort, and DEL takes the port mapping off. The checks that do not
// depend on the dataplane run with the eBPF one (cni.test.ts).
import { test } from 'node:test';
import { cniCluster, matrixCheck, portmapCheck } from '../harness/cni.js';

test("netlink: pods made through weft's CNI plugin", async (t) => {
  const c = await cniCluster('netlink');
  t.after(() => c.destroy());
  await t.test(matrixCheck.title, () => matrixCheck.run(c));
  await t.test(portmapCheck.title, () => portmapCheck.run(c));
});
