/* Who may have a key. */
#include "testutil.h"

#include <string.h>

#include "policy.h"

static okey_config_t config(const char *issuer)
{
    okey_config_t cfg = {0};

    cfg.issuer = issuer;
    cfg.allowed_users = okey_config_split_list(test_pool, " Alice@Example.com ,, bob@example.com");
    cfg.allowed_domains = okey_config_split_list(test_pool, "corp.example , Other.Example");
    cfg.allowed_groups = okey_config_split_list(test_pool, "ML-Team");
    return cfg;
}

static int allowed(const okey_config_t *cfg, const char *email, int verified,
                   const char *hd)
{
    okey_oidc_identity_t id = {"sub", email, verified, hd};
    okey_err_t *err = okey_policy_check(test_pool, cfg, &id);

    ck_assert(!err || err->status == 403);
    return err == NULL;
}

START_TEST(listed_addresses_match_in_any_case)
{
    okey_config_t cfg = config("https://idp.example");

    ck_assert(allowed(&cfg, "alice@example.com", 1, NULL));
    ck_assert(allowed(&cfg, "ALICE@EXAMPLE.COM", 1, NULL));
    ck_assert(allowed(&cfg, "bob@example.com", 1, "anything.example"));
    ck_assert(!allowed(&cfg, "carol@example.com", 1, NULL));
    ck_assert(!allowed(&cfg, "alice@example.com.evil", 1, NULL));
}
END_TEST

START_TEST(unverified_or_missing_addresses_are_denied)
{
    okey_config_t cfg = config("https://idp.example");

    ck_assert(!allowed(&cfg, "alice@example.com", 0, NULL));
    ck_assert(!allowed(&cfg, NULL, 1, NULL));
    ck_assert(!allowed(&cfg, "no-at-sign", 1, NULL));
}
END_TEST

START_TEST(domains_of_other_providers_follow_the_verified_address)
{
    okey_config_t cfg = config("https://idp.example");

    ck_assert(allowed(&cfg, "dave@corp.example", 1, NULL));
    ck_assert(allowed(&cfg, "dave@other.example", 1, NULL));
    ck_assert(!allowed(&cfg, "dave@sub.corp.example", 1, NULL));
    ck_assert(!allowed(&cfg, "dave@corp.example", 1, "elsewhere.example"));
}
END_TEST

START_TEST(google_domains_need_a_matching_hd)
{
    okey_config_t cfg = config("https://accounts.google.com");

    ck_assert(allowed(&cfg, "dave@corp.example", 1, "corp.example"));
    ck_assert(allowed(&cfg, "dave@corp.example", 1, "CORP.example"));
    ck_assert(!allowed(&cfg, "dave@corp.example", 1, NULL));
    ck_assert(!allowed(&cfg, "dave@corp.example", 1, "other.example"));
    /* Listed addresses need no hd, even at Google. */
    ck_assert(allowed(&cfg, "alice@example.com", 1, NULL));
}
END_TEST

START_TEST(lists_are_split_trimmed_and_lowered)
{
    apr_array_header_t *items = okey_config_split_list(test_pool, "  A@B.c , ,x@y.z,");

    ck_assert_int_eq(items->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(items, 0, const char *), "a@b.c");
    ck_assert_str_eq(APR_ARRAY_IDX(items, 1, const char *), "x@y.z");
    ck_assert_int_eq(okey_config_split_list(test_pool, NULL)->nelts, 0);
}
END_TEST

START_TEST(a_listed_group_admits_any_verified_address)
{
    okey_config_t cfg = config("https://idp.example");
    okey_oidc_identity_t identity = {"sub", "eve@elsewhere.example", 1, NULL, NULL};

    identity.groups = okey_config_split_list(test_pool, "staff,ml-team");
    ck_assert_ptr_null(okey_policy_check(test_pool, &cfg, &identity));
    identity.groups = okey_config_split_list(test_pool, "staff");
    ck_assert_int_eq(okey_policy_check(test_pool, &cfg, &identity)->status, 403);
    identity.groups = NULL;
    ck_assert_int_eq(okey_policy_check(test_pool, &cfg, &identity)->status, 403);
    identity.groups = okey_config_split_list(test_pool, "ml-team");
    identity.email_verified = 0;
    ck_assert_int_eq(okey_policy_check(test_pool, &cfg, &identity)->status, 403);
    /* A verified address that is not plain never names an account. */
    identity.email_verified = 1;
    identity.email = "\"eve\"@corp.example";
    ck_assert_int_eq(okey_policy_check(test_pool, &cfg, &identity)->status, 403);
    identity.email = "eve@elsewhere.example";
    /* Without a token nothing vouches for a group: a group admits nobody
     * to openaikey-issue, whatever the groups configured. */
    ck_assert(!okey_policy_address_listed(&cfg, "eve@elsewhere.example"));
}
END_TEST

START_TEST(handed_over_addresses_must_be_plain)
{
    static const char *const good[] = {
        "alice@example.com", "a.b+tag@mail.example.co.uk", "o'neil@example.com",
        "x_y-z@sub-domain.example",
    };
    static const char *const bad[] = {
        "alice", "@example.com", "alice@", "alice@localhost", "a@b@example.com",
        "\"q\"@example.com", "<x>@example.com", "a b@example.com", "a\r\nb@example.com",
        ".a@example.com", "a.@example.com", "a..b@example.com", "a@-example.com",
        "a@example.com.", "a@exa_mple.com", "\xc3\xbc@example.com", "alice@example.com ",
        "",
    };
    char longest[300];
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ck_assert_msg(okey_policy_address_valid(good[i]), "refused %s", good[i]);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!okey_policy_address_valid(bad[i]), "accepted %s", bad[i]);
    }
    ck_assert(!okey_policy_address_valid(NULL));
    memset(longest, 'a', sizeof(longest));
    memcpy(longest + 64, "@", 1);
    memcpy(longest + 250, ".com", 5);
    ck_assert(okey_policy_address_valid(longest));
    memcpy(longest + 251, ".com", 5);
    ck_assert(!okey_policy_address_valid(longest));
}
END_TEST

Suite *okey_policy_suite(void)
{
    Suite *suite = suite_create("policy");
    TCase *tc = test_case("admission");

    tcase_add_test(tc, listed_addresses_match_in_any_case);
    tcase_add_test(tc, unverified_or_missing_addresses_are_denied);
    tcase_add_test(tc, domains_of_other_providers_follow_the_verified_address);
    tcase_add_test(tc, google_domains_need_a_matching_hd);
    tcase_add_test(tc, lists_are_split_trimmed_and_lowered);
    tcase_add_test(tc, handed_over_addresses_must_be_plain);
    tcase_add_test(tc, a_listed_group_admits_any_verified_address);
    suite_add_tcase(suite, tc);
    return suite;
}
