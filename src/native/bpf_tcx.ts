// tcx (Linux 6.6+): programs on a device's ingress or egress held by bpf
// links rather than TC filters. A link stays attached while an fd or a bpffs
// pin refers to it; update() swaps its program in place. Re-exported by
// bpf.ts. Calls act in the calling thread's network namespace.
import { raw, type LinkInfo, type TcHook } from './bpf_raw.js';

export type { LinkInfo } from './bpf_raw.js';

/** A bpf link this process holds an fd on; closing the last reference (fd or pin) detaches it. */
export class BpfLink {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Takes ownership of fd. */
  static fromFd(fd: number): BpfLink {
    return new BpfLink(fd);
  }

  static fromPin(path: string): BpfLink {
    return new BpfLink(raw().objGet(path));
  }

  static fromId(id: number): BpfLink {
    return new BpfLink(raw().linkGetFdById(id));
  }

  /**
   * Attaches progFd at the device's tcx hook as a new link. first: at the
   * head of the chain (before programs already there); otherwise last.
   */
  static attachTcx(ifindex: number, hook: TcHook, progFd: number, first = true): BpfLink {
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new TypeError(`tcx attach: ifindex must be a positive integer, got ${ifindex}`);
    return new BpfLink(raw().tcxAttach(ifindex, hook, progFd, first));
  }

  get fd(): number {
    if (this.#fd < 0) throw Object.assign(new Error('bpf link: EBADF (handle already closed)'), { code: 'EBADF', errno: 9, syscall: 'bpf link' });
    return this.#fd;
  }

  info(): LinkInfo {
    return raw().linkInfoByFd(this.fd);
  }

  /** Replaces the link's program; the link keeps its id and its place on the hook. */
  update(progFd: number): void {
    raw().linkUpdate(this.fd, progFd);
  }

  /** Detaches the program from its hook now, even while a pin or another fd still holds the (then defunct) link. */
  detach(): void {
    raw().linkDetach(this.fd);
  }

  pin(path: string): void {
    raw().objPin(this.fd, path, 'bpf link');
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    raw().closeFd(fd);
  }
}

export interface TcxEntry {
  progId: number;
  /** 0 for a program attached without a link. */
  linkId: number;
}

/** The programs at a device's tcx hook, in the order they run; throws (EINVAL) on kernels without tcx. */
export function tcxPrograms(ifindex: number, hook: TcHook): TcxEntry[] {
  return raw().tcxQuery(ifindex, hook).programs;
}

let tcxKnown: boolean | undefined;

/** Whether this kernel has tcx: a query of the loopback device's hook answers instead of EINVAL. */
export function tcxSupported(): boolean {
  if (tcxKnown !== undefined) return tcxKnown;
  try {
    raw().tcxQuery(1, 'ingress');
    tcxKnown = true;
  } catch {
    tcxKnown = false;
  }
  return tcxKnown;
}
