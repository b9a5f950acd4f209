// `weft install-cni`'s work (flannel's install-cni step): the plugin under the
// names flannel and weft in the CNI bin dir, and a conflist in the CNI conf
// dir. Each file is written to a temp file beside it and renamed over the old
// one, so a runtime never runs or reads half a file; nothing else in either
// directory is touched.
//
// The plugin is a two-line launcher, not a copy: it runs this weft's
// dist/cni/main.cjs (the plugin's modules bundled by packaging/bundle-cli.mjs;
// tsc's dist/cni/main.js in a tree built without that step) with the node
// this weft runs on. A copy would go stale when weft is upgraded, whereas the
// launcher always runs the plugin that matches the agent writing subnet.env.
// exec from sh costs about a millisecond of the ~100 ms a Node start takes
// here (`make bench`, cni).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';

export const PLUGIN_NAMES = ['flannel', 'weft'] as const;
export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CONF_NAME = '10-flannel.conflist';

/** tsc's entry point of the plugin in this weft's dist/. */
export const PLUGIN_MODULE = fileURLToPath(new URL('./main.js', import.meta.url));
const PLUGIN_BUNDLE = fileURLToPath(new URL('./main.cjs', import.meta.url));
/** What the launcher runs: the bundle when the build made one, else tsc's entry. */
export const PLUGIN_MAIN = fs.existsSync(PLUGIN_BUNDLE) ? PLUGIN_BUNDLE : PLUGIN_MODULE;

const sq = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

export function launcher(node = process.execPath, main = PLUGIN_MAIN): string {
  const gone = JSON.stringify({ cniVersion: '1.0.0', code: 50, msg: `weft's CNI plugin is gone from ${main}: run weft install-cni again` });
  return [
    '#!/bin/sh',
    "# weft's CNI plugin (type flannel), written by `weft install-cni`: runs the weft installed",
    '# below with its node. Reinstall with weft install-cni after moving weft.',
    `[ -f ${sq(main)} ] || { printf '%s\\n' ${sq(gone)}; exit 1; }`,
    `exec ${sq(node)} ${sq(main)}`,
    '',
  ].join('\n');
}

/** kube-flannel's 10-flannel.conflist, with subnetFile only when it is not flannel's default. */
export function conflist(opts: { subnetFile?: string; cniVersion?: string } = {}): string {
  const flannel: Record<string, unknown> = { type: 'flannel' };
  if (opts.subnetFile && opts.subnetFile !== DEFAULT_SUBNET_FILE) flannel.subnetFile = opts.subnetFile;
  flannel.delegate = { hairpinMode: true, isDefaultGateway: true };
  return JSON.stringify({
    name: 'cbr0',
    cniVersion: opts.cniVersion ?? '1.0.0',
    plugins: [flannel, { type: 'portmap', capabilities: { portMappings: true } }],
  }, null, 2) + '\n';
}

/** Writes `file` whole or not at all: a temp file in the same directory, then rename. */
export function writeAtomic(file: string, content: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.weft-${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, content, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export interface InstallOptions {
  binDir: string;
  confDir: string;
  confName: string;
  subnetFile?: string;
}

export interface Installed {
  file: string;
  replaced: boolean;
}

export function installCni(o: InstallOptions): Installed[] {
  const out: Installed[] = [];
  const put = (file: string, content: string, mode: number): void => {
    const replaced = fs.existsSync(file);
    writeAtomic(file, content, mode);
    out.push({ file, replaced });
  };
  fs.mkdirSync(o.binDir, { recursive: true });
  fs.mkdirSync(o.confDir, { recursive: true });
  const script = launcher();
  for (const name of PLUGIN_NAMES) put(path.join(o.binDir, name), script, 0o755);
  put(path.join(o.confDir, o.confName), conflist({ subnetFile: o.subnetFile }), 0o644);
  return out;
}
