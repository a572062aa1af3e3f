/* test_errors.c - every error code weft returns has a clear, stable
 * description of its own, true for every function that returns it. */
#include "common.h"

typedef struct {
    int code;
    const char *words[3]; /* each must appear in the description */
} described;

/* Every code a weft function returns (the headers in include/weft/), with words its
 * description must contain. */
static const described codes[] = {
    {0, {"success"}},
    {ECANCELED, {"cancel", "generator", "future"}},
    {ETIMEDOUT, {"deadline", "timeout scope"}},
    {EINVAL, {"invalid argument", "handle", "out of range"}},
    {EPERM, {"not permitted", "fiber", "runtime thread"}},
    {EDEADLK, {"deadlock", "itself", "wf_run"}},
    {EALREADY, {"already", "ended", "timer"}},
    {EAGAIN, {"wait", "temporarily", "name server"}},
    {ENOENT, {"not found", "file", "job name"}},
    {EIO, {"input/output", "name server"}},
    {ENOMEM, {"memory"}},
    {EBUSY, {"busy", "in use", "zygote"}},
    {EBADF, {"file descriptor", "wf_fd_close"}},
    {EOPNOTSUPP, {"not supported", "regular file", "process pool"}},
    {EOVERFLOW, {"semaphore", "handles"}},
    {EXDEV, {"another weft runtime"}},
    {ESHUTDOWN, {"shut down", "queue", "runtime"}},
    {EPIPE, {"barrier", "generator", "pipe"}},
    {EINPROGRESS, {"in progress", "not ended"}},
    {ERANGE, {"out of range", "generator"}},
    {ECHILD, {"worker died", "returncode", "signal"}},
    {EPROTO, {"protocol", "malformed", "oversized"}},
    {ENOEXEC, {"could be started", "initializer"}},
    {EEXIST, {"already exists", "registered"}},
};

#define NCODES (sizeof codes / sizeof codes[0])

static void test_every_code(void **state)
{
    const char *seen[NCODES];
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = wf_strerror(-codes[i].code);
        assert_non_null(s);
        assert_true(strlen(s) > 5);
        /* Positive and negative spellings agree. */
        assert_string_equal(s, wf_strerror(codes[i].code));
        for (size_t w = 0; w < 3 && codes[i].words[w]; w++) {
            if (!strstr(s, codes[i].words[w]))
                fail_msg("wf_strerror(-%d) = \"%s\" lacks \"%s\"", codes[i].code, s, codes[i].words[w]);
        }
        /* Each weft code has its own text... */
        for (size_t j = 0; j < i; j++)
            assert_true(strcmp(s, seen[j]) != 0);
        seen[i] = s;
        /* ...which is weft's, not the C library's. */
        if (codes[i].code)
            assert_true(strcmp(s, strerror(codes[i].code)) != 0);
    }
}

static void test_aliases(void **state)
{
    /* Linux spells some codes twice; both spellings read the same. */
    assert_string_equal(wf_strerror(-EWOULDBLOCK), wf_strerror(-EAGAIN));
    assert_string_equal(wf_strerror(-ENOTSUP), wf_strerror(-EOPNOTSUPP));
    assert_string_equal(wf_strerror(-EDEADLOCK), wf_strerror(-EDEADLK));
}

static void test_other_codes(void **state)
{
    /* Other errnos (a task's status may be any) fall back to the C
     * library's description. */
    assert_string_equal(wf_strerror(-ENOTDIR), "Not a directory");
    assert_string_equal(wf_strerror(-EROFS), "Read-only file system");
    /* Unknown numbers still give a string. */
    assert_string_equal(wf_strerror(-100000), "unknown error");
    assert_string_equal(wf_strerror(INT32_MIN + 1), "unknown error");
    assert_string_equal(wf_strerror(INT32_MIN), "unknown error");
    assert_non_null(wf_strerror(INT32_MAX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_other_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
