/* Shared fixtures of the library's unit tests. */
#ifndef OKEY_TESTUTIL_H
#define OKEY_TESTUTIL_H

#include <apr_general.h>
#include <apr_pools.h>
#include <check.h>

extern apr_pool_t *test_pool;

void test_pool_setup(void);
void test_pool_teardown(void);

Suite *okey_state_suite(void);
Suite *okey_jose_suite(void);
Suite *okey_oidc_suite(void);
Suite *okey_policy_suite(void);
Suite *okey_keys_suite(void);
Suite *okey_openai_suite(void);
Suite *okey_config_suite(void);
Suite *okey_page_suite(void);
Suite *okey_spend_suite(void);
Suite *okey_reaper_suite(void);
Suite *okey_terms_suite(void);
Suite *okey_rate_suite(void);
Suite *okey_query_suite(void);
Suite *okey_session_suite(void);
Suite *okey_cli_suite(void);
Suite *okey_json_suite(void);
Suite *okey_lease_suite(void);
Suite *okey_ledger_suite(void);
Suite *okey_ledger_shm_suite(void);
Suite *okey_ledger_redis_suite(void);
Suite *okey_admin_suite(void);

/* A test case whose tests each get a fresh test_pool. */
TCase *test_case(const char *name);

#endif
