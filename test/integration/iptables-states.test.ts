// The firewall's check reads every chain it keeps (and each parent's jumps)
// from one /bin/sh running each `iptables -S` (Iptables.states), instead of a
// process per `-S`. Here, in a lab host with real iptables: it reads exactly
// what the `-S` processes read, chain by chain, for a chain with rules and
// its jump, one with a jump from elsewhere too, one that does not exist, and
// one in a table that does not exist; and the same through the shell the
// agent keeps (shell.ts), where a restore's input goes as a here-document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../lab/netns.js';

const IPTABLES = fileURLToPath(new URL('../../../dist/firewall/iptables.js', import.meta.url));
const SHELL = fileURLToPath(new URL('../../../dist/firewall/shell.js', import.meta.url));

test('one shell reads the same chain states as a process per iptables -S; the agent\'s kept shell reads and restores them too', async (t) => {
  const lab = await Lab.create();
  t.after(() => lab.destroy());
  const host = await lab.addHost('h1', { octet: 11 });
  const rules = [
    '*filter',
    ':WEFT-T1 - [0:0]',
    '-A WEFT-T1 -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    '-A WEFT-T1 -d 10.244.0.0/16 -j ACCEPT',
    '-A FORWARD -m comment --comment "flanneld forward" -j WEFT-T1',
    '-A FORWARD -j WEFT-T1',
    '-A INPUT -j WEFT-T1',
    'COMMIT',
    '',
  ].join('\n');
  await host.exec(['iptables-restore', '--noflush'], { input: rules });
  const chains = [
    { table: 'filter', name: 'WEFT-T1', parent: 'FORWARD' },
    { table: 'nat', name: 'WEFT-T2', parent: 'POSTROUTING' },
    { table: 'filter', name: 'WEFT-T1', parent: 'INPUT' },
    { table: 'nosuchtable', name: 'WEFT-T3', parent: 'FORWARD' },
  ];
  // What a shell would expand: the here-document carries it as it is.
  const T4 = [':WEFT-T4 - [0:0]', '-A WEFT-T4 -m comment --comment "weft $HOME" -j ACCEPT', '-A INPUT -j WEFT-T4'];
  const script = `
    const { Iptables } = await import(${JSON.stringify(IPTABLES)});
    const tools = Iptables.find(4);
    const chains = ${JSON.stringify(chains)};
    const one = await tools.states(chains);
    const each = await Promise.all(chains.map((c) => tools.state(c.table, c.name, c.parent)));
    // The agent's way: every command in the one shell it keeps (shell.ts), restore's input a here-document.
    const { Shell } = await import(${JSON.stringify(SHELL)});
    const sh = new Shell();
    const kept = Iptables.find(4, sh);
    const inShell = await kept.states(chains);
    await kept.restore(new Map([['filter', ${JSON.stringify(T4)}]]));
    const t4 = await kept.state('filter', 'WEFT-T4', 'INPUT');
    const t4each = await tools.state('filter', 'WEFT-T4', 'INPUT');
    const bad = await kept.restore(new Map([['filter', ['-A WEFT-NO-SUCH -j ACCEPT']]])).then(() => null, (e) => e.message);
    sh.close();
    console.log(JSON.stringify({ one, each, inShell, t4, t4each, bad }));`;
  const r = await host.exec([process.execPath, '--input-type=module', '-e', script]);
  const { one, each, inShell, t4, t4each, bad } = JSON.parse(r.stdout) as { one: unknown[]; each: unknown[]; inShell: unknown[]; t4: unknown; t4each: unknown; bad: string | null };
  assert.deepEqual(one, each);
  assert.deepEqual(inShell, one);
  assert.deepEqual(t4, { rules: [T4[1]], jumps: [T4[2]] });
  assert.deepEqual(t4each, t4);
  assert.match(bad ?? '', /^iptables-restore --noflush: .*(WEFT-NO-SUCH|line 2)/s);
  assert.deepEqual(one[0], {
    rules: ['-A WEFT-T1 -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT', '-A WEFT-T1 -d 10.244.0.0/16 -j ACCEPT'],
    jumps: ['-A FORWARD -m comment --comment "flanneld forward" -j WEFT-T1', '-A FORWARD -j WEFT-T1'],
  });
  assert.deepEqual(one[1], { rules: null, jumps: [] });
  assert.deepEqual((one[2] as { jumps: string[] }).jumps, ['-A INPUT -j WEFT-T1']);
  assert.deepEqual(one[3], { rules: null, jumps: [] });
});
