// `weft install-cni`: flannel's install step. Puts weft's CNI plugin in the
// CNI bin dir under the names flannel and weft, and a flannel + portmap
// conflist in the CNI conf dir (src/cni/install.ts). src/cni/, with ipnet and
// ipaddr.js, loads for this command only (its --help too, for the defaults),
// not at every command's start.
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { usageError, WeftError, errnoOf, messageOf } from '../core/errors.js';
import { DEFAULT_SUBNET_FILE } from '../core/paths.js';

interface InstallArgs {
  'bin-dir': string;
  'conf-dir': string;
  'conf-name': string;
  'subnet-file': string;
}

export const installCniCommand: CommandModule<object, InstallArgs> = {
  command: 'install-cni',
  describe: 'install the CNI plugin (as flannel and weft) and a flannel + portmap conflist',
  builder: async (y: Argv) => {
    const { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, DEFAULT_CONF_NAME } = await import('../cni/install.js');
    return y.options({
      'bin-dir': { type: 'string', default: DEFAULT_BIN_DIR, describe: 'CNI plugin directory (the runtime\'s CNI_PATH)' },
      'conf-dir': { type: 'string', default: DEFAULT_CONF_DIR, describe: 'CNI network config directory' },
      'conf-name': { type: 'string', default: DEFAULT_CONF_NAME, describe: 'file name of the conflist' },
      'subnet-file': { type: 'string', default: DEFAULT_SUBNET_FILE, describe: 'the agent\'s --subnet-file, written into the conflist when not the default' },
    }) as unknown as Argv<InstallArgs>;
  },
  handler: async (a) => {
    if (a['conf-name'].includes('/') || !/\.(conflist|conf|json)$/.test(a['conf-name'])) {
      throw usageError(`--conf-name ${a['conf-name']}: a file name ending in .conflist (runtimes read *.conflist, *.conf and *.json from --conf-dir)`, '--conf-name');
    }
    const { installCni } = await import('../cni/install.js');
    let done;
    try {
      done = installCni({ binDir: a['bin-dir'], confDir: a['conf-dir'], confName: a['conf-name'], subnetFile: path.resolve(a['subnet-file']) });
    } catch (err) {
      const where = (err as NodeJS.ErrnoException).path;
      const code = errnoOf(err);
      const hint = code === 'EACCES' || code === 'EROFS' ? ' (run as root, or choose --bin-dir and --conf-dir you can write)' : '';
      throw new WeftError(`cannot install into ${where ? path.dirname(where) : a['bin-dir']}: ${code ?? messageOf(err)}${hint}`, 'failed', { file: where });
    }
    for (const f of done) process.stdout.write(`${f.replaced ? 'replaced' : 'wrote   '}  ${f.file}\n`);
  },
};
