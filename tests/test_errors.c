/* test_errors.c - every error code has a clear, stable description. */
#include "common.h"

static void test_strerror(void **state)
{
    const int codes[] = {0, ECANCELED, ETIMEDOUT, EINVAL, EPERM, EDEADLK, EALREADY, EAGAIN,
                         ENOMEM, EBUSY, EBADF};
    const char *seen[sizeof codes / sizeof codes[0]];
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = wf_strerror(-codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 5);
        /* Positive and negative spellings agree. */
        assert_string_equal(s, wf_strerror(codes[i]));
        /* Each weft code has its own text. */
        for (size_t j = 0; j < i; j++)
            assert_true(strcmp(s, seen[j]) != 0);
        seen[i] = s;
    }
    assert_non_null(strstr(wf_strerror(-ECANCELED), "cancel"));
    assert_non_null(strstr(wf_strerror(-ETIMEDOUT), "deadline"));
    assert_non_null(strstr(wf_strerror(-EINVAL), "handle"));
    assert_non_null(strstr(wf_strerror(-EPERM), "fiber"));
    /* Other errnos fall back to the C library's description. */
    assert_string_equal(wf_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(wf_strerror(-EPIPE), "Broken pipe");
    /* Unknown numbers still give a string. */
    assert_non_null(wf_strerror(-100000));
    assert_non_null(wf_strerror(INT32_MIN + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
