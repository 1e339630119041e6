/**
 * The commented configuration files `astrid init` writes. Every setting is commented out, so a fresh
 * file changes nothing; each shows its default (or an example) and what it does. Prose lines start with
 * "##" or "#  " and setting lines with "# key = " or "# [section]", so that uncommenting setting lines
 * alone gives valid TOML (the tests check exactly that against the real loaders).
 */

export const WORKSPACE_CONFIG = `## Astrid workspace configuration: <workspace>/.astrid/config.toml
##
## These settings apply to every session whose workspace is this folder. They can only TIGHTEN the
## user's settings in $ASTRID_HOME/config.toml (set by you or an administrator), never loosen them:
## a stricter mode wins, lists of things to block are added to the user's, limits take the smaller
## value, and allow-lists can only shrink. Commit this file so everyone working here gets the same limits.
##
## Everything is commented out: as written, this file changes nothing. Uncomment a line to use it.
## Check the result with 'astrid config validate' and see what is in force with 'astrid config show'.

# [security]
##  How much runs without asking, for file actions inside this workspace:
##    "safe"        ask before every file action, reads included
##    "guided"      reads pass, writes and deletes ask (the default)
##    "autonomous"  file actions inside the workspace pass; anything else still asks
##  Only a stricter mode than the user's takes effect (safe > guided > autonomous).
# workspace_mode = "safe"
##  File actions outside this workspace: "deny", "ask" (the default) or "allow". Only a stricter one counts.
# escape_policy = "deny"
##  Seconds to wait for an approval before the action is deferred to 'astrid approvals' (smaller wins).
# approval_timeout_secs = 120
##  Lifetime of a token minted by an "Allow Always" answer, in seconds (smaller wins).
# allow_always_ttl_secs = 600
##  Keep only these of the user's pre-approved resource patterns here; [] drops them all.
##  A workspace can remove pre-approvals, never add one.
# pre_approved = []

# [security.policy]
##  Hard limits: a blocked action is refused outright, no token, allowance or human can override it.
##  These lists are ADDED to the user's (and the built-in ones: sudo, mkfs, /etc/**, ...).
##  Commands never to run (a program name, or a command line prefix):
# blocked_commands = ["git push --force", "npm publish"]
##  Paths never to touch, as globs:
# denied_paths = ["/home/me/.ssh/**", "/home/me/project/secrets/**"]
##  Hosts never to reach:
# denied_hosts = ["*.internal.example.com"]
##  Tools that always ask a human, whatever a token or allowance says:
# always_ask_tools = ["bash"]
##  Allow-lists narrow the user's: an entry counts only where it lies inside one of the user's entries
##  (or anywhere when the user has none). Absolute path globs; host names, "*.domain" for subdomains.
# allowed_paths = ["/home/me/project/**"]
# allowed_hosts = ["api.github.com", "*.npmjs.org"]
##  Largest tool argument, in bytes (smaller wins; the default is 1048576).
# max_argument_bytes = 262144

# [security.budget]
##  Spending limits in integer micro-dollars (1 USD = 1000000); the smaller of the user's and these wins.
# per_action_micros = 500000
# per_session_micros = 5000000
# per_workspace_micros = 50000000
##  Warn when a budget is this many percent used.
# warn_at_percent = 70
`

export const WORKSPACE_GITIGNORE = `# Written by 'astrid init'. Commit .astrid/config.toml: it holds this workspace's security limits.
# Backups made by 'astrid init --force' stay out of version control.
*.bak
`

export const USER_CONFIG = `## Astrid user configuration: $ASTRID_HOME/config.toml
##
## Everything is commented out: the values shown are the built-in defaults (or examples, where it says
## so). Uncomment a line to change it. Environment variables (ASTRID_*) override this file, and a
## workspace's .astrid/config.toml can only tighten the [security] settings here.
## Check the file with 'astrid config validate'; 'astrid config show' prints what is in force.

# [event_store]
##  The embedded SQLite file, relative to ASTRID_HOME (ASTRID_DB overrides it).
# path = "astrid.db"
##  Use EventStoreDB / KurrentDB instead of SQLite (ASTRID_EVENT_STORE_URL overrides it). Example:
# url = "esdb://127.0.0.1:2113?tls=false"
##  "full": every commit survives a power loss; "normal": faster, may lose the last commits on power loss.
# synchronous = "full"
##  How long to wait for another process holding the database, in milliseconds (ASTRID_BUSY_TIMEOUT_MS).
# busy_timeout_ms = 5000

# [audit]
##  Sign a checkpoint after this many events; 0 signs only on demand ('astrid audit checkpoint').
##  (ASTRID_CHECKPOINT_EVERY overrides it.)
# checkpoint_every = 1000

# [security]
##  File actions inside a workspace: "safe" (always ask), "guided" (reads pass, writes ask),
##  "autonomous" (file actions inside pass; running programs, the network and tools still ask).
# workspace_mode = "guided"
##  File actions outside the workspace: "ask", "deny" or "allow".
# escape_policy = "ask"
##  Seconds to wait for an approval; then the action is deferred to 'astrid approvals'.
# approval_timeout_secs = 300
##  Lifetime in seconds of the token an "Allow Always" answer mints.
# allow_always_ttl_secs = 3600
##  Resource patterns that pass without asking. Example: ["mcp://docs:search"]
# pre_approved = []

# [security.policy]
##  Hard limits nothing can override. Leaving a list out keeps the built-in one; giving it replaces it.
##  Examples (the built-in blocked commands include sudo, su, mkfs, dd, shutdown, "rm -rf /"):
# blocked_commands = ["sudo", "su", "doas", "mkfs", "dd", "shutdown", "reboot", "rm -rf /"]
# denied_paths = ["/etc/**", "/boot/**", "/sys/**", "/proc/**", "/dev/**"]
##  An empty allow-list means no allow-list (everything not denied).
# allowed_paths = []
# denied_hosts = []
# allowed_hosts = []
# max_argument_bytes = 1048576
# always_ask_tools = []

# [security.budget]
##  Integer micro-dollars (1 USD = 1000000).
# per_action_micros = 1000000
# per_session_micros = 10000000
# per_workspace_micros = 100000000
# warn_at_percent = 80

# [security.tokens]
##  Hex ed25519 public keys whose capability tokens are trusted; empty means this home's runtime keys.
# trusted_issuers = []
##  Clock difference tolerated when checking a token's expiry, in seconds.
# clock_skew_secs = 30

# [llm]
##  Which model answers: "anthropic", "openai", "zai" (Z.ai), "ollama" or "scripted" (replays a file).
# provider = "anthropic"
# model = "claude-sonnet-4-6"
##  Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama). Example:
# base_url = "http://127.0.0.1:8000/v1"
##  The environment variable that holds the API key (the key itself never goes in this file).
# api_key_env = "ANTHROPIC_API_KEY"
##  Model calls allowed in one turn, and output tokens per call.
# max_steps = 20
# max_tokens = 8192
##  The model's context window in tokens (default per provider); older exchanges that do not fit are
##  left out of the request, never out of the log.
# context_tokens = 200000

##  Prices in integer micro-dollars per million tokens ($3 per million = 3000000), per model name;
##  they price the model usage recorded in each session and are reserved from the budget before each
##  call. Common models have built-in prices; any other model needs one (0 for a free or local model).
# [llm.prices."claude-sonnet-4-6"]
# input_per_million = 3000000
# output_per_million = 15000000
`
