// systemd's notification protocol (sd_notify(3)) for a Type=notify unit, as
// flanneld speaks it: READY=1 once subnet.env is written and the initial peers
// are programmed, STATUS= lines on the way there, STOPPING=1 on the way out,
// and WATCHDOG=1 every half $WATCHDOG_USEC when the unit sets WatchdogSec=.
// The datagram leaves through the native addon (notify.cc says why); nothing
// here links libsystemd.
import { messageOf } from '../core/errors.js';
import { RateLimiter, type Logger } from '../core/log.js';
import { addon } from '../native/addon.js';

/** What the agent tells its service manager; a no-op when none listens. */
export interface Notifier {
  status(text: string): void;
  ready(status: string): void;
  stopping(): void;
  close(): void;
}

type Send = (socket: string, message: string) => void;

const sendDatagram: Send = (socket, message) => {
  (addon().notify.sendDatagram as Send)(socket, message);
};

export class SystemdNotifier implements Notifier {
  private watchdog: NodeJS.Timeout | undefined;
  private readonly limiter = new RateLimiter(60_000);
  private lastStatus = '';

  constructor(
    readonly socket: string,
    private readonly log: Logger,
    watchdogUsec = 0,
    private readonly send: Send = sendDatagram,
  ) {
    if (watchdogUsec > 0) {
      const everyMs = Math.max(1, Math.floor(watchdogUsec / 2000));
      this.watchdog = setInterval(() => this.notify('WATCHDOG=1'), everyMs);
      this.watchdog.unref();
      log.info({ socket, everyMs }, 'systemd watchdog: pinging every half WatchdogSec');
    }
  }

  /**
   * The notifier $NOTIFY_SOCKET asks for, or null outside a Type=notify unit.
   * The variables are removed from the environment, as sd_notify's
   * unset_environment does, so that the tools the agent runs do not inherit them.
   */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | null {
    const socket = env.NOTIFY_SOCKET;
    const usec = Number(env.WATCHDOG_USEC ?? 0);
    // WATCHDOG_PID names the process the watchdog is meant for; another one's is not ours to answer.
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    if (!socket) return null;
    if (!socket.startsWith('/') && !socket.startsWith('@')) {
      log.warn({ socket }, 'NOTIFY_SOCKET is neither a path nor an abstract name (@...); not notifying systemd');
      return null;
    }
    return new SystemdNotifier(socket, log, forUs && Number.isFinite(usec) ? usec : 0);
  }

  private notify(message: string): void {
    try {
      this.send(this.socket, message);
      this.limiter.reset('send');
    } catch (err) {
      if (this.limiter.allow('send')) this.log.error({ socket: this.socket, err: messageOf(err) }, 'cannot notify systemd (NOTIFY_SOCKET)');
    }
  }

  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify(`STATUS=${oneLine(text)}`);
  }

  ready(status: string): void {
    this.lastStatus = status;
    this.notify(`READY=1\nSTATUS=${oneLine(status)}`);
  }

  stopping(): void {
    this.notify('STOPPING=1\nSTATUS=stopping');
  }

  close(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}

/** A STATUS= value is one line of the datagram. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
