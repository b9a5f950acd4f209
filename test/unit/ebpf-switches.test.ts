// The environment switches of the eBPF dataplane's shortcuts and checks (README, "Shortcuts to the pods").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envSwitch, gatewayWanted, podForwardWanted, senderCheckWanted, vxlanPushWanted } from 'weft/dataplane/ebpf/index.js';
import type { LocalNetwork } from 'weft/dataplane/types.js';

test('envSwitch: on unless 0, false, off or no (any case, trimmed)', () => {
  assert.equal(envSwitch('X', {}), true);
  assert.equal(envSwitch('X', { X: '1' }), true);
  assert.equal(envSwitch('X', { X: 'yes' }), true);
  for (const off of ['0', 'false', 'OFF', ' no ']) assert.equal(envSwitch('X', { X: off }), false, off);
});

test('switches: pod forwarding and the sender check default on, the gateway hook off, vxlan push only without GBP', () => {
  assert.equal(podForwardWanted({}), true);
  assert.equal(podForwardWanted({ WEFT_EBPF_POD_FORWARD: '0' }), false);
  assert.equal(senderCheckWanted({}), true);
  assert.equal(senderCheckWanted({ WEFT_EBPF_SENDER_CHECK: '0' }), false);
  assert.equal(gatewayWanted({}), false);
  assert.equal(gatewayWanted({ WEFT_EBPF_GATEWAY: '1' }), true);
  assert.equal(gatewayWanted({ WEFT_EBPF_GATEWAY: '0' }), false);
  const vxlan = (gbp: boolean) => ({ backend: 'vxlan', vxlan: { vni: 1, port: 8472, gbp, vtepMAC: '02:00:00:00:00:01', learning: false } }) as unknown as LocalNetwork;
  assert.equal(vxlanPushWanted(vxlan(false), {}), true);
  assert.equal(vxlanPushWanted(vxlan(true), {}), false);
  assert.equal(vxlanPushWanted(vxlan(false), { WEFT_EBPF_VXLAN_PUSH: 'off' }), false);
  assert.equal(vxlanPushWanted({ backend: 'ipip' } as unknown as LocalNetwork, {}), false);
});
