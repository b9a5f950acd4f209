// The CNI plugin's entry point, run by a container runtime for every pod it
// starts or stops (installed as `flannel` and `weft` by `weft install-cni`).
// It sits on the pod start path, so it loads nothing but Node built-ins and
// src/cni/ (plus subnet-env and ipnet): no yargs, no logger, no etcd client,
// no addon (but for a config asking for "bigTCP": src/cni/bigtcp.ts).
// Success: the result on stdout, exit 0; failure: a CNI error object on
// stdout, exit 1 (libcni's skel).
import fs from 'node:fs';
import { runCommand } from './plugin.js';
import { cmdArgsFromEnv, CniError, CODE, CURRENT_VERSION, SUPPORTED_VERSIONS } from './spec.js';

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch (err) {
    // A closed stdin reads as nothing; anything else is an I/O failure.
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN' || (err as NodeJS.ErrnoException).code === 'EOF') return '';
    throw new CniError(CODE.ioFailure, `error reading from stdin: ${(err as Error).message}`);
  }
}

/** The version to speak in an error: the config's when it is one we speak. */
function versionOf(stdin: string): string {
  const m = /"cniVersion"\s*:\s*"([^"]*)"/.exec(stdin);
  return m && (SUPPORTED_VERSIONS as readonly string[]).includes(m[1]) ? m[1] : CURRENT_VERSION;
}

async function main(): Promise<number> {
  let stdin = '';
  try {
    if (!process.env.CNI_COMMAND) {
      // Run by hand: say what this is, as skel's "about" does.
      process.stderr.write(`CNI plugin weft (type "flannel": flannel's CNI plugin semantics over weft's subnet.env)\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
      return 0;
    }
    const args = cmdArgsFromEnv(process.env);
    stdin = readStdin();
    const out = await runCommand(args, stdin, process.env);
    if (out.stdout) fs.writeSync(1, out.stdout.endsWith('\n') ? out.stdout : `${out.stdout}\n`);
    return 0;
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CODE.internal, (err as Error)?.message ?? String(err));
    fs.writeSync(1, `${e.json(versionOf(stdin))}\n`);
    if (!(err instanceof CniError) && process.env.WEFT_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    return 1;
  }
}

void main().then((code) => process.exit(code));
