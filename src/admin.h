/* The admin console: everyone's spend this period, and whose a key is.
 * Everything here reads what the usage poll left in the ledger (the index
 * of people, their spend documents, the key attributions); nothing calls
 * OpenAI, and a pasted key is only compared, never kept. */
#ifndef OKEY_ADMIN_H
#define OKEY_ADMIN_H

#include "jose.h"
#include "spend.h"

#define OKEY_ADMIN_PAGE_SIZE 100
/* The longest search and the most pages a request may name. */
#define OKEY_ADMIN_QUERY_MAX 256
#define OKEY_ADMIN_PAGE_MAX 100000
/* A search by part of an address reads at most this many people's keys. */
#define OKEY_ADMIN_OWNERS_MAX 20
/* How long the console's form token stays good, seconds. */
#define OKEY_ADMIN_TOKEN_LIFETIME (12 * 3600)

/* One person as the console lists them. */
typedef struct okey_admin_person_t {
    const char *email;
    int live_keys;
    double spend_usd;   /* this period, across the person's projects */
    int over_budget;
} okey_admin_person_t;

/* One page of people, highest spend first. */
typedef struct okey_admin_people_t {
    apr_array_header_t *people;  /* of okey_admin_person_t */
    int page;                    /* 1-based */
    int next_page;               /* 0: this is the last page */
    int total;                   /* people on every page */
    okey_period_e period;        /* the budget's, else the month */
} okey_admin_people_t;

/* The people of index (of okey_person_spend_t *, as okey_spend_index_parse
 * gives it; NULL: no poll yet) with live keys or spend this period, sorted
 * by spend (highest first, ties by address), page page of them. Spend is
 * judged against budget (set 0: none) in budget_project_id (NULL: all). */
void okey_admin_people(apr_pool_t *pool, const apr_array_header_t *index,
                       const okey_budget_t *budget, const char *budget_project_id,
                       apr_int64_t now, int page, okey_admin_people_t *out);

/* A page number a request named: 1 to OKEY_ADMIN_PAGE_MAX, else 0. */
int okey_admin_page_parse(const char *text);

typedef enum {
    OKEY_ADMIN_BY_NOTHING,  /* no search */
    OKEY_ADMIN_BY_ADDRESS,  /* a whole address, any case */
    OKEY_ADMIN_BY_PART,     /* part of addresses, any case */
    OKEY_ADMIN_BY_ACCOUNT,  /* svc_acct_... */
    OKEY_ADMIN_BY_KEY_ID,   /* key_... */
    OKEY_ADMIN_BY_KEY       /* a whole sk-... value, or its redacted form */
} okey_admin_by_e;

typedef struct okey_admin_query_t {
    okey_admin_by_e by;
    const char *text;   /* what is compared: lower case for addresses */
    const char *shown;  /* what a page or a log line may say was searched */
} okey_admin_query_t;

/* Reads q (NULL or blank: no search). NULL when it is a search, else why
 * not; the why never repeats q. */
const char *okey_admin_query_parse(apr_pool_t *pool, const char *q, okey_admin_query_t *query);

/* The addresses (lower case, sorted, of const char *) whose spend
 * documents a search must read: at most OKEY_ADMIN_OWNERS_MAX. */
apr_array_header_t *okey_admin_owners(apr_pool_t *pool, const okey_admin_query_t *query,
                                      const apr_array_header_t *index,
                                      apr_hash_t *attributions);

/* A live key a search found. Unknown figures are -1. */
typedef struct okey_admin_key_t {
    const char *api_key_id;
    okey_attribution_t who;
    apr_int64_t last_used_at;  /* 0: never */
    double cost_usd;
} okey_admin_key_t;

/* The live keys of owners that query matches (of okey_admin_key_t, by
 * address then creation): a key is live when the last poll listed it, or
 * when it was issued since that poll and has not expired. documents:
 * address -> okey_person_spend_t * (absent: no poll has named them). */
apr_array_header_t *okey_admin_keys(apr_pool_t *pool, const okey_admin_query_t *query,
                                    const apr_array_header_t *owners, apr_hash_t *documents,
                                    apr_hash_t *attributions, apr_int64_t now);

/* The attribution of the key of service_account_id, or NULL. */
const okey_attribution_t *okey_admin_account(apr_hash_t *attributions,
                                             const char *service_account_id);

/* Whether id looks like an id of its kind (prefix "svc_acct_" or "key_"):
 * the prefix and then 1 to 100 of [A-Za-z0-9_-]. */
int okey_admin_id_valid(const char *id, const char *prefix);

/* The console's form token for the administrator user, made at now; good
 * for OKEY_ADMIN_TOKEN_LIFETIME and for that user only. */
const char *okey_admin_token(apr_pool_t *pool, const okey_state_key_t *key, const char *user,
                             apr_int64_t now);
int okey_admin_token_ok(apr_pool_t *pool, const okey_state_key_t *key, const char *user,
                        const char *token, apr_int64_t now);

#endif
