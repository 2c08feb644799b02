/* The terms a key is issued under, and the one judgement of a key by them.
 *
 * A project's terms are those of every profile (and the server) that
 * issues into it: the cap and the longest lifetime, on which they must
 * agree, and the union of their allow rules. The reaper, My keys, the cap
 * and the orphan clean-up judge a key only through okey_terms_judge and
 * okey_terms_over_cap, never by the server's settings of the moment. */
#ifndef OKEY_TERMS_H
#define OKEY_TERMS_H

#include "config.h"

/* How far the upstream's created_at may run ahead of this server's clock
 * before a name's expiry is doubted. */
#define OKEY_TERMS_CLOCK_SKEW 300

struct okey_terms_t {
    const char *project;          /* a name, or a proj_ id */
    const char *where;            /* the first place that named it, for messages */
    apr_int64_t cap;              /* 0: no cap */
    apr_int64_t max_lifetime;     /* the longest any issuer allows */
    apr_int64_t legacy_lifetime;  /* for the Go program's bare-address names */
    int reap_legacy;
    int revoke_disallowed;
    int keeps_groups;             /* an issuer admits by groups: keep every key */
    okey_budget_t budget;         /* per person; set 0: none */
    int revoke_over_budget;
    apr_array_header_t *issuers;  /* of const okey_config_t *: who issues here */
};

/* Adds the terms of cfg (the server, or a profile at where) to terms (of
 * okey_terms_t *), merging with the project's entry when there is one. A
 * disagreement on the cap or the longest lifetime is pushed onto problems
 * as one line naming both places. Returns the number of problems added. */
int okey_terms_add(apr_pool_t *pool, apr_array_header_t *terms, const okey_config_t *cfg,
                   const char *where, apr_array_header_t *problems);

/* Whether cfg (the settings a request resolved) is one of the issuers that
 * terms (of okey_terms_t *) were built from at startup: the same project,
 * cap, longest lifetime and allow rules. A request must never issue under
 * settings the reaper does not judge keys by. */
int okey_terms_known(const apr_array_header_t *terms, const okey_config_t *cfg);

/* Makes into the terms of both, for key servers of one httpd that issue
 * into one project: a disagreement is pushed onto problems as for
 * okey_terms_add; the allow rules add up, and a policy revokes only where
 * every server asks for it. Returns the number of problems added. */
int okey_terms_merge(apr_pool_t *pool, okey_terms_t *into, const okey_terms_t *other,
                     apr_array_header_t *problems);

/* The entry of terms (of okey_terms_t *) for project, or NULL. */
const okey_terms_t *okey_terms_of(const apr_array_header_t *terms, const char *project);

/* The terms of project as cfg knows them: its entry in cfg->terms, or,
 * where cfg has none (a project no issuer names now), cfg's own. */
const okey_terms_t *okey_terms_for(apr_pool_t *pool, const okey_config_t *cfg,
                                   const char *project);

/* Every project cfg issues into (a name or a proj_ id): its own first, then
 * its profiles'. */
apr_array_header_t *okey_terms_projects(apr_pool_t *pool, const okey_config_t *cfg);

typedef enum {
    OKEY_KEY_FOREIGN,    /* not named by this module: never touched */
    OKEY_KEY_LIVE,       /* ours, within its terms */
    OKEY_KEY_EXPIRED,    /* ours, past the expiry its name or its terms give */
    OKEY_KEY_DISALLOWED, /* ours and live, but no issuer admits its owner now */
    OKEY_KEY_LEGACY_OLD  /* the Go program's, older than the legacy lifetime */
} okey_key_state_e;

typedef struct okey_judgement_t {
    okey_key_state_e state;
    const char *email;    /* the owner, lower case; NULL for foreign keys */
    apr_int64_t expires;  /* the expiry it is held to; 0 for legacy keys */
} okey_judgement_t;

/* Whose key is the account name, until when it may live, and whether it
 * may live now. created_at is the upstream's (0: unknown). */
okey_judgement_t okey_terms_judge(apr_pool_t *pool, const okey_terms_t *terms,
                                  const char *name, apr_int64_t created_at,
                                  apr_int64_t now);

/* Whether any project of terms (of okey_terms_t *) has a cap. */
int okey_terms_capped(const apr_array_header_t *terms);

/* Whether an issuer of the project admits email without a token, as the
 * reaper must judge it: listed, or in a listed domain, or kept because an
 * issuer admits by groups. */
int okey_terms_admits(const okey_terms_t *terms, const char *email);

/* A key of one address, as listed upstream or registered by a sign-in.
 * Keys are ordered by rank, then by id: the same order for the reaper and
 * every sign-in, so that no two of them disagree on which keys are the
 * newest N. A ledger ranks a key it records after every key of its owner
 * it holds, so that each sign-in's own key is the newest it sees, whatever
 * the seconds its creation and the others' carry; a key the ledger did not
 * record ranks by its created_at. */
typedef struct okey_owned_key_t {
    const char *service_account_id;
    const char *name;
    const char *project_id;
    apr_int64_t created_at;
    apr_int64_t expires;
    apr_int64_t rank;       /* microseconds: see okey_terms_rank */
} okey_owned_key_t;

/* The rank of a key recorded at added (microseconds; 0: not recorded, only
 * listed) and created at created_at (seconds). */
apr_int64_t okey_terms_rank(apr_time_t added, apr_int64_t created_at);

/* An upstream created_at as the judgement may use it: 0 (unknown) when it
 * is absent or lies ahead of now by more than the clock skew. */
apr_int64_t okey_terms_created(apr_int64_t created_at, apr_int64_t now);

/* The rank of a key seen in a listing but not among its owner's records,
 * created at created_at, seen at now (seconds): a key created within the
 * longest an issue may take (two upstream timeouts, upstream's clock
 * allowing) may be on its way to its record, which will rank it after
 * every key of its owner, and so ranks as the newest now; an older one
 * ranks by its creation. */
apr_int64_t okey_terms_rank_listed(apr_int64_t created_at, apr_int64_t now,
                                   apr_int64_t timeout);

/* Sorts keys (of okey_owned_key_t) oldest first: by rank, then id. */
void okey_terms_sort(apr_array_header_t *keys);

/* The keys of owned (one person's live keys in one project, of
 * okey_owned_key_t) that the cap takes, oldest first: beyond the newest
 * cap keys. With keep_id (a key just issued), only keys older than it are
 * taken, and never it, so that concurrent issues converge on the newest
 * cap keys and never on fewer. */
apr_array_header_t *okey_terms_over_cap(apr_pool_t *pool, apr_int64_t cap,
                                        const apr_array_header_t *owned,
                                        const char *keep_id);

#endif
