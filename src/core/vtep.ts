// The VtepMAC weft gives a host's vxlan device. The backend publishes it in
// the lease; the netlink dataplane's uninstall recognises weft's flannel.<VNI>
// by it. Both read it here.
import crypto from 'node:crypto';
import fs from 'node:fs';

/**
 * A VtepMAC that stays the same across restarts and reboots of the same host
 * (flannel's changes on reboot, #1788): derived from the machine id, the
 * PublicIP and the VNI. Locally administered, unicast.
 */
export function stableVtepMAC(publicIP: string, vni: number, machineId = readMachineId()): string {
  const h = crypto.createHash('sha256').update(`weft-vtep\0${machineId}\0${publicIP}\0${vni}`).digest();
  h[0] = (h[0] & 0xfe) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function readMachineId(): string {
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      return fs.readFileSync(f, 'utf8').trim();
    } catch {
      // Not every system has both files (containers often have neither): try the next.
    }
  }
  return 'no-machine-id';
}
