// The WAF rule set: each rule has a stable id (used in logs, the x-outpost-waf header and
// exclusions), the request values it looks at, the normalised view it reads and one matcher
// compiled here, once. Patterns are written against lower-case, decoded views (normalize.ts), keep
// every repetition bounded where overlaps could backtrack, and are tuned against the benign table
// in waf.test.ts: ordinary words ("union", "select", "script", "alert"), O'Brien, JSON, Markdown,
// prices with $ must pass.
import { OutpostError } from '../../errors.ts';
import { charMask, FLAG_NUL, VIEW_INDEX, VIEWS, type NormalizedInput, type View } from './normalize.ts';

export const CATEGORIES = ['sqli', 'xss', 'traversal', 'shell', 'rce', 'scanner', 'protocol', 'custom'] as const;
export type Category = (typeof CATEGORIES)[number];

/**
 * Where a rule looks: the path, the query string, the request body, every inspected header
 * (WafOptions.headers) or one named header (inspected whether listed or not).
 */
export type Target = 'path' | 'query' | 'body' | 'headers' | `header:${string}`;

/** A rule as written in config or sent at run time. */
export interface RuleSpec {
  readonly id: string;
  readonly category: Category;
  readonly description: string;
  readonly targets: readonly Target[];
  /** Which normalised view the pattern reads; default 'decoded'. */
  readonly view?: View;
  /** A RegExp or its source. Views are lower-case; patterns are compiled case-insensitive. */
  readonly pattern: string | RegExp;
}

/** What rules() lists. */
export interface RuleInfo {
  readonly id: string;
  readonly category: Category;
  readonly description: string;
  readonly targets: readonly Target[];
  readonly view: View;
  readonly pattern: string;
  readonly builtin: boolean;
}

/** Returns where in input.view(rule.view) the rule matched, or -1. */
export type Matcher = (input: NormalizedInput) => number;

export interface Rule extends RuleInfo {
  readonly match: Matcher;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{1,63}$/;
const HEADER_NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const MAX_PATTERN = 2000;
// A quantified group that itself contains a quantifier, like (a+)+ or (\w*x)*: the classic shape of
// catastrophic backtracking. A heuristic, not a proof; it refuses the common mistakes.
const NESTED_QUANTIFIER_RE = /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,)/;

/** What is wrong with a rule spec: the field (id, category, …, pattern) and how. */
export interface RuleProblem {
  /** The rule's id when it has a valid one. */
  readonly id?: string;
  readonly field: string;
  readonly message: string;
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? JSON.stringify(v) : typeof v;
}

export function checkTarget(t: unknown): t is Target {
  if (t === 'path' || t === 'query' || t === 'body' || t === 'headers') return true;
  return typeof t === 'string' && t.startsWith('header:') && HEADER_NAME_RE.test(t.slice(7));
}

/** The problem as one line: `waf rule "custom-x": pattern: …`. */
export function problemText(p: RuleProblem): string {
  return p.id === undefined ? `waf rule ${p.field}: ${p.message}` : `waf rule ${JSON.stringify(p.id)}: ${p.field}: ${p.message}`;
}

/** Validates a rule spec and compiles it; every problem is an OutpostError naming the rule and the field. */
export function compileRule(spec: RuleSpec, builtin = false): Rule {
  const r = tryCompileRule(spec, builtin);
  if ('field' in r) throw new OutpostError('CONFIG_INVALID', problemText(r));
  return r;
}

/** compileRule without throwing: the rule, or its first problem (for checks that list every mistake). */
export function tryCompileRule(spec: unknown, builtin = false): Rule | RuleProblem {
  const s = spec as Record<string, unknown>;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return { field: 'spec', message: `expected an object, got ${describe(s)}` };
  const id = s.id;
  if (typeof id !== 'string' || !ID_RE.test(id)) return { field: 'id', message: `expected 2–64 characters of a-z, 0-9 and '-', got ${describe(id)}` };
  const bad = (field: string, message: string): RuleProblem => ({ id, field, message });
  for (const k of Object.keys(s)) if (!SPEC_FIELDS.has(k)) return bad(k, `unknown field (fields: ${[...SPEC_FIELDS].join(', ')})`);
  if (!CATEGORIES.includes(s.category as Category)) return bad('category', `expected one of ${CATEGORIES.join(', ')}, got ${describe(s.category)}`);
  if (typeof s.description !== 'string' || !s.description) return bad('description', `expected a non-empty string, got ${describe(s.description)}`);
  if (!Array.isArray(s.targets) || s.targets.length === 0) return bad('targets', `expected a non-empty array, got ${describe(s.targets)}`);
  const targets: Target[] = [];
  for (const t of s.targets as unknown[]) {
    const lower = typeof t === 'string' ? t.toLowerCase() : t;
    if (!checkTarget(lower)) return bad('targets', `expected path, query, body, headers or header:<name>, got ${describe(t)}`);
    targets.push(lower);
  }
  const view = (s.view ?? 'decoded') as View;
  if (!VIEWS.includes(view)) return bad('view', `expected one of ${VIEWS.join(', ')}, got ${describe(s.view)}`);
  const re = compilePattern(s.pattern);
  if (typeof re === 'string') return bad('pattern', re);
  const vi = VIEW_INDEX[view];
  return {
    id,
    category: s.category as Category,
    description: s.description,
    targets,
    view,
    pattern: re.source,
    builtin,
    match: (input) => input.textAt(vi).search(re),
  };
}

const SPEC_FIELDS = new Set(['id', 'category', 'description', 'targets', 'view', 'pattern']);

/** The compiled pattern, or what is wrong with it. */
function compilePattern(p: unknown): RegExp | string {
  let source: string;
  let flags = 'i';
  if (p instanceof RegExp) {
    source = p.source;
    flags = p.flags.replace(/[gyd]/g, '');
    if (!flags.includes('i')) flags += 'i';
  } else if (typeof p === 'string' && p.length > 0) source = p;
  else return `expected a regular expression or its source, got ${describe(p)}`;
  if (source.length > MAX_PATTERN) return `longer than ${MAX_PATTERN} characters`;
  if (NESTED_QUANTIFIER_RE.test(source)) return 'nested quantifiers such as (a+)+ can backtrack for seconds on a crafted input; rewrite it without them';
  try {
    return new RegExp(source, flags);
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`;
  }
}

const ALL: readonly Target[] = ['path', 'query', 'headers', 'body'];
const NO_BODY: readonly Target[] = ['path', 'query', 'headers'];

/** Built-in rules whose matcher is a RegExp, lower-case, compiled without flags. */
interface BuiltinSpec {
  readonly id: string;
  readonly category: Category;
  readonly description: string;
  readonly targets: readonly Target[];
  readonly view: View;
  readonly re: RegExp;
  /**
   * A cheap necessary condition (substring checks): when it is false the pattern cannot match,
   * so the regex is skipped.
   */
  readonly gate?: (s: string) => boolean;
  /**
   * Characters the pattern cannot match without: each string is a group, at least one character
   * of every group must be in the view. Checked against the view's character mask, nearly free.
   */
  readonly needs?: readonly string[];
}

/** True when s contains any of the words: a gate for patterns that cannot match without one of them. */
function anyOf(...words: string[]): (s: string) => boolean {
  return (s) => {
    for (const w of words) if (s.includes(w)) return true;
    return false;
  };
}

// Shell commands an injection starts with. Followed (see below) by an option, a path, a URL, a
// variable or a redirect, so that "; cat videos" stays ordinary text.
const CMDS = 'rm|wget|curl|bash|sh|zsh|ksh|dash|nc|ncat|netcat|cat|tac|id|whoami|uname|ifconfig|ipconfig|ls|chmod|chown|echo|ping|nslookup|telnet|tftp|base64|python[23]?|perl|php|ruby|powershell|pwsh|cmd|busybox|sleep|touch|printenv|env';
// Commands that are an attack even with nothing after them.
const LONE_CMDS = 'whoami|uname|ifconfig|ipconfig|printenv|busybox|powershell|pwsh';

const BUILTINS: readonly BuiltinSpec[] = [
  {
    id: 'sqli-union-select',
    category: 'sqli',
    description: 'UNION [ALL] SELECT followed by a column list (1,2 / null / @@version / col FROM …)',
    targets: ALL,
    view: 'sql',
    gate: anyOf('union'),
    re: /\bunion(?: ?(?:all|distinct))? ?\(* ?select\b ?(?:\*|null\b|\d|@@|0x|['"`(]|[a-z_][\w$.]{0,64} ?(?:,|\(|from\b|into\b|--|#|;))/,
  },
  {
    id: 'sqli-tautology',
    category: 'sqli',
    description: "an always-true condition after a closed value: ' or '1'='1, 1 or 1=1, \" or \"\"=\", ' or true--",
    targets: ALL,
    view: 'sql',
    re: /[=&'"`)\d] ?(?:or|and|xor|\|\||&&)(?: |(?=['"(]))\(? ?(?:'[^']{0,32}' ?(?:=|<=>|like) ?'|"[^"]{0,32}" ?(?:=|<=>|like) ?"|(\d{1,10}) ?(?:=|<=>|like) ?\1\b|\d{1,10} ?(?:<>|!=|>|<) ?\d|(?:true|not ?false)\b|1 ?(?:--|#|\/\*|;|$))/,
  },
  {
    id: 'sqli-blind',
    category: 'sqli',
    description: "boolean-blind probes after a closed value: ' and ascii(substring(…)), 1 or (select …), ' and if(…)",
    targets: ALL,
    view: 'sql',
    needs: ['('],
    re: /[=&'"`)\d] ?(?:and|or|xor|&&|\|\|) ?\(? ?(?:\( ?select\b|(?:ascii|ord|substr(?:ing)?|mid|length|char|if|case|exists|hex|bin|unicode|elt|count) ?\()/,
  },
  {
    id: 'sqli-comment',
    category: 'sqli',
    description: "a quoted value cut short by a SQL comment: admin'--, admin'#, 1'/*",
    targets: ALL,
    view: 'sql',
    needs: [`'"\``, '-#*'],
    re: /['"`]\)* ?;? ?(?:--|#)[ \-+]{0,8}(?:$|&)|['`]\)* ?\/\*/,
  },
  {
    id: 'sqli-stacked',
    category: 'sqli',
    description: 'a second statement after ";": DROP/TRUNCATE/ALTER TABLE, DELETE FROM, INSERT INTO, UPDATE … SET, EXEC xp_…, SHUTDOWN',
    targets: ALL,
    view: 'sql',
    needs: [';'],
    re: /; ?(?:(?:drop|truncate|alter|create) (?:table|database|schema|user|view|procedure|function|index)\b|delete from\b|insert into\b|update [\w.`"[\]]{1,64} set\b|exec(?:ute)? ?(?:master\.|xp_|sp_|\(|@)|shutdown\b|declare ?@)/,
  },
  {
    id: 'sqli-time-based',
    category: 'sqli',
    description: 'blind SQLi timing probes: sleep(5), pg_sleep(5), benchmark(n,…), waitfor delay, dbms_lock.sleep',
    targets: ALL,
    view: 'sql',
    needs: ["('"],
    re: /(?:pg_)?sleep ?\( ?\d{1,6}(?:\.\d{1,6})? ?\)|benchmark ?\( ?\d{1,12} ?,|waitfor ?delay ?'|dbms_lock ?\. ?sleep ?\(|dbms_pipe ?\. ?receive_message ?\(|randomblob ?\( ?\d{6,}/,
  },
  {
    id: 'sqli-schema-probe',
    category: 'sqli',
    description: 'catalogue and file probes: information_schema, @@version, load_file(), into outfile, xp_cmdshell, extractvalue()/updatexml()',
    targets: ALL,
    view: 'sql',
    re: /information_schema ?\.|@@(?:version|datadir|hostname|basedir)\b|load_file ?\(|into ?(?:out|dump)file\b|xp_cmdshell\b|(?:extractvalue|updatexml) ?\(|sqlite_master\b|pg_(?:shadow|user|database)\b|mysql\.user\b|sys\.(?:all_|user_)?(?:tables|objects|columns)\b/,
  },
  {
    id: 'xss-script-tag',
    category: 'xss',
    description: 'a <script> or </script> tag, after entity and escape decoding',
    targets: ALL,
    view: 'html',
    needs: ['<'],
    re: /<\/? ?script\b/,
  },
  {
    id: 'xss-event-handler',
    category: 'xss',
    description: 'an HTML event-handler attribute: onerror=, onload=, onmouseover=, … after a tag, quote, space or slash',
    targets: ALL,
    view: 'html',
    needs: ['='],
    re: /(?<![^\s"'`/;<>(])on(?:abort|afterprint|animation(?:start|end|iteration)|auxclick|before(?:print|unload|input|toggle|copy|cut|paste)|begin|blur|cancel|canplay(?:through)?|change|click|close|contextmenu|copy|cuechange|cut|dblclick|drag(?:start|end|enter|leave|over)?|drop|durationchange|end|ended|error|focus(?:in|out)?|formdata|fullscreenchange|hashchange|input|invalid|key(?:down|press|up)|load(?:start|end|eddata|edmetadata)?|message|mouse(?:down|up|over|out|move|enter|leave|wheel)|offline|online|page(?:hide|show)|paste|pause|play(?:ing)?|pointer(?:down|up|over|out|move|enter|leave|cancel)|popstate|progress|ratechange|repeat|reset|resize|scroll(?:end)?|search|seek(?:ed|ing)|select(?:start|ionchange)?|show|stalled|storage|submit|suspend|timeupdate|toggle|touch(?:start|end|move|cancel)|transition(?:start|end|run|cancel)|unload|volumechange|waiting|wheel) ?=/,
  },
  {
    id: 'xss-js-uri',
    category: 'xss',
    description: 'javascript:, vbscript: and data:text/html URIs (also with tabs or entities inside the scheme); "javascript: the good parts" passes',
    targets: ALL,
    view: 'html',
    needs: [':'],
    re: /(?<=(?:j ?a ?v ?a|v ?b|l ?i ?v ?e) ?s ?c ?r ?i ?p ?t ?):(?! [a-z]{1,30}(?: |$))|(?<=\bdata ?): ?(?:text\/html|image\/svg\+xml|application\/x?html)\b/,
  },
  {
    id: 'xss-iframe',
    category: 'xss',
    description: 'tags that load or embed other documents: <iframe>, <frame>, <object>, <embed>, <applet>, <meta http-equiv>, <base href>',
    targets: ALL,
    view: 'html',
    needs: ['<'],
    re: /<(?:i?frame|frameset|object|embed|applet|portal)\b|<meta\b[^>]{0,120}\bhttp-equiv\b|<base\b[^>]{0,120}\bhref\b/,
  },
  {
    id: 'xss-js-sink',
    category: 'xss',
    description: 'script payload idioms: document.cookie, alert(1)/prompt(…)/confirm(…), eval(atob(…)), String.fromCharCode(…), location= assignments',
    targets: ALL,
    view: 'html',
    needs: ['.(`'],
    re: /(?<=(?:document|window|self|top|parent) ?)\. ?(?:location ?=|(?<=document ?\. ?)(?:cookie|write(?:ln)?|domain)\b)|(?<=(?:alert|prompt|confirm) ?)(?:\( ?(?:\d|['"`/]|document\b|window\b|string\b|this\b)|`)|(?<=eval ?)\( ?(?:['"`]|atob\b|string\b|unescape\b|decodeuri|location\b|name\b|document\b)|(?<=string ?)\. ?fromcharcode ?\(|(?<=new ?function ?)\( ?['"`]/,
  },
  {
    id: 'pt-dot-dot',
    category: 'traversal',
    description: 'a "../" segment (also ..\\, ..;/, ....//, and every encoding of the dots and slash)',
    targets: NO_BODY,
    view: 'path',
    needs: ['.'],
    re: /\.\.(?<=(?:^|[/=&;])\.\.)\.*(?:\/|;|&|$)/,
  },
  {
    id: 'pt-sensitive-files',
    category: 'traversal',
    description: 'well-known secrets: /etc/passwd, /proc/self/, .env, .git/, .svn/, .htaccess, .htpasswd, wp-config.php, id_rsa, web.config, win.ini, …',
    targets: NO_BODY,
    view: 'path',
    needs: ['/._'],
    re: /[/=](?:etc\/(?:passwd|shadow|group|sudoers|hosts)\b|proc\/(?:self|\d{1,7})\/(?:environ|cmdline|fd|maps|mem)|\.env(?:\.[\w-]{1,20})?(?:$|[/&?;#])|\.git(?:\/|$)|\.(?:svn|hg|bzr)(?:\/|$)|\.ht(?:access|passwd)\b|\.ds_store\b|\.aws\/credentials|\.ssh\/|\.(?:bash|zsh)_history\b|\.npmrc\b|\.docker\/config\.json|wp-config\.php|web\.config\b|(?:win|boot|system)\.ini\b|windows\/system32\/|id_(?:rsa|dsa|ecdsa|ed25519)(?:\.pub)?\b)/,
  },
  {
    id: 'rce-shellshock',
    category: 'rce',
    description: 'the Shellshock function prefix () { :; }; in any value',
    targets: ALL,
    view: 'decoded',
    needs: ['(', '{'],
    re: /\(\) ?\{[^}]{0,20}\} ?;/,
  },
  {
    id: 'rce-jndi',
    category: 'rce',
    description: 'Log4Shell lookups: ${jndi:…}, also obfuscated as ${${lower:j}ndi:…} or ${${::-j}…}',
    targets: ALL,
    view: 'decoded',
    needs: ['$', '{'],
    re: /\$\{(?:j|\$\{[^{}]{0,40}\})(?:n|\$\{[^{}]{0,40}\})(?:d|\$\{[^{}]{0,40}\})(?:i|\$\{[^{}]{0,40}\}) ?:/,
  },
  {
    id: 'shell-injection',
    category: 'shell',
    description: 'a command chained with ; | && || $( or backticks: ;cat /etc/x, |wget http://…, $(whoami), `id`, && curl -s …',
    targets: ALL,
    view: 'shell',
    needs: [';|`$&'],
    re: new RegExp(
      // $(cmd …) and `cmd …` (a backtick right after a value boundary, so Markdown `code` passes)
      `(?:\\$\\(|(?<![^=;|&(])\`) ?(?:${CMDS})\\b` +
        // ; | && || followed by a command and then an option, a path, a URL, a variable, a redirect or a pipe
        `|(?:[;|]|&&) ?(?:sudo |exec |nohup )?(?:\\/(?:usr\\/)?s?bin\\/)?(?:${CMDS}) ?(?:-{1,2}[a-z]|\\/|~|\\$|[<>|]|https?:|ftp:|\\.\\.?\\/)` +
        // … or a command that is an attack on its own, or a pipe into a shell
        `|(?:[;|]|&&) ?(?:${LONE_CMDS})\\b|\\| ?(?:ba|z|k|da)?sh ?(?:$|[;&)])` +
        // a downloader or netcat aimed at a host
        `|(?:[;|]|&&) ?(?:wget|curl|nc|ncat|telnet|tftp) [a-z0-9-]{1,63}(?:\\.[a-z0-9-]{1,63}){1,6}\\b`,
    ),
  },
  {
    id: 'scanner-ua',
    category: 'scanner',
    description: 'User-Agent of an attack tool or vulnerability scanner: sqlmap, nikto, masscan, nmap, acunetix, nessus, zgrab, dirbuster, gobuster, wpscan, nuclei, ffuf, …',
    targets: ['header:user-agent'],
    view: 'decoded',
    re: /\b(?:sqlmap|nikto|masscan|nmap|acunetix|nessus|zgrab|dirbuster|gobuster|wpscan|nuclei|ffuf|fuzz faster u fool|feroxbuster|wfuzz|w3af|openvas|netsparker|havij|arachni|skipfish|commix|xsser|whatweb|zmeu|jaeles|joomscan|dirb|appscan|webinspect|fimap|nosqlmap|jorgee|morfeus)\b/,
  },
];

/** The NUL rule reads the decoder's flag: the views have the NUL removed. */
const NULL_BYTE: Rule = {
  id: 'null-byte',
  category: 'protocol',
  description: 'a NUL byte (%00, %2500, overlong %c0%80, %u0000) in the path, query or a header',
  targets: NO_BODY,
  view: 'decoded',
  pattern: '(decoder flag: nul)',
  builtin: true,
  match: (input) => (input.flags & FLAG_NUL ? 0 : -1),
};

function builtin(b: BuiltinSpec): Rule {
  const { re, view } = b;
  const gate = b.gate ?? (() => true);
  const needs = (b.needs ?? []).map((group) => {
    const m = charMask(group);
    if (m === 0) throw new Error(`rule ${b.id}: needs group ${JSON.stringify(group)} has no character the mask tracks`);
    return m;
  });
  const vi = VIEW_INDEX[view];
  const match: Matcher = (input) => {
    if (needs.length) {
      const m = input.maskAt(vi);
      for (const n of needs) if ((m & n) === 0) return -1;
    }
    const s = input.textAt(vi);
    return gate(s) ? s.search(re) : -1;
  };
  return { id: b.id, category: b.category, description: b.description, targets: b.targets, view, pattern: re.source, builtin: true, match };
}

/** The built-in rules, cheapest and most specific first. */
export const BUILTIN_RULES: readonly Rule[] = [NULL_BYTE, ...BUILTINS.map(builtin)];

export function ruleInfo(r: Rule): RuleInfo {
  return { id: r.id, category: r.category, description: r.description, targets: [...r.targets], view: r.view, pattern: r.pattern, builtin: r.builtin };
}
