// The network config in etcd changed under a running agent. Nothing of it is
// applied live: a new Network, SubnetLen or backend means a new lease and a
// new dataplane, and half-applying one would leave the host between two
// networks. What changed is said once per change, with what applies it.
import { diffConfigs, parseNetworkConfig, type NetworkConfig } from '../config/network.js';
import { messageOf } from '../core/errors.js';
import type { ConfigChange } from '../subnet/watch.js';

export interface ConfigNotice {
  level: 'info' | 'warn';
  message: string;
  /** Log fields: the revision, and the changed fields or the parse error. */
  fields: Record<string, unknown>;
}

const TAIL = 'this agent keeps running with the config it started with: restart the agent to apply it';

/** Follows the config key for one agent: `running` is what it started with. */
export class ConfigFollower {
  private seen: string | null;

  constructor(
    private readonly running: { config: NetworkConfig; text: string },
    private readonly key: string,
  ) {
    this.seen = running.text;
  }

  /** What to tell about a change, or null when the text is what was last seen. */
  notice(c: ConfigChange): ConfigNotice | null {
    if (c.text === this.seen) return null;
    this.seen = c.text;
    if (c.text === null) return { level: 'warn', message: `network config deleted from etcd (${this.key}); ${TAIL}`, fields: { revision: c.revision } };
    if (c.text === this.running.text) return { level: 'info', message: 'network config in etcd is back to the one this agent runs', fields: { revision: c.revision } };
    let next: NetworkConfig;
    try {
      next = parseNetworkConfig(c.text);
    } catch (err) {
      return { level: 'warn', message: `network config changed in etcd, and the new one is invalid; ${TAIL} once it is fixed`, fields: { revision: c.revision, err: messageOf(err) } };
    }
    const changes = diffConfigs(this.running.config, next);
    return { level: 'warn', message: `network config changed in etcd (${changes.join('; ') || 'same settings, written differently'}); ${TAIL}`, fields: { revision: c.revision, changes } };
  }
}
