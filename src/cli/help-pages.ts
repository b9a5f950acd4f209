// `weft [command...] --help` answered from pages rendered when the CLI was
// built, without loading yargs: a third of a help's time on Node 20 was yargs
// building its parser and laying out the page.
//
// packaging/bundle-cli.mjs renders every page by running tsc's entry (which
// has no pages, RENDERED_HELP stays null there, so it always asks yargs) and
// writes them into the bundle's copy of this module. A page is only used where
// yargs would print the very same: the CLI's wrap width and English. Any other
// width, a locale yargs translates, or more arguments than a command path and
// --help, and yargs answers. test/unit/cli-bundle.test.ts compares the two entries.

export interface RenderedHelp {
  /** The width the pages are wrapped to (the CLI wraps to min(110, terminal columns)). */
  width: number;
  /** The locale files yargs ships (names without .json): y18n's choice among them decides the language. */
  locales: string[];
  /** `weft <path> --help` by path: '' for weft itself, 'bpf peers' for a subcommand. */
  pages: Record<string, string>;
}

/** The CLI wraps its help to the terminal's columns, at most this many (and this many when not on a terminal). */
export const MAX_HELP_WIDTH = 110;

/** Filled in the bundle only (packaging/bundle-cli.mjs replaces this line). */
export const RENDERED_HELP: RenderedHelp | null = null;

/**
 * The locale file y18n reads for yargs' own strings, as yargs guesses the
 * locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE, else en_US, without its
 * encoding) and y18n falls back from ll_CC to ll; null when there is none and
 * yargs prints its strings as written, in English.
 */
export function yargsLocale(env: NodeJS.ProcessEnv, locales: readonly string[]): string | null {
  const locale = (env.LC_ALL || env.LC_MESSAGES || env.LANG || env.LANGUAGE || 'en_US').replace(/[.:].*/, '');
  if (locales.includes(locale)) return locale;
  const language = locale.split('_')[0];
  return locale.includes('_') && locales.includes(language) ? language : null;
}

/** The rendered page that answers `args`, if yargs would print exactly it. */
export function renderedHelpPage(help: RenderedHelp | null, args: readonly string[], width: number, env: NodeJS.ProcessEnv): string | undefined {
  if (!help || width !== help.width || args[args.length - 1] !== '--help') return undefined;
  const path = args.slice(0, -1);
  if (path.some((a) => a === '' || a.startsWith('-'))) return undefined;
  const locale = yargsLocale(env, help.locales);
  if (locale !== null && locale !== 'en') return undefined;
  return Object.hasOwn(help.pages, path.join(' ')) ? help.pages[path.join(' ')] : undefined;
}
