// TLS and authentication with etcd, and the refusals that no retry can fix.
// Files are read and checked before the first call (an expired client
// certificate, a key that is not the certificate's, a file that is not PEM),
// so each mistake is one line naming the file; what etcd refuses later (our
// password, our certificate, its certificate against our CA) is turned into
// one line naming the user or the file, and the agent stops on it rather than
// retry forever. With only --etcd-cafile, weft speaks TLS and verifies etcd
// (flanneld falls back to plain text there).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { WeftError } from '../core/errors.js';

export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface EtcdIdentity extends TlsFiles {
  endpoints: string[];
  username?: string;
}

export interface TlsCredentials {
  /** null: the system's CAs. */
  rootCertificate: Buffer | null;
  certChain?: Buffer;
  privateKey?: Buffer;
}

function fileError(flag: string, file: string, reason: string): WeftError {
  return new WeftError(`${flag} ${file}: ${reason}`, 'usage', { field: flag, file });
}

function read(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw fileError(flag, file, (err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
}

function certificate(flag: string, file: string, pem: Buffer): crypto.X509Certificate {
  try {
    return new crypto.X509Certificate(pem);
  } catch {
    throw fileError(flag, file, 'not a PEM certificate');
  }
}

/** The files of --etcd-cafile, --etcd-certfile and --etcd-keyfile, checked. */
export function readTlsCredentials(o: TlsFiles, now = Date.now()): TlsCredentials {
  // grpc-js names the server by its address when an endpoint is one (https://192.0.2.1:2379), and Node
  // then prints DEP0123 on stderr for every connection: a dependency's notice, not the operator's to act on.
  process.noDeprecation = true;
  const creds: TlsCredentials = { rootCertificate: null };
  if (o.caFile) {
    creds.rootCertificate = read('--etcd-cafile', o.caFile);
    certificate('--etcd-cafile', o.caFile, creds.rootCertificate);
  }
  if (o.certFile && o.keyFile) {
    const pem = read('--etcd-certfile', o.certFile);
    const cert = certificate('--etcd-certfile', o.certFile, pem);
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (now > to) throw fileError('--etcd-certfile', o.certFile, `the certificate (${cert.subject.replace(/\n/g, ', ')}) expired on ${new Date(to).toISOString()}; renew it`);
    if (now < from) throw fileError('--etcd-certfile', o.certFile, `the certificate (${cert.subject.replace(/\n/g, ', ')}) is valid only from ${new Date(from).toISOString()}; is this host's clock right?`);
    const keyPem = read('--etcd-keyfile', o.keyFile);
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey(keyPem);
    } catch {
      throw fileError('--etcd-keyfile', o.keyFile, 'not a PEM private key (an encrypted key cannot be used: weft has no passphrase to open it)');
    }
    if (!cert.checkPrivateKey(key)) throw fileError('--etcd-keyfile', o.keyFile, `not the key of the certificate in --etcd-certfile ${o.certFile}`);
    creds.certChain = pem;
    creds.privateKey = keyPem;
  }
  return creds;
}

/**
 * What a failed etcd call means when it is a refusal to fix by hand (our
 * password, a role without the permission, a certificate one side cannot
 * verify); null for anything a retry may get past (etcd down, a network cut).
 */
export function etcdRefusal(err: unknown, o: EtcdIdentity): WeftError | null {
  const m = err instanceof Error ? err.message : String(err);
  const at = `etcd at ${o.endpoints.join(',')}`;
  const user = o.username ? `user ${JSON.stringify(o.username)}` : 'the user';
  if (/invalid user ID or password|authentication failed/i.test(m)) {
    return new WeftError(`${at} refused ${user}: wrong password, or no such user (${detail(m)}); check --etcd-username and --etcd-password`, 'usage', { field: '--etcd-password' });
  }
  if (/user name is empty|user name not found/i.test(m)) {
    return new WeftError(`${at} has authentication enabled: give --etcd-username and --etcd-password (${detail(m)})`, 'usage', { field: '--etcd-username' });
  }
  if (/permission denied/i.test(m)) {
    return new WeftError(`${at} denied ${user} (${detail(m)}): grant its role readwrite on the prefix, e.g. etcdctl role grant-permission ROLE --prefix=true readwrite /coreos.com/network/`, 'usage', { field: '--etcd-username' });
  }
  if (/unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate|certificate signature failure/i.test(m)) {
    const ca = o.caFile ? `--etcd-cafile ${o.caFile}` : "the system's CAs (no --etcd-cafile given)";
    return new WeftError(`the certificate ${at} presents is not signed by ${ca} (${detail(m)}); give the CA that signed etcd's certificate`, 'usage', { field: '--etcd-cafile', file: o.caFile });
  }
  if (/certificate has expired/i.test(m)) return new WeftError(`the certificate ${at} presents has expired (${detail(m)})`, 'failed');
  if (/altnames|does not match certificate/i.test(m)) {
    return new WeftError(`the certificate ${at} presents does not name the endpoint's host (${detail(m)}); use a name or address the certificate holds`, 'usage', { field: '--etcd-endpoints' });
  }
  if (/alert (bad certificate|certificate required|unknown ca|certificate expired|certificate revoked)/i.test(m)) {
    if (!o.certFile) {
      return new WeftError(`${at} requires a client certificate (it runs with --client-cert-auth; ${detail(m)}): give --etcd-certfile and --etcd-keyfile`, 'usage', { field: '--etcd-certfile' });
    }
    return new WeftError(`${at} refused the client certificate --etcd-certfile ${o.certFile} (${detail(m)}): it is not signed by a CA etcd trusts (its --trusted-ca-file)`, 'usage', { field: '--etcd-certfile', file: o.certFile });
  }
  return null;
}

/** The part of a gRPC error that says what happened, without OpenSSL's source locations. */
function detail(m: string): string {
  const last = /Last error: (?:Error: )?(.*?)(?:\. Resolution note|\s*\(\d{4}-|$)/s.exec(m)?.[1] ?? m;
  const alert = /(sslv3 |tlsv1[0-9]? )?alert [a-z ]+/i.exec(last)?.[0];
  return (alert ? `TLS ${alert.replace(/^(sslv3|tlsv1\d?) /i, '')}` : last).replace(/^\d+ [A-Z_]+: (etcdserver: )?/, '').trim();
}
