/**
 * Where a shell command would connect, read from its command line before it runs. The policy checks the
 * hosts found here against denied_hosts / allowed_hosts as it checks the paths a command names, so a host
 * policy holds for `curl`, `git clone`, `ssh` and the rest of NETWORK_PROGRAMS, not only for network_request
 * actions.
 *
 * Each program's arguments are read as that program reads them: which options take a value (so `-H "Host:
 * evil"` or `-o out.html` is never taken for a target), which operands are URLs, `host:path`, `host port`
 * or socat addresses, and which options send the connection somewhere else (proxies, jump hosts, tunnels).
 * A URL whose scheme lacks its two slashes (`http:/evil`, `http:evil`, `http:///evil`) is read as the
 * program reads it, and where versions or parsers differ (wget 1.x against wget2, httpie against a URL
 * parser) every reading's host is checked. Hosts come out lower-cased, without a trailing dot, IPv6 without
 * brackets, IPv4-mapped IPv6 as the IPv4 address it reaches, IDN in punycode and IPv4 in dotted form
 * (`0x7f.1` is 127.0.0.1), as the WHATWG URL parser reads them.
 *
 * Two more things connect whatever the program: a redirection to `/dev/tcp/HOST/PORT` or `/dev/udp/...`,
 * which bash opens as a connection itself (an argument naming such a path is only a file that does not
 * exist), and a proxy variable exported or declared (`export https_proxy=...`, `declare -x`, `set -a`),
 * which sends the connections of the commands after it through the proxy: its host is checked and the
 * command asks, since which later commands use it is not known.
 *
 * Whatever cannot be known from the command line is reported as Unknown with the reason, and the policy
 * asks a human: an address the shell computes when the command runs (`$X`, a backquote, or any argument
 * holding an expansion, since an unquoted one can split into further arguments such as another URL), a host
 * that is not a plain name or address (a glob, a brace pattern, a percent-escape, several `@`), targets read
 * from a file (`curl -K`, `wget -i`, torrents), a git remote named rather than given as a URL, a dotless
 * ssh host that may be an alias in ~/.ssh/config, options that redirect connections (`curl --resolve`,
 * `--connect-to`, ssh ProxyCommand, `git -c url.X.insteadOf=`), variables assigned for the command
 * (`https_proxy=... curl`), a redirection whose path the shell computes (`> "$OUT"` may be /dev/tcp/...),
 * and the base images of `docker build`, named in a Dockerfile read when it runs.
 *
 * What it cannot see (the approver sees the full command for these): configuration files the programs read
 * on their own (~/.ssh/config beyond the dotless-alias rule, ~/.curlrc, ~/.wgetrc, .npmrc, pip.conf, git's
 * url.insteadOf and remote URLs, docker contexts), variables exported by an earlier command line or a
 * sourced file, or assigned without `export` to a variable the environment already exports, redirects a
 * server answers with (`curl -L`, wget, git over http), hosts a recursive download reaches (`wget -r -H`),
 * the default registry of a package manager or container engine when none is named (`npm install` and
 * `docker pull ubuntu` give null), DNS search domains appended to dotless names, and an unquoted glob in an
 * option value that matches a file named like a host.
 */
import { programName, type SimpleCommand } from "./commandLine.js"

export type NetworkTarget =
  | { readonly _tag: "Host"; readonly host: string; readonly via: string /* the argument it came from */ }
  | { readonly _tag: "Unknown"; readonly reason: string }

/** The programs recognised, for docs and the policy's messages (`python -m pip` is read as pip). */
export const NETWORK_PROGRAMS: ReadonlyArray<string> = [
  "curl",
  "wget",
  "http",
  "https",
  "xh",
  "xhs",
  "aria2c",
  "git",
  "ssh",
  "scp",
  "sftp",
  "rsync",
  "nc",
  "ncat",
  "netcat",
  "nc.openbsd",
  "nc.traditional",
  "telnet",
  "ftp",
  "socat",
  "ping",
  "ping6",
  "traceroute",
  "traceroute6",
  "dig",
  "nslookup",
  "host",
  "npm",
  "npx",
  "pnpm",
  "yarn",
  "pip",
  "pip3",
  "uv",
  "docker",
  "podman",
  "openssl",
  "sshpass",
  "torsocks",
  "proxychains",
  "proxychains4"
]

/**
 * The shell builtins read for the variables they set (`export https_proxy=...`, `set -a`): recognised only
 * when they set one that sends later connections elsewhere (ADDRESS_VARIABLES, ROUTING_VARIABLES).
 */
export const VARIABLE_BUILTINS: ReadonlyArray<string> = ["export", "declare", "typeset", "readonly", "local", "set"]

/**
 * null when the command is not one of the programs recognised (NETWORK_PROGRAMS, VARIABLE_BUILTINS) and
 * redirects to no network path; otherwise every target it would reach.
 */
export const networkTargetsOf = (cmd: SimpleCommand): ReadonlyArray<NetworkTarget> | null => {
  const found = analyse(cmd.program, cmd.argv)
  if (found !== null && cmd.assigns === true) {
    found.unknown(
      `variables are set for ${show(cmd.program)} on the command line; some (https_proxy, ALL_PROXY, GIT_SSH_COMMAND, npm_config_registry) send its connections elsewhere`
    )
  }
  const f = found ?? new Findings()
  for (const path of cmd.redirects ?? []) networkRedirection(path, f)
  return found === null && f.targets.length === 0 ? null : f.targets
}

// ---------------------------------------------------------------------------------------------------------
// bash's network redirections: `> /dev/tcp/HOST/PORT` connects, whatever the program.

const NETWORK_PATHS = ["/dev/tcp/", "/dev/udp/"]
/** bash's own pattern for them is `/dev/tcp/` and `/dev/udp/`, any host, a slash, any port. */
const NETWORK_PATH = /^\/dev\/(?:tcp|udp)\/([^/]*)\//

/**
 * A redirection's path: a network path names its host; a path the shell computes that could still turn into
 * one (`> "$OUT"`, `> /dev/tcp/$H/80`, `> /dev/$P/h/1`) is unknown; any other path is a file. Only
 * redirections count: bash opens these paths itself, while a program given one as an argument opens a file
 * that does not exist.
 */
const networkRedirection = (path: string, f: Findings): void => {
  const m = NETWORK_PATH.exec(path)
  if (m !== null && !isExpanded(m[0])) {
    // The port may be computed (`/dev/tcp/h/$PORT`); the host is known.
    f.host(m[1] ?? "", path, path)
    return
  }
  const cut = path.search(EXPANSION)
  if (cut === -1) return
  const literal = path.slice(0, cut)
  if (NETWORK_PATHS.some((p) => p.startsWith(literal) || literal.startsWith(p))) {
    f.unknown(
      `the redirection to ${show(path)} is computed by the shell when the command runs; it could name /dev/tcp/HOST/PORT, which bash opens as a network connection`
    )
  }
}

// ---------------------------------------------------------------------------------------------------------
// Findings: the targets of one command, and the bookkeeping that keeps run-time expansions from slipping by.

const EXPANSION = /[$`]/
const isExpanded = (s: string): boolean => EXPANSION.test(s)

const show = (s: string): string => {
  const cut = s.length > 100 ? `${s.slice(0, 97)}...` : s
  return `'${cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}'`
}

interface UrlOptions {
  /** The scheme the program assumes for an argument without `scheme://`; absent: such an argument is not a URL. */
  readonly defaultScheme?: string
  /** The connection is made by ssh, so a dotless name may be an alias from ~/.ssh/config. */
  readonly ssh?: boolean
  /**
   * How the program reads a LENIENT_SCHEMES scheme without exactly two slashes (`http:/h`, `http:h`,
   * `http:///h`): "only" as `scheme://h` (curl; URL parsers); "also" as that and as the default scheme
   * would read it (httpie's `http://http:/h`, which reaches a host named http), both hosts checked.
   * Absent: "also" when there is a defaultScheme, else not read leniently.
   */
  readonly lenient?: "only" | "also"
}

interface HostOptions {
  readonly ssh?: boolean
  /** `host:port` (and `[v6]:port`) is allowed; otherwise a colon outside brackets means a bare IPv6 address. */
  readonly port?: boolean
}

class Findings {
  readonly targets: Array<NetworkTarget> = []
  /** Arguments read as targets: their brace patterns are judged by the host check itself. */
  readonly targetArgs = new Set<string>()
  /** Arguments whose expansion has already been reported with a specific reason. */
  readonly explained = new Set<string>()
  /** argv from this index on is a payload the program does not read as options or targets (ssh's command). */
  payloadFrom = Number.POSITIVE_INFINITY

  unknown(reason: string): void {
    if (!this.targets.some((t) => t._tag === "Unknown" && t.reason === reason)) this.targets.push({ _tag: "Unknown", reason })
  }

  private expanded(src: string, via: string): void {
    this.explained.add(src)
    this.unknown(`${show(via)} is computed by the shell when the command runs, so where it connects is not known before`)
  }

  /** A host name or address as written, checked and normalised; `raw` has no user part, port or brackets left. */
  private emit(raw: string, via: string, ssh: boolean): void {
    const host = normalizeHost(raw)
    if (host === null) {
      this.unknown(notAHost(raw, via))
      return
    }
    if (!this.targets.some((t) => t._tag === "Host" && t.host === host && t.via === via)) this.targets.push({ _tag: "Host", host, via })
    if (ssh && !host.includes(".") && !host.includes(":") && host !== "localhost") {
      const from = via === host ? "" : ` (from ${show(via)})`
      this.unknown(`the ssh host ${show(host)}${from} has no dot, so it may be a Host alias in ~/.ssh/config that leads to another machine`)
    }
  }

  /** `[user@]host`, `[user@]host:port`, `[user@][v6]:port`; `src` is the argv element it was read from. */
  host(spec: string, via: string, src: string, opts: HostOptions = {}): void {
    this.targetArgs.add(src)
    if (isExpanded(spec)) return this.expanded(src, via)
    const at = spec.lastIndexOf("@")
    const hostport = spec.slice(at + 1)
    const split = splitHostPort(hostport, opts.port === true)
    if (split === null) {
      this.unknown(notAHost(hostport, via))
      return
    }
    this.emit(split.host, via, opts.ssh === true)
  }

  /** A URL; with `defaultScheme`, also what the program reads as one without a scheme (`evil.example/x`). */
  url(arg: string, via: string, src: string, opts: UrlOptions = {}): void {
    this.targetArgs.add(src)
    const lenient = opts.lenient ?? (opts.defaultScheme === undefined ? undefined : "also")
    const loose = lenient === undefined ? null : lenientUrl(arg)
    if (loose !== null) {
      this.url(loose, via, src, opts.ssh === true ? { ssh: true } : {})
      // `scheme:///h` has no other reading: the default scheme is only prefixed to what has no `://`.
      if (lenient === "only" || SCHEME_URL.test(arg)) return
    }
    const m = SCHEME_URL.exec(arg)
    let scheme: string
    let rest: string
    if (m !== null) {
      scheme = (m[1] ?? "").toLowerCase()
      rest = m[2] ?? ""
    } else if (opts.defaultScheme !== undefined) {
      scheme = opts.defaultScheme
      rest = arg
    } else {
      if (isExpanded(arg)) return this.expanded(src, via)
      this.unknown(`${show(via)} is not a URL with a host, so where it connects cannot be checked`)
      return
    }
    const end = rest.search(/[/?#]/)
    const authority = end === -1 ? rest : rest.slice(0, end)
    if (isExpanded(authority)) return this.expanded(src, via)
    if (scheme === "file") return
    if (authority.includes("\\") || authority.indexOf("@") !== authority.lastIndexOf("@")) {
      this.unknown(`${show(via)} has a backslash or several '@' before its path, which clients split into user and host differently`)
      return
    }
    const hostport = authority.slice(authority.lastIndexOf("@") + 1)
    const split = splitHostPort(hostport, true)
    if (split === null || split.host === "" || (split.port !== null && !/^\d*$/.test(split.port))) {
      this.unknown(`${show(via)} has no host a client reads one way (${show(hostport)}), so where it connects cannot be checked`)
      return
    }
    this.emit(split.host, via, opts.ssh === true || SSH_SCHEMES.has(scheme))
  }
}

const notAHost = (raw: string, via: string): string =>
  `${show(raw)}${raw === via ? "" : ` in ${show(via)}`} is not a plain host name or IP address, so where it connects cannot be checked`

const SCHEME_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s
const SSH_SCHEMES = new Set(["ssh", "git+ssh", "ssh+git", "sftp", "scp"])

/** The schemes curl knows (and the proxy ones), which it and URL parsers read with any one to three slashes. */
const LENIENT_SCHEMES = new Set(
  `dict file ftp ftps gopher gophers http https imap imaps ldap ldaps mqtt pop3 pop3s rtmp rtmpe rtmps rtmpt
  rtmpte rtmpts rtsp scp sftp smb smbs smtp smtps telnet tftp ws wss socks4 socks4a socks5 socks5h`
    .split(/\s+/)
    .filter((n) => n !== "")
)

/**
 * `scheme:/host`, `scheme:host`, `scheme:///host` or `scheme:\\host` of a LENIENT_SCHEMES scheme as
 * `scheme://host`, the way curl (one to three slashes), wget2 and the WHATWG parser (any slashes) read
 * it; null for anything else, and for `scheme:8080`, which is a host named like the scheme and its port.
 */
const lenientUrl = (arg: string): string | null => {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):([/\\]*)(.*)$/s.exec(arg)
  if (m === null) return null
  const scheme = (m[1] ?? "").toLowerCase()
  const slashes = m[2] ?? ""
  const rest = m[3] ?? ""
  if (!LENIENT_SCHEMES.has(scheme) || slashes === "//") return null
  if (slashes === "" && /^\d*(?:[/?#]|$)/.test(rest)) return null
  return `${scheme}://${rest}`
}

/**
 * The host as clients resolve it, or null when it is not a plain DNS name or IP address (a glob, a brace
 * pattern, a percent-escape, a space or control character, an empty name): such a string either fails to
 * connect or is read differently by different clients, and the policy cannot match it either way. A name
 * under localhost (`foo.localhost`) stays as written, though resolvers send it to the loopback: a
 * denied_hosts entry names one host, and "*.localhost" is the entry for those.
 */
const normalizeHost = (raw: string): string | null => {
  let s = raw
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1)
  if (s.includes(":")) {
    if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null
    let v6: string
    try {
      v6 = new URL(`http://[${s}]/`).hostname.slice(1, -1)
    } catch {
      return null
    }
    // An IPv4-mapped address (::ffff:127.0.0.1, serialised ::ffff:7f00:1) reaches that IPv4 address.
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6)
    if (mapped === null) return v6
    const hi = parseInt(mapped[1] ?? "0", 16)
    const lo = parseInt(mapped[2] ?? "0", 16)
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  if (s === "" || s.startsWith("-")) return null
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0
    if (code < 0x80 ? !/[A-Za-z0-9._-]/.test(ch) : /[\p{White_Space}\p{Cc}]/u.test(ch)) return null
  }
  let host: string
  try {
    host = new URL(`http://${s}/`).hostname
  } catch {
    return null
  }
  host = host.replace(/\.+$/, "")
  if (host === "" || host.startsWith(".") || host.includes("..") || !/^[a-z0-9._-]+$/.test(host)) return null
  return host
}

/** "host", "host:port", "[v6]", "[v6]:port"; with `port` false a string with colons is a bare IPv6 address. */
const splitHostPort = (s: string, port: boolean): { readonly host: string; readonly port: string | null } | null => {
  if (s.startsWith("[")) {
    const close = s.indexOf("]")
    if (close === -1) return null
    const host = s.slice(0, close + 1)
    const rest = s.slice(close + 1)
    if (rest === "") return { host, port: null }
    return port && rest.startsWith(":") ? { host, port: rest.slice(1) } : null
  }
  const colon = s.indexOf(":")
  if (colon === -1) return { host: s, port: null }
  if (!port) return { host: s, port: null }
  if (s.indexOf(":", colon + 1) !== -1) return null
  return { host: s.slice(0, colon), port: s.slice(colon + 1) }
}

/** The `[user@]host` of an scp-style `[user@]host:path` (also `host::module`), or null for a local path. */
const remoteHostOf = (spec: string): string | null => {
  const v6 = /^((?:[^@/:[]*@)?\[[^\]/]*\]):/.exec(spec)
  if (v6 !== null) return v6[1] ?? null
  const colon = spec.indexOf(":")
  if (colon <= 0) return null
  const head = spec.slice(0, colon)
  return head.includes("/") ? null : head
}

// ---------------------------------------------------------------------------------------------------------
// Options: a getopt-style reader, told which options take a value.

interface Spec {
  /** Short options that take a value (`-o file`, `-ofile`). */
  readonly short: string
  /** Long options (without `--`) that take a value (`--output file`, `--output=file`). */
  readonly long: (name: string) => boolean
  /** Options may follow operands (GNU getopt, popt, git); false: the first operand ends the options. */
  readonly permute: boolean
}

type Token =
  | { readonly _tag: "Opt"; readonly name: string; readonly value: string | null; readonly src: string; readonly index: number }
  | { readonly _tag: "Arg"; readonly value: string; readonly index: number }

const longSet = (names: string): ((name: string) => boolean) => {
  const set = new Set(names.split(/\s+/).filter((n) => n !== ""))
  return (name) => set.has(name)
}

const tokenize = (argv: ReadonlyArray<string>, spec: Spec, from = 0): Array<Token> => {
  const out: Array<Token> = []
  let optionsDone = false
  for (let i = from; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (optionsDone || a === "-" || !a.startsWith("-")) {
      out.push({ _tag: "Arg", value: a, index: i })
      if (!spec.permute) optionsDone = true
      continue
    }
    if (a === "--") {
      optionsDone = true
      continue
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=")
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
      if (eq !== -1) out.push({ _tag: "Opt", name: `--${name}`, value: a.slice(eq + 1), src: a, index: i })
      else if (spec.long(name)) {
        out.push({ _tag: "Opt", name: `--${name}`, value: argv[i + 1] ?? null, src: argv[i + 1] ?? a, index: i })
        i++
      } else out.push({ _tag: "Opt", name: `--${name}`, value: null, src: a, index: i })
      continue
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j] ?? ""
      if (spec.short.includes(c)) {
        const attached = a.slice(j + 1)
        if (attached !== "") out.push({ _tag: "Opt", name: `-${c}`, value: attached, src: a, index: i })
        else {
          out.push({ _tag: "Opt", name: `-${c}`, value: argv[i + 1] ?? null, src: argv[i + 1] ?? a, index: i })
          i++
        }
        break
      }
      out.push({ _tag: "Opt", name: `-${c}`, value: null, src: a, index: i })
    }
  }
  return out
}

const operands = (tokens: ReadonlyArray<Token>): Array<Extract<Token, { _tag: "Arg" }>> =>
  tokens.filter((t): t is Extract<Token, { _tag: "Arg" }> => t._tag === "Arg")

const is = (t: Token, ...names: ReadonlyArray<string>): t is Extract<Token, { _tag: "Opt" }> & { readonly value: string } =>
  t._tag === "Opt" && t.value !== null && names.includes(t.name)

const has = (tokens: ReadonlyArray<Token>, ...names: ReadonlyArray<string>): boolean =>
  tokens.some((t) => t._tag === "Opt" && names.includes(t.name))

// ---------------------------------------------------------------------------------------------------------
// The programs.

type Handler = (argv: ReadonlyArray<string>, f: Findings, program: string) => boolean

/** A lookup table keyed by untrusted words: a Map, so "constructor" or "__proto__" finds nothing. */
const entries = <A>(record: Readonly<Record<string, A>>): ReadonlyMap<string, A> => new Map(Object.entries(record))

const analyse = (program: string, argv: ReadonlyArray<string>): Findings | null => {
  const name = program.toLowerCase()
  const handler = HANDLERS.get(name) ?? (/^pip[0-9.]*$/.test(name) ? pip : /^python[0-9.]*$/.test(name) ? python : undefined)
  if (handler === undefined) return null
  const f = new Findings()
  if (!handler(argv, f, name)) return null
  argv.forEach((arg, i) => {
    if (i > f.payloadFrom) return
    if (i === f.payloadFrom) {
      // The first word of a payload ends the options only if it does not start with an expansion.
      if (/^[$`]/.test(arg)) f.unknown(`${show(arg)} is computed by the shell when the command runs and could expand into more options`)
      return
    }
    if (isExpanded(arg) && !f.explained.has(arg)) {
      f.unknown(`${show(arg)} holds a shell expansion whose value is only known when the command runs; unquoted, it can split into more arguments, such as another address`)
    }
    if (!f.targetArgs.has(arg)) {
      const word = braceWords(arg).find(looksLikeTarget)
      if (word !== undefined) f.unknown(`${show(arg)} is a brace pattern the shell may expand into more arguments, such as ${show(word)}`)
    }
  })
  return f
}

/** The words an unquoted brace pattern `pre{a,b}post` turns into (only the first pattern), or []. */
const braceWords = (arg: string): ReadonlyArray<string> => {
  const m = /^(.*?)\{([^{}]*,[^{}]*)\}(.*)$/s.exec(arg)
  if (m === null) return []
  return (m[2] ?? "").split(",").map((alt) => `${m[1] ?? ""}${alt}${m[3] ?? ""}`)
}

const looksLikeTarget = (word: string): boolean =>
  /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/]/.test(word) || /^([^\s@/]+@)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:[^\s]*)?(\/\S*)?$/.test(word)

// curl ------------------------------------------------------------------------------------------------------

const CURL_VALUE = longSet(`
  abstract-unix-socket alt-svc aws-sigv4 cacert capath cert cert-type ciphers config connect-timeout connect-to
  continue-at cookie cookie-jar create-file-mode crlfile curves data data-ascii data-binary data-raw
  data-urlencode delegation dns-interface dns-ipv4-addr dns-ipv6-addr dns-servers doh-url ech egd-file engine
  etag-compare etag-save expect100-timeout form form-string ftp-account ftp-alternative-to-user ftp-method
  ftp-port ftp-ssl-ccc-mode happy-eyeballs-timeout-ms haproxy-clientip header hostpubmd5 hostpubsha256 hsts
  interface ip-tos ipfs-gateway json keepalive-cnt keepalive-time key key-type knownhosts krb libcurl
  limit-rate local-port login-options mail-auth mail-from mail-rcpt max-filesize max-redirs max-time
  netrc-file noproxy oauth2-bearer output output-dir parallel-max pass pinnedpubkey preproxy proto
  proto-default proto-redir proxy proxy-cacert proxy-capath proxy-cert proxy-cert-type proxy-ciphers
  proxy-crlfile proxy-header proxy-key proxy-key-type proxy-pass proxy-pinnedpubkey proxy-service-name
  proxy-tls13-ciphers proxy-tlsauthtype proxy-tlspassword proxy-tlsuser proxy-user proxy1.0 pubkey quote
  random-file range rate referer request request-target resolve retry retry-delay retry-max-time
  sasl-authzid service-name sigalgs socks4 socks4a socks5 socks5-gssapi-service socks5-hostname speed-limit
  speed-time ssl-sessions stderr telnet-option tftp-blksize time-cond tls-max tls13-ciphers tlsauthtype
  tlspassword tlsuser trace trace-ascii trace-config unix-socket upload-file upload-flags url url-query user
  user-agent variable vlan-priority write-out
`)
const CURL: Spec = {
  short: "AbcCdDeEFHKmoPQrtTuUwxXyYz",
  // curl 8.3+ reads any option as `--expand-<name>`, with {{variables}} substituted in its value.
  long: (n) => CURL_VALUE(n.startsWith("expand-") ? n.slice("expand-".length) : n),
  permute: true
}
const CURL_PROXIES = new Set(["-x", "--proxy", "--preproxy", "--socks4", "--socks4a", "--socks5", "--socks5-hostname", "--proxy1.0"])
/** curl reads `http:/h` as http://h and nothing else (`http:h` it refuses). */
const CURL_URL: UrlOptions = { defaultScheme: "http", lenient: "only" }

const curl: Handler = (argv, f) => {
  for (const t of tokenize(argv, CURL)) {
    if (t._tag === "Arg") {
      f.url(t.value, t.value, t.value, CURL_URL)
      continue
    }
    if (t.value === null) continue
    const expand = t.name.startsWith("--expand-")
    const name = expand ? `--${t.name.slice("--expand-".length)}` : t.name
    const via = `${t.name} ${t.value}`
    const targets = name === "--url" || CURL_PROXIES.has(name) || name === "--doh-url" || name === "--ipfs-gateway" || name === "--dns-servers"
    if (expand && targets && t.value.includes("{{")) {
      f.unknown(`${show(via)} is filled in from curl variables when the command runs, so where it connects is not known before`)
    } else if (name === "--url") {
      if (t.value.startsWith("@")) f.unknown(`${show(via)} makes curl read its URLs from a file, which cannot be checked before it runs`)
      else f.url(t.value, via, t.src, CURL_URL)
    } else if (CURL_PROXIES.has(name) || name === "--doh-url" || name === "--ipfs-gateway") {
      f.url(t.value, via, t.src, CURL_URL)
    } else if (name === "--dns-servers") {
      for (const server of t.value.split(",")) f.host(server, via, t.src, { port: true })
    } else if (name === "--resolve" || name === "--connect-to") {
      f.unknown(`${show(via)} makes curl connect somewhere other than the URL's host, chosen by this option`)
    } else if (name === "-K" || name === "--config") {
      f.unknown(`${show(via)} makes curl read options, URLs and proxies from a file, which cannot be checked before it runs`)
    } else if (name === "--alt-svc") {
      f.unknown(`${show(via)} loads alternative services from a file, which can send curl's connections to other hosts`)
    }
  }
  return true
}

// wget ------------------------------------------------------------------------------------------------------

const WGET: Spec = {
  short: "eoaiBtOTwQPUlARDIX",
  long: longSet(`
    execute output-file append-output input-file base config rejected-log tries output-document backups
    bind-address bind-dns-address dns-servers timeout dns-timeout connect-timeout read-timeout wait waitretry
    limit-rate quota prefer-family user password use-askpass local-encoding remote-encoding directory-prefix
    cut-dirs default-page http-user http-password header compression max-redirect proxy-user proxy-password
    referer user-agent load-cookies save-cookies post-data post-file method body-data body-file certificate
    certificate-type private-key private-key-type ca-certificate ca-directory crl-file pinnedpubkey
    random-file egd-file ciphers secure-protocol hsts-file ftp-user ftp-password level accept reject
    accept-regex reject-regex regex-type domains exclude-domains follow-tags ignore-tags include-directories
    exclude-directories warc-file warc-header warc-max-size warc-dedup warc-tempdir report-speed
    restrict-file-names progress retry-on-http-error start-pos
  `),
  permute: true
}

const wget: Handler = (argv, f) => {
  for (const t of tokenize(argv, WGET)) {
    if (t._tag === "Arg") {
      wgetUrl(t.value, f)
      continue
    }
    if (t.value === null) continue
    const via = `${t.name} ${t.value}`
    if (is(t, "-e", "--execute")) wgetCommand(t.value, via, t.src, f)
    else if (is(t, "-i", "--input-file")) f.unknown(`${show(via)} makes wget read its URLs from a file, which cannot be checked before it runs`)
    else if (is(t, "--config")) f.unknown(`${show(via)} makes wget read settings such as proxies from a file, which cannot be checked before it runs`)
    else if (is(t, "-B", "--base")) f.url(t.value, via, t.src, { defaultScheme: "http" })
    else if (is(t, "--dns-servers")) for (const server of t.value.split(",")) f.host(server, via, t.src, { port: true })
  }
  return true
}

/**
 * A URL operand, as both wget generations read it. wget2 reads `http:/h` and `http:h` as http://h; wget 1.x
 * knows a scheme only with `://` and reads anything else with a colon before the first slash as an ftp
 * `host:path` (`http:/h` reaches a host named http), unless digits follow the colon (`host:8080/x`).
 */
const wgetUrl = (arg: string, f: Findings): void => {
  const scheme = SCHEME_URL.test(arg)
  if (scheme || lenientUrl(arg) !== null) f.url(arg, arg, arg, { lenient: "only" })
  if (scheme) return
  const sep = arg.search(/[:/]/)
  const colon = sep > 0 && arg[sep] === ":" && !/^\d+(?:\/|$)/.test(arg.slice(sep + 1))
  f.url(colon ? `ftp://${arg.slice(0, sep)}/${arg.slice(sep + 1)}` : arg, arg, arg, { defaultScheme: "http", lenient: "only" })
}

/** One wgetrc command given with `-e`: the proxy ones name a host, `input` a file of URLs. */
const wgetCommand = (command: string, via: string, src: string, f: Findings): void => {
  const m = /^\s*([A-Za-z_-]+)\s*=\s*(.*?)\s*$/s.exec(command)
  if (m === null) return
  const name = (m[1] ?? "").toLowerCase().replace(/[-_]/g, "")
  const value = m[2] ?? ""
  if (name === "httpproxy" || name === "httpsproxy" || name === "ftpproxy" || name === "base") f.url(value, via, src, { defaultScheme: "http" })
  else if (name === "input") f.unknown(`${show(via)} makes wget read its URLs from a file, which cannot be checked before it runs`)
}

// httpie (http, https) and xh ---------------------------------------------------------------------------------

const HTTPIE: Spec = {
  short: "pPosaA",
  long: longSet(`
    print history-print output style auth auth-type session session-read-only pretty format-options
    response-charset response-mime verify cert cert-key cert-key-pass ssl ciphers timeout max-redirects
    max-headers proxy default-scheme boundary raw unix-socket resolve interface http-version bearer
  `),
  permute: true
}

const httpie: Handler = (argv, f, program) => {
  const tokens = tokenize(argv, HTTPIE)
  let scheme = program === "https" || program === "xhs" ? "https" : "http"
  for (const t of tokens) {
    if (!is(t, "--default-scheme", "--proxy", "--resolve")) continue
    const via = `${t.name} ${t.value}`
    if (t.name === "--default-scheme") scheme = t.value.toLowerCase()
    else if (t.name === "--resolve") f.unknown(`${show(via)} makes the client connect somewhere other than the URL's host`)
    else {
      // --proxy PROTOCOL:URL; xh also takes the URL alone.
      const colon = t.value.indexOf(":")
      const url = colon !== -1 && /^(https?|all)$/i.test(t.value.slice(0, colon)) ? t.value.slice(colon + 1) : t.value
      f.url(url, via, t.src, { defaultScheme: "http" })
    }
  }
  const args = operands(tokens)
  // As httpie reads them: with two or more operands, an all-letters first one is the method.
  const url = args.length >= 2 && /^[A-Za-z]+$/.test(args[0]?.value ?? "") ? args[1] : args[0]
  if (url === undefined) return true
  const u = url.value
  // ` ://host` (a URL pasted after a space) is host; `:3000/x` and `:word` are localhost followed by the rest.
  const pasted = u.startsWith("://") ? u.slice(3) : u
  const shorthand = /^:(?!:)(\d*)(.*)$/s.exec(pasted)
  const read = shorthand === null ? pasted : `localhost${shorthand[1] === "" ? "" : `:${shorthand[1] ?? ""}`}${shorthand[2] ?? ""}`
  // `http:/h` is http://http:/h to httpie but http://h to xh when `://` appears anywhere in it: both are checked.
  f.url(read, u, u, { defaultScheme: scheme, lenient: "also" })
  return true
}

// aria2c ----------------------------------------------------------------------------------------------------

const ARIA2: Spec = {
  short: "dosjxkltmiTMUu",
  long: longSet(`
    dir out split max-concurrent-downloads max-connection-per-server min-split-size log timeout max-tries
    input-file torrent-file metalink-file user-agent header referer http-user http-passwd ftp-user ftp-passwd
    load-cookies save-cookies checksum max-download-limit max-overall-download-limit max-upload-limit
    max-overall-upload-limit connect-timeout retry-wait lowest-speed-limit file-allocation log-level
    console-log-level summary-interval conf-path save-session select-file seed-time seed-ratio listen-port
    dht-listen-port bt-tracker bt-exclude-tracker index-out rpc-listen-port rpc-secret stop stop-with-process
    on-download-complete on-download-error on-download-start on-download-pause on-download-stop
    on-bt-download-complete all-proxy http-proxy https-proxy ftp-proxy all-proxy-user all-proxy-passwd
    http-proxy-user http-proxy-passwd https-proxy-user https-proxy-passwd ftp-proxy-user ftp-proxy-passwd
    no-proxy proxy-method certificate private-key ca-certificate async-dns-server interface
    multiple-interface gid piece-length uri-selector stream-piece-selector min-tls-version netrc-path
    dht-file-path dht-file-path6 dht-entry-point dht-entry-point6 bt-external-ip bt-lpd-interface
    bt-max-peers bt-request-peer-speed-limit bt-stop-timeout bt-tracker-connect-timeout bt-tracker-interval
    bt-tracker-timeout max-file-not-found max-resume-failure-tries server-stat-of server-stat-if
    server-stat-timeout auto-save-interval rpc-user rpc-passwd rpc-certificate rpc-private-key
    rpc-max-request-size save-session-interval
  `),
  permute: true
}

const aria2c: Handler = (argv, f) => {
  for (const t of tokenize(argv, ARIA2)) {
    if (t._tag === "Arg") {
      if (SCHEME_URL.test(t.value) && !/^magnet:/i.test(t.value)) f.url(t.value, t.value, t.value)
      else if (isExpanded(t.value)) f.url(t.value, t.value, t.value)
      else f.unknown(`${show(t.value)} is a magnet link, torrent or metalink: aria2c finds its peers and mirrors when it runs`)
      continue
    }
    if (t.value === null) continue
    const via = `${t.name} ${t.value}`
    if (is(t, "--all-proxy", "--http-proxy", "--https-proxy", "--ftp-proxy")) f.url(t.value, via, t.src, { defaultScheme: "http" })
    else if (is(t, "--bt-tracker")) for (const uri of t.value.split(",")) f.url(uri, via, t.src)
    else if (is(t, "--dht-entry-point", "--dht-entry-point6")) f.host(t.value, via, t.src, { port: true })
    else if (is(t, "--async-dns-server")) for (const server of t.value.split(",")) f.host(server, via, t.src)
    else if (is(t, "-i", "--input-file", "-T", "--torrent-file", "-M", "--metalink-file", "--conf-path")) {
      f.unknown(`${show(via)} makes aria2c read what it downloads, or from where, from a file, which cannot be checked before it runs`)
    }
  }
  return true
}

// ssh, scp, sftp --------------------------------------------------------------------------------------------

const SSH: Spec = { short: "BbcDEeFIiJLlmOoPpQRSWw", long: () => false, permute: false }
const SCP: Spec = { short: "cDFiJloPSX", long: () => false, permute: false }
const SFTP: Spec = { short: "BbcDFiJloPRSsX", long: () => false, permute: false }

/** ssh_config keywords that change neither where ssh connects nor what it runs locally. */
const HARMLESS_SSH_OPTIONS = new Set(
  `
  addkeystoagent addressfamily batchmode bindaddress bindinterface casignaturealgorithms certificatefile
  challengeresponseauthentication checkhostip ciphers clearallforwardings compression connectionattempts
  connecttimeout controlpersist enableescapecommandline escapechar exitonforwardfailure fingerprinthash
  forkafterauthentication forwardagent forwardx11 forwardx11timeout forwardx11trusted gatewayports
  globalknownhostsfile gssapiauthentication gssapidelegatecredentials hashknownhosts hostbasedacceptedalgorithms
  hostbasedauthentication hostkeyalgorithms hostkeyalias identitiesonly identityagent identityfile ipqos
  kbdinteractiveauthentication kbdinteractivedevices kexalgorithms loglevel logverbose macs
  nohostauthenticationforlocalhost numberofpasswordprompts obscurekeystroketiming passwordauthentication
  port preferredauthentications pubkeyacceptedalgorithms pubkeyacceptedkeytypes pubkeyauthentication
  rekeylimit remotecommand requesttty requiredrsasize sendenv serveralivecountmax serveraliveinterval
  sessiontype setenv stdinnull streamlocalbindmask streamlocalbindunlink stricthostkeychecking tcpkeepalive
  updatehostkeys user userknownhostsfile verifyhostkeydns visualhostkey xauthlocation
`
    .split(/\s+/)
    .filter((n) => n !== "")
)

/** The ssh options shared by ssh, scp, sftp and `rsync -e ssh` that add or hide targets. */
const sshOption = (t: Extract<Token, { _tag: "Opt" }> & { readonly value: string }, f: Findings): void => {
  const via = `${t.name} ${t.value}`
  switch (t.name) {
    case "-J":
      return jumpHosts(t.value, via, t.src, f)
    case "-F":
      return f.unknown(`${show(via)} makes ssh read host settings from a file; a Host entry there can send it to any machine`)
    case "-S":
      // scp and sftp's -S names the program used instead of ssh; ssh's names a master connection to reuse.
      return f.unknown(`${show(via)} hands the connection to another program or an existing master connection, which may lead anywhere`)
    case "-W":
      return f.host(t.value, via, t.src, { port: true, ssh: false })
    case "-L":
    case "-R":
      return forward(t.value, t.name === "-R", via, t.src, f)
    case "-D":
      return f.unknown(`${show(via)} opens a SOCKS proxy through the server, through which any host can be reached later`)
    case "-o":
      return sshConfigOption(t.value, via, t.src, f)
  }
}

const sshConfigOption = (option: string, via: string, src: string, f: Findings): void => {
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*)$/s.exec(option)
  const key = (m?.[1] ?? option).toLowerCase()
  const value = (m?.[2] ?? "").trim()
  if (HARMLESS_SSH_OPTIONS.has(key)) return
  if (key === "hostname") {
    if (value.includes("%")) f.unknown(`${show(via)} builds the host name from tokens filled in when ssh runs`)
    else f.host(value, via, src, { ssh: false })
  } else if (key === "proxyjump") jumpHosts(value, via, src, f)
  else if (key === "localforward" || key === "remoteforward") forward(value.replace(/\s+/, ":"), key === "remoteforward", via, src, f)
  else if (key === "proxycommand" && value.toLowerCase() === "none") return
  else f.unknown(`${show(via)}: the ssh option ${show(key)} can send the connection elsewhere or run a local command, which cannot be checked`)
}

/** `-J` / ProxyJump: a comma-separated list of `[user@]host[:port]` or `ssh://` URIs, or "none". */
const jumpHosts = (list: string, via: string, src: string, f: Findings): void => {
  if (list.toLowerCase() === "none") return
  for (const hop of list.split(",")) {
    if (SCHEME_URL.test(hop)) f.url(hop, via, src, { ssh: true })
    else f.host(hop, via, src, { port: true, ssh: true })
  }
}

/** `-L [bind:]port:host:hostport` and `-R` alike (the host is connected to from the far end); sockets have `/`. */
const forward = (spec: string, remote: boolean, via: string, src: string, f: Findings): void => {
  if (isExpanded(spec)) {
    f.unknown(`${show(via)} is computed by the shell when the command runs, so where it connects is not known before`)
    f.explained.add(src)
    return
  }
  const parts = splitColons(spec)
  const last = parts[parts.length - 1] ?? ""
  if (last.includes("/")) return
  if (parts.length >= 3) {
    const host = parts[parts.length - 2] ?? ""
    if (host.includes("/")) return
    f.host(host, via, src)
    return
  }
  f.unknown(
    remote
      ? `${show(via)} opens a SOCKS proxy on the server back through this machine, through which any host can be reached`
      : `${show(via)} is not a forwarding ssh reads one way, so where it connects cannot be checked`
  )
}

/** Splits on colons outside `[...]`. */
const splitColons = (s: string): Array<string> => {
  const parts: Array<string> = []
  let depth = 0
  let cur = ""
  for (const ch of s) {
    if (ch === "[") depth++
    if (ch === "]") depth = Math.max(0, depth - 1)
    if (ch === ":" && depth === 0) {
      parts.push(cur)
      cur = ""
    } else cur += ch
  }
  parts.push(cur)
  return parts
}

/** ssh's destination: `[user@]host` or `ssh://[user@]host[:port]`. */
const sshDestination = (dest: string, f: Findings): void => {
  if (SCHEME_URL.test(dest)) f.url(dest, dest, dest, { ssh: true })
  else f.host(dest, dest, dest, { ssh: true })
}

const ssh: Handler = (argv, f) => {
  // ssh reads options up to the destination, then again up to the first word of the remote command.
  const first = tokenize(argv, SSH)
  const dest = first.find((t) => t._tag === "Arg")
  const before = dest === undefined ? first : first.filter((t) => t.index < dest.index)
  const after = dest === undefined ? [] : tokenize(argv, SSH, dest.index + 1)
  const command = after.find((t) => t._tag === "Arg")
  const options = [...before, ...(command === undefined ? after : after.filter((t) => t.index < command.index))]
  for (const t of options) if (t._tag === "Opt" && t.value !== null) sshOption({ ...t, value: t.value }, f)
  if (command !== undefined) f.payloadFrom = command.index
  if (dest === undefined) return true
  const hostname = options.some((t) => t._tag === "Opt" && t.name === "-o" && /^\s*hostname\s*[=\s]/i.test(t.value ?? ""))
  // With -o HostName the destination is only a name for the config: ssh connects to HostName.
  if (!hostname) sshDestination(dest.value, f)
  return true
}

const scp: Handler = (argv, f) => {
  const tokens = tokenize(argv, SCP)
  for (const t of tokens) {
    if (t._tag === "Opt") {
      if (t.value !== null) sshOption({ ...t, value: t.value }, f)
      continue
    }
    if (/^scp:\/\//i.test(t.value)) f.url(t.value, t.value, t.value, { ssh: true })
    else {
      const remote = remoteHostOf(t.value)
      if (remote !== null) f.host(remote, t.value, t.value, { ssh: true })
      else if (isExpanded(t.value)) f.url(t.value, t.value, t.value)
    }
  }
  return true
}

const sftp: Handler = (argv, f) => {
  const tokens = tokenize(argv, SFTP)
  for (const t of tokens) if (t._tag === "Opt" && t.value !== null) sshOption({ ...t, value: t.value }, f)
  const dest = operands(tokens)[0]
  if (dest === undefined) return true
  if (/^sftp:\/\//i.test(dest.value)) f.url(dest.value, dest.value, dest.value, { ssh: true })
  else f.host(remoteHostOf(dest.value) ?? dest.value, dest.value, dest.value, { ssh: true })
  return true
}

// rsync -----------------------------------------------------------------------------------------------------

const RSYNC: Spec = {
  short: "efBTM@",
  long: longSet(`
    rsh rsync-path filter exclude include exclude-from include-from files-from block-size temp-dir
    remote-option modify-window port password-file log-file log-file-format partial-dir address bwlimit chmod
    chown usermap groupmap compare-dest copy-dest link-dest backup-dir suffix timeout contimeout max-size
    min-size max-delete max-alloc outbuf protocol iconv checksum-choice cc compress-choice zc compress-level
    zl skip-compress info debug out-format stderr sockopts read-batch write-batch only-write-batch stop-after
    stop-at time-limit checksum-seed early-input
  `),
  permute: true
}

const rsync: Handler = (argv, f) => {
  const tokens = tokenize(argv, RSYNC)
  for (const t of tokens) {
    if (t._tag === "Arg") {
      if (/^rsync:\/\//i.test(t.value)) f.url(t.value, t.value, t.value, { ssh: true })
      else {
        const remote = remoteHostOf(t.value)
        if (remote !== null) f.host(remote, t.value, t.value, { ssh: true })
      }
    } else if (is(t, "-e", "--rsh")) remoteShell(t.value, `${t.name} ${t.value}`, t.src, f)
  }
  return true
}

/** rsync's `-e COMMAND`: plain ssh (or rsh) with its own options is read; any other program is not. */
const remoteShell = (command: string, via: string, src: string, f: Findings): void => {
  const words = command.trim().split(/\s+/)
  const program = programName(words[0] ?? "")
  if (isExpanded(command)) {
    f.explained.add(src)
    f.unknown(`${show(via)} is computed by the shell when the command runs, so how rsync connects is not known before`)
  } else if (program === "ssh") {
    for (const t of tokenize(words.slice(1), SSH)) if (t._tag === "Opt" && t.value !== null) sshOption({ ...t, value: t.value }, f)
  } else if (program !== "rsh") {
    f.unknown(`${show(via)} makes rsync connect through ${show(program)}, which cannot be checked`)
  }
}

// git -------------------------------------------------------------------------------------------------------

const GIT_GLOBAL_VALUE = new Set(["git-dir", "work-tree", "namespace", "super-prefix", "config-env", "list-cmds"])

const git: Handler = (argv, f) => {
  const configs: Array<{ readonly value: string; readonly src: string; readonly fromEnv: boolean }> = []
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (a === "-C") i++
    else if (a === "-c") {
      configs.push({ value: argv[i + 1] ?? "", src: argv[i + 1] ?? "", fromEnv: false })
      i++
    } else if (a.startsWith("--")) {
      const eq = a.indexOf("=")
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
      const value = eq === -1 ? (GIT_GLOBAL_VALUE.has(name) ? argv[++i] ?? "" : "") : a.slice(eq + 1)
      if (name === "config-env") configs.push({ value, src: argv[i] ?? "", fromEnv: true })
    } else if (!a.startsWith("-")) break
  }
  const sub = argv[i]
  const rest = argv.slice(i + 1)
  if (sub === undefined) return false
  const network = GIT_SUBCOMMANDS.get(sub)?.(rest, f)
  if (network !== true) return false
  for (const c of configs) gitConfig(c.value, c.fromEnv, c.src, f)
  return true
}

/** `git -c key=value` (or `--config-env=key=VAR`): the keys that change where git connects. */
const gitConfig = (kv: string, fromEnv: boolean, src: string, f: Findings): void => {
  const eq = kv.indexOf("=")
  const key = (eq === -1 ? kv : kv.slice(0, eq)).toLowerCase()
  const value = eq === -1 ? "" : kv.slice(eq + 1)
  const via = `-c ${kv}`
  if (/(^|\.)proxy$/.test(key)) {
    if (fromEnv) f.unknown(`${show(via)} takes git's proxy from an environment variable when it runs`)
    else if (value !== "") f.url(value, via, src, { defaultScheme: "http" })
  } else if (/^(url\.|remote\.|include\.|includeif\.|http\..*curloptresolve$|core\.sshcommand$|core\.gitproxy$)/.test(key)) {
    f.unknown(`${show(via)} changes where git connects (a rewritten URL, remote, included config, resolve or ssh command)`)
  }
}

type GitSub = (args: ReadonlyArray<string>, f: Findings) => boolean

const gitSpec = (short: string, long: string): Spec => ({ short, long: longSet(long), permute: true })

const CLONE = gitSpec(
  "objuc",
  "origin branch upload-pack template config depth shallow-since shallow-exclude reference reference-if-able separate-git-dir jobs filter server-option bundle-uri ref-format revision"
)
const FETCH = gitSpec(
  "jo",
  "depth deepen shallow-since shallow-exclude jobs upload-pack refmap recurse-submodules-default negotiation-tip server-option filter submodule-prefix"
)
const PULL = gitSpec(
  "sXjo",
  "strategy strategy-option depth deepen shallow-since shallow-exclude jobs upload-pack refmap negotiation-tip server-option filter cleanup"
)
const PUSH = gitSpec("o", "repo receive-pack exec push-option recurse-submodules")
const LS_REMOTE = gitSpec("o", "upload-pack sort server-option")
const REMOTE_ADD = gitSpec("tm", "")
const SUBMODULE_ADD = gitSpec("b", "name reference depth ref-format")

/**
 * A repository as git reads it: a URL, an scp-style `[user@]host:path`, a remote helper's `helper::address`,
 * a local path, or (where `remoteName`) the name of a configured remote, whose URL only the config knows.
 */
const gitRepository = (repo: string, how: string, src: string, remoteName: boolean, f: Findings): void => {
  if (isExpanded(repo)) {
    f.explained.add(src)
    f.unknown(`${show(repo)} is computed by the shell when the command runs, so the repository git reaches is not known before`)
    return
  }
  const helper = /^([A-Za-z][A-Za-z0-9+.-]*)::/.exec(repo)
  if (helper !== null) {
    f.unknown(`${show(repo)} runs git's remote helper git-remote-${helper[1] ?? ""}, which decides itself where to connect`)
    return
  }
  const url = SCHEME_URL.exec(repo)
  if (url !== null) {
    const scheme = (url[1] ?? "").toLowerCase()
    if (scheme === "file") return
    if (["http", "https", "git", "ftp", "ftps", "ssh", "git+ssh", "ssh+git"].includes(scheme)) f.url(repo, repo, src)
    else f.unknown(`${show(repo)} runs git's remote helper git-remote-${scheme}, which decides itself where to connect`)
    return
  }
  const remote = remoteHostOf(repo)
  if (remote !== null) f.host(remote, repo, src, { ssh: true })
  else if (remoteName && !/^[./~]/.test(repo)) f.unknown(`${how} ${repo}: the remote ${show(repo)} is read from the repository's config at run time`)
}

const GIT_SUBCOMMANDS: ReadonlyMap<string, GitSub> = entries<GitSub>({
  clone: (args, f) => {
    const tokens = tokenize(args, CLONE)
    for (const t of tokens) {
      if (is(t, "-c", "--config")) gitConfig(t.value, false, t.src, f)
      else if (is(t, "--bundle-uri")) f.url(t.value, `${t.name} ${t.value}`, t.src)
    }
    if (has(tokens, "--recurse-submodules", "--recursive")) {
      f.unknown("git clone --recurse-submodules also clones the submodules whose URLs the repository's .gitmodules names")
    }
    const repo = operands(tokens)[0]
    if (repo !== undefined) gitRepository(repo.value, "git clone", repo.value, false, f)
    return true
  },
  fetch: (args, f) => fetchLike("fetch", tokenize(args, FETCH), f),
  pull: (args, f) => fetchLike("pull", tokenize(args, PULL), f),
  push: (args, f) => {
    const tokens = tokenize(args, PUSH)
    const repo = operands(tokens)[0]
    const flag = tokens.find((t) => is(t, "--repo"))
    if (repo !== undefined) gitRepository(repo.value, "git push", repo.value, true, f)
    else if (flag !== undefined && flag._tag === "Opt" && flag.value !== null) gitRepository(flag.value, "git push --repo", flag.src, true, f)
    else f.unknown("git push: the remote (and its URL) is read from the repository's config at run time")
    return true
  },
  "ls-remote": (args, f) => {
    const tokens = tokenize(args, LS_REMOTE)
    if (has(tokens, "--get-url")) return false
    const repo = operands(tokens)[0]
    if (repo !== undefined) gitRepository(repo.value, "git ls-remote", repo.value, true, f)
    else f.unknown("git ls-remote: the remote (and its URL) is read from the repository's config at run time")
    return true
  },
  remote: (args, f) => {
    let i = 0
    while (args[i] === "-v" || args[i] === "--verbose") i++
    const action = args[i]
    const rest = args.slice(i + 1)
    if (action === "add") {
      const url = operands(tokenize(rest, REMOTE_ADD))[1]
      if (url !== undefined) gitRepository(url.value, "git remote add", url.value, false, f)
      return true
    }
    if (action === "set-url") {
      const tokens = tokenize(rest, gitSpec("", ""))
      if (has(tokens, "--delete")) return false
      const url = operands(tokens)[1]
      if (url !== undefined) gitRepository(url.value, "git remote set-url", url.value, false, f)
      return true
    }
    if (action === "update" || action === "prune" || (action === "show" && !rest.includes("-n"))) {
      f.unknown(`git remote ${action}: the remotes it contacts, and their URLs, are read from the repository's config at run time`)
      return true
    }
    return false
  },
  submodule: (args, f) => {
    let i = 0
    while ((args[i] ?? "").startsWith("-")) i++
    const action = args[i]
    if (action === "add") {
      const repo = operands(tokenize(args.slice(i + 1), SUBMODULE_ADD))[0]
      if (repo === undefined) return true
      if (/^\.\.?\//.test(repo.value)) f.unknown(`git submodule add ${repo.value}: a relative URL is resolved against the superproject's remote, read from its config at run time`)
      else gitRepository(repo.value, "git submodule add", repo.value, false, f)
      return true
    }
    if (action === "update") {
      f.unknown("git submodule update fetches from the URLs in .gitmodules and the repository's config, read at run time")
      return true
    }
    return false
  },
  archive: (args, f) => {
    const tokens = tokenize(args, gitSpec("o", "remote format prefix output exec add-file add-virtual-file"))
    const remote = tokens.find((t) => is(t, "--remote"))
    if (remote === undefined || remote._tag !== "Opt" || remote.value === null) return false
    gitRepository(remote.value, "git archive --remote", remote.src, true, f)
    return true
  }
})

const fetchLike = (sub: string, tokens: ReadonlyArray<Token>, f: Findings): boolean => {
  const args = operands(tokens)
  if (has(tokens, "--all")) f.unknown(`git ${sub} --all: the remotes, and their URLs, are read from the repository's config at run time`)
  const repos = has(tokens, "--multiple") ? args : args.slice(0, 1)
  for (const r of repos) gitRepository(r.value, `git ${sub}`, r.value, true, f)
  if (args.length === 0 && !has(tokens, "--all")) f.unknown(`git ${sub}: the remote (and its URL) is read from the repository's config at run time`)
  return true
}

// nc, ncat, netcat, telnet, ftp -------------------------------------------------------------------------------

const NCAT_VALUE = longSet(`
  proxy proxy-type proxy-auth proxy-dns exec sh-exec lua-exec source source-port wait idle-timeout output
  hex-dump allow allowfile deny denyfile max-conns ssl-cert ssl-key ssl-trustfile ssl-ciphers ssl-servername
  ssl-alpn ssl-crl delay
`)
const NCAT: Spec = { short: "cdegGimopswx", long: NCAT_VALUE, permute: true }
// OpenBSD nc, traditional netcat and busybox. `-c` is a flag (TLS, CRLF) in some and a command in others
// (where `nc` is ncat): both readings are checked.
const NC_C_FLAG: Spec = { short: "IiMmOPpqsTVWwxXegGHKoRZ", long: NCAT_VALUE, permute: true }
const NC_C_VALUE: Spec = { ...NC_C_FLAG, short: `${NC_C_FLAG.short}c` }

const netcat = (spec: Spec, proxyX: boolean): Handler => (argv, f) => {
  const tokens = tokenize(argv, spec)
  for (const t of tokens) {
    if (t._tag !== "Opt" || t.value === null) continue
    const via = `${t.name} ${t.value}`
    if ((t.name === "-x" && proxyX) || t.name === "--proxy") f.host(t.value, via, t.src, { port: true })
    else if (t.name === "-g") f.host(t.value, via, t.src)
  }
  if (has(tokens, "-l", "--listen", "-U", "--unixsock")) return true
  const host = operands(tokens)[0]
  if (host !== undefined) f.host(host.value, host.value, host.value)
  return true
}

const nc: Handler = (argv, f, program) => {
  netcat(NC_C_FLAG, true)(argv, f, program)
  if (argv.some((a) => /^-[A-Za-z0-9]*c/.test(a))) netcat(NC_C_VALUE, true)(argv, f, program)
  return true
}

const TELNET: Spec = { short: "XbeklnS", long: longSet("bind escape realm user trace disable-auth"), permute: true }

const telnet: Handler = (argv, f) => {
  const host = operands(tokenize(argv, TELNET))[0]
  if (host !== undefined) f.host(host.value, host.value, host.value)
  return true
}

const FTP: Spec = { short: "NoPqrsTxu", long: () => false, permute: false }

const ftp: Handler = (argv, f) => {
  const tokens = tokenize(argv, FTP)
  for (const t of tokens) if (is(t, "-u")) f.url(t.value, `${t.name} ${t.value}`, t.src)
  operands(tokens).forEach((t, n) => {
    if (SCHEME_URL.test(t.value)) f.url(t.value, t.value, t.value)
    else if (n > 0 && /^\d+$/.test(t.value)) return
    else f.host(remoteHostOf(t.value) ?? t.value, t.value, t.value)
  })
  return true
}

// socat -----------------------------------------------------------------------------------------------------

const SOCAT_VALUE = new Set(["-b", "-t", "-T", "-L", "-W", "-lf", "-lp", "-r", "-R", "-S"])
/** Address types whose parameters before the last (the port or protocol) are hosts. */
const SOCAT_CONNECT =
  /^(tcp[46]?(-connect)?|udp(lite)?[46]?(-connect|-sendto|-datagram)?|sctp[46]?(-connect)?|dccp[46]?(-connect)?|openssl(-connect|-dtls-client|-dtls-connect)?|ssl|dtls|ip[46]?-(sendto|datagram)|socks[45]?a?(-connect)?|socks5-connect|proxy(-connect)?)$/
/** Address types that listen, receive, or stay on this machine. */
const SOCAT_LOCAL =
  /^(-|stdio|stdin|stdout|stderr|fd|file|open|gopen|create|pipe|pty|readline|tun|interface|unix(-\w+)?|abstract(-\w+)?|vsock(-\w+)?|posixmq(-\w+)?|named|(tcp|udp|udplite|sctp|dccp)[46]?-(listen|recv|recvfrom)|openssl-(listen|dtls-server)|ssl-l|dtls-l(isten)?|ip[46]?-(recv|recvfrom))$/

const socat: Handler = (argv, f) => {
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (a === "-" || !a.startsWith("-")) break
    if (SOCAT_VALUE.has(a)) i++
  }
  for (const address of argv.slice(i)) for (const part of address.split("!!")) socatAddress(part, address, f)
  return true
}

const socatAddress = (address: string, src: string, f: Findings): void => {
  if (isExpanded(address)) {
    f.explained.add(src)
    f.unknown(`${show(address)} is computed by the shell when the command runs, so where socat connects is not known before`)
    return
  }
  const head = splitColons(address.split(",")[0] ?? "")
  const keyword = (head[0] ?? "").toLowerCase()
  const params = head.slice(1)
  if (head.length === 1 && (/^\d+$/.test(keyword) || keyword.includes("/") || keyword === "-")) return
  if (SOCAT_LOCAL.test(keyword)) return
  if (/^(exec|system|shell)$/.test(keyword)) {
    f.unknown(`${show(address)} makes socat run a program, whose connections cannot be checked`)
    return
  }
  if (SOCAT_CONNECT.test(keyword) && params.length >= 2) {
    for (const host of params.slice(0, -1)) f.host(host, address, src)
    return
  }
  f.unknown(`${show(address)} is not a socat address whose target can be read before it runs`)
}

// ping, traceroute, dig, nslookup, host -----------------------------------------------------------------------

const PING: Spec = { short: "ceFiIlmMNpQsStTwWgGhkPz", long: () => false, permute: true }
const TRACEROUTE: Spec = { short: "fgimNptlwqszMOP", long: () => false, permute: true }

const firstHost = (spec: Spec): Handler => (argv, f) => {
  const tokens = tokenize(argv, spec)
  for (const t of tokens) if (is(t, "-g") && spec === TRACEROUTE) f.host(t.value, `${t.name} ${t.value}`, t.src)
  const host = operands(tokens)[0]
  if (host !== undefined) f.host(host.value, host.value, host.value)
  return true
}

const DNS_TYPES = new Set(
  `a aaaa any axfr ixfr caa cname dnskey ds hinfo https mx naptr ns nsec nsec3 nsec3param ptr rrsig soa spf srv
  sshfp svcb tlsa txt uri loc cert dname key rp afsdb apl cds cdnskey csync dhcid hip ipseckey kx openpgpkey
  in ch chaos hs hesiod none`
    .split(/\s+/)
    .filter((n) => n !== "")
)
const DIG: Spec = { short: "bcfkpqtxy", long: () => false, permute: true }

const dig: Handler = (argv, f) => {
  for (const t of tokenize(argv, DIG)) {
    if (t._tag === "Opt") {
      if (t.value === null) continue
      if (t.name === "-f") f.unknown(`${show(`-f ${t.value}`)} makes dig read the names it looks up from a file`)
      else if (t.name === "-q" || t.name === "-x") f.host(t.value, `${t.name} ${t.value}`, t.src)
      continue
    }
    const a = t.value
    if (a.startsWith("+")) continue
    if (a.startsWith("@")) f.host(a.slice(1), a, a)
    else if (!DNS_TYPES.has(a.toLowerCase()) && !/^type\d+$/i.test(a) && !/^class\d+$/i.test(a)) f.host(a, a, a)
  }
  return true
}

const nslookup: Handler = (argv, f) => {
  const args = argv.filter((a) => a === "-" || !a.startsWith("-"))
  const [name, server] = args
  if (name === undefined || name === "-") f.unknown("nslookup without a name runs interactively and reads the names to look up from its input")
  else f.host(name, name, name)
  if (server !== undefined) f.host(server, server, server)
  return true
}

const HOST: Spec = { short: "cNpRtWm", long: () => false, permute: true }

const host: Handler = (argv, f) => {
  for (const t of operands(tokenize(argv, HOST)).slice(0, 2)) f.host(t.value, t.value, t.value)
  return true
}

// Package managers: only registries and URLs named on the command line --------------------------------------

const URL_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>]+/g

/**
 * npm, pnpm, yarn, npx, pip, uv: the registries, indexes, proxies and URL specifiers named on the command
 * line. A package manager that names none reaches its configured default, which is not read here: null.
 */
const packageManager =
  (long: ReadonlySet<string>, short: string): Handler =>
  (argv, f) => {
    // After `config set` the words are a key and a value, read by configSet.
    const set = argv.indexOf("set")
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i] ?? ""
      let name: string | null = null
      let attached: string | null = null
      if (a.startsWith("--")) {
        const eq = a.indexOf("=")
        const n = eq === -1 ? a : a.slice(0, eq)
        if (long.has(n) || /^--@[^:=]+:registry$/.test(n)) {
          name = n
          attached = eq === -1 ? null : a.slice(eq + 1)
        }
      } else if (/^-[A-Za-z]/.test(a) && short.includes(a[1] ?? "")) {
        name = a.slice(0, 2)
        attached = a.length > 2 ? a.slice(2) : null
      }
      if (name !== null) {
        const value = attached ?? argv[++i]
        if (value !== undefined) packageSource(value, `${name} ${value}`, attached === null ? value : a, f)
        continue
      }
      if (a.startsWith("-") || (set !== -1 && i > set)) continue
      for (const url of a.match(URL_IN_TEXT) ?? []) f.url(url.replace(/^git\+/i, ""), a, a)
    }
    configSet(argv, f)
    return f.targets.length > 0
  }

/** A registry, index or proxy; a local directory (`--find-links ./wheels`) is no target. */
const packageSource = (value: string, via: string, src: string, f: Findings): void => {
  if (/^[./~]/.test(value) || /^file:/i.test(value)) return
  f.url(value, via, src, { defaultScheme: "http" })
}

/** `npm config set registry URL`, `pip config set global.index-url URL` and the like. */
const configSet = (argv: ReadonlyArray<string>, f: Findings): void => {
  const at = argv.indexOf("set")
  if (at === -1) return
  const rest = argv.slice(at + 1).filter((a) => !a.startsWith("-"))
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? ""
    const eq = a.indexOf("=")
    const key = (eq === -1 ? a : a.slice(0, eq)).toLowerCase()
    if (!/(^|[.:])(registry|proxy|https-proxy|index-url|extra-index-url|find-links|index)$/.test(key)) continue
    const value = eq === -1 ? rest[++i] : a.slice(eq + 1)
    if (value !== undefined) packageSource(value, `set ${key} ${value}`, eq === -1 ? value : a, f)
  }
}

const npm = packageManager(new Set(["--registry", "--proxy", "--https-proxy"]), "")
const pip = packageManager(new Set(["--index-url", "--extra-index-url", "--find-links", "--proxy", "--index"]), "if")
const uv = packageManager(new Set(["--index-url", "--extra-index-url", "--find-links", "--index", "--default-index"]), "if")

const python: Handler = (argv, f, program) => {
  let i = 0
  while (i < argv.length && /^-[bBdEhiIOPqsSuvx]+$/.test(argv[i] ?? "")) i++
  const m = argv[i]
  if (m === "-m" && /^pip[0-9.]*$/.test(argv[i + 1] ?? "")) return pip(argv.slice(i + 2), f, program)
  if (m !== undefined && /^-mpip[0-9.]*$/.test(m)) return pip(argv.slice(i + 1), f, program)
  return false
}

// docker, podman --------------------------------------------------------------------------------------------

const DOCKER_GLOBAL_VALUE = new Set([
  "-l",
  "--log-level",
  "--tlscacert",
  "--tlscert",
  "--tlskey",
  "--root",
  "--runroot",
  "--storage-driver",
  "--storage-opt",
  "--cgroup-manager",
  "--events-backend",
  "--hooks-dir",
  "--identity",
  "--module",
  "--network-cmd-path",
  "--network-config-dir",
  "--runtime",
  "--runtime-flag",
  "--ssh",
  "--tmpdir",
  "--volumepath",
  "--imagestore",
  "--db-backend",
  "--out",
  "--cni-config-dir",
  "--conmon"
])
const IMAGE: Spec = {
  short: "f",
  long: longSet(`
    platform authfile cert-dir creds decryption-key arch os variant retry retry-delay compression-format
    compression-level digestfile format encryption-key sign-by sign-passphrase-file sign-by-sigstore
    sign-by-sigstore-private-key
  `),
  permute: true
}
const LOGIN: Spec = { short: "up", long: longSet("username password authfile cert-dir secret"), permute: true }

const docker: Handler = (argv, f) => {
  let remote = false
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (!a.startsWith("-")) break
    const eq = a.indexOf("=")
    const name = a.startsWith("--") && eq !== -1 ? a.slice(0, eq) : a
    const value = a.startsWith("--") && eq !== -1 ? a.slice(eq + 1) : undefined
    const takes = (v: string | undefined): [string, string] => {
      if (v !== undefined) return [v, a]
      i++
      return [argv[i] ?? "", argv[i] ?? ""]
    }
    if (name === "-H" || name === "--host" || name === "--url") {
      const [v, src] = takes(value)
      remote = true
      dockerHost(v, `${name} ${v}`, src, f)
    } else if (name === "-c" || name === "--context" || name === "--connection" || name === "--config") {
      const [v] = takes(value)
      remote = true
      f.unknown(`${show(`${name} ${v}`)} takes the engine's address from its configuration, which cannot be checked before it runs`)
    } else if (name === "-r" || name === "--remote") {
      remote = true
      f.unknown(`${show(name)} connects to the engine named in the configuration, which cannot be checked before it runs`)
    } else if (DOCKER_GLOBAL_VALUE.has(name) && value === undefined) i++
  }
  let sub = argv[i]
  let from = i + 1
  const group = DOCKER_GROUPS.get(sub ?? "")
  if (group !== undefined && group.has(argv[from] ?? "")) sub = argv[from++]
  const rest = argv.slice(from)
  let named = false
  if (sub === "pull" || sub === "push") {
    for (const t of operands(tokenize(rest, IMAGE))) named = imageRegistry(t.value, f) || named
  } else if (sub === "run" || sub === "create") {
    named = runImage(rest, from, f)
  } else if (sub === "build") {
    named = true
    dockerBuild(rest, f)
  } else if (sub === "login" || sub === "logout") {
    const server = operands(tokenize(rest, LOGIN))[0]
    if (server !== undefined) {
      named = true
      f.url(server.value, server.value, server.value, { defaultScheme: "https" })
    }
  }
  return remote || named
}

/** `docker image pull`, `docker container run`, `docker buildx build`: the subcommands read here, by group. */
const DOCKER_GROUPS: ReadonlyMap<string, ReadonlySet<string>> = entries({
  image: new Set(["pull", "push", "build"]),
  container: new Set(["run", "create"]),
  buildx: new Set(["build"]),
  builder: new Set(["build"])
})

/** `docker|podman run|create` options that take a value (both engines'); short ones in RUN.short. */
const RUN: Spec = {
  short: "acehlmpuvw",
  long: longSet(`
    add-host annotation arch attach authfile blkio-weight blkio-weight-device cap-add cap-drop cgroup-conf
    cgroup-parent cgroupns cgroups chrootdirs cidfile conmon-pidfile cpu-count cpu-percent cpu-period
    cpu-quota cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems creds decryption-key
    detach-keys device device-cgroup-rule device-read-bps device-read-iops device-write-bps
    device-write-iops dns dns-opt dns-option dns-search domainname entrypoint env env-file env-merge expose
    gidmap gpus group-add group-entry health-cmd health-interval health-log-destination health-max-log-count
    health-max-log-size health-on-failure health-retries health-start-interval health-start-period
    health-startup-cmd health-startup-interval health-startup-retries health-startup-success
    health-startup-timeout health-timeout hostname hosts-file hostuser image-volume init-path io-maxbandwidth
    io-maxiops ip ip6 ipc isolation kernel-memory label label-file link link-local-ip log-driver log-opt
    mac-address memory memory-reservation memory-swap memory-swappiness mount name net network network-alias
    net-alias oom-score-adj os passwd-entry personality pid pidfile pids-limit platform pod pod-id-file
    preserve-fds preserve-fd publish pull rdt-class requires restart retry retry-delay runtime sdnotify
    seccomp-policy secret security-opt shm-size shm-size-systemd stop-signal stop-timeout storage-opt
    subgidname subuidname sysctl systemd timeout tmpfs uidmap ulimit umask unsetenv user userns uts variant
    volume volume-driver volumes-from workdir
  `),
  permute: false
}
/** The flags of run and create: any other option might take a value, which would move the image. */
const RUN_FLAGS = new Set(
  `-d -i -t -P -q --detach --interactive --tty --rm --privileged --publish-all --init --read-only
  --read-only-tmpfs --no-healthcheck --oom-kill-disable --quiet --help --disable-content-trust --sig-proxy
  --use-api-socket --env-host --http-proxy --no-hosts --replace --rmi --tls-verify --passwd --rootfs`
    .split(/\s+/)
    .filter((n) => n !== "")
)

/**
 * run and create pull their image when it is not there: the image's registry is reached. The image is the
 * first operand; after an option not known to take a value or not, any operand may be it.
 */
const runImage = (argv: ReadonlyArray<string>, from: number, f: Findings): boolean => {
  const tokens = tokenize(argv, RUN)
  // With --rootfs the operand is a directory, not an image.
  if (has(tokens, "--rootfs")) return false
  const unsure = tokens.some((t) => t._tag === "Opt" && t.value === null && !RUN_FLAGS.has(t.name))
  const args = operands(tokens)
  let named = false
  for (const t of unsure ? args : args.slice(0, 1)) named = imageRegistry(t.value, f) || named
  // The words after the image are the container's command, which the engine does not read as options.
  const image = args[0]
  if (image !== undefined && !unsure) f.payloadFrom = from + image.index + 1
  return named
}

const BUILD: Spec = {
  short: "fotm",
  long: longSet(`
    add-host allow annotation attest build-arg build-context builder cache-from cache-to call cgroup-parent
    cpu-period cpu-quota cpu-shares cpuset-cpus cpuset-mems file iidfile isolation label memory memory-swap
    metadata-file network output platform progress provenance sbom secret shm-size ssh tag target ulimit
    authfile cert-dir creds decryption-key env from layer-label manifest os arch variant runtime
    security-opt volume jobs retry retry-delay timestamp userns
  `),
  permute: true
}

/**
 * build pulls the base images its Dockerfile names (FROM), read when it runs: always unknown. A context or
 * `--build-context` given as a URL (`https://...`, `git@host:repo`, `github.com/o/r`) is fetched from its host.
 */
const dockerBuild = (argv: ReadonlyArray<string>, f: Findings): void => {
  f.unknown("docker build pulls the base images its Dockerfile names (FROM), which is read when it runs")
  const tokens = tokenize(argv, BUILD)
  const sources: Array<{ readonly value: string; readonly via: string; readonly src: string }> = []
  for (const t of tokens) {
    if (t._tag === "Arg") sources.push({ value: t.value, via: t.value, src: t.value })
    else if (is(t, "--build-context")) {
      const value = t.value.slice(t.value.indexOf("=") + 1)
      if (/^docker-image:\/\//i.test(value)) imageRegistry(value.slice("docker-image://".length), f)
      else sources.push({ value, via: `${t.name} ${t.value}`, src: t.src })
    }
  }
  for (const { value, via, src } of sources) {
    if (SCHEME_URL.test(value)) f.url(value, via, src)
    else if (/^[^/:]+@[^/:]+:/.test(value)) f.host(remoteHostOf(value) ?? value, via, src, { ssh: true })
    // The engine reads `github.com/owner/repo` as a git URL, not a directory.
    else if (/^github\.com\//i.test(value)) f.host("github.com", via, src)
  }
}

/** `-H tcp://host:2375`, `ssh://user@host`; `unix://` and `npipe://` stay on this machine. */
const dockerHost = (value: string, via: string, src: string, f: Findings): void => {
  if (/^(unix|npipe|fd):\/\//i.test(value)) return
  f.url(value, via, src, { defaultScheme: "tcp" })
}

/**
 * An image reference names its registry when the first component has a dot or a port, or is localhost. A
 * reference the shell computes is unknown unless its registry is written out (`reg.example/$IMG`).
 */
const imageRegistry = (ref: string, f: Findings): boolean => {
  if (/^(oci|oci-archive|docker-archive|docker-daemon|dir|containers-storage|sif):/i.test(ref)) return false
  const bare = ref.replace(/^docker:\/\//i, "")
  const slash = bare.indexOf("/")
  const first = slash === -1 ? bare : bare.slice(0, slash)
  if (isExpanded(first)) {
    f.url(ref, ref, ref)
    return true
  }
  if (slash === -1) return false
  if (!first.includes(".") && !first.includes(":") && first !== "localhost") return false
  f.host(first, ref, ref, { port: true })
  return true
}

// openssl ---------------------------------------------------------------------------------------------------

const OPENSSL_VALUE = new Set(
  `
  connect bind proxy proxy_user proxy_pass unix servername verify verify_depth verify_email verify_hostname
  verify_ip verify_name verifycafile verifycapath verifycastore cert certform cert_chain crl crlform key keyform
  pass capath cafile castore requestcafile chaincafile chaincapath chaincastore dane_tlsa_domain
  dane_tlsa_rrdata attime policy purpose auth_level msgfile psk_identity psk psk_session name serverinfo alpn
  nextprotoneg sess_out sess_in starttls xmpphost rand writerand maxfraglen max_send_frag split_send_frag
  max_pipelines read_buf sigalgs client_sigalgs groups curves named_curve cipher ciphersuites min_protocol
  max_protocol record_padding mtu keylogfile early_data use_srtp keymatexport keymatexportlen ctlogfile engine
  ssl_client_engine provider provider-path propquery xkey xcert xchain xcertform xkeyform ssl_config host port
  url time www nameopt
`
    .split(/\s+/)
    .filter((n) => n !== "")
)

const openssl: Handler = (argv, f) => {
  const sub = argv[0]
  if (sub !== "s_client" && sub !== "s_time" && sub !== "ocsp") return false
  const named: Array<{ readonly name: string; readonly value: string; readonly src: string }> = []
  const positional: Array<string> = []
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (!a.startsWith("-") || a === "-") {
      positional.push(a)
      continue
    }
    const body = a.replace(/^--?/, "")
    const eq = body.indexOf("=")
    const name = (eq === -1 ? body : body.slice(0, eq)).toLowerCase()
    if (eq !== -1) named.push({ name, value: body.slice(eq + 1), src: a })
    else if (OPENSSL_VALUE.has(name)) {
      named.push({ name, value: argv[i + 1] ?? "", src: argv[i + 1] ?? "" })
      i++
    }
  }
  const get = (name: string) => named.find((n) => n.name === name)
  for (const p of named.filter((n) => n.name === "proxy")) f.host(p.value, `-proxy ${p.value}`, p.src, { port: true })
  if (sub === "ocsp") {
    const url = get("url")
    const host = get("host")
    if (url !== undefined) f.url(url.value, `-url ${url.value}`, url.src)
    if (host !== undefined) f.host(host.value, `-host ${host.value}`, host.src, { port: true })
    return url !== undefined || host !== undefined
  }
  const connect = get("connect")
  const hostOpt = get("host")
  if (connect !== undefined) f.host(connect.value, `-connect ${connect.value}`, connect.src, { port: true })
  else if (positional[0] !== undefined) f.host(positional[0], positional[0], positional[0], { port: true })
  else if (hostOpt !== undefined) f.host(hostOpt.value, `-host ${hostOpt.value}`, hostOpt.src, { port: true })
  else if (get("unix") === undefined) f.host("localhost", `${sub} (default localhost:4433)`, "")
  return true
}

// Variables set for the commands that run later -------------------------------------------------------------------

/** Variables whose value is where later programs connect: proxies, container engines, package registries. */
const ADDRESS_VARIABLES =
  /^(https?_proxy|ftp_proxy|all_proxy|socks_proxy|rsync_proxy|docker_host|container_host|npm_config_(registry|proxy|https_proxy)|yarn_registry|pip_(index_url|extra_index_url|proxy)|uv_(index_url|extra_index_url|default_index))$/i
/** Variables that make later programs connect through a command or read where to connect from a file. */
const ROUTING_VARIABLES =
  /^(git_ssh|git_ssh_command|git_proxy_command|git_config_parameters|git_config_count|git_config_global|git_config_system|rsync_rsh|curl_home|wgetrc|docker_context|docker_config|hostaliases)$/i

const exportedReason = (arg: string): string =>
  `${show(arg)} sets a proxy variable exported for later commands, whose connections then go through it`

/**
 * `NAME=VALUE` (or `NAME`, `NAME+=VALUE`) given to export, declare, typeset, readonly or local. Every one is
 * read, with or without -x: assigning a variable the environment already exports changes what later
 * programs see. `no_proxy` only turns proxying off, so it is no target.
 */
const setVariable = (arg: string, nameref: boolean, f: Findings): void => {
  const eq = arg.indexOf("=")
  const left = eq === -1 ? arg : arg.slice(0, eq)
  const append = left.endsWith("+")
  const name = append ? left.slice(0, -1) : left
  const value = eq === -1 ? null : arg.slice(eq + 1)
  if (isExpanded(name)) {
    f.explained.add(arg)
    f.unknown(`${show(arg)} is computed by the shell when the command runs, so it may set a proxy variable for later commands`)
    return
  }
  if (nameref && value !== null && (ADDRESS_VARIABLES.test(value) || ROUTING_VARIABLES.test(value))) {
    f.unknown(`${show(arg)} makes ${show(name)} another name for ${show(value)}, so assigning it later sets where connections go`)
    return
  }
  const address = ADDRESS_VARIABLES.test(name)
  if (!address && !ROUTING_VARIABLES.test(name)) return
  f.targetArgs.add(arg)
  if (value === null) {
    f.unknown(`${show(arg)} exports a value set earlier, which may send later commands' connections elsewhere`)
    return
  }
  if (value === "" && !append) return
  if (!address) {
    f.unknown(`${show(arg)} sets a variable that makes later commands connect through another program or settings file`)
    return
  }
  if (append) {
    f.unknown(`${show(arg)} adds to a proxy variable whose value is only known when the command runs`)
    return
  }
  const docker = /^(docker|container)_host$/i.test(name)
  for (const part of value.split(/\s+/).filter((p) => p !== "")) {
    if (docker) dockerHost(part, arg, arg, f)
    else f.url(part, arg, arg, { defaultScheme: "http" })
  }
  f.unknown(exportedReason(arg))
}

/** export, declare, typeset, readonly, local: their options, then variables. */
const declaration: Handler = (argv, f, program) => {
  let nameref = false
  let options = true
  for (const a of argv) {
    if (options && a === "--") {
      options = false
      continue
    }
    if (options && /^[-+][A-Za-z]+$/.test(a)) {
      // `declare -n ref=https_proxy` makes ref a name for the proxy; `export -n` only stops exporting.
      if (a.startsWith("-") && a.includes("n") && program !== "export") nameref = true
      continue
    }
    options = false
    setVariable(a, nameref, f)
  }
  return f.targets.length > 0
}

/**
 * bash's `set -a` (`set -o allexport`) exports every variable assigned after it, a proxy among them; fish's
 * `set -x NAME VALUE...` (also -gx, -Ux, --export) exports one.
 */
const set: Handler = (argv, f) => {
  let fishExport = false
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i] ?? ""
    if (a === "--" || a === "-") {
      i++
      break
    }
    if (a === "--export") fishExport = true
    else if (/^-[A-Za-z]+$/.test(a)) {
      if (a.includes("a")) f.unknown(`${show(`set ${a}`)} exports every variable assigned after it, so a proxy assigned later applies to later commands`)
      if (a.includes("x")) fishExport = true
      if (a.endsWith("o")) {
        const option = argv[++i] ?? ""
        if (option === "allexport") f.unknown("set -o allexport exports every variable assigned after it, so a proxy assigned later applies to later commands")
      }
    } else if (!/^[-+]/.test(a)) break
  }
  const name = argv[i]
  if (fishExport && name !== undefined && ADDRESS_VARIABLES.test(name)) {
    const values = argv.slice(i + 1)
    setVariable(`${name}=${values.join(" ")}`, false, f)
    for (const v of values) f.targetArgs.add(v)
  }
  return f.targets.length > 0
}

// Wrappers the shell parser does not know -----------------------------------------------------------------------

/** sshpass, torsocks, proxychains: the wrapped command's targets, and for proxychains its configured proxies. */
const wrapper =
  (valueOptions: string, proxiesFromConfig: boolean): Handler =>
  (argv, f) => {
    let i = 0
    for (; i < argv.length; i++) {
      const a = argv[i] ?? ""
      if (!a.startsWith("-")) break
      if (a.length === 2 && valueOptions.includes(a[1] ?? "")) i++
    }
    const inner = argv[i]
    if (inner === undefined) return false
    const found = analyse(programName(inner), argv.slice(i + 1))
    if (found === null) return false
    for (const t of found.targets) f.targets.push(t)
    for (const a of found.targetArgs) f.targetArgs.add(a)
    for (const a of found.explained) f.explained.add(a)
    if (found.payloadFrom !== Number.POSITIVE_INFINITY) f.payloadFrom = found.payloadFrom + i + 1
    if (proxiesFromConfig) f.unknown("proxychains sends the connections through the proxies listed in its config file, which cannot be checked")
    return true
  }

const HANDLERS: ReadonlyMap<string, Handler> = entries<Handler>({
  curl,
  wget,
  http: httpie,
  https: httpie,
  xh: httpie,
  xhs: httpie,
  aria2c,
  git,
  ssh,
  scp,
  sftp,
  rsync,
  nc,
  netcat: nc,
  "nc.openbsd": nc,
  "nc.traditional": nc,
  ncat: netcat(NCAT, false),
  telnet,
  ftp,
  socat,
  ping: firstHost(PING),
  ping6: firstHost(PING),
  traceroute: firstHost(TRACEROUTE),
  traceroute6: firstHost(TRACEROUTE),
  dig,
  nslookup,
  host,
  npm,
  npx: npm,
  pnpm: npm,
  yarn: npm,
  uv,
  docker,
  podman: docker,
  openssl,
  sshpass: wrapper("pfdP", false),
  torsocks: wrapper("upaP", false),
  proxychains: wrapper("f", true),
  proxychains4: wrapper("f", true),
  export: declaration,
  declare: declaration,
  typeset: declaration,
  readonly: declaration,
  local: declaration,
  set
})
