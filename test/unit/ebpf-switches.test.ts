// The environment switches of the eBPF dataplane's shortcuts and checks (README, "Shortcuts to the pods").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ebpfOptionsFromEnv, envSwitch, vxlanPushWanted } from 'weft/dataplane/ebpf/index.js';
import type { LocalNetwork } from 'weft/core/model.js';

test('envSwitch: on unless 0, false, off or no (any case, trimmed)', () => {
  assert.equal(envSwitch('X', {}), true);
  assert.equal(envSwitch('X', { X: '1' }), true);
  assert.equal(envSwitch('X', { X: 'yes' }), true);
  for (const off of ['0', 'false', 'OFF', ' no ']) assert.equal(envSwitch('X', { X: off }), false, off);
});

test('switches: pod forwarding, from_pod and the sender check default on, tcx links on, the gateway hook off, vxlan push only without GBP', () => {
  const o = ebpfOptionsFromEnv;
  assert.equal(o({}).podForward, true);
  assert.equal(o({ WEFT_EBPF_POD_FORWARD: '0' }).podForward, false);
  assert.equal(o({}).senderCheck, true);
  assert.equal(o({ WEFT_EBPF_SENDER_CHECK: '0' }).senderCheck, false);
  assert.equal(o({}).gateway, false);
  assert.equal(o({ WEFT_EBPF_GATEWAY: '1' }).gateway, true);
  assert.equal(o({ WEFT_EBPF_GATEWAY: '0' }).gateway, false);
  assert.equal(o({}).fromPod, true);
  assert.equal(o({ WEFT_EBPF_FROM_POD: '0' }).fromPod, false);
  assert.equal(o({}).tcx, true);
  assert.equal(o({ WEFT_EBPF_TCX: '0' }).tcx, false);
  const vxlan = (gbp: boolean) => ({ backend: 'vxlan', vxlan: { vni: 1, port: 8472, gbp, vtepMAC: '02:00:00:00:00:01', learning: false } }) as unknown as LocalNetwork;
  assert.equal(vxlanPushWanted(vxlan(false), o({})), true);
  assert.equal(vxlanPushWanted(vxlan(true), o({})), false);
  assert.equal(vxlanPushWanted(vxlan(false), o({ WEFT_EBPF_VXLAN_PUSH: 'off' })), false);
  assert.equal(vxlanPushWanted({ backend: 'ipip' } as unknown as LocalNetwork, o({})), false);
});
