// The agent's firewall runs iptables in one /bin/sh it keeps
// (src/firewall/shell.ts) instead of spawning a process per command from a
// large agent. Here: a script's output and exit code come back whole and in
// order, stderr included, with /dev/null as its input (a command reading
// stdin cannot eat the next script); a script that hangs is killed at the
// timeout and the next runs in a new shell; a host without the shell gets
// "not found"; and an idle shell does not keep its process from exiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Shell } from 'weft/firewall/shell.js';

const SHELL_MODULE = fileURLToPath(import.meta.resolve('weft/firewall/shell.js'));

test('a script: its output (stdout and stderr, a last line without newline) and exit code', async (t) => {
  const sh = new Shell();
  t.after(() => sh.close());
  assert.deepEqual(await sh.run('echo one; echo two >&2; printf three'), { code: 0, output: 'one\ntwo\nthree' });
  assert.deepEqual(await sh.run('false'), { code: 1, output: '' });
  assert.deepEqual(await sh.run('(exit 7)'), { code: 7, output: '' });
  assert.deepEqual(await sh.run("printf '@@weft-done 00 0\\n'; echo after"), { code: 0, output: '@@weft-done 00 0\nafter\n' }, 'another token is output');
  const missing = await sh.run('/nonexistent/tool');
  assert.equal(missing.code, 127);
  assert.match(missing.output, /\/nonexistent\/tool: not found\n$/);
  assert.deepEqual(await sh.run('echo still'), { code: 0, output: 'still\n' }, 'the same shell goes on');
});

test('scripts run one at a time, in order; a script reading stdin reads /dev/null, a here-document its own lines', async (t) => {
  const sh = new Shell();
  t.after(() => sh.close());
  const runs = await Promise.all([sh.run('sleep 0.2; echo first'), sh.run('cat; echo second'), sh.run("cat <<'E'\na b\n  c\nE")]);
  assert.deepEqual(runs, [
    { code: 0, output: 'first\n' },
    { code: 0, output: 'second\n' },
    { code: 0, output: 'a b\n  c\n' },
  ]);
});

test('a script past the timeout ends with -1 and what it printed; the next runs in a new shell', async (t) => {
  const sh = new Shell('/bin/sh', 500);
  t.after(() => sh.close());
  const before = (await sh.run('echo "$$"')).output;
  assert.equal((await sh.run('echo "$$"')).output, before, 'one shell for every script');
  const hung = await sh.run('echo started; sleep 30');
  assert.deepEqual(hung, { code: -1, output: 'started\n' });
  const after = await sh.run('echo "$$"');
  assert.equal(after.code, 0);
  assert.notEqual(after.output, before, 'a new shell');
  assert.deepEqual(await sh.run('echo fine'), { code: 0, output: 'fine\n' });
});

test('a host without the shell: "not found", and usable turns false', async () => {
  const sh = new Shell('/nonexistent/sh');
  assert.equal(sh.usable, true);
  await assert.rejects(sh.run('true'), /\/nonexistent\/sh: not found/);
  assert.equal(sh.usable, false);
});

test('an idle shell keeps nothing open: its process exits on its own, and the shell with it', () => {
  const script = `
    const { Shell } = await import(${JSON.stringify(SHELL_MODULE)});
    const sh = new Shell();
    const r = await sh.run('echo "$$"');
    console.log(r.output.trim());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr}`);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0, r.stdout);
  // The shell read the end of its input when node exited; a zombie would still answer kill 0 only until reaped by init.
  const deadline = Date.now() + 5000;
  let alive = true;
  while (alive && Date.now() < deadline) {
    try {
      process.kill(pid, 0);
      spawnSync('sleep', ['0.05']);
    } catch {
      alive = false;
    }
  }
  assert.equal(alive, false, `shell ${pid} still running after its agent exited`);
});
