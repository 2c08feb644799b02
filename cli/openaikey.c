/* openaikey: a key from a mod_openaikey server, in a terminal or a tool.
 *
 *   openaikey login URL [--ttl D] [--no-browser] [--timeout S]
 *   openaikey key [--server URL] ...
 *
 * Messages go to stderr; stdout carries only the export line or the key,
 * so that eval "$(openaikey login URL)" and tools reading it see nothing
 * else. */
#include "openaikey.h"

#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../src/lifetime.h"

#define KEY_BITS 3072
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_CANCELLED 130

extern char **environ;

static const char USAGE[] =
    "usage: openaikey login URL [--ttl DURATION] [--no-browser] [--timeout SECONDS]\n"
    "       openaikey login --issue URL [--user NAME | --negotiate] [--ttl DURATION]\n"
    "       openaikey key [--server URL | --issue URL ...] [options as for login]\n"
    "       openaikey admin-key rotate --key-file FILE [--expires-in DAYS] [--reload CMD]\n"
    "                                  [--api-base URL]\n"
    "       openaikey --help | --version\n";

static const char HELP[] =
    "\n"
    "login   signs in at URL, the key server's sign-in address, in a browser on\n"
    "        this machine, and prints  export OPENAI_API_KEY='...'  for eval:\n"
    "            eval \"$(openaikey login https://keys.example.com/)\"\n"
    "key     prints the key alone: the cached one while it is valid, else it\n"
    "        signs in first. Without --server or --issue it uses the server of\n"
    "        the last sign-in, the same way. Tools that run a command for their\n"
    "        key can run openaikey key.\n"
    "\n"
    "--ttl DURATION     the key's lifetime: seconds, or a number with s, m, h, d\n"
    "--no-browser       print the sign-in address instead of opening a browser\n"
    "--timeout SECONDS  how long to wait for the browser (default 300)\n"
    "--issue URL        get the key from an openaikey-issue address instead, with\n"
    "--user NAME        basic authentication (password from OPENAIKEY_PASSWORD,\n"
    "                   else asked on the terminal), or\n"
    "--negotiate        Kerberos (SPNEGO), with the ticket kinit made\n"
    "\n"
    "The key travels from the server to this command encrypted to a key pair\n"
    "made for this sign-in alone; the browser never sees it. Keys are cached\n"
    "in $XDG_CACHE_HOME/openaikey (mode 0600) until they expire.\n"
    "\n"
    "admin-key rotate   (as root) replaces the OpenAI Admin key in FILE, the file\n"
    "        a key server reads it from: creates a new key, proves it, writes it\n"
    "        to FILE with the old owner and mode, runs CMD (default: apachectl\n"
    "        graceful), then deletes the old key. A failure at any step leaves\n"
    "        the old key in FILE and working. --expires-in DAYS (1-365) gives\n"
    "        the new key an expiry; --api-base defaults to $OPENAI_API_BASE, else\n"
    "        https://api.openai.com/v1. Exit status 3: both keys are left live;\n"
    "        the message names the one to delete by hand.\n";

void openaikey_say(const char *fmt, ...)
{
    va_list ap;

    fputs("openaikey: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int shell_safe(const char *text)
{
    apr_size_t i;
    int ok = text && *text && strlen(text) <= 512;

    for (i = 0; ok && text[i]; i++) {
        ok = apr_isalnum(text[i]) || strchr("-_.", text[i]);
    }
    return ok;
}

openaikey_key_t *openaikey_key_from_json(apr_pool_t *pool, const char *server,
                                         const char *json, const char **why)
{
    json_t *doc = okey_json_parse(pool, json, strlen(json), NULL);
    const json_t *expires = json_object_get(doc, "expires_at");
    const char *named_server = okey_json_str(doc, "server");
    openaikey_key_t *key = apr_pcalloc(pool, sizeof(*key));

    *why = NULL;
    key->server = server;
    key->api_key = okey_json_str(doc, "api_key");
    key->expires_at = json_is_integer(expires) ? json_integer_value(expires) : 0;
    key->project = okey_json_str(doc, "project");
    key->email = okey_json_str(doc, "email");
    key->service_account_id = okey_json_str(doc, "service_account_id");
    if (okey_json_str(doc, "error")) {
        *why = apr_pstrdup(pool, okey_json_str(doc, "error"));
    }
    if (*why || !shell_safe(key->api_key) || key->expires_at <= 0 || !key->project ||
        !key->email || !key->service_account_id ||
        (json_object_get(doc, "server") && (!named_server || strcmp(named_server, server)))) {
        key = NULL;
    }
    return key;
}

/* --- the command line ------------------------------------------------------ */

static const char *option_value(int argc, const char *const *argv, int *i)
{
    return *i + 1 < argc ? argv[++*i] : NULL;
}

/* Reads argv into args; NULL, or what is wrong with it. */
static const char *read_args(apr_pool_t *pool, int argc, const char *const *argv,
                             openaikey_args_t *args)
{
    const char *wrong = NULL;
    int i;

    memset(args, 0, sizeof(*args));
    args->timeout = OPENAIKEY_TIMEOUT_DEFAULT;
    args->command = argc > 1 ? argv[1] : NULL;
    if (!args->command || (strcmp(args->command, "login") && strcmp(args->command, "key"))) {
        wrong = args->command ? apr_pstrcat(pool, "unknown command ", args->command, NULL)
                              : "no command";
    }
    for (i = 2; i < argc && !wrong; i++) {
        const char *arg = argv[i];
        const char *value = NULL;

        if (!strcmp(arg, "--no-browser")) {
            args->no_browser = 1;
        }
        else if (!strcmp(arg, "--negotiate")) {
            args->negotiate = 1;
        }
        else if (strncmp(arg, "--", 2) && !args->server && !strcmp(args->command, "login")) {
            args->server = arg;
        }
        else if (!strcmp(arg, "--server") || !strcmp(arg, "--issue") || !strcmp(arg, "--ttl") ||
                 !strcmp(arg, "--user") || !strcmp(arg, "--timeout")) {
            value = option_value(argc, argv, &i);
            wrong = value ? NULL : apr_pstrcat(pool, arg, " needs a value", NULL);
        }
        else {
            wrong = apr_pstrcat(pool, "unknown argument ", arg, NULL);
        }
        if (value && !strcmp(arg, "--server")) {
            args->server = value;
        }
        else if (value && !strcmp(arg, "--issue")) {
            args->issue = value;
        }
        else if (value && !strcmp(arg, "--ttl")) {
            args->ttl = value;
        }
        else if (value && !strcmp(arg, "--user")) {
            args->user = value;
        }
        else if (value) {
            char *end = NULL;
            long seconds = strtol(value, &end, 10);

            args->timeout = *end || seconds < 1 || seconds > 3600 ? 0 : (int)seconds;
            wrong = args->timeout ? NULL : "--timeout takes seconds from 1 to 3600";
        }
    }
    if (!wrong && args->server && args->issue) {
        wrong = "give either a sign-in URL or --issue, not both";
    }
    else if (!wrong && !strcmp(args->command, "login") && !args->server && !args->issue) {
        wrong = "login needs the key server's URL";
    }
    else if (!wrong && (args->user || args->negotiate) && !args->issue) {
        wrong = "--user and --negotiate go with --issue";
    }
    else if (!wrong && args->user && args->negotiate) {
        wrong = "give either --user or --negotiate";
    }
    return wrong;
}

/* url with the query parameter name=value added. */
static const char *with_param(apr_pool_t *pool, const char *url, const char *name,
                              const char *value)
{
    return apr_pstrcat(pool, url, strchr(url, '?') ? "&" : "?", name, "=",
                       okey_form_escape(pool, value), NULL);
}

/* The sign-in URL as given, with a path: https://host becomes https://host/. */
static const char *with_path(apr_pool_t *pool, const char *url)
{
    const char *host = strstr(url, "://");
    int has_path = host && strcspn(host + 3, "/?#") < strlen(host + 3);

    return has_path ? url : apr_pstrcat(pool, url, "/", NULL);
}

/* --- signing in ------------------------------------------------------------ */

/* What the server's error body says, or a line about its status. */
static const char *refusal_text(apr_pool_t *pool, int status, const char *body)
{
    json_t *doc = okey_json_parse(pool, body, strlen(body), NULL);
    const char *error = okey_json_str(doc, "error");

    return error ? apr_psprintf(pool, "the server refused (%d): %s", status, error)
                 : apr_psprintf(pool, "the server answered %d; is this its sign-in "
                                "address?", status);
}

/* Asks the server to start this sign-in before a browser is involved: an
 * unreachable server or a refused link fails here, in one line. */
static const char *check_login(apr_pool_t *pool, const char *login_url)
{
    openaikey_fetch_t req = {login_url, NULL, NULL, NULL, 0};
    int status = 0;
    const char *body = NULL;
    const char *why = openaikey_fetch(pool, &req, &status, &body);

    if (why) {
        why = apr_pstrcat(pool, "cannot reach the server: ", why, NULL);
    }
    else if (status != 302 && status != 303) {
        why = refusal_text(pool, status, body);
    }
    return why;
}

static void open_browser(const char *url, int no_browser)
{
#ifdef __APPLE__
    const char *opener = "open";
#else
    const char *opener = "xdg-open"; /* which follows $BROWSER */
#endif
    char *argv[] = {(char *)opener, (char *)url, NULL};
    posix_spawn_file_actions_t actions;
    pid_t pid = 0;
    int spawned = 0;

    if (!no_browser) {
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        spawned = posix_spawnp(&pid, opener, &actions, NULL, argv, environ) == 0;
        posix_spawn_file_actions_destroy(&actions);
    }
    fprintf(stderr, "%s\n\n    %s\n\n", spawned
            ? "openaikey: signing in in your browser. If none opened, open this address "
              "on this machine:"
            : "openaikey: open this address in a browser on this machine to sign in:", url);
}

static openaikey_key_t *sign_in_browser(apr_pool_t *pool, const openaikey_args_t *args,
                                        const char *server, const char **why)
{
    okey_cli_keypair_t *pair = NULL;
    openaikey_listener_t *listener = NULL;
    int port = 0;
    const char *url = with_path(pool, server);
    okey_err_t *err = okey_cli_keypair_new(pool, KEY_BITS, &pair);
    openaikey_key_t *key = NULL;

    *why = err ? err->log_msg : NULL;
    if (!*why) {
        *why = openaikey_listen(pool, &listener, &port);
    }
    if (!*why) {
        url = with_param(pool, url, "cli_port", apr_itoa(pool, port));
        url = with_param(pool, url, "cli_key", okey_cli_keypair_public(pool, pair));
        url = args->ttl ? with_param(pool, url, "ttl", args->ttl) : url;
        *why = check_login(pool, url);
    }
    if (!*why) {
        open_browser(url, args->no_browser);
        key = openaikey_await(pool, listener, pair, server, args->timeout, why);
    }
    return key;
}

/* The password for --user: OPENAIKEY_PASSWORD, else asked on the terminal
 * without echo. */
static const char *password_for(apr_pool_t *pool, const char *user)
{
    const char *given = getenv("OPENAIKEY_PASSWORD");
    char *line = apr_palloc(pool, 1024);
    FILE *tty = given ? NULL : fopen("/dev/tty", "r+");
    struct termios saved, quiet;
    int hidden = 0;

    if (tty) {
        fprintf(tty, "Password for %s: ", user);
        fflush(tty);
        hidden = tcgetattr(fileno(tty), &saved) == 0;
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        hidden = hidden && tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
        line = fgets(line, 1024, tty) ? line : NULL;
        if (hidden) {
            tcsetattr(fileno(tty), TCSAFLUSH, &saved);
        }
        fputc('\n', tty);
        fclose(tty);
    }
    if (line && !given && tty) {
        line[strcspn(line, "\r\n")] = '\0';
    }
    return given ? given : tty ? line : NULL;
}

static openaikey_key_t *sign_in_issue(apr_pool_t *pool, const openaikey_args_t *args,
                                      const char **why)
{
    openaikey_fetch_t req = {args->issue, NULL, args->user, NULL, args->negotiate};
    int status = 0;
    const char *body = NULL;
    openaikey_key_t *key = NULL;

    req.body = args->ttl ? okey_json_dump(pool, okey_json_own(pool, json_pack(
                                              "{s:s}", "ttl", args->ttl)))
                         : "{}";
    req.password = args->user ? password_for(pool, args->user) : NULL;
    *why = args->user && !req.password ? "no password: set OPENAIKEY_PASSWORD or run "
                                         "openaikey on a terminal" : NULL;
    if (!*why) {
        *why = openaikey_fetch(pool, &req, &status, &body);
        *why = *why ? apr_pstrcat(pool, "cannot reach the server: ", *why, NULL) : NULL;
    }
    if (!*why && status != 200) {
        *why = status == 401 ? "the server did not accept the sign-in (401)"
                             : refusal_text(pool, status, body);
    }
    if (!*why) {
        key = openaikey_key_from_json(pool, args->issue, body, why);
        *why = key ? NULL : *why ? *why : "the server's answer holds no key";
    }
    return key;
}

/* A fresh key for args, cached; NULL with *why set. */
static openaikey_key_t *sign_in(apr_pool_t *pool, const openaikey_args_t *args,
                                const char *server, const char **why)
{
    const char *ttl_problem = NULL;
    apr_int64_t seconds = 0;
    openaikey_key_t *key = NULL;
    /* Only the form is checked here: the server knows its range. */
    okey_err_t *err = args->ttl ? okey_lifetime_parse(pool, args->ttl, APR_INT64_C(1) << 40,
                                                      &seconds) : NULL;

    ttl_problem = err ? "--ttl takes seconds, or a whole number with s, m, h or d "
                        "(for example 8h)" : NULL;
    *why = ttl_problem ? ttl_problem : okey_cli_url_problem(pool, server);
    if (!*why) {
        key = args->issue ? sign_in_issue(pool, args, why)
                          : sign_in_browser(pool, args, server, why);
    }
    if (key) {
        const char *unsaved = openaikey_cache_put(pool, key, args);

        if (unsaved) {
            openaikey_say("the key was not cached: %s", unsaved);
        }
    }
    return key;
}

static void report(apr_pool_t *pool, const openaikey_key_t *key)
{
    apr_int64_t left = key->expires_at - (apr_int64_t)time(NULL);

    openaikey_say("a key for %s in project %s, valid for %s (until %s)", key->email,
                  key->project, okey_lifetime_text(pool, left > 0 ? (left + 30) / 60 * 60 : 0),
                  okey_iso8601(pool, key->expires_at));
}

static void on_signal(int sig)
{
    (void)sig;
    openaikey_stop = 1;
}

static void catch_signals(void)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int run(apr_pool_t *pool, openaikey_args_t *args)
{
    apr_int64_t now = (apr_int64_t)time(NULL);
    int known = args->issue || args->server || openaikey_cache_last(pool, args);
    const char *server = args->issue ? args->issue : args->server;
    int login = !strcmp(args->command, "login");
    openaikey_key_t *key = !login && known ? openaikey_cache_get(pool, server, now) : NULL;
    const char *why = known ? NULL : "no server yet: run openaikey login URL first, or "
                                     "give --server URL";

    if (!key && !why && !login) {
        /* Tools ask at once: one signs in, the rest take its key. */
        why = openaikey_cache_lock(pool, args->timeout + 60);
        key = why ? NULL : openaikey_cache_get(pool, server, (apr_int64_t)time(NULL));
    }
    if (!key && !why) {
        key = sign_in(pool, args, server, &why);
        if (key) {
            report(pool, key);
        }
    }
    if (key && login) {
        printf("export OPENAI_API_KEY='%s'\n", key->api_key);
    }
    else if (key) {
        printf("%s\n", key->api_key);
    }
    if (!key) {
        openaikey_say("%s", why);
    }
    return key ? 0 : openaikey_stop ? EXIT_CANCELLED : EXIT_FAILED;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool = NULL;
    openaikey_args_t args;
    const char *wrong = NULL;
    int admin = 0;
    int status = 0;

    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(USAGE, stdout);
        fputs(HELP, stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("openaikey %s\n", OKEY_VERSION);
        return 0;
    }
    apr_app_initialize(&argc, &argv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    apr_pool_create(&pool, NULL);
    admin = argc > 1 && !strcmp(argv[1], "admin-key");
    wrong = admin ? NULL : read_args(pool, argc, argv, &args);
    if (admin) {
        status = openaikey_admin_key(pool, argc, argv);
    }
    else if (wrong) {
        openaikey_say("%s", wrong);
        fputs(USAGE, stderr);
        status = EXIT_USAGE;
    }
    else {
        catch_signals();
        status = run(pool, &args);
    }
    apr_pool_destroy(pool);
    curl_global_cleanup();
    apr_terminate();
    return status;
}
