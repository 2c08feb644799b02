/* The conformance suite every ledger backend passes: each operation of
 * src/ledger.h, and each race that matters, against a fresh ledger.
 *
 * A backend's test file calls okey_ledger_conformance_add once per suite
 * with a make function:
 *
 *   static okey_ledger_t *make_memory(apr_pool_t *pool, void *arg)
 *   {
 *       okey_ledger_t *ledger = NULL;
 *
 *       return okey_ledger_memory_create(pool, &ledger) == APR_SUCCESS ? ledger : NULL;
 *   }
 *   ...
 *   okey_ledger_conformance_add(suite, "memory", make_memory, NULL);
 *
 * make is called at the start of every test, in the process that runs
 * it, with arg and that test's pool (test_pool), and returns an empty
 * ledger (NULL fails the test). The pool is destroyed when the test ends,
 * whether it passed or not: a backend that must undo something after each
 * test (flush its Redis database, detach a segment) registers a cleanup on
 * it with apr_pool_cleanup_register, and one that must start from nothing
 * clears what it shares before it returns. Threads the suite starts have
 * all ended before the pool goes.
 *
 * The ledger's health and logger are left as make sets them; its
 * fallback must be NULL, so that every answer is the backend's own. Tests
 * call through okey_ledger_*, and a call the backend fails fails the test.
 * Races call one ledger from up to 8 threads at once, a bounded number of
 * times each.
 *
 * Times: every operation that takes a now is given one, from the wall
 * clock at the start of the test and moved forward (by up to a few hours)
 * to see leases lapse, marks expire and reaps fall due. A backend judges by
 * the now it is given, never by its own clock; only the project lock, which
 * takes no now, is timed by the wall clock (its waits are bounded, and no
 * assertion depends on how long one took). */
#ifndef OKEY_LEDGER_CONFORMANCE_H
#define OKEY_LEDGER_CONFORMANCE_H

#include <check.h>

#include "ledger.h"

/* A fresh, empty ledger of the backend under test, in pool; NULL: none. */
typedef okey_ledger_t *okey_ledger_make_fn(apr_pool_t *pool, void *arg);

/* The most backends one test program may add. */
#define OKEY_LEDGER_CONFORMANCE_MAX 8

/* Adds to suite the test cases that hold the backend named backend (for
 * messages) to the contract of src/ledger.h. */
void okey_ledger_conformance_add(Suite *suite, const char *backend,
                                 okey_ledger_make_fn *make, void *arg);

#endif
