// A tiny echo server and client for connectivity checks inside lab namespaces:
//   node probe.js serve tcp|udp PORT          echoes every message back
//   node probe.js send tcp|udp HOST PORT MSG  prints the echo, exits 0; exits 1 after 3 s without one
//   node probe.js whoami PORT                 answers each TCP connection with the address it came from
//   node probe.js ask HOST PORT               prints that answer, exits 0; exits 1 after 3 s without one
// Used instead of netcat so the lab needs nothing beyond Node and iproute2.
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROBE = fileURLToPath(import.meta.url);

function serve(proto: string, port: number): void {
  if (proto === 'tcp') {
    net.createServer((c) => c.pipe(c).on('error', () => undefined)).listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
  } else {
    const s = dgram.createSocket('udp4');
    s.on('message', (m, r) => s.send(m, r.port, r.address));
    s.bind(port, '0.0.0.0', () => process.stdout.write('ready\n'));
  }
}

function send(proto: string, host: string, port: number, msg: string): void {
  const fail = setTimeout(() => {
    process.stderr.write(`no ${proto} echo from ${host}:${port}\n`);
    process.exit(1);
  }, 3000);
  const done = (data: Buffer): void => {
    clearTimeout(fail);
    process.stdout.write(data.toString());
    process.exit(data.toString() === msg ? 0 : 1);
  };
  if (proto === 'tcp') {
    const c = net.connect(port, host, () => c.write(msg));
    let got = Buffer.alloc(0);
    c.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= Buffer.byteLength(msg)) done(got);
    });
    c.on('error', (e) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    });
  } else {
    const s = dgram.createSocket('udp4');
    s.on('message', done);
    // UDP may be lost while neighbours resolve: resend until the echo arrives.
    const tick = (): void => void s.send(msg, port, host);
    tick();
    setInterval(tick, 300).unref();
  }
}

/** What masquerading did to a connection is what the receiver saw it come from. */
function whoami(port: number): void {
  net
    .createServer((c) => c.end(`${c.remoteAddress}\n`).on('error', () => undefined))
    .listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
}

function ask(host: string, port: number): void {
  const fail = setTimeout(() => {
    process.stderr.write(`no answer from ${host}:${port}\n`);
    process.exit(1);
  }, 3000);
  let got = '';
  net
    .connect(port, host)
    .on('data', (d) => (got += d.toString()))
    .on('end', () => {
      clearTimeout(fail);
      process.stdout.write(got);
      process.exit(got ? 0 : 1);
    })
    .on('error', (e) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    });
}

if (process.argv[1] && path.resolve(process.argv[1]) === PROBE) {
  const [mode, proto, a, b, c] = process.argv.slice(2);
  if (mode === 'serve') serve(proto, Number(a));
  else if (mode === 'send') send(proto, a, Number(b), c ?? 'weft-probe');
  else if (mode === 'whoami') whoami(Number(proto));
  else if (mode === 'ask') ask(proto, Number(a));
  else {
    process.stderr.write('usage: probe.js serve tcp|udp PORT | send tcp|udp HOST PORT [MSG] | whoami PORT | ask HOST PORT\n');
    process.exit(2);
  }
}
