/* Settings: directive, then environment, then default. */
#include "testutil.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <unistd.h>
#include <string.h>

#include "config.h"

/* An environment given as a NULL-terminated list of name, value pairs. */
static const char *fake_getenv(void *baton, const char *name)
{
    const char *const *env = baton;
    const char *value = NULL;

    for (; env && *env && !value; env += 2) {
        value = strcmp(env[0], name) ? NULL : env[1];
    }
    return value;
}

static okey_raw_config_t complete(void)
{
    okey_raw_config_t raw = {{0}};

    raw.value[OKEY_SET_CLIENT_ID] = "cid";
    raw.value[OKEY_SET_CLIENT_SECRET] = "secret";
    raw.value[OKEY_SET_REDIRECT_URI] = "https://keys.example/oauth2/callback";
    raw.value[OKEY_SET_ALLOWED_USERS] = "alice@example.com";
    raw.value[OKEY_SET_MANAGEMENT_KEY] = "admin";
    return raw;
}

static int resolve(const okey_raw_config_t *raw, const char *const *env,
                   okey_config_t *cfg, apr_array_header_t **problems)
{
    *problems = apr_array_make(test_pool, 4, sizeof(const char *));
    return okey_config_resolve(test_pool, raw, fake_getenv, (void *)env, "srv", cfg,
                               *problems);
}

START_TEST(profiles_override_and_inherit)
{
    static const char *const no_env[] = {NULL};
    okey_raw_config_t raw = complete();
    okey_raw_config_t profile = {{0}};
    apr_array_header_t *problems = NULL;
    okey_config_t cfg, ml;

    raw.value[OKEY_SET_MAX_EXPIRATION] = "86400";
    raw.value[OKEY_SET_EXPIRATION] = "3600";
    ck_assert_int_eq(resolve(&raw, no_env, &cfg, &problems), 0);
    profile.value[OKEY_SET_PROJECT] = "ml";
    profile.value[OKEY_SET_ALLOWED_GROUPS] = "ML-Team";
    profile.value[OKEY_SET_EXPIRATION] = "600";
    ck_assert_int_eq(okey_config_profile(test_pool, &cfg, &profile, "<Location /ml>", &ml,
                                         problems), 0);
    ck_assert_str_eq(ml.project, "ml");
    ck_assert_int_eq(ml.expiration, 600);
    ck_assert_int_eq(ml.max_expiration, 86400);
    ck_assert_str_eq(APR_ARRAY_IDX(ml.allowed_groups, 0, const char *), "ml-team");
    ck_assert_str_eq(APR_ARRAY_IDX(ml.allowed_users, 0, const char *), "alice@example.com");
    ck_assert_str_eq(ml.client_id, "cid");
    ck_assert(okey_setting_in_profile(OKEY_SET_PROJECT));
    ck_assert(!okey_setting_in_profile(OKEY_SET_CLIENT_ID));
    ck_assert(!okey_setting_in_profile(OKEY_SET_SESSION_LIFETIME));

    profile.value[OKEY_SET_MAX_EXPIRATION] = "300";
    ck_assert_int_eq(okey_config_profile(test_pool, &cfg, &profile, "<Location /ml>", &ml,
                                         problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 0, const char *),
                                 "OpenAIKeyMaxExpiration (environment MAX_EXPIRATION) in "
                                 "server <Location /ml>: 300 is shorter"));
}
END_TEST

START_TEST(budgets_are_read_per_profile_and_need_polls)
{
    static const char *const no_env[] = {NULL};
    okey_raw_config_t raw = complete();
    okey_raw_config_t profile = {{0}};
    apr_array_header_t *problems = NULL;
    okey_config_t cfg, ml;

    ck_assert_int_eq(resolve(&raw, no_env, &cfg, &problems), 0);
    ck_assert_int_eq(cfg.budget.set, 0);
    ck_assert_int_eq(cfg.usage_interval, 900);
    ck_assert_str_eq(cfg.state_dir, "/var/lib/apache2/openaikey");
    profile.value[OKEY_SET_BUDGET] = "12.50 week";
    profile.value[OKEY_SET_REVOKE_OVER_BUDGET] = "On";
    ck_assert_int_eq(okey_config_profile(test_pool, &cfg, &profile, "<Location /ml>", &ml,
                                         problems), 0);
    ck_assert(ml.budget.set && ml.budget.period == OKEY_PERIOD_WEEK);
    ck_assert(ml.revoke_over_budget);
    ck_assert(okey_setting_in_profile(OKEY_SET_BUDGET));

    profile.value[OKEY_SET_BUDGET] = "lots";
    ck_assert_int_eq(okey_config_profile(test_pool, &cfg, &profile, "<Location /ml>", &ml,
                                         problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 0, const char *), "OpenAIKeyBudget"));

    raw.value[OKEY_SET_BUDGET] = "10 month";
    raw.value[OKEY_SET_USAGE_INTERVAL] = "0";
    ck_assert_int_eq(resolve(&raw, no_env, &cfg, &problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 0, const char *),
                                 "needs usage polls"));
    raw.value[OKEY_SET_BUDGET] = NULL;
    raw.value[OKEY_SET_STATE_DIR] = "relative/dir";
    ck_assert_int_eq(resolve(&raw, no_env, &cfg, &problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 0, const char *),
                                 "not an absolute path"));
}
END_TEST

START_TEST(defaults_apply)
{
    okey_raw_config_t raw = complete();
    okey_config_t cfg;
    apr_array_header_t *problems;

    ck_assert_int_eq(resolve(&raw, NULL, &cfg, &problems), 0);
    ck_assert_str_eq(cfg.project, "personal");
    ck_assert_int_eq(cfg.expiration, 86400);
    ck_assert_int_eq(cfg.cleanup_interval, 3600);
    ck_assert_int_eq(cfg.timeout, 10);
    ck_assert_str_eq(cfg.issuer, "https://accounts.google.com");
    ck_assert_str_eq(cfg.api_base, "https://api.openai.com/v1");
    ck_assert_ptr_null(cfg.passphrase);
    ck_assert_int_eq(cfg.reap_legacy, 0);
    ck_assert_int_eq(cfg.redirect_is_https, 1);
}
END_TEST

START_TEST(directive_beats_environment_beats_default)
{
    static const char *const env[] = {"EXPIRATION", "120", "TIMEOUT", "5",
                                      "OIDC_ISSUER", "https://idp.example/",
                                      "GOOGLE_TOKEN_ISSUER_URL", "https://other.example",
                                      "OPENAIKEY_REAP_LEGACY", "true", NULL};
    okey_raw_config_t raw = complete();
    okey_config_t cfg;
    apr_array_header_t *problems;

    raw.value[OKEY_SET_TIMEOUT] = "7";
    ck_assert_int_eq(resolve(&raw, env, &cfg, &problems), 0);
    ck_assert_int_eq(cfg.timeout, 7);
    ck_assert_int_eq(cfg.expiration, 120);
    ck_assert_str_eq(cfg.issuer, "https://idp.example");
    ck_assert_int_eq(cfg.reap_legacy, 1);
}
END_TEST

START_TEST(problems_name_directive_environment_and_server)
{
    static const char *const env[] = {"CLEANUP_INTERVAL", "-5", NULL};
    okey_raw_config_t raw = {{0}};
    okey_config_t cfg;
    apr_array_header_t *problems;

    raw.value[OKEY_SET_REDIRECT_URI] = "keys.example/cb";
    ck_assert_int_eq(resolve(&raw, env, &cfg, &problems), 6);
    ck_assert_str_eq(APR_ARRAY_IDX(problems, 0, const char *),
                     "OpenAIKeyClientID (environment CLIENT_ID) in server srv: "
                     "required but not set");
    ck_assert_str_eq(APR_ARRAY_IDX(problems, 5, const char *),
                     "OpenAIKeyCleanupInterval (environment CLEANUP_INTERVAL) in server "
                     "srv: '-5' is not a whole number");
}
END_TEST

START_TEST(wanted_only_when_configured)
{
    static const char *const env[] = {"CLIENT_ID", "cid", NULL};
    static const char *const unrelated[] = {"EXPIRATION", "60", NULL};
    okey_raw_config_t raw = {{0}};

    ck_assert(!okey_config_wanted(&raw, fake_getenv, NULL));
    ck_assert(!okey_config_wanted(&raw, fake_getenv, (void *)unrelated));
    ck_assert(okey_config_wanted(&raw, fake_getenv, (void *)env));
    raw.value[OKEY_SET_PROJECT] = "p";
    ck_assert(okey_config_wanted(&raw, fake_getenv, NULL));
}
END_TEST

START_TEST(settings_table_is_complete)
{
    int i;

    for (i = 0; i < OKEY_SET_COUNT; i++) {
        ck_assert_ptr_nonnull(okey_settings[i].directive);
        ck_assert(strncmp(okey_settings[i].directive, "OpenAIKey", 9) == 0);
        /* Every setting has an environment variable, as the Go program's
         * had, except the one that names a variable itself. */
        ck_assert(okey_settings[i].env != NULL || i == OKEY_SET_USER_VAR);
    }
}
END_TEST

START_TEST(values_are_checked_where_they_are_set)
{
    ck_assert_ptr_null(okey_config_check_value(test_pool, OKEY_SET_TIMEOUT, "30"));
    ck_assert_str_eq(okey_config_check_value(test_pool, OKEY_SET_TIMEOUT, "0"),
                     "0 is out of range (1..300)");
    ck_assert_str_eq(okey_config_check_value(test_pool, OKEY_SET_EXPIRATION, "1d"),
                     "'1d' is not a whole number");
    ck_assert_ptr_null(okey_config_check_value(test_pool, OKEY_SET_API_BASE,
                                               "http://127.0.0.1:1/v1"));
    ck_assert_ptr_nonnull(okey_config_check_value(test_pool, OKEY_SET_API_BASE,
                                                  "ftp://x"));
    ck_assert_ptr_null(okey_config_check_value(test_pool, OKEY_SET_REAP_LEGACY, "On"));
    ck_assert_ptr_nonnull(okey_config_check_value(test_pool, OKEY_SET_REAP_LEGACY,
                                                  "maybe"));
    ck_assert_ptr_nonnull(okey_config_check_value(test_pool, OKEY_SET_CLIENT_SECRET,
                                                  "file:"));
}
END_TEST

START_TEST(secret_files_others_can_read_are_named)
{
    const char *path = apr_psprintf(test_pool, "/tmp/okey-secret-%d", (int)getpid());
    okey_raw_config_t raw = complete();
    apr_array_header_t *exposed;
    apr_file_t *file;

    ck_assert_int_eq(apr_file_open(&file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                                   APR_FPROT_UREAD | APR_FPROT_UWRITE, test_pool),
                     APR_SUCCESS);
    apr_file_close(file);
    raw.value[OKEY_SET_MANAGEMENT_KEY] = apr_pstrcat(test_pool, "file:", path, NULL);
    exposed = okey_config_exposed_files(test_pool, &raw, fake_getenv, NULL);
    ck_assert_int_eq(exposed->nelts, 0);
    apr_file_perms_set(path, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_WREAD);
    exposed = okey_config_exposed_files(test_pool, &raw, fake_getenv, NULL);
    ck_assert_int_eq(exposed->nelts, 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(exposed, 0, const char *),
                                 "OpenAIKeyManagementKey: file"));
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(exposed, 0, const char *), "everyone"));
    apr_file_remove(path, test_pool);
}
END_TEST

Suite *okey_config_suite(void)
{
    Suite *suite = suite_create("config");
    TCase *tc = test_case("resolve");

    tcase_add_test(tc, defaults_apply);
    tcase_add_test(tc, budgets_are_read_per_profile_and_need_polls);
    tcase_add_test(tc, directive_beats_environment_beats_default);
    tcase_add_test(tc, problems_name_directive_environment_and_server);
    tcase_add_test(tc, wanted_only_when_configured);
    tcase_add_test(tc, settings_table_is_complete);
    tcase_add_test(tc, values_are_checked_where_they_are_set);
    tcase_add_test(tc, secret_files_others_can_read_are_named);
    tcase_add_test(tc, profiles_override_and_inherit);
    suite_add_tcase(suite, tc);
    return suite;
}
