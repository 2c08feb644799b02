/* Runs every suite of the library's unit tests. */
#include "testutil.h"

#include <stdlib.h>

apr_pool_t *test_pool;

void test_pool_setup(void)
{
    apr_pool_create(&test_pool, NULL);
}

void test_pool_teardown(void)
{
    apr_pool_destroy(test_pool);
    test_pool = NULL;
}

TCase *test_case(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, test_pool_setup, test_pool_teardown);
    tcase_set_timeout(tc, 30);
    return tc;
}

int main(void)
{
    SRunner *runner;
    int failed;

    apr_initialize();
    runner = srunner_create(okey_state_suite());
    srunner_add_suite(runner, okey_jose_suite());
    srunner_add_suite(runner, okey_oidc_suite());
    srunner_add_suite(runner, okey_policy_suite());
    srunner_add_suite(runner, okey_keys_suite());
    srunner_add_suite(runner, okey_terms_suite());
    srunner_add_suite(runner, okey_rate_suite());
    srunner_add_suite(runner, okey_openai_suite());
    srunner_add_suite(runner, okey_config_suite());
    srunner_add_suite(runner, okey_page_suite());
    srunner_add_suite(runner, okey_spend_suite());
    srunner_add_suite(runner, okey_reaper_suite());
    srunner_add_suite(runner, okey_query_suite());
    srunner_add_suite(runner, okey_session_suite());
    srunner_add_suite(runner, okey_cli_suite());
    srunner_add_suite(runner, okey_json_suite());
    srunner_add_suite(runner, okey_lease_suite());
    srunner_add_suite(runner, okey_ledger_suite());
    srunner_add_suite(runner, okey_ledger_shm_suite());
    srunner_add_suite(runner, okey_ledger_redis_suite());
    srunner_add_suite(runner, okey_admin_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    apr_terminate();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
