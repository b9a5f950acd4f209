// A flannel operator's etcd: TLS with client certificates (--client-cert-auth),
// authentication on, and a user whose role may read and write only the
// prefix. The unit's command line, run literally through a `flanneld` symlink,
// leases, renews and watches with only that permission; `weft leases` works;
// each mistake (wrong CA, expired certificate, wrong password, no client
// certificate) is one error naming the file or the user; with only a CA, weft
// still speaks TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Lab, type LabHost } from '../../lab/netns.js';
import { LabEtcd } from '../../lab/etcd.js';
import { makeCerts, type LabCerts } from '../../lab/tls.js';
import { CLI, LabAgent, startAgent, statusSocket, subnetFile } from '../../lab/agent.js';
import { NotifyListener } from '../../lab/notify.js';
import { readEnvFile } from 'weft/agent/subnet-env.js';

const PREFIX = '/flannel-test/network';
const PASSWORD = 'flannel-secret';

let lab: Lab;
let etcd: LabEtcd;
let certs: LabCerts;
let h1: LabHost;
let h2: LabHost;
const agents: LabAgent[] = [];

before(async () => {
  lab = await Lab.create();
  [h1, h2] = [await lab.addHost('h1', { octet: 11 }), await lab.addHost('h2', { octet: 12 })];
  certs = await makeCerts(path.join(lab.dir, 'pki'));
  etcd = await LabEtcd.start({
    netns: lab.router,
    tls: { ca: certs.ca, serverCert: certs.serverCert, serverKey: certs.serverKey, clientCertAuth: true, clientCert: certs.clientCert, clientKey: certs.clientKey },
  });
  await etcd.enableAuth('root-secret');
  for (const cmd of [
    ['user', 'add', `flannel-test:${PASSWORD}`],
    ['role', 'add', 'role-flannel'],
    ['role', 'grant-permission', 'role-flannel', '--prefix=true', 'readwrite', '/flannel-test/'],
    ['user', 'grant-role', 'flannel-test', 'role-flannel'],
    ['put', `${PREFIX}/config`, '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'],
  ]) {
    await etcd.etcdctl(cmd);
  }
});
after(async () => {
  for (const a of agents) if (a.running) await a.stop();
  await etcd?.destroy();
  await lab?.destroy();
});

/** The operator's /etc/sysconfig/flanneld, with this lab's certificate paths. */
function optionsFile(): string {
  return (
    `FLANNEL_OPTIONS="-etcd-endpoints=${etcd.endpoint} -etcd-prefix=${PREFIX} -etcd-cafile=${certs.ca} ` +
    `-etcd-certfile=${certs.clientCert} -etcd-keyfile=${certs.clientKey} -etcd-username=flannel-test -etcd-password=${PASSWORD}"\n`
  );
}

/** `ExecStart=/usr/bin/flanneld --ip-masq $FLANNEL_OPTIONS` as systemd runs it: an unbraced $VAR splits at whitespace. */
function execStart(flanneld: string, envFile: string): string[] {
  const options = /^FLANNEL_OPTIONS="(.*)"$/m.exec(fs.readFileSync(envFile, 'utf8'))![1];
  return [flanneld, '--ip-masq', ...options.split(/\s+/).filter(Boolean)];
}

/** Paths a real host has at their defaults, moved into the lab host's scratch directory through FLANNELD_ variables. */
function labEnv(host: LabHost): NodeJS.ProcessEnv {
  return { ...process.env, FLANNELD_SUBNET_FILE: subnetFile(host), FLANNELD_STATUS_SOCKET: statusSocket(host), FLANNELD_BPF_PIN_DIR: host.pinDir };
}

function weft(host: LabHost, args: string[]) {
  return host.exec([process.execPath, CLI, ...args], { allowFail: true });
}

const userFlags = (): string[] => ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', PREFIX, '--etcd-username', 'flannel-test', '--etcd-password', PASSWORD];

test("the unit's command line, run literally: TLS, the prefix-limited user, READY=1 after subnet.env, mk-docker-opts", async () => {
  const envFile = path.join(lab.dir, 'flanneld.sysconfig');
  fs.writeFileSync(envFile, optionsFile());
  const flanneld = path.join(lab.dir, 'flanneld');
  fs.symlinkSync(CLI, flanneld);
  const listener = await NotifyListener.start(h1, path.join(h1.dir, 'notify.sock'), subnetFile(h1));
  const agent = new LabAgent(h1, h1.spawn([process.execPath, ...execStart(flanneld, envFile)], { env: { ...labEnv(h1), NOTIFY_SOCKET: listener.address } }));
  agents.push(agent);
  try {
    const ready = await listener.waitFor('READY=1', (m) => m.lines.includes('READY=1'), 30_000);
    assert.equal(ready.fileExists, true);
    assert.equal(ready.pid, agent.pid);
    const env = readEnvFile(subnetFile(h1))!;
    assert.equal(env.FLANNEL_IPMASQ, 'true');
    assert.match((await h1.exec(['iptables-save', '-t', 'nat'])).stdout, /-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG/);
    // ExecStartPost=/usr/libexec/flannel/mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker
    const out = path.join(h1.dir, 'docker');
    const mk = await weft(h1, ['mk-docker-opts', '-k', 'DOCKER_NETWORK_OPTIONS', '-d', out, '-f', subnetFile(h1)]);
    assert.equal(mk.code, 0, mk.stderr);
    assert.equal(
      fs.readFileSync(out, 'utf8'),
      `DOCKER_OPT_BIP="--bip=${env.FLANNEL_SUBNET}"\nDOCKER_OPT_IPMASQ="--ip-masq=false"\nDOCKER_OPT_MTU="--mtu=${env.FLANNEL_MTU}"\n` +
        `DOCKER_NETWORK_OPTIONS=" --bip=${env.FLANNEL_SUBNET} --ip-masq=false --mtu=${env.FLANNEL_MTU} "\n`,
    );
  } finally {
    await listener.stop();
  }
});

test('with only the prefix permission: a second host leases and renews, the first watches it arrive, weft leases lists both', async () => {
  const h1agent = agents[0];
  const from = h1agent.lines.length;
  // -subnet-lease-ttl 62 with a margin of one minute: the lease is renewed two seconds after it is granted.
  const a2 = startAgent(h2, {
    etcdEndpoint: etcd.endpoint,
    extra: ['--etcd-prefix', PREFIX, '--etcd-cafile', certs.ca, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.clientKey, '--etcd-username', 'flannel-test', '--etcd-password', PASSWORD, '--subnet-lease-ttl', '62', '--subnet-lease-renew-margin', '1'],
  });
  agents.push(a2);
  const lease = await a2.waitForMsg('lease acquired', 20_000);
  await h1agent.waitForLog('h2 as a peer', (l) => l.msg === 'peer added' && l.peer === h2.address, 10_000, from);
  await a2.waitForMsg('renewed our lease', 10_000);
  const tlsArgs = ['--etcd-cafile', certs.ca, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.clientKey];
  const r = await weft(h1, ['leases', ...userFlags(), ...tlsArgs, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { leases: Array<{ subnet: string; publicIP: string; ttlSeconds: number | null; grantedTTLSeconds: number | null }> };
  assert.deepEqual(rep.leases.map((l) => l.publicIP).sort(), [h1.address, h2.address]);
  const l2 = rep.leases.find((l) => l.publicIP === h2.address)!;
  assert.equal(l2.subnet, lease.subnet);
  assert.equal(l2.grantedTTLSeconds, 62, 'the renewed etcd lease, read with the user');
  // The same through single-dash flags (an operator copying the options file).
  const dash = await weft(h1, ['leases', `-etcd-endpoints=${etcd.endpoint}`, `-etcd-prefix=${PREFIX}`, `-etcd-cafile=${certs.ca}`, `-etcd-certfile=${certs.clientCert}`, `-etcd-keyfile=${certs.clientKey}`, '-etcd-username=flannel-test', `-etcd-password=${PASSWORD}`]);
  assert.equal(dash.code, 0, dash.stderr);
  assert.match(dash.stdout, /^2 leases under \/flannel-test\/network\/subnets\//);
  await a2.stop();
});

/** Starts an agent in h2 that must fail; returns its exit code and what it said on stderr. */
async function failingAgent(extra: string[]): Promise<{ code: number | null; stderr: string }> {
  const a = startAgent(h2, { etcdEndpoint: etcd.endpoint, extra: ['--etcd-prefix', PREFIX, ...extra] });
  agents.push(a);
  return { code: await a.exitCode(15_000), stderr: a.stderr };
}

test('each mistake is one error naming the file or the user, before anything is leased', async () => {
  const keys = async (): Promise<string> => etcd.etcdctl(['get', '--prefix', '--keys-only', `${PREFIX}/subnets/`]);
  const before = await keys();
  const user = ['--etcd-username', 'flannel-test', '--etcd-password', PASSWORD];
  const cases: Array<[string, string[], RegExp, number]> = [
    ['wrong CA', ['--etcd-cafile', certs.otherCA, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.clientKey, ...user],
      new RegExp(`^weft: the certificate etcd at https://192\\.0\\.2\\.1:2379 presents is not signed by --etcd-cafile ${certs.otherCA} \\(unable to verify the first certificate\\); give the CA that signed etcd's certificate\\n$`), 1],
    ['expired certificate', ['--etcd-cafile', certs.ca, '--etcd-certfile', certs.expiredCert, '--etcd-keyfile', certs.expiredKey, ...user],
      new RegExp(`^weft: --etcd-certfile ${certs.expiredCert}: the certificate \\(CN=flannel-test\\) expired on \\S+; renew it\\n$`), 2],
    ['a key of another certificate', ['--etcd-cafile', certs.ca, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.expiredKey, ...user],
      new RegExp(`^weft: --etcd-keyfile ${certs.expiredKey}: not the key of the certificate in --etcd-certfile ${certs.clientCert}\\n$`), 2],
    ['wrong password', ['--etcd-cafile', certs.ca, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.clientKey, '--etcd-username', 'flannel-test', '--etcd-password', 'nope'],
      /^weft: etcd at https:\/\/192\.0\.2\.1:2379 refused user "flannel-test": wrong password, or no such user \(authentication failed, invalid user ID or password\); check --etcd-username and --etcd-password\n$/, 1],
    ['no client certificate for --client-cert-auth', ['--etcd-cafile', certs.ca, ...user],
      /^weft: etcd at https:\/\/192\.0\.2\.1:2379 requires a client certificate \(it runs with --client-cert-auth; TLS alert bad certificate\): give --etcd-certfile and --etcd-keyfile\n$/, 1],
  ];
  for (const [what, flags, re, code] of cases) {
    const r = await failingAgent(flags);
    assert.match(r.stderr, re, what);
    assert.equal(r.code, code, what);
  }
  assert.equal(await keys(), before, 'nothing was leased');
  const leases = await weft(h2, ['leases', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', PREFIX, '--etcd-cafile', certs.ca, '--etcd-certfile', certs.clientCert, '--etcd-keyfile', certs.clientKey, '--etcd-username', 'flannel-test', '--etcd-password', 'nope']);
  assert.equal(leases.code, 2);
  assert.match(leases.stderr, /^weft: etcd at .* refused user "flannel-test": wrong password/);
});

test('with only --etcd-cafile, weft speaks TLS and verifies etcd (flanneld falls back to plain text there)', async () => {
  await etcd.restart({ tls: { ...etcd.opts.tls!, clientCertAuth: false } });
  const user = ['--etcd-username', 'flannel-test', '--etcd-password', PASSWORD];
  const wrong = await failingAgent(['--etcd-cafile', certs.otherCA, ...user]);
  assert.match(wrong.stderr, /is not signed by --etcd-cafile .*other-ca\.crt/, 'the CA alone is checked');
  fs.rmSync(subnetFile(h2), { force: true });
  const a = startAgent(h2, { etcdEndpoint: etcd.endpoint, extra: ['--etcd-prefix', PREFIX, '--etcd-cafile', certs.ca, ...user] });
  agents.push(a);
  await a.waitForMsg('agent ready', 20_000);
  assert.ok(etcd.endpoint.startsWith('https://'), 'the only client listener the agent can reach speaks TLS');
  await a.stop();
});
