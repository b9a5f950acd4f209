// Certificates for a TLS etcd, made with openssl the way an operator makes
// them: a CA, etcd's server certificate (naming the lab's etcd addresses), a
// client certificate, an expired one, and a second CA that signed nothing of
// this etcd's (a wrong --etcd-cafile).
import fs from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';
import { SEGMENTS } from './netns.js';

export interface LabCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** CN flannel-test, signed by ca. */
  clientCert: string;
  clientKey: string;
  /** Signed by ca, expired yesterday. */
  expiredCert: string;
  expiredKey: string;
  /** Another CA: verifies nothing here. */
  otherCA: string;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function makeCerts(dir: string): Promise<LabCerts> {
  fs.mkdirSync(dir, { recursive: true });
  const f = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]): Promise<unknown> => run(['openssl', ...args], { cwd: dir });
  await openssl('req', '-x509', ...KEY, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=weft-lab-ca');
  await openssl('req', '-x509', ...KEY, '-keyout', f('other-ca.key'), '-out', f('other-ca.crt'), '-days', '2', '-subj', '/CN=some-other-ca');
  const sign = async (name: string, cn: string, days: string, ext?: string): Promise<void> => {
    await openssl('req', ...KEY, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    const extArgs: string[] = [];
    if (ext) {
      fs.writeFileSync(f(`${name}.ext`), `${ext}\n`);
      extArgs.push('-extfile', f(`${name}.ext`));
    }
    await openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', days, ...extArgs);
  };
  const ips = [...SEGMENTS.map((s) => s.gateway), '127.0.0.1'].map((ip) => `IP:${ip}`).join(',');
  await sign('server', 'etcd', '2', `subjectAltName=${ips},DNS:localhost`);
  await sign('client', 'flannel-test', '2');
  // -days -1: valid until yesterday.
  await sign('expired', 'flannel-test', '-1');
  return {
    dir,
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    expiredCert: f('expired.crt'),
    expiredKey: f('expired.key'),
    otherCA: f('other-ca.crt'),
  };
}
