// Runs before the test suite: tests need root, and a crashed earlier run may
// have left namespaces behind (named wt<pid>-..., removed only if that pid is gone).
import fs from 'node:fs';

if (process.getuid && process.getuid() !== 0) {
  console.error('make test needs root: the tests create network namespaces and load BPF programs. Run it as root (sudo make test).');
  process.exit(1);
}
const { reapStaleLabs } = await import('../../dist-test/lab/netns.js');
const reaped = reapStaleLabs();
if (reaped.length) console.error(`preflight: removed ${reaped.length} namespaces left by an earlier run: ${reaped.join(' ')}`);
if (!fs.existsSync('/run/netns')) fs.mkdirSync('/run/netns', { recursive: true });
