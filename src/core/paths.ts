// Paths flannel's users already know, in a module that loads nothing: the light
// CLI definitions (--help, `weft --version`), the agent and the CNI plugin share them.

/** Where flanneld writes subnet.env, and where docker's units and flannel's CNI plugin read it. */
export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
